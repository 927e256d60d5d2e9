//! The gRPC edge, through the real gRPC client found in the registry: the same answers and the
//! same errors (status codes, field paths) as in-process.

use std::sync::Arc;
use std::time::Duration;

use keel_clients::{
    AuthzClient, CallPolicy, GrpcAuthzClient, NewRole, Origin, PageRequest, RoleSelector, ServiceError,
};
use keel_grpc::GrpcServer;
use keel_registry::ServiceInstance;
use uuid::Uuid;

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(the_grpc_client_gets_the_same_answers_and_errors_as_in_process);

/// Serves the service's gRPC on a free port and returns a client that finds it in the registry.
async fn grpc_client(app: &TestApp) -> anyhow::Result<Arc<dyn AuthzClient>> {
    let config = app.kernel.config().kernel().grpc.clone();
    let server = GrpcServer::bind("127.0.0.1:0".parse()?, &config).await?;
    let port = server.local_addr().port();
    let service = app.service.grpc_service();
    let shutdown = app.kernel.shutdown_token();
    app.kernel.spawn("test-grpc", async move {
        server
            .serve(
                |router| router.add_service(service),
                shutdown,
                Duration::from_secs(1),
            )
            .await
    });
    let instance =
        ServiceInstance::new("authz", "authz-test", "127.0.0.1").with_port(ServiceInstance::GRPC, port);
    let _registration = app.kernel.registry().register(instance).await?;
    Ok(Arc::new(GrpcAuthzClient::new(
        app.kernel.registry().clone(),
        &config,
        CallPolicy::default(),
    )))
}

async fn the_grpc_client_gets_the_same_answers_and_errors_as_in_process(app: &TestApp) -> anyhow::Result<()> {
    let admin = app.admin().await?;
    let client = grpc_client(app).await?;
    let origin = Origin {
        actor_id: Some(admin),
        ..Origin::default()
    };
    assert!(client.has_permission(admin, "platform.role.manage").await?);
    assert_eq!(
        client.user_permissions(admin).await?,
        app.client().user_permissions(admin).await?
    );
    assert_eq!(client.list_permissions().await?.len(), 5);

    let new = NewRole {
        name: "ops".into(),
        description: "Operators".into(),
        permissions: vec!["platform.user.read".into(), "nope.nope.nope".into()],
    };
    let error = client
        .create_role(new, &origin)
        .await
        .expect_err("unknown permission");
    let ServiceError::InvalidArgument { violations, .. } = &error else {
        anyhow::bail!("expected InvalidArgument, got {error:?}");
    };
    assert_eq!(
        (violations[0].field.as_str(), violations[0].code.as_str()),
        ("permissions[1]", "unknown_permission")
    );

    let new = NewRole {
        name: "ops".into(),
        description: "Operators".into(),
        permissions: vec!["platform.user.read".into()],
    };
    let role = client.create_role(new, &origin).await?;
    assert_eq!(
        client.get_role(role.id).await?,
        app.client().get_role(role.id).await?
    );
    let page = client
        .list_roles(
            None,
            PageRequest {
                limit: Some(2),
                cursor: None,
            },
        )
        .await?;
    assert_eq!(page.items.len(), 2);
    let next = client
        .list_roles(
            None,
            PageRequest {
                limit: Some(2),
                cursor: page.next_cursor,
            },
        )
        .await?;
    assert_eq!(
        next.items.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["ops", "user"]
    );

    let user = app.new_user();
    let by_name = RoleSelector {
        ids: Vec::new(),
        names: vec!["ops".into()],
    };
    let roles = client.assign_roles(user, by_name, &origin).await?;
    assert_eq!(roles.iter().map(|r| r.id).collect::<Vec<_>>(), [role.id]);
    assert!(client.has_permission(user, "platform.user.read").await?);
    client.revoke_role(user, role.id, &origin).await?;
    assert!(client.user_roles(user).await?.is_empty());
    client
        .assign_roles(
            user,
            RoleSelector {
                ids: vec![role.id],
                names: Vec::new(),
            },
            &origin,
        )
        .await?;
    assert_eq!(client.revoke_all_roles(user, &origin).await?, 1);
    assert!(client.user_roles(user).await?.is_empty());
    let last = client.revoke_all_roles(admin, &origin).await;
    assert!(
        matches!(last, Err(ServiceError::FailedPrecondition(_))),
        "{last:?}"
    );

    assert!(matches!(
        client.get_role(Uuid::now_v7()).await,
        Err(ServiceError::NotFound(_))
    ));
    let guest = client
        .list_roles(Some("guest".into()), PageRequest::default())
        .await?
        .items
        .remove(0);
    let error = client
        .delete_role(guest.id, &origin)
        .await
        .expect_err("system role");
    assert!(matches!(error, ServiceError::FailedPrecondition(_)), "{error:?}");
    client.delete_role(role.id, &origin).await?;
    Ok(())
}
