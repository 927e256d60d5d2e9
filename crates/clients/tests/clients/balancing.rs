//! Calls spread over the healthy instances, and never reach one that left the registry.

use keel_clients::{GrpcIdentityClient, IdentityClient, PageRequest};
use keel_registry::ServiceRegistry;

use crate::fakes::identity::FakeIdentity;
use crate::support::{grpc_config, policy, register, registry, serve};

#[tokio::test]
async fn calls_are_spread_evenly_and_a_deregistered_instance_gets_no_more() -> anyhow::Result<()> {
    let (one, two) = (FakeIdentity::default(), FakeIdentity::default());
    let (server_one, server_two) = (one.server(), two.server());
    let running_one = serve(move |router| router.add_service(server_one)).await?;
    let running_two = serve(move |router| router.add_service(server_two)).await?;
    let (registry, shared) = registry();
    let first = register(&registry, "identity", running_one.port).await?;
    register(&registry, "identity", running_two.port).await?;
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());

    for _ in 0..10 {
        client.list_users(PageRequest::default()).await?;
    }
    assert_eq!(
        (one.knobs.calls("ListUsers"), two.knobs.calls("ListUsers")),
        (5, 5)
    );

    // Still running, but no longer registered: it must not be called.
    registry.deregister("identity", &first).await?;
    for _ in 0..10 {
        client.list_users(PageRequest::default()).await?;
    }
    assert_eq!(
        (one.knobs.calls("ListUsers"), two.knobs.calls("ListUsers")),
        (5, 15)
    );

    // Back again: it takes its share again.
    register(&registry, "identity", running_one.port).await?;
    for _ in 0..10 {
        client.list_users(PageRequest::default()).await?;
    }
    assert_eq!(
        (one.knobs.calls("ListUsers"), two.knobs.calls("ListUsers")),
        (10, 20)
    );
    Ok(())
}
