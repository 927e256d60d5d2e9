//! Assigning roles to users and taking them away; effective permissions are the union of roles.

use keel_clients::{NewRole, Origin, RoleSelector, ServiceError};
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    effective_permissions_are_the_union_of_the_users_roles,
    assigning_a_held_role_again_changes_and_records_nothing,
    an_unknown_role_is_rejected_by_index_and_nothing_is_assigned,
    revoking_a_role_takes_its_permissions_away_at_once,
    a_malformed_permission_check_is_a_validation_error,
    the_last_administrator_cannot_lose_the_admin_role,
    two_administrators_removing_each_other_at_once_leave_one,
    a_deleted_user_loses_every_role_but_the_last_administrator_is_kept,
    two_administrators_deleted_at_once_leave_one,
);

async fn role(app: &TestApp, name: &str, permissions: &[&str]) -> anyhow::Result<Uuid> {
    let new = NewRole {
        name: name.to_owned(),
        description: String::new(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    };
    Ok(app.client().create_role(new, &Origin::default()).await?.id)
}

/// The seeded administrator and the id of the admin role.
async fn admin_and_role(app: &TestApp) -> anyhow::Result<(Uuid, Uuid)> {
    let admin = app.admin().await?;
    let role = app
        .client()
        .user_roles(admin)
        .await?
        .into_iter()
        .find(|role| role.name == "admin")
        .expect("admin role")
        .id;
    Ok((admin, role))
}

fn ids(ids: &[Uuid]) -> RoleSelector {
    RoleSelector {
        ids: ids.to_vec(),
        names: Vec::new(),
    }
}

async fn effective_permissions_are_the_union_of_the_users_roles(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let readers = role(app, "readers", &["platform.user.read", "platform.audit.read"]).await?;
    let editors = role(app, "editors", &["platform.user.read", "platform.user.update"]).await?;
    let user = app.new_user();
    let roles = client
        .assign_roles(user, ids(&[readers, editors]), &Origin::default())
        .await?;
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["editors", "readers"]
    );
    assert_eq!(
        client.user_permissions(user).await?,
        [
            "platform.audit.read",
            "platform.user.read",
            "platform.user.update"
        ]
    );
    assert!(client.has_permission(user, "platform.user.update").await?);
    assert!(!client.has_permission(user, "platform.user.delete").await?);
    assert!(
        client.user_permissions(app.new_user()).await?.is_empty(),
        "a user without roles holds nothing"
    );
    Ok(())
}

async fn assigning_a_held_role_again_changes_and_records_nothing(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let readers = role(app, "readers", &["platform.user.read"]).await?;
    let user = app.new_user();
    client
        .assign_roles(user, ids(&[readers, readers]), &Origin::default())
        .await?;
    let rows = app.outbox().await?.len();
    let roles = client
        .assign_roles(user, ids(&[readers]), &Origin::default())
        .await?;
    assert_eq!(roles.len(), 1);
    client
        .revoke_role(user, Uuid::now_v7(), &Origin::default())
        .await
        .expect_err("unknown role is 404");
    client
        .revoke_role(app.new_user(), readers, &Origin::default())
        .await?;
    assert_eq!(app.outbox().await?.len(), rows);
    assert_eq!(app.count("user_roles").await?, 1);
    Ok(())
}

async fn an_unknown_role_is_rejected_by_index_and_nothing_is_assigned(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let readers = role(app, "readers", &["platform.user.read"]).await?;
    let user = app.new_user();
    let rows = app.outbox().await?.len();
    let error = client
        .assign_roles(user, ids(&[readers, Uuid::now_v7()]), &Origin::default())
        .await
        .expect_err("unknown role");
    let ServiceError::InvalidArgument { violations, .. } = &error else {
        anyhow::bail!("expected InvalidArgument, got {error:?}");
    };
    assert_eq!(
        (violations[0].field.as_str(), violations[0].code.as_str()),
        ("role_ids[1]", "unknown_role")
    );
    let by_name = RoleSelector {
        ids: Vec::new(),
        names: vec!["readers".into(), "nobody".into()],
    };
    let error = client
        .assign_roles(user, by_name, &Origin::default())
        .await
        .expect_err("unknown name");
    assert!(
        matches!(&error, ServiceError::InvalidArgument { violations, .. } if violations[0].field == "role_names[1]")
    );
    assert!(client.user_roles(user).await?.is_empty());
    assert_eq!(app.outbox().await?.len(), rows);
    Ok(())
}

async fn revoking_a_role_takes_its_permissions_away_at_once(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let readers = role(app, "readers", &["platform.user.read"]).await?;
    let user = app.new_user();
    client
        .assign_roles(user, ids(&[readers]), &Origin::default())
        .await?;
    assert!(client.has_permission(user, "platform.user.read").await?);
    client.revoke_role(user, readers, &Origin::default()).await?;
    assert!(!client.has_permission(user, "platform.user.read").await?);
    assert!(client.user_roles(user).await?.is_empty());
    Ok(())
}

