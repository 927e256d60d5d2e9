//! Granting and revoking permissions: effective at once, idempotent, validated by index.

use keel_clients::{NewRole, Origin, PageRequest, RoleSelector, ServiceError};
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    grants_and_revocations_change_effective_permissions_at_once,
    granting_what_a_role_holds_changes_and_records_nothing,
    an_unknown_permission_in_a_grant_is_rejected_by_index_and_nothing_is_written,
    no_permission_can_be_revoked_from_admin,
    concurrent_identical_grants_are_recorded_once,
);

async fn role_held_by(app: &TestApp, name: &str) -> anyhow::Result<(Uuid, Uuid)> {
    let client = app.client();
    let role = client
        .create_role(
            NewRole {
                name: name.to_owned(),
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
    client.assign_roles(user, selector, &Origin::default()).await?;
    Ok((role.id, user))
}

async fn grants_and_revocations_change_effective_permissions_at_once(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let (role, user) = role_held_by(app, "moderator").await?;
    assert!(
        !client.has_permission(user, "platform.user.read").await?,
        "cached as not held"
    );
    let granted = client
        .grant_permissions(
            role,
            vec!["platform.user.read".into(), "platform.user.update".into()],
            &Origin::default(),
        )
        .await?;
    assert_eq!(
        granted.permissions,
        ["platform.user.read", "platform.user.update"]
    );
    assert!(
        client.has_permission(user, "platform.user.read").await?,
        "the cache was invalidated"
    );
    assert_eq!(
        client.user_permissions(user).await?,
        ["platform.user.read", "platform.user.update"]
    );
    let revoked = client
        .revoke_permission(role, "platform.user.read", &Origin::default())
        .await?;
    assert_eq!(revoked.permissions, ["platform.user.update"]);
    assert!(!client.has_permission(user, "platform.user.read").await?);
    Ok(())
}

async fn granting_what_a_role_holds_changes_and_records_nothing(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let (role, _) = role_held_by(app, "moderator").await?;
    let grant = vec!["platform.user.read".to_owned(), "platform.user.read".to_owned()];
    client
        .grant_permissions(role, grant.clone(), &Origin::default())
        .await?;
    let rows = app.outbox().await?.len();
    let again = client.grant_permissions(role, grant, &Origin::default()).await?;
    assert_eq!(again.permissions, ["platform.user.read"]);
    client
        .revoke_permission(role, "platform.audit.read", &Origin::default())
        .await?;
    assert_eq!(
        app.outbox().await?.len(),
        rows,
        "no-ops publish and audit nothing"
    );
    let error = client
        .revoke_permission(role, "nothing.such.permission", &Origin::default())
        .await
        .expect_err("unknown");
    assert!(matches!(error, ServiceError::NotFound(_)), "{error:?}");
    Ok(())
}

async fn an_unknown_permission_in_a_grant_is_rejected_by_index_and_nothing_is_written(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let (role, _) = role_held_by(app, "moderator").await?;
    let rows = app.outbox().await?.len();
    let grant = vec!["platform.user.read".to_owned(), "blog.post.create".to_owned()];
    let error = client
        .grant_permissions(role, grant, &Origin::default())
        .await
        .expect_err("unknown");
    let ServiceError::InvalidArgument { violations, .. } = &error else {
        anyhow::bail!("expected InvalidArgument, got {error:?}");
    };
    assert_eq!(
        (violations[0].field.as_str(), violations[0].code.as_str()),
        ("permissions[1]", "unknown_permission")
    );
    assert!(
        client.get_role(role).await?.permissions.is_empty(),
        "the known one was not granted either"
    );
    assert_eq!(app.outbox().await?.len(), rows);
    let error = client
        .grant_permissions(
            Uuid::now_v7(),
            vec!["platform.user.read".into()],
            &Origin::default(),
        )
        .await
        .expect_err("no role");
    assert!(matches!(error, ServiceError::NotFound(_)), "{error:?}");
    Ok(())
}

async fn no_permission_can_be_revoked_from_admin(app: &TestApp) -> anyhow::Result<()> {
    app.service.seed_roles().await?;
    let client = app.client();
    let admin = client
        .list_roles(Some("admin".into()), PageRequest::default())
        .await?
        .items
        .remove(0);
    let error = client
        .revoke_permission(admin.id, "platform.role.manage", &Origin::default())
        .await
        .expect_err("admin keeps everything");
    assert!(matches!(error, ServiceError::FailedPrecondition(_)), "{error:?}");
    assert!(
        client
            .get_role(admin.id)
            .await?
            .permissions
            .contains(&"platform.role.manage".to_owned())
    );
    Ok(())
}

async fn concurrent_identical_grants_are_recorded_once(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let (role, _) = role_held_by(app, "racers").await?;
    let origin = Origin::default();
    let grant = || client.grant_permissions(role, vec!["platform.audit.read".to_owned()], &origin);
    let outcomes = futures_util::future::join_all((0..8).map(|_| grant())).await;
    for outcome in outcomes {
        outcome?;
    }
    let granted_events = app
        .outbox()
        .await?
        .into_iter()
        .filter(|row| row.kind == "event" && row.topic == "platform.permission.granted")
        .filter(|row| row.payload["payload"]["role_id"] == role.to_string())
        .count();
    assert_eq!(granted_events, 1, "one grant happened, so one event");
    Ok(())
}
