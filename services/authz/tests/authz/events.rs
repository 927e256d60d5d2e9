//! What changes leave behind (an event and an audit record in the outbox, in the change's
//! transaction), their delivery, and authz's reactions to user events.

use std::time::Duration;

use keel_clients::{NewRole, Origin, RoleChanges, RoleSelector};
use keel_events::{Event, EventBus as _, topics};
use keel_telemetry::context::{self, RequestContext};
use serde_json::json;
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::{OutboxRow, TestApp, eventually};

on_both_stores!(
    role_changes_leave_their_events_and_audit_records_in_the_outbox,
    grant_and_assignment_changes_leave_their_events_and_audit_records_in_the_outbox,
    the_relay_delivers_events_to_the_bus_and_records_to_the_audit_service,
    a_new_user_receives_the_default_roles_once_however_often_identity_announces_it,
    a_deleted_user_loses_every_assignment,
    a_change_through_another_instance_reaches_this_instances_cache,
);

fn kinds_and_topics(rows: &[OutboxRow]) -> Vec<(&str, &str)> {
    rows.iter().map(|r| (r.kind.as_str(), r.topic.as_str())).collect()
}

/// What `action` returned and the outbox rows it added; it runs under a request id.
async fn step<T>(
    app: &TestApp,
    action: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Vec<OutboxRow>)> {
    let before = app.outbox().await?.len();
    let value = context::scope(RequestContext::new("req-authz-test"), action).await?;
    Ok((value, app.outbox().await?.split_off(before)))
}

fn admin_origin() -> Origin {
    Origin {
        actor_id: Some(Uuid::now_v7()),
        ip: Some("203.0.113.9".into()),
        user_agent: Some("admin-console/1".into()),
    }
}

async fn role_changes_leave_their_events_and_audit_records_in_the_outbox(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let origin = admin_origin();
    let new = NewRole {
        name: "ops".into(),
        description: "Operators".into(),
        permissions: vec!["platform.user.read".into()],
    };
    let (role_id, rows) = step(app, async { Ok(client.create_role(new, &origin).await?.id) }).await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [
            ("event", topics::ROLE_CREATED),
            ("audit", "authz.role.created"),
            ("event", topics::PERMISSION_GRANTED),
            ("audit", "authz.permission.granted"),
        ]
    );
    assert_eq!(
        rows[0].payload["payload"],
        json!({"role_id": role_id, "role_name": "ops"})
    );
    assert_eq!(rows[0].payload["request_id"], "req-authz-test");
    assert_eq!(
        rows[2].payload["payload"]["permissions"],
        json!(["platform.user.read"])
    );
    let audit = &rows[1].payload;
    assert_eq!(audit["actor_id"], json!(origin.actor_id));
    assert_eq!(
        (audit["target_type"].as_str(), audit["target_id"].clone()),
        (Some("role"), json!(role_id))
    );
    assert_eq!(
        (audit["ip"].as_str(), audit["user_agent"].as_str()),
        (Some("203.0.113.9"), Some("admin-console/1"))
    );
    assert_eq!(
        (audit["request_id"].as_str(), audit["source"].as_str()),
        (Some("req-authz-test"), Some("authz"))
    );

    let changes = RoleChanges {
        name: Some("operators".into()),
        description: None,
    };
    let (_, rows) = step(app, async {
        Ok(client.update_role(role_id, changes, &origin).await?)
    })
    .await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [("event", topics::ROLE_UPDATED), ("audit", "authz.role.updated")]
    );
    assert_eq!(rows[1].payload["metadata"]["previous_name"], "ops");

    let (_, rows) = step(app, async { Ok(client.delete_role(role_id, &origin).await?) }).await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [("event", topics::ROLE_DELETED), ("audit", "authz.role.deleted")]
    );
    assert_eq!(
        rows[0].payload["payload"],
        json!({"role_id": role_id, "role_name": "operators"})
    );
    Ok(())
}

async fn grant_and_assignment_changes_leave_their_events_and_audit_records_in_the_outbox(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let origin = admin_origin();
    let new = NewRole {
        name: "ops".into(),
        ..NewRole::default()
    };
    let role_id = client.create_role(new, &origin).await?.id;
    let grant = vec!["platform.audit.read".to_owned()];
    let (_, rows) = step(app, async {
        Ok(client.grant_permissions(role_id, grant, &origin).await?)
    })
    .await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [
            ("event", topics::PERMISSION_GRANTED),
            ("audit", "authz.permission.granted")
        ]
    );
    assert_eq!(
        rows[0].payload["payload"],
        json!({"role_id": role_id, "role_name": "ops", "permissions": ["platform.audit.read"]})
    );

    let revoke = client.revoke_permission(role_id, "platform.audit.read", &origin);
    let (_, rows) = step(app, async { Ok(revoke.await?) }).await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [
            ("event", topics::PERMISSION_REVOKED),
            ("audit", "authz.permission.revoked")
        ]
    );
    assert_eq!(
        rows[0].payload["payload"]["permissions"],
        json!(["platform.audit.read"])
    );

    let user = app.new_user();
    let selector = RoleSelector {
        ids: vec![role_id],
        names: Vec::new(),
    };
    let (_, rows) = step(app, async {
        Ok(client.assign_roles(user, selector, &origin).await?)
    })
    .await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [("event", topics::ROLE_ASSIGNED), ("audit", "authz.role.assigned")]
    );
    assert_eq!(
        rows[0].payload["payload"],
        json!({"user_id": user, "role_id": role_id, "role_name": "ops"})
    );
    assert_eq!(
        (
            rows[1].payload["target_type"].as_str(),
            rows[1].payload["target_id"].clone()
        ),
        (Some("user"), json!(user))
    );

    let (_, rows) = step(app, async {
        Ok(client.revoke_role(user, role_id, &origin).await?)
    })
    .await?;
    assert_eq!(
        kinds_and_topics(&rows),
        [("event", topics::ROLE_REVOKED), ("audit", "authz.role.revoked")]
    );
    assert_eq!(rows[1].payload["actor_id"], json!(origin.actor_id));
    Ok(())
}