async fn a_malformed_permission_check_is_a_validation_error(app: &TestApp) -> anyhow::Result<()> {
    let error = app
        .client()
        .has_permission(app.new_user(), "manage")
        .await
        .expect_err("malformed");
    assert!(
        matches!(&error, ServiceError::InvalidArgument { violations, .. } if violations[0].field == "permission")
    );
    Ok(())
}

async fn two_administrators_removing_each_other_at_once_leave_one(app: &TestApp) -> anyhow::Result<()> {
    // Each revocation deletes a different row: only the role's lock orders them.
    two_administrators_removed_at_once_leave_one(app, Removal::AdminRole).await
}

/// How the race below takes the admin role away.
#[derive(Clone, Copy)]
enum Removal {
    /// `revoke_role` of the admin role.
    AdminRole,
    /// `revoke_all_roles` (the user is about to be deleted).
    EveryRole,
}

/// Ten rounds of two administrators losing the admin role at the same moment: exactly one of the
/// two removals is refused each time, so one administrator is always left.
async fn two_administrators_removed_at_once_leave_one(app: &TestApp, removal: Removal) -> anyhow::Result<()> {
    let client = app.client();
    let (first, admin_role) = admin_and_role(app).await?;
    let remove = |user: Uuid| {
        let client = client.clone();
        async move {
            let origin = Origin::default();
            match removal {
                Removal::AdminRole => client.revoke_role(user, admin_role, &origin).await,
                Removal::EveryRole => client.revoke_all_roles(user, &origin).await.map(drop),
            }
        }
    };
    for round in 0..10 {
        let second = app.new_user();
        client
            .assign_roles(second, ids(&[admin_role]), &Origin::default())
            .await?;
        let (a, b) = tokio::join!(remove(first), remove(second));
        let remaining = [
            client.has_permission(first, "platform.role.manage").await?,
            client.has_permission(second, "platform.role.manage").await?,
        ];
        assert_eq!(
            remaining.iter().filter(|held| **held).count(),
            1,
            "round {round}: exactly one administrator is left ({a:?}, {b:?})"
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "round {round}: one removal refused ({a:?}, {b:?})"
        );
        if !remaining[0] {
            // Keep `first` the administrator of the next round.
            client
                .assign_roles(first, ids(&[admin_role]), &Origin::default())
                .await?;
            client.revoke_role(second, admin_role, &Origin::default()).await?;
        }
    }
    Ok(())
}

async fn the_last_administrator_cannot_lose_the_admin_role(app: &TestApp) -> anyhow::Result<()> {
    let client = app.client();
    let (first, admin_role) = admin_and_role(app).await?;
    let refused = client.revoke_role(first, admin_role, &Origin::default()).await;
    assert!(
        matches!(refused, Err(ServiceError::FailedPrecondition(_))),
        "{refused:?}"
    );
    assert!(
        client.has_permission(first, "platform.role.manage").await?,
        "still an administrator"
    );

    let second = app.new_user();
    client
        .assign_roles(second, ids(&[admin_role]), &Origin::default())
        .await?;
    client.revoke_role(first, admin_role, &Origin::default()).await?;
    assert!(
        !client.has_permission(first, "platform.role.manage").await?,
        "with another admin it may go"
    );
    Ok(())
}

async fn a_deleted_user_loses_every_role_but_the_last_administrator_is_kept(
    app: &TestApp,
) -> anyhow::Result<()> {
    let client = app.client();
    let origin = Origin::default();
    let (first, admin_role) = admin_and_role(app).await?;
    let readers = role(app, "readers", &["platform.user.read"]).await?;
    let writers = role(app, "writers", &["platform.user.update"]).await?;

    let user = app.new_user();
    client
        .assign_roles(user, ids(&[readers, writers]), &origin)
        .await?;
    assert_eq!(client.revoke_all_roles(user, &origin).await?, 2);
    assert!(client.user_roles(user).await?.is_empty());
    assert!(
        !client.has_permission(user, "platform.user.read").await?,
        "effective at once"
    );
    assert_eq!(client.revoke_all_roles(user, &origin).await?, 0, "idempotent");

    client.assign_roles(first, ids(&[readers]), &origin).await?;
    let refused = client.revoke_all_roles(first, &origin).await;
    assert!(
        matches!(&refused, Err(ServiceError::FailedPrecondition(reason)) if reason.contains("last holder of the admin role")),
        "{refused:?}"
    );
    assert_eq!(client.user_roles(first).await?.len(), 2, "nothing was taken");

    let second = app.new_user();
    client.assign_roles(second, ids(&[admin_role]), &origin).await?;
    assert_eq!(
        client.revoke_all_roles(first, &origin).await?,
        2,
        "with another admin they may go"
    );
    assert!(!client.has_permission(first, "platform.role.manage").await?);
    assert!(client.has_permission(second, "platform.role.manage").await?);
    Ok(())
}

async fn two_administrators_deleted_at_once_leave_one(app: &TestApp) -> anyhow::Result<()> {
    two_administrators_removed_at_once_leave_one(app, Removal::EveryRole).await
}
