//! Password reset: the request answers alike for every address, the token works once and
//! expires, the user's sessions end first, and nothing changes when they cannot.

use chrono::TimeDelta;
use http::StatusCode;
use keel_clients::{CredentialsVerdict, IdentityClient as _};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{Backend, GOOD_PASSWORD, Reply, TestApp, on_both_backends, token_in};

on_both_backends!(
    a_reset_request_answers_202_alike_whether_or_not_the_account_exists,
    a_reset_token_sets_the_password_once_after_ending_the_sessions,
    a_reset_token_expires_after_30_minutes,
    a_reset_token_still_works_a_second_before_its_30_minutes,
    when_sessions_cannot_be_ended_a_reset_is_503_and_changes_nothing,
    when_sessions_cannot_be_ended_again_after_the_commit_the_reset_stands,
    a_refused_new_password_is_422_and_keeps_the_token_usable,
    a_password_change_retires_reset_links_sent_before_it,
);

#[tokio::test]
async fn reset_requests_past_the_limit_per_address_are_429_alike_for_every_address() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    app.register("known@example.com").await;
    for email in ["known@example.com", "unknown@example.com"] {
        for _ in 0..3 {
            let reply = app
                .post("/api/v1/users/password-reset", json!({"email": email}))
                .await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{email}");
        }
        let refused = app
            .post(
                "/api/v1/users/password-reset",
                json!({"email": email.to_uppercase()}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert_eq!(refused.body["type"], "urn:keel:problem:rate-limited");
        let retry_after: u64 = refused.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=3_600).contains(&retry_after), "{retry_after}");
    }
    // Another address is not affected.
    let other = app
        .post(
            "/api/v1/users/password-reset",
            json!({"email": "other@example.com"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    let mails = app.mails_eventually(4).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.contains("Subject: Reset your password"))
            .count(),
        3,
        "one mail per accepted request for the known address only"
    );
    app.finish().await;
}

const NEW_PASSWORD: &str = "quartz-lantern-88-meadow";

async fn login(app: &TestApp, email: &str, password: &str) -> bool {
    let verdict = app
        .service
        .client()
        .verify_credentials(email, &SecretString::from(password.to_owned()))
        .await
        .expect("verify");
    matches!(verdict, CredentialsVerdict::Valid(_))
}

/// Registers `email`, asks for a reset and returns the token of the reset mail.
async fn reset_token(app: &TestApp, email: &str) -> String {
    app.register(email).await;
    let reply = app
        .post("/api/v1/users/password-reset", json!({"email": email}))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let mails = app.mails_eventually(2).await;
    token_in(&mails[1], "reset-password")
}

/// Confirms a reset with `token` and `new_password`.
async fn confirm(app: &TestApp, token: &str, new_password: &str) -> Reply {
    app.post(
        "/api/v1/users/password-reset/confirm",
        json!({"token": token, "new_password": new_password}),
    )
    .await
}

async fn a_reset_request_answers_202_alike_whether_or_not_the_account_exists(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("known@example.com").await;
    let known = app
        .post(
            "/api/v1/users/password-reset",
            json!({"email": "Known@Example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/users/password-reset",
            json!({"email": "unknown@example.com"}),
        )
        .await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(unknown.status, known.status);
    assert_eq!(unknown.body, known.body);
    assert_eq!(
        unknown.headers.get("content-length"),
        known.headers.get("content-length")
    );
    let mails = app.mails_eventually(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.mails().len(), 2, "no mail for the unknown address");
    assert!(mails[1].contains("To: known@example.com"));
    assert!(mails[1].contains("Subject: Reset your password"));
    assert!(mails[1].contains("http://127.0.0.1:8080/reset-password?token="));
    let resets = app
        .rows("SELECT COUNT(*) AS n FROM tokens WHERE kind = 'reset'")
        .await;
    assert_eq!(resets[0].try_get::<i64>("", "n").expect("count"), 1);
    app.finish().await;
}

async fn a_reset_token_sets_the_password_once_after_ending_the_sessions(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "mary@example.com").await;
    let id = app
        .service
        .client()
        .get_user_by_email("mary@example.com")
        .await
        .expect("user")
        .id;
    let body = json!({"token": token, "new_password": NEW_PASSWORD});
    let reply = app
        .request(http::Method::POST, "/api/v1/users/password-reset/confirm")
        .header("x-forwarded-for", "198.51.100.4")
        .json(&body)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    // Ended before the commit and again after it.
    let revoked = app.auth.revocations();
    assert_eq!(revoked.len(), 2);
    for (user, origin) in &revoked {
        assert_eq!(*user, id);
        assert_eq!(origin.ip.as_deref(), Some("198.51.100.4"));
    }
    assert!(login(&app, "mary@example.com", NEW_PASSWORD).await);
    assert!(!login(&app, "mary@example.com", GOOD_PASSWORD).await);

    let again = app.post("/api/v1/users/password-reset/confirm", body).await;
    again.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        again.field_errors(),
        [("token".to_owned(), "invalid_token".to_owned())]
    );
    let audit = app.audit_records().await;
    let last = audit.last().expect("audit");
    assert_eq!(last["action"], "identity.password.reset");
    assert_eq!(last["actor_id"], id.to_string());
    let events = app.events().await;
    let last = events.last().expect("event");
    assert_eq!(last["topic"], "platform.user.password_changed");
    assert_eq!(last["payload"], json!({"user_id": id}));
    app.finish().await;
}

