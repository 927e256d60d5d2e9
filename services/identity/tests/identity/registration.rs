//! `POST /api/v1/users`: registration, duplicates, the concurrent race, closed registration.

use http::{StatusCode, header};
use serde_json::json;

use crate::support::{Backend, GOOD_PASSWORD, TestApp, on_both_backends, token_in};

on_both_backends!(
    registering_answers_201_with_the_user_and_stores_mails_and_records_it,
    a_second_registration_of_an_address_is_409_whatever_its_case,
    fifty_concurrent_registrations_of_one_address_create_exactly_one_user,
    the_database_refuses_a_second_spelling_of_a_stored_address,
    closed_registration_is_403_and_writes_nothing,
    a_verification_mail_that_cannot_be_sent_is_counted_and_the_registration_stands,
);

async fn registering_answers_201_with_the_user_and_stores_mails_and_records_it(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let reply = app
        .request(http::Method::POST, "/api/v1/users")
        .header("x-request-id", "reg-req-1")
        .header("x-forwarded-for", "10.0.0.2, 203.0.113.9")
        .header("user-agent", "identity-tests/1.0")
        .json(&json!({"email": "  Ada.Lovelace@Example.com ", "password": GOOD_PASSWORD, "display_name": " Ada "}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let body = &reply.body;
    let id = body["id"].as_str().expect("id");
    assert_eq!(uuid::Uuid::parse_str(id).expect("uuid").get_version_num(), 7);
    assert_eq!(body["email"], "ada.lovelace@example.com");
    assert_eq!(body["display_name"], "Ada");
    assert_eq!(body["email_verified"], false);
    assert!(body["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "display_name",
            "email",
            "email_verified",
            "id",
            "updated_at"
        ]
    );
    assert_eq!(reply.headers[header::LOCATION], format!("/api/v1/users/{id}"));

    assert_eq!(app.user_count().await, 1);
    assert!(
        app.password_hash("ada.lovelace@example.com")
            .await
            .starts_with("$argon2id$v=19$")
    );

    assert_verification_mail_sent(&app).await;
    assert_registration_recorded(&app, id).await;
    app.finish().await;
}

async fn a_second_registration_of_an_address_is_409_whatever_its_case(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("grace@example.com").await;
    for email in ["grace@example.com", "GRACE@Example.COM", " grace@example.com"] {
        let reply = app
            .post(
                "/api/v1/users",
                json!({"email": email, "password": GOOD_PASSWORD}),
            )
            .await;
        reply.assert_problem(StatusCode::CONFLICT);
    }
    assert_eq!(app.user_count().await, 1);
    assert_eq!(app.events().await.len(), 1, "no event for the refused attempts");
    assert_eq!(app.mails().len(), 1);
    app.finish().await;
}

async fn fifty_concurrent_registrations_of_one_address_create_exactly_one_user(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let attempts = (0..50).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "Race@Example.com"
            };
            app.post(
                "/api/v1/users",
                json!({"email": email, "password": GOOD_PASSWORD}),
            )
            .await
            .status
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        statuses.push(attempt.await.expect("task"));
    }
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 49), "{statuses:?}");
    assert_eq!(app.user_count().await, 1);
    assert_eq!(app.events().await.len(), 1);
    let Ok(app) = std::sync::Arc::try_unwrap(app) else {
        panic!("app still shared")
    };
    app.finish().await;
}

async fn closed_registration_is_403_and_writes_nothing(backend: Backend) {
    let closed = [("KEEL_IDENTITY__REGISTRATION", "closed")];
    let Some(app) = TestApp::start_with(backend, &closed).await else {
        return;
    };
    let reply = app
        .post(
            "/api/v1/users",
            json!({"email": "nobody@example.com", "password": GOOD_PASSWORD}),
        )
        .await;
    reply.assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(app.user_count().await, 0);
    assert!(app.outbox().await.is_empty());
    assert!(app.mails().is_empty());
    app.finish().await;
}

async fn a_verification_mail_that_cannot_be_sent_is_counted_and_the_registration_stands(backend: Backend) {
    let blocker = tempfile::NamedTempFile::new().expect("file");
    let unusable = blocker.path().join("outbox").display().to_string();
    let vars = [("KEEL_IDENTITY__OUTBOX_DIR", unusable.as_str())];
    let Some(app) = TestApp::start_with(backend, &vars).await else {
        return;
    };
    app.register("unlucky@example.com").await;
    assert_eq!(app.user_count().await, 1);
    assert_eq!(app.events().await.len(), 1);
    let metrics = app.kernel.handle().metrics().render();
    assert!(
        metrics.contains("keel_identity_notification_failures_total"),
        "the failure is counted: {metrics}"
    );
    app.finish().await;
}

/// One mail to the new address with a verification link whose token is stored only hashed.
async fn assert_verification_mail_sent(app: &TestApp) {
    let mails = app.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: ada.lovelace@example.com"));
    let token = token_in(&mails[0], "verify-email");
    assert!(mails[0].contains(&format!("http://127.0.0.1:8080/verify-email?token={token}")));
    assert_eq!(token.len(), 43);
    let stored = app.rows("SELECT token_hash FROM tokens").await;
    let stored: String = stored[0].try_get("", "token_hash").expect("hash");
    assert_ne!(stored, token, "only the hash is stored");
}

/// The registration's audit record (with the request's id, IP and agent) and event are in the outbox.
async fn assert_registration_recorded(app: &TestApp, id: &str) {
    let audits = app.audit_records().await;
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["action"], "identity.user.registered");
    assert_eq!(audits[0]["actor_id"], id);
    assert_eq!(audits[0]["target_type"], "user");
    assert_eq!(audits[0]["target_id"], id);
    assert_eq!(audits[0]["request_id"], "reg-req-1");
    assert_eq!(audits[0]["ip"], "203.0.113.9");
    assert_eq!(audits[0]["user_agent"], "identity-tests/1.0");
    assert_eq!(audits[0]["source"], "identity");
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["topic"], "platform.user.created");
    assert_eq!(
        events[0]["payload"],
        json!({"user_id": id, "email": "ada.lovelace@example.com"})
    );
}

async fn the_database_refuses_a_second_spelling_of_a_stored_address(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("ada@example.com").await;
    app.register("bob@example.com").await;
    // A writer that bypasses the service (and its lower-casing) cannot store Ada's address again.
    let sneaky = app
        .try_execute("UPDATE users SET email = 'ADA@Example.com' WHERE email = 'bob@example.com'")
        .await;
    assert!(
        sneaky.is_err(),
        "a second spelling of a stored address is refused"
    );
    assert!(
        app.try_execute("UPDATE users SET email = 'bob.new@example.com' WHERE email = 'bob@example.com'")
            .await
            .is_ok(),
        "another address is fine"
    );
    app.finish().await;
}
