//! `CachedAuthzClient` over the gRPC client: warm checks make no call, invalidation and the
//! client's own writes make the next check see the change.

use std::sync::Arc;
use std::time::Duration;

use keel_clients::{AuthzClient, CachedAuthzClient, NewRole, Origin, RoleSelector};
use uuid::Uuid;

use crate::authz::{MANAGE, READ, permission, start};
use crate::support::lock;

#[tokio::test]
async fn checks_are_answered_from_the_cache_until_the_user_is_invalidated() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let origin = Origin::default();
    client
        .register_permissions(vec![permission(READ), permission(MANAGE)])
        .await?;
    let role = NewRole {
        name: "reader".into(),
        description: String::new(),
        permissions: vec![READ.into()],
    };
    let role = client.create_role(role, &origin).await?;
    let user = Uuid::now_v7();
    client
        .assign_roles(
            user,
            RoleSelector {
                ids: vec![role.id],
                names: vec![],
            },
            &origin,
        )
        .await?;
    let cached = CachedAuthzClient::new(Arc::new(client), Duration::from_secs(60));

    assert!(cached.has_permission(user, READ).await?);
    assert!(cached.has_permission(user, READ).await?);
    assert_eq!(cached.user_permissions(user).await?, [READ]);
    assert_eq!(
        fake.knobs.calls("GetUserPermissions"),
        1,
        "one fetch answers every allowed check"
    );
    assert_eq!(fake.knobs.calls("HasPermission"), 0);

    // A denial is confirmed with authz, so a grant made elsewhere applies to the very next check
    // even before its invalidation event arrives.
    assert!(!cached.has_permission(user, MANAGE).await?);
    assert_eq!(
        fake.knobs.calls("GetUserPermissions"),
        2,
        "a denial is never answered from the cache"
    );
    lock(&fake.state).roles[0].permissions.push(MANAGE.into());
    assert!(cached.has_permission(user, MANAGE).await?);
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 3);

    // A revocation made elsewhere applies once the invalidation arrives.
    lock(&fake.state).roles[0].permissions.clear();
    assert!(
        cached.has_permission(user, READ).await?,
        "still allowed until told"
    );
    cached.invalidate_all();
    assert!(!cached.has_permission(user, READ).await?);
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 4);
    Ok(())
}

#[tokio::test]
async fn the_clients_own_writes_apply_to_its_next_check() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let origin = Origin::default();
    client
        .register_permissions(vec![permission(READ), permission(MANAGE)])
        .await?;
    let role = NewRole {
        name: "reader".into(),
        description: String::new(),
        permissions: vec![READ.into()],
    };
    let role = client.create_role(role, &origin).await?;
    let cached = CachedAuthzClient::new(Arc::new(client), Duration::from_secs(60));
    let user = Uuid::now_v7();

    assert!(!cached.has_permission(user, READ).await?);
    cached
        .assign_roles(
            user,
            RoleSelector {
                ids: vec![role.id],
                names: vec![],
            },
            &origin,
        )
        .await?;
    assert!(
        cached.has_permission(user, READ).await?,
        "assigning a role invalidates the user"
    );

    cached
        .grant_permissions(role.id, vec![MANAGE.into()], &origin)
        .await?;
    assert!(
        cached.has_permission(user, MANAGE).await?,
        "a grant invalidates every user"
    );
    cached.revoke_permission(role.id, MANAGE, &origin).await?;
    assert!(
        !cached.has_permission(user, MANAGE).await?,
        "a revocation invalidates every user"
    );
    cached.revoke_role(user, role.id, &origin).await?;
    assert!(
        !cached.has_permission(user, READ).await?,
        "revoking a role invalidates the user"
    );
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 5);
    Ok(())
}

#[tokio::test]
async fn a_cached_set_is_fetched_again_after_its_ttl() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let cached = CachedAuthzClient::new(Arc::new(client), Duration::from_millis(300));
    let user = Uuid::now_v7();
    assert!(cached.user_permissions(user).await?.is_empty());
    assert!(cached.user_permissions(user).await?.is_empty());
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(cached.user_permissions(user).await?.is_empty());
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 2);
    Ok(())
}

#[tokio::test]
async fn a_ttl_meant_as_for_ever_is_cut_to_the_maximum_instead_of_overflowing() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    client.register_permissions(vec![permission(READ)]).await?;
    let cached = CachedAuthzClient::new(Arc::new(client), Duration::MAX);
    // The first check caches the user's permissions until now + the TTL: with Duration::MAX that
    // instant is not representable, and caching used to panic.
    assert!(!cached.has_permission(Uuid::now_v7(), READ).await?);
    assert_eq!(fake.knobs.calls("GetUserPermissions"), 1);
    assert!(format!("{cached:?}").contains(&format!("{:?}", CachedAuthzClient::MAX_TTL)));
    Ok(())
}
