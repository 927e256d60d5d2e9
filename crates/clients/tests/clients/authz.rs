//! `GrpcAuthzClient` against a served authz fake: every method.

use keel_clients::{
    AuthzClient, FieldViolation, GrpcAuthzClient, NewRole, Origin, PageRequest, Permission, Role,
    RoleChanges, RoleSelector, ServiceError,
};
use uuid::Uuid;

use crate::fakes::authz::FakeAuthz;
use crate::support::{Running, grpc_config, lock, policy, register, registry, serve};

/// A permission of the tests' catalogue, held by the `reader` role.
pub(crate) const READ: &str = "platform.user.read";
/// A permission of the tests' catalogue, held by nobody at first.
pub(crate) const MANAGE: &str = "platform.role.manage";

/// A served authz fake and an uncached client of it.
pub(crate) async fn start() -> anyhow::Result<(FakeAuthz, GrpcAuthzClient, Running)> {
    let fake = FakeAuthz::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "authz", running.port).await?;
    Ok((
        fake,
        GrpcAuthzClient::new(shared, &grpc_config(), policy()),
        running,
    ))
}

/// A catalogue entry of the `platform` module.
pub(crate) fn permission(name: &str) -> Permission {
    Permission {
        name: name.into(),
        description: format!("allows {name}"),
        module: "platform".into(),
    }
}

/// The catalogue's two core permissions, registered; a role `reader` created with `permissions`.
async fn catalogue_and_role(
    client: &GrpcAuthzClient,
    permissions: &[&str],
    origin: &Origin,
) -> anyhow::Result<Role> {
    let catalogue = vec![permission(READ), permission(MANAGE)];
    assert_eq!(client.register_permissions(catalogue.clone()).await?, 2);
    assert_eq!(
        client.register_permissions(catalogue).await?,
        0,
        "registering is idempotent"
    );
    let permissions = permissions.iter().map(|p| (*p).to_owned()).collect();
    let new = NewRole {
        name: "reader".into(),
        description: "Reads".into(),
        permissions,
    };
    Ok(client.create_role(new, origin).await?)
}

#[tokio::test]
async fn catalogue_and_role_methods_reach_their_rpcs_and_carry_the_origin() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let origin = Origin {
        actor_id: Some(Uuid::now_v7()),
        ..Origin::default()
    };
    let role = catalogue_and_role(&client, &[], &origin).await?;
    assert_eq!(lock(&fake.state).last_origin.as_ref(), Some(&origin));
    let names: Vec<String> = client
        .list_permissions()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, [MANAGE, READ]);

    let unknown = NewRole {
        name: "other".into(),
        description: String::new(),
        permissions: vec!["nope".into()],
    };
    let violation = FieldViolation {
        field: "permissions[0]".into(),
        code: "unknown_permission".into(),
        message: "is not in the catalogue".into(),
    };
    let expected = ServiceError::InvalidArgument {
        message: "unknown permissions".into(),
        violations: vec![violation],
    };
    assert_eq!(
        client.create_role(unknown, &origin).await.map(|_| ()),
        Err(expected)
    );

    assert_eq!(client.get_role(role.id).await?, role);
    let granted = client
        .grant_permissions(role.id, vec![READ.into()], &origin)
        .await?;
    assert_eq!(granted.permissions, [READ]);
    let revoked = client.revoke_permission(role.id, READ, &origin).await?;
    assert!(revoked.permissions.is_empty());
    let renamed = RoleChanges {
        name: Some("viewer".into()),
        description: None,
    };
    assert_eq!(
        client.update_role(role.id, renamed, &origin).await?.name,
        "viewer"
    );
    let listed = client
        .list_roles(Some("VIEWER".into()), PageRequest::default())
        .await?;
    assert_eq!((listed.items.len(), listed.next_cursor), (1, None));
    client.delete_role(role.id, &origin).await?;
    let gone = client.get_role(role.id).await;
    assert_eq!(gone, Err(ServiceError::NotFound("no such role".into())));
    Ok(())
}

#[tokio::test]
async fn assignment_and_check_methods_reach_their_rpcs() -> anyhow::Result<()> {
    let (_fake, client, _running) = start().await?;
    let origin = Origin::default();
    let role = catalogue_and_role(&client, &[READ], &origin).await?;
    let user = Uuid::now_v7();
    assert!(!client.has_permission(user, READ).await?);
    assert!(client.user_permissions(user).await?.is_empty());

    let by_name = RoleSelector {
        ids: vec![],
        names: vec!["reader".into()],
    };
    let held = client.assign_roles(user, by_name, &origin).await?;
    assert_eq!(held.iter().map(|r| r.id).collect::<Vec<_>>(), [role.id]);
    let by_id = RoleSelector {
        ids: vec![role.id],
        names: vec![],
    };
    assert_eq!(
        client.assign_roles(user, by_id, &origin).await?.len(),
        1,
        "assigning is idempotent"
    );
    assert!(client.has_permission(user, READ).await?);
    assert!(!client.has_permission(user, MANAGE).await?);
    assert_eq!(client.user_permissions(user).await?, [READ]);
    assert_eq!(client.user_roles(user).await?, std::slice::from_ref(&role));

    client.revoke_role(user, role.id, &origin).await?;
    assert!(client.user_roles(user).await?.is_empty());
    assert!(!client.has_permission(user, READ).await?);
    Ok(())
}
