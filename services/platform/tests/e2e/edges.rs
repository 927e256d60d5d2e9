//! Bad input, token rotation and races, through the gateway.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Platform, access_token, refresh_token, unique_email};

#[tokio::test]
async fn malformed_unknown_and_invalid_bodies_are_problems_with_field_paths_and_write_nothing() {
    let platform = Platform::start().await;
    let email = unique_email("bad-input");

    let malformed = platform
        .call_raw(Method::POST, "/api/v1/users", "application/json", "{\"email\": ")
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.content_type, "application/problem+json");

    let unknown = platform
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"email": email, "password": "a fine passphrase", "role": "admin"})),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    assert_eq!(unknown.content_type, "application/problem+json");
    assert_eq!(unknown.body["errors"][0]["field"], "role", "{}", unknown.body);
    assert_eq!(unknown.body["errors"][0]["code"], "unknown_field");

    let invalid = platform
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"email": "not-an-address", "password": "short"})),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.body
    );
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"password"),
        "{}",
        invalid.body
    );

    let wrong_type = platform
        .call_raw(Method::POST, "/api/v1/users", "text/plain", "hello")
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Nothing of the rejected attempts was stored: the address is still free.
    platform.register(&email, "a fine passphrase").await;
    platform.stop().await;
}

#[tokio::test]
async fn a_refresh_token_rotates_and_presenting_a_used_one_ends_the_session() {
    let platform = Platform::start().await;
    let email = unique_email("refresh");
    platform.register(&email, "refresh passphrase 9").await;
    let first = platform.login(&email, "refresh passphrase 9").await;
    let second = platform.login(&email, "refresh passphrase 9").await;

    let rotated = platform
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token(&first)})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_ne!(refresh_token(&rotated.body), refresh_token(&first));
    assert_eq!(rotated.body["token_type"], "Bearer");

    let reused = platform
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token(&first)})),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.body);
    let revoked = platform
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token(&rotated.body)})),
        )
        .await;
    assert_eq!(
        revoked.status,
        StatusCode::UNAUTHORIZED,
        "reuse revoked the whole family: {}",
        revoked.body
    );

    let other_device = platform
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token(&second)})),
        )
        .await;
    assert_eq!(
        other_device.status,
        StatusCode::OK,
        "another login's session is untouched: {}",
        other_device.body
    );

    let admin = platform.admin_token().await;
    platform
        .audit_until(&admin, "action=auth.refresh.reuse_detected", |items| {
            !items.is_empty()
        })
        .await;
    let me = platform
        .call(
            Method::GET,
            "/api/v1/users/me",
            Some(&access_token(&other_device.body)),
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    platform.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_address_create_exactly_one_user() {
    let platform = Platform::start().await;
    let email = unique_email("race");
    let attempts = (0..50).map(|_| {
        platform.call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"email": email, "password": "race passphrase 77"})),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let conflicts = answers
        .iter()
        .filter(|a| a.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 49));
    platform.stop().await;
}

#[tokio::test]
async fn failed_logins_are_throttled_through_the_gateway_with_retry_after_and_rate_limit_headers() {
    let platform = Platform::start().await;
    let email = unique_email("throttled");
    platform.register(&email, "a good passphrase 9").await;
    let wrong = json!({"email": email, "password": "not the passphrase"});
    for _ in 0..6 {
        let refused = platform
            .call(Method::POST, "/api/v1/auth/login", None, Some(wrong.clone()))
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    }
    let throttled = platform
        .call(Method::POST, "/api/v1/auth/login", None, Some(wrong))
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.body
    );
    assert_eq!(throttled.content_type, "application/problem+json");
    // auth's Retry-After survives the gateway, which adds its own rate-limit headers beside it.
    let header = |name: &str| {
        throttled
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert!(header("retry-after").is_some_and(|secs| secs.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert!(header("x-ratelimit-limit").is_some(), "the gateway's headers too");
    platform.stop().await;
}

#[tokio::test]
async fn every_core_service_publishes_its_openapi_document_through_the_gateway() {
    let platform = Platform::start().await;
    for (service, a_path) in [
        ("identity", "/api/v1/users"),
        ("auth", "/api/v1/auth/login"),
        ("authz", "/api/v1/roles"),
        ("audit", "/api/v1/audit-logs"),
    ] {
        let path = format!("/api/v1/{service}/openapi.json");
        let document = platform.call(Method::GET, &path, None, None).await;
        assert_eq!(document.status, StatusCode::OK, "{path}: {}", document.body);
        assert_eq!(document.body["openapi"], "3.1.0", "{path}");
        assert!(
            document.body["paths"][a_path].is_object(),
            "{path} documents {a_path}: {}",
            document.body["paths"]
        );
    }
}
