//! Bodies that are refused: policy violations (422 with field codes), malformed JSON (400),
//! unknown fields (422), a wrong media type (415). Nothing is written for any of them.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Backend, GOOD_PASSWORD, TestApp, on_both_backends};

on_both_backends!(
    password_policy_violations_are_422_with_the_field_and_code,
    malformed_unknown_and_mistyped_bodies_are_refused_and_write_nothing,
);

async fn password_policy_violations_are_422_with_the_field_and_code(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let cases = [
        ("short7!", "too_short"),
        (&*"long-passphrase-".repeat(9), "too_long"),
        ("password123", "common_password"),
        ("Sunshine1", "common_password"),
        ("Linus.Torvalds@Example.com", "matches_email"),
    ];
    for (password, code) in cases {
        let reply = app
            .post(
                "/api/v1/users",
                json!({"email": "linus.torvalds@example.com", "password": password}),
            )
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            reply.field_errors(),
            [("password".to_owned(), code.to_owned())],
            "{password}"
        );
    }
    let reply = app
        .post(
            "/api/v1/users",
            json!({"email": "not-an-address", "password": "short", "display_name": "x\u{7}"}),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let fields = reply.field_errors();
    assert_eq!(
        fields,
        [
            ("email".to_owned(), "invalid_email".to_owned()),
            ("password".to_owned(), "too_short".to_owned()),
            ("display_name".to_owned(), "invalid_characters".to_owned()),
        ],
        "every rejected field is reported at once"
    );
    assert_eq!(app.user_count().await, 0);
    assert!(app.outbox().await.is_empty());
    assert!(app.mails().is_empty());
    app.finish().await;
}

async fn malformed_unknown_and_mistyped_bodies_are_refused_and_write_nothing(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let malformed = app
        .request(Method::POST, "/api/v1/users")
        .raw("application/json", r#"{"email": "a@b.co", "password": "#)
        .send()
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST);

    let unknown = app
        .post(
            "/api/v1/users",
            json!({"email": "eve@example.com", "password": GOOD_PASSWORD, "email_verified": true}),
        )
        .await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unknown.field_errors(),
        [("email_verified".to_owned(), "unknown_field".to_owned())]
    );

    let mistyped = app
        .post(
            "/api/v1/users",
            json!({"email": "eve@example.com", "password": 12345678}),
        )
        .await;
    mistyped.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        mistyped.field_errors(),
        [("password".to_owned(), "invalid_type".to_owned())]
    );

    let missing = app
        .post("/api/v1/users", json!({"email": "eve@example.com"}))
        .await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.field_errors(),
        [("password".to_owned(), "required".to_owned())]
    );

    let form = app
        .request(Method::POST, "/api/v1/users")
        .raw("application/x-www-form-urlencoded", "email=eve%40example.com")
        .send()
        .await;
    form.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let unknown_reset_field = app
        .post(
            "/api/v1/users/password-reset",
            json!({"email": "eve@example.com", "extra": 1}),
        )
        .await;
    unknown_reset_field.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(app.user_count().await, 0);
    assert!(app.outbox().await.is_empty());
    assert!(app.mails().is_empty());
    app.finish().await;
}
