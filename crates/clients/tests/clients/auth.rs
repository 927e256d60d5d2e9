//! `GrpcAuthClient` against a served auth fake: every method, and a rate limit with its delay.

use keel_clients::{AuthClient, GrpcAuthClient, Origin, ServiceError};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::fakes::auth::{FakeAuth, JWKS};
use crate::support::{Running, grpc_config, lock, policy, register, registry, serve};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse";

async fn start(user_id: Uuid) -> anyhow::Result<(FakeAuth, GrpcAuthClient, Running)> {
    let fake = FakeAuth::new(user_id, EMAIL, PASSWORD);
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "auth", running.port).await?;
    Ok((
        fake,
        GrpcAuthClient::new(shared, &grpc_config(), policy()),
        running,
    ))
}

fn browser() -> Origin {
    Origin {
        actor_id: None,
        ip: Some("203.0.113.9".into()),
        user_agent: Some("Firefox".into()),
    }
}

#[tokio::test]
async fn a_rate_limit_reaches_the_caller_with_its_retry_delay() -> anyhow::Result<()> {
    let (_fake, client, _running) = start(Uuid::now_v7()).await?;
    let outcome = client
        .login("limited@example.com", &SecretString::from("x"), &browser())
        .await;
    let expected = ServiceError::RateLimited {
        message: "too many logins".into(),
        retry_after_secs: Some(30),
    };
    assert_eq!(outcome.map(|_| ()), Err(expected));
    Ok(())
}

#[tokio::test]
async fn login_refresh_logout_and_token_methods_reach_their_rpcs() -> anyhow::Result<()> {
    let user_id = Uuid::now_v7();
    let (fake, client, _running) = start(user_id).await?;
    let origin = browser();
    let wrong = client.login(EMAIL, &SecretString::from("wrong"), &origin).await;
    assert_eq!(
        wrong.map(|_| ()),
        Err(ServiceError::Unauthenticated("invalid credentials".into()))
    );

    let pair = client
        .login(EMAIL, &SecretString::from(PASSWORD), &origin)
        .await?;
    assert_eq!(pair.expires_in, 900);
    assert_eq!(lock(&fake.last_origin).as_ref(), Some(&origin));
    let info = client.validate_token(&pair.access_token).await?;
    assert_eq!(info.user_id, user_id);
    let sessions = client.list_sessions(user_id).await?;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].id, sessions[0].ip.clone()),
        (info.session_id, origin.ip.clone())
    );

    let rotated = client.refresh(&pair.refresh_token, &origin).await?;
    assert_ne!(
        rotated.refresh_token.expose_secret(),
        pair.refresh_token.expose_secret()
    );
    let replayed = client.refresh(&pair.refresh_token, &origin).await;
    assert_eq!(
        replayed.map(|_| ()),
        Err(ServiceError::Unauthenticated("invalid credentials".into()))
    );
    client.logout(&rotated.refresh_token, &origin).await?;
    assert!(client.list_sessions(user_id).await?.is_empty());
    assert_eq!(client.jwks().await?, JWKS);
    Ok(())
}

#[tokio::test]
async fn session_revocations_reach_their_rpcs_and_carry_the_origin() -> anyhow::Result<()> {
    let user_id = Uuid::now_v7();
    let (fake, client, _running) = start(user_id).await?;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let pair = client
            .login(EMAIL, &SecretString::from(PASSWORD), &browser())
            .await?;
        sessions.push(client.validate_token(&pair.access_token).await?.session_id);
    }
    let admin = Origin {
        actor_id: Some(Uuid::now_v7()),
        ..browser()
    };
    client.revoke_session(user_id, sessions[0], &admin).await?;
    assert_eq!(lock(&fake.last_origin).as_ref(), Some(&admin));
    let listed: Vec<Uuid> = client
        .list_sessions(user_id)
        .await?
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        [sessions[2], sessions[1]],
        "newest first, the revoked one gone"
    );
    let again = client.revoke_session(user_id, sessions[0], &admin).await;
    assert_eq!(again, Err(ServiceError::NotFound("no such session".into())));
    assert_eq!(client.revoke_user_sessions(user_id, &admin).await?, 2);
    assert!(client.list_sessions(user_id).await?.is_empty());
    Ok(())
}
