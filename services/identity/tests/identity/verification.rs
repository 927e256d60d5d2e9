//! `POST /api/v1/users/verify-email`: single use, expiry, unknown tokens.

use chrono::TimeDelta;
use http::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestApp, on_both_backends, token_in};

on_both_backends!(
    a_verification_token_works_once,
    a_verification_token_expires_after_24_hours,
    concurrent_uses_of_one_verification_token_succeed_once,
);

async fn verified(app: &TestApp, email: &str) -> bool {
    let rows = app
        .rows(&format!(
            "SELECT email_verified FROM users WHERE email = '{email}'"
        ))
        .await;
    rows[0].try_get::<bool>("", "email_verified").expect("flag")
}

async fn a_verification_token_works_once(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let id = app.register("ada@example.com").await;
    let token = token_in(&app.mails()[0], "verify-email");
    assert!(!verified(&app, "ada@example.com").await);

    let first = app
        .post("/api/v1/users/verify-email", json!({"token": token}))
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);
    assert!(verified(&app, "ada@example.com").await);
    let audits = app.audit_records().await;
    let last = audits.last().expect("audit");
    assert_eq!(last["action"], "identity.email.verified");
    assert_eq!(last["target_id"], id.to_string());

    let again = app
        .post("/api/v1/users/verify-email", json!({"token": token}))
        .await;
    again.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        again.field_errors(),
        [("token".to_owned(), "invalid_token".to_owned())]
    );
    let unknown = app
        .post("/api/v1/users/verify-email", json!({"token": "A".repeat(43)}))
        .await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.audit_records().await.len(),
        2,
        "registered + verified, nothing for the failures"
    );
    app.finish().await;
}

async fn a_verification_token_expires_after_24_hours(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("old@example.com").await;
    app.register("fresh@example.com").await;
    let mails = app.mails();
    let (old, fresh) = (
        token_in(&mails[0], "verify-email"),
        token_in(&mails[1], "verify-email"),
    );

    app.clock.advance(TimeDelta::hours(24) - TimeDelta::seconds(1));
    let in_time = app
        .post("/api/v1/users/verify-email", json!({"token": fresh}))
        .await;
    assert_eq!(in_time.status, StatusCode::NO_CONTENT);

    app.clock.advance(TimeDelta::seconds(2));
    let late = app
        .post("/api/v1/users/verify-email", json!({"token": old}))
        .await;
    late.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!verified(&app, "old@example.com").await);
    app.finish().await;
}

async fn concurrent_uses_of_one_verification_token_succeed_once(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("twice@example.com").await;
    let token = token_in(&app.mails()[0], "verify-email");
    let body = json!({"token": token});
    let (a, b) = tokio::join!(
        app.post("/api/v1/users/verify-email", body.clone()),
        app.post("/api/v1/users/verify-email", body.clone()),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::NO_CONTENT, StatusCode::UNPROCESSABLE_ENTITY]
    );
    let verifications = app
        .audit_records()
        .await
        .iter()
        .filter(|r| r["action"] == "identity.email.verified")
        .count();
    assert_eq!(verifications, 1);
    app.finish().await;
}
