//! The extractor and the permission layer through a real axum router.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keel_authn::{AccessClaims, PermissionGuard, Principal, TokenVerifier, require_permission};
use keel_telemetry::context::{self, RequestContext};
use serde_json::Value;
use tower::ServiceExt;

use crate::keys::{SigningKey, jwks, valid_claims};
use crate::support::{TestAuthz, TestJwks};

const MANAGE: &str = "platform.role.manage";

struct App {
    key: SigningKey,
    source: Arc<TestJwks>,
    authz: Arc<TestAuthz>,
    router: Router,
}

async fn whoami(principal: Principal) -> String {
    principal.user_id.to_string()
}

async fn maybe(principal: Option<Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |p| p.user_id.to_string())
}

async fn current_user() -> String {
    context::current()
        .and_then(|c| c.user_id().map(str::to_owned))
        .unwrap_or_default()
}

fn app() -> App {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = Arc::new(source.verifier());
    let authz = Arc::new(TestAuthz::default());
    let guard = PermissionGuard::new(Arc::clone(&authz) as _);
    let admin = Router::new()
        .route("/admin", get(whoami))
        .route_layer(require_permission(Arc::clone(&verifier), guard, MANAGE));
    let router = Router::new()
        .route("/me", get(whoami))
        .route("/maybe", get(maybe))
        .route("/context", get(|_: Principal| current_user()))
        .merge(admin)
        .with_state::<()>(verifier);
    App {
        key,
        source,
        authz,
        router,
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a problem+json body")
    }

    fn assert_problem(&self, status: StatusCode, kind: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(self.json()["type"], kind);
        assert_eq!(self.json()["status"], status.as_u16());
    }

    fn challenge(&self) -> Option<&str> {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("an ASCII challenge"))
    }
}

async fn get_with(router: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).expect("a valid request"))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the whole body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_valid_bearer_token_reaches_the_handler_as_a_principal() {
    let app = app();
    let claims = valid_claims();
    let answer = get_with(&app.router, "/me", Some(&bearer(&app.key.sign(&claims)))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, claims.sub);
}

#[tokio::test]
async fn no_token_is_a_401_problem_with_a_bearer_challenge() {
    let app = app();
    for authorization in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer ")] {
        let answer = get_with(&app.router, "/me", authorization).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "urn:keel:problem:unauthenticated");
        assert!(
            answer.challenge().unwrap().starts_with("Bearer"),
            "{authorization:?}"
        );
    }
}

#[tokio::test]
async fn every_invalid_token_gets_the_same_generic_401() {
    let app = app();
    let now = chrono::Utc::now().timestamp();
    let expired = AccessClaims {
        nbf: now - 600,
        exp: now - 300,
        ..valid_claims()
    };
    let wrong_audience = AccessClaims {
        aud: "elsewhere".to_owned(),
        ..valid_claims()
    };
    let tokens = [
        app.key.sign(&expired),
        app.key.sign(&wrong_audience),
        SigningKey::generate("k1").sign(&valid_claims()),
        "garbage".to_owned(),
    ];
    let mut details = Vec::new();
    for token in tokens {
        let answer = get_with(&app.router, "/me", Some(&bearer(&token))).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "urn:keel:problem:unauthenticated");
        assert_eq!(
            answer.challenge(),
            Some("Bearer realm=\"keel\", error=\"invalid_token\"")
        );
        details.push(answer.json()["detail"].clone());
    }
    details.dedup();
    assert_eq!(
        details.len(),
        1,
        "the client never learns which check failed: {details:?}"
    );
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_a_503_without_a_challenge() {
    let app = app();
    app.source.set_failing(true);
    let answer = get_with(&app.router, "/me", Some(&bearer(&app.key.sign(&valid_claims())))).await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "urn:keel:problem:unavailable");
    assert!(answer.challenge().is_none());
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn optional_authentication_admits_anonymous_callers_but_not_bad_tokens() {
    let app = app();
    assert_eq!(get_with(&app.router, "/maybe", None).await.body, "anonymous");
    let claims = valid_claims();
    let answer = get_with(&app.router, "/maybe", Some(&bearer(&app.key.sign(&claims)))).await;
    assert_eq!(answer.body, claims.sub);
    let answer = get_with(&app.router, "/maybe", Some("Bearer garbage")).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "urn:keel:problem:unauthenticated");
}

#[tokio::test]
async fn the_user_id_is_recorded_in_the_request_telemetry_context() {
    let app = app();
    let claims = valid_claims();
    let authorization = bearer(&app.key.sign(&claims));
    let answer = context::scope(
        RequestContext::new("req-authn-1"),
        get_with(&app.router, "/context", Some(&authorization)),
    )
    .await;
    assert_eq!(answer.body, claims.sub);
}

#[tokio::test]
async fn the_permission_layer_admits_a_user_holding_the_permission() {
    let app = app();
    let claims = valid_claims();
    app.authz.grant(claims.sub.parse().unwrap(), MANAGE);
    let answer = get_with(&app.router, "/admin", Some(&bearer(&app.key.sign(&claims)))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, claims.sub, "the handler got the checked principal");
    assert_eq!(
        app.source.fetches(),
        1,
        "the token was verified once, by the layer"
    );
}

#[tokio::test]
async fn the_permission_layer_refuses_a_user_without_it_with_a_403_naming_it() {
    let app = app();
    let claims = valid_claims();
    app.authz.grant(claims.sub.parse().unwrap(), "platform.user.read");
    let answer = get_with(&app.router, "/admin", Some(&bearer(&app.key.sign(&claims)))).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "urn:keel:problem:forbidden");
    assert!(answer.json()["detail"].as_str().unwrap().contains(MANAGE));
}

#[tokio::test]
async fn the_permission_layer_refuses_anonymous_callers_without_asking_authz() {
    let app = app();
    let answer = get_with(&app.router, "/admin", None).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "urn:keel:problem:unauthenticated");
    assert!(answer.challenge().is_some());
    assert_eq!(app.authz.checks(), 0);
}

#[tokio::test]
async fn authz_being_down_is_a_503_that_leaks_no_address() {
    let app = app();
    app.authz.set_down(true);
    let answer = get_with(
        &app.router,
        "/admin",
        Some(&bearer(&app.key.sign(&valid_claims()))),
    )
    .await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "urn:keel:problem:unavailable");
    assert!(!answer.body.contains("10.0.0.7"), "{}", answer.body);
}

#[tokio::test]
async fn the_guard_answers_handlers_with_problems() {
    let authz = Arc::new(TestAuthz::default());
    let guard = PermissionGuard::new(Arc::clone(&authz) as _);
    let key = SigningKey::generate("k1");
    let verifier: TokenVerifier = TestJwks::new(jwks(&[key.jwk()])).verifier();
    let principal = verifier.verify(&key.sign(&valid_claims())).await.unwrap();

    let denied = guard
        .require(&principal, "platform.audit.read")
        .await
        .unwrap_err();
    assert_eq!(denied.status, 403);
    assert_eq!(denied.kind, "urn:keel:problem:forbidden");

    authz.grant(principal.user_id, "platform.audit.read");
    assert!(guard.require(&principal, "platform.audit.read").await.is_ok());

    authz.set_down(true);
    let unavailable = guard
        .require(&principal, "platform.audit.read")
        .await
        .unwrap_err();
    assert_eq!(unavailable.status, 503);
}