async fn the_relay_delivers_events_to_the_bus_and_records_to_the_audit_service(
    app: &TestApp,
) -> anyhow::Result<()> {
    let mut roles = app.bus.subscribe(topics::ALL_ROLE).await?;
    app.service.start_background(&app.kernel);
    let new = NewRole {
        name: "ops".into(),
        ..NewRole::default()
    };
    let role = app.client().create_role(new, &Origin::default()).await?;
    let event = tokio::time::timeout(Duration::from_secs(5), roles.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription closed"))?;
    assert_eq!(
        (event.topic.as_str(), event.source.as_str()),
        (topics::ROLE_CREATED, "authz")
    );
    assert_eq!(event.payload["role_id"], json!(role.id));
    eventually("the audit service received the record", || async {
        Ok(app
            .audit
            .records()
            .iter()
            .any(|r| r.action == "authz.role.created"))
    })
    .await?;
    eventually("the outbox is empty", || async {
        Ok(app.count("keel_outbox").await? == 0)
    })
    .await
}

fn user_event(topic: &str, user: Uuid) -> anyhow::Result<Event> {
    Ok(Event::new(
        topic,
        "identity",
        json!({"user_id": user, "email": format!("{user}@example.test")}),
    )?)
}

async fn a_new_user_receives_the_default_roles_once_however_often_identity_announces_it(
    app: &TestApp,
) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    app.service.start_background(&app.kernel);
    let (user, marker) = (app.new_user(), app.new_user());
    let created = user_event(topics::USER_CREATED, user)?;
    app.bus.publish(&created).await?;
    app.bus.publish(&created).await?;
    app.bus
        .publish(&user_event(topics::USER_CREATED, marker)?)
        .await?;
    let client = app.client();
    eventually(
        "the marker user has its roles (so both deliveries were handled)",
        || async { Ok(!client.user_roles(marker).await?.is_empty()) },
    )
    .await?;
    let roles = client.user_roles(user).await?;
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["user"]
    );
    eventually("the assignment is audited", || async {
        Ok(app
            .audit
            .records()
            .iter()
            .any(|r| r.target_id == Some(marker.to_string())))
    })
    .await?;
    let assigned = app
        .audit
        .records()
        .into_iter()
        .filter(|r| r.action == "authz.role.assigned" && r.target_id == Some(user.to_string()))
        .collect::<Vec<_>>();
    assert_eq!(assigned.len(), 1, "a repeated delivery assigns nothing more");
    assert_eq!(assigned[0].actor_id, None, "done by the system");
    assert_eq!(
        assigned[0].request_id,
        created.request_id.or(Some(created.id.to_string()))
    );
    Ok(())
}

async fn a_deleted_user_loses_every_assignment(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    app.service.start_background(&app.kernel);
    let user = app.new_user();
    app.service.assign_roles_by_name(user, &["admin", "user"]).await?;
    let client = app.client();
    assert!(client.has_permission(user, "platform.role.manage").await?);
    app.bus.publish(&user_event(topics::USER_DELETED, user)?).await?;
    eventually("the deleted user's roles are gone", || async {
        Ok(client.user_roles(user).await?.is_empty())
    })
    .await?;
    assert!(!client.has_permission(user, "platform.role.manage").await?);
    eventually("both revocations are audited", || async {
        Ok(app
            .audit
            .records()
            .iter()
            .filter(|r| r.action == "authz.role.revoked")
            .count()
            == 2)
    })
    .await
}

async fn a_change_through_another_instance_reaches_this_instances_cache(app: &TestApp) -> anyhow::Result<()> {
    let other = app.second_instance().await?;
    app.service.start_background(&app.kernel);
    other.start_background(&app.kernel);
    let here = app.client();
    let there = other.local_client();
    let role = there
        .create_role(
            NewRole {
                name: "readers".into(),
                ..NewRole::default()
            },
            &Origin::default(),
        )
        .await?;
    let user = app.new_user();
    let selector = RoleSelector {
        ids: vec![role.id],
        names: Vec::new(),
    };
    there.assign_roles(user, selector, &Origin::default()).await?;
    assert!(
        !here.has_permission(user, "platform.user.read").await?,
        "now cached here as not held"
    );
    there
        .grant_permissions(role.id, vec!["platform.user.read".into()], &Origin::default())
        .await?;
    eventually("this instance sees the grant made through the other", || async {
        Ok(here.has_permission(user, "platform.user.read").await?)
    })
    .await
}
