//! Retries, deadlines, the circuit breaker and an absent service, as a caller sees them.

use std::time::{Duration, Instant};

use keel_clients::{
    CallPolicy, GrpcIdentityClient, IdentityClient, NewUser, Origin, PageRequest, ServiceError,
};
use keel_registry::ServiceRegistry;
use secrecy::SecretString;

use crate::fakes::identity::FakeIdentity;
use crate::support::{dead_port, grpc_config, policy, register, registry, serve};

fn new_user() -> NewUser {
    NewUser {
        email: "ada@example.com".into(),
        password: SecretString::from("correct horse"),
        display_name: None,
    }
}

fn first_page() -> PageRequest {
    PageRequest::default()
}

#[tokio::test]
async fn an_idempotent_call_is_retried_after_one_unavailable_answer() -> anyhow::Result<()> {
    let fake = FakeIdentity::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "identity", running.port).await?;
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());

    fake.knobs.fail_next(1);
    let page = client.list_users(first_page()).await?;
    assert!(page.items.is_empty());
    assert_eq!(fake.knobs.calls("ListUsers"), 2);

    fake.knobs.fail_next(5);
    let outcome = client.list_users(first_page()).await;
    assert_eq!(outcome, Err(ServiceError::Unavailable("restarting".into())));
    assert_eq!(
        fake.knobs.calls("ListUsers"),
        2 + 3,
        "attempts are bounded by max_attempts"
    );
    Ok(())
}

#[tokio::test]
async fn a_non_idempotent_call_is_sent_once_even_when_unavailable() -> anyhow::Result<()> {
    let fake = FakeIdentity::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "identity", running.port).await?;
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());

    fake.knobs.fail_next(1);
    let outcome = client.create_user(new_user(), &Origin::default()).await;
    assert_eq!(outcome, Err(ServiceError::Unavailable("restarting".into())));
    assert_eq!(fake.knobs.calls("CreateUser"), 1);
    client.create_user(new_user(), &Origin::default()).await?;
    assert_eq!(fake.knobs.calls("CreateUser"), 2);
    Ok(())
}

#[tokio::test]
async fn an_idempotent_call_to_a_dead_instance_is_answered_by_a_live_one() -> anyhow::Result<()> {
    let fake = FakeIdentity::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "identity", dead_port().await?).await?;
    register(&registry, "identity", running.port).await?;
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());

    for _ in 0..4 {
        client.list_users(first_page()).await?;
    }
    assert_eq!(fake.knobs.calls("ListUsers"), 4);
    Ok(())
}

#[tokio::test]
async fn a_service_with_no_instance_is_unavailable_at_once() -> anyhow::Result<()> {
    let (_registry, shared) = registry();
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());
    let started = Instant::now();
    let outcome = client.list_users(first_page()).await;
    assert_eq!(
        outcome,
        Err(ServiceError::Unavailable("identity: no healthy instance".into()))
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_slow_answer_ends_at_the_deadline() -> anyhow::Result<()> {
    let fake = FakeIdentity::default();
    fake.knobs.delay(Duration::from_secs(2));
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "identity", running.port).await?;
    let fast = CallPolicy {
        deadline: Duration::from_millis(200),
        ..policy()
    };
    let client = GrpcIdentityClient::new(shared, &grpc_config(), fast);

    let started = Instant::now();
    let outcome = client.list_users(first_page()).await;
    assert_eq!(
        outcome,
        Err(ServiceError::DeadlineExceeded(
            "identity: no answer within 200 ms".into()
        ))
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fake.knobs.calls("ListUsers"), 1, "no time was left for a retry");
    Ok(())
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_and_closes_once_the_service_answers()
-> anyhow::Result<()> {
    let (registry, shared) = registry();
    let dead = register(&registry, "identity", dead_port().await?).await?;
    let client = GrpcIdentityClient::new(shared, &grpc_config(), policy());

    // Three attempts of one idempotent call: three transport failures, the threshold.
    let outcome = client.list_users(first_page()).await;
    assert_eq!(
        outcome,
        Err(ServiceError::Unavailable("identity: unreachable".into()))
    );

    let fake = FakeIdentity::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    registry.deregister("identity", &dead).await?;
    register(&registry, "identity", running.port).await?;

    let started = Instant::now();
    let Err(ServiceError::Unavailable(open)) = client.list_users(first_page()).await else {
        panic!("the circuit let a call through");
    };
    assert!(
        open.starts_with("identity: circuit open after 3 consecutive failures"),
        "{open}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.knobs.total_calls(),
        0,
        "nothing reached the service while open"
    );

    tokio::time::sleep(policy().breaker_cool_down).await;
    client.list_users(first_page()).await?;
    client.list_users(first_page()).await?;
    assert_eq!(fake.knobs.calls("ListUsers"), 2);
    Ok(())
}