async fn a_reset_token_expires_after_30_minutes(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "late@example.com").await;
    app.clock.advance(TimeDelta::minutes(30) + TimeDelta::seconds(1));
    let reply = confirm(&app, &token, NEW_PASSWORD).await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(login(&app, "late@example.com", GOOD_PASSWORD).await);
    assert!(
        app.auth.revocations().is_empty(),
        "no session ended for an expired token"
    );
    app.finish().await;
}

async fn a_reset_token_still_works_a_second_before_its_30_minutes(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "prompt@example.com").await;
    app.clock.advance(TimeDelta::minutes(30) - TimeDelta::seconds(1));
    let reply = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(login(&app, "prompt@example.com", NEW_PASSWORD).await);
    app.finish().await;
}

async fn when_sessions_cannot_be_ended_a_reset_is_503_and_changes_nothing(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "stuck@example.com").await;
    let before = app.password_hash("stuck@example.com").await;
    let outbox_before = app.outbox().await.len();
    app.auth.fail(true);
    let body = json!({"token": token, "new_password": NEW_PASSWORD});
    let reply = app
        .post("/api/v1/users/password-reset/confirm", body.clone())
        .await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.password_hash("stuck@example.com").await, before);
    assert_eq!(
        app.outbox().await.len(),
        outbox_before,
        "no audit record, no event"
    );

    app.auth.fail(false);
    let retry = app.post("/api/v1/users/password-reset/confirm", body).await;
    assert_eq!(
        retry.status,
        StatusCode::NO_CONTENT,
        "the token was not spent: {}",
        retry.body
    );
    app.finish().await;
}

async fn when_sessions_cannot_be_ended_again_after_the_commit_the_reset_stands(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "late-auth@example.com").await;
    // The ending before the commit succeeds; the one after it fails.
    app.auth.fail_after(1);
    let reply = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(app.auth.revocations().len(), 1);
    assert!(login(&app, "late-auth@example.com", NEW_PASSWORD).await);
    let actions: Vec<String> = app
        .audit_records()
        .await
        .iter()
        .map(|record| record["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        actions.iter().any(|action| action == "identity.password.reset"),
        "{actions:?}"
    );
    app.finish().await;
}

async fn a_refused_new_password_is_422_and_keeps_the_token_usable(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "weak@example.com").await;
    let weak = confirm(&app, &token, "qwerty123").await;
    weak.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        weak.field_errors(),
        [("new_password".to_owned(), "common_password".to_owned())]
    );
    assert!(app.auth.revocations().is_empty());
    let strong = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(strong.status, StatusCode::NO_CONTENT);
    app.finish().await;
}

async fn a_password_change_retires_reset_links_sent_before_it(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = reset_token(&app, "olga@example.com").await;
    let client = app.service.client();
    let id = client
        .get_user_by_email("olga@example.com")
        .await
        .expect("user")
        .id;
    client
        .change_password(
            id,
            &SecretString::from(GOOD_PASSWORD.to_owned()),
            &SecretString::from(NEW_PASSWORD.to_owned()),
            &keel_clients::Origin::default(),
        )
        .await
        .expect("changed");
    let late = confirm(&app, &token, "another-long-passphrase-42").await;
    late.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        login(&app, "olga@example.com", NEW_PASSWORD).await,
        "the change stands"
    );
    app.finish().await;
}
