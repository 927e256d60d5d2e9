//! Login: tokens that verify, one answer for unknown e-mail and wrong password, audit records,
//! and bodies that are refused without writing anything.

use http::{Method, StatusCode};
use serde_json::json;

use crate::on_both_stores;
use crate::support::{Store, TestApp, claims, kid, tokens};

on_both_stores!(
    login_returns_tokens_that_verify_against_the_served_jwks,
    unknown_email_and_wrong_password_get_the_same_401_and_are_audited,
);

async fn login_returns_tokens_that_verify_against_the_served_jwks(store: &Store) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    let user_id = app.peers.identity.add("ada@example.com", "correct horse", true);

    let reply = app.login("ada@example.com", "correct horse").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let pair = tokens(reply)?;

    let principal = app.verifier().await?.verify(&pair.access).await?;
    assert_eq!(principal.user_id, user_id);
    let claims = claims(&pair.access)?;
    assert_eq!(claims.iss, "keel");
    assert_eq!(claims.aud, "keel-api");
    assert_eq!(claims.sub, user_id.to_string());
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok(), "jti is a UUID");
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(claims.sid, principal.session_id.to_string());
    assert_eq!(app.published_kids().await?, vec![kid(&pair.access)?]);

    let records = app.outbox_audit().await?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "auth.login.succeeded");
    assert_eq!(records[0].actor_id, Some(user_id));
    assert_eq!(records[0].target_id.as_deref(), Some(claims.sid.as_str()));
    Ok(())
}

async fn unknown_email_and_wrong_password_get_the_same_401_and_are_audited(
    store: &Store,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(store, &[]).await?;
    app.peers.identity.add("ada@example.com", "correct horse", true);

    let wrong = app.login("ada@example.com", "battery staple").await?;
    let unknown = app.login("nobody@example.com", "battery staple").await?;

    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.headers["content-type"], "application/problem+json");
    assert_eq!(wrong.body["type"], "urn:keel:problem:unauthenticated");
    assert_eq!(wrong.body["detail"], "invalid e-mail or password");
    let records = app.outbox_audit().await?;
    let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["auth.login.failed", "auth.login.failed"]);
    assert_eq!(records[0].metadata["email"], "ada@example.com");
    assert_eq!(records[1].metadata["email"], "nobody@example.com");
    let text = serde_json::to_string(&records)?;
    assert!(!text.contains("battery staple"), "no password in audit records");
    assert_eq!(app.count("sessions").await?, 0);
    Ok(())
}

#[tokio::test]
async fn failed_logins_past_the_free_ones_are_throttled_with_retry_after_and_audited() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(
        &store,
        &[("KEEL_AUTH__LOGIN_THROTTLE__ACCOUNT__FREE_FAILURES", "2")],
    )
    .await?;
    app.peers.identity.add("ada@example.com", "correct horse", true);

    for _ in 0..3 {
        let wrong = app.login("ada@example.com", "battery staple").await?;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    // The third failure costs a delay: the next attempt is not even checked, right password or not.
    let throttled = app.login("ADA@example.com", "correct horse").await?;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.body
    );
    assert_eq!(throttled.headers["content-type"], "application/problem+json");
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(throttled.body["type"], "urn:keel:problem:rate-limited");
    assert_eq!(
        app.audit_actions().await?,
        [
            "auth.login.failed",
            "auth.login.failed",
            "auth.login.failed",
            "auth.login.throttled"
        ]
    );
    assert_eq!(app.count("sessions").await?, 0);

    // Another account from the same address is not slowed (20 free failures per address).
    app.peers.identity.add("bob@example.com", "tr0ub4dor&3", true);
    let other = app.login("bob@example.com", "tr0ub4dor&3").await?;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);

    // Once the delay has passed, the right password logs in and forgets the failures.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let ok = app.login("ada@example.com", "correct horse").await?;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let wrong_again = app.login("ada@example.com", "battery staple").await?;
    assert_eq!(
        wrong_again.status,
        StatusCode::UNAUTHORIZED,
        "failures were reset"
    );
    Ok(())
}

#[tokio::test]
async fn an_unverified_email_is_403_with_a_clear_detail() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("new@example.com", "correct horse", false);

    let reply = app.login("new@example.com", "correct horse").await?;

    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("not verified"), "{detail}");
    assert_eq!(app.audit_actions().await?, ["auth.login.failed"]);
    assert_eq!(app.count("sessions").await?, 0);
    Ok(())
}

#[tokio::test]
async fn login_while_identity_is_down_is_503() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("ada@example.com", "correct horse", true);
    app.peers.identity.set_down(true);

    let reply = app.login("ada@example.com", "correct horse").await?;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["type"], "urn:keel:problem:unavailable");
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("10.0.0.9"), "no peer addresses leak: {detail}");
    assert_eq!(app.count("sessions").await?, 0);
    Ok(())
}

#[tokio::test]
async fn malformed_unknown_field_and_non_json_bodies_are_refused_and_write_nothing() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("ada@example.com", "correct horse", true);

    let malformed = app
        .raw(
            Method::POST,
            "/api/v1/auth/login",
            Some("application/json"),
            b"{\"email\":".to_vec(),
            None,
        )
        .await?;
    let unknown = app
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "ada@example.com", "password": "correct horse", "role": "admin"})),
            None,
        )
        .await?;
    let missing = app
        .send(Method::POST, "/api/v1/auth/refresh", Some(json!({})), None)
        .await?;
    let text = app
        .raw(
            Method::POST,
            "/api/v1/auth/login",
            Some("text/plain"),
            b"hello".to_vec(),
            None,
        )
        .await?;

    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["errors"][0]["code"], "unknown_field");
    assert_eq!(unknown.body["errors"][0]["field"], "role");
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.body["errors"][0]["field"], "refresh_token",
        "{}",
        missing.body
    );
    assert_eq!(missing.body["errors"][0]["code"], "required");
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for reply in [&malformed, &unknown, &missing, &text] {
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    assert_eq!(app.count("sessions").await?, 0);
    assert_eq!(app.count("keel_outbox").await?, 0);
    Ok(())
}
