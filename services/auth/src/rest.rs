//! The REST face of the auth service (DESIGN §9): login, refresh, logout, the JWKS, and sessions.
//!
//! Handlers translate HTTP to [`Engine`] calls and back; every error is problem+json. Bodies are
//! parsed with `keel_http::Json` and reject unknown fields, so a typo never silently does nothing.
//! Token responses carry `Cache-Control: no-store` (RFC 6749 §5.1); tokens are never logged.
//!
//! Every handler carries its `#[utoipa::path]` description (statuses as its error mapping in
//! `error.rs` answers them); [`crate::openapi`] gathers them into the served OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use keel_authn::{PermissionGuard, Principal, TokenVerifier, require_permission};
use keel_clients::{ClientOrigin, TokenPair};
use keel_http::{Json, Path, Problem};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AuthError;
use crate::engine::{Engine, RevokeReason};

/// How long clients and proxies may cache the JWKS (seconds); short, so a new key is seen soon
/// (verifiers refetch on an unknown `kid` anyway).
const JWKS_MAX_AGE_SECS: u32 = 300;
/// The permission to end another user's sessions.
const ADMIN_PERMISSION: &str = "platform.user.update";

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct RestState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) verifier: Arc<TokenVerifier>,
}

impl FromRef<RestState> for Arc<TokenVerifier> {
    fn from_ref(state: &RestState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their state applied.
pub(crate) fn router(state: RestState, guard: PermissionGuard) -> Router {
    let admin = Router::new()
        .route("/api/v1/users/{id}/sessions", delete(revoke_user_sessions))
        .route_layer(require_permission(
            state.verifier.clone(),
            guard,
            ADMIN_PERMISSION,
        ));
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/sessions", get(list_sessions))
        .route("/api/v1/auth/sessions/{id}", delete(revoke_session))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(admin)
        .with_state(state)
        .merge(crate::openapi::router())
}

/// `description` of a 422 answer for a body that does not fit the type.
const INVALID_BODY: &str = "A field is missing, of the wrong type, or unknown; `errors` names it \
                            (`urn:keel:problem:validation`).";
/// `description` of a 503 answer of a route that only reads the own store.
const UNAVAILABLE: &str = "The request ran out of time or the signing keys cannot be read; retry shortly.";
/// `description` of a 422 answer for a path id that is not a UUID.
const BAD_ID: &str =
    "The `id` in the path is not a UUID; `errors` names `id` (`urn:keel:problem:validation`).";

/// `POST /api/v1/auth/login`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    /// The account's e-mail address.
    email: String,
    /// The account's password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// `POST /api/v1/auth/refresh` and `/logout`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    /// The opaque refresh token of a login or of the last refresh.
    #[schema(value_type = String, format = Password)]
    refresh_token: SecretString,
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse<'a> {
    /// The access token: an EdDSA-signed JWT, sent as `Authorization: Bearer …`.
    access_token: &'a str,
    /// The opaque refresh token; it can be exchanged once (`POST /api/v1/auth/refresh`).
    refresh_token: &'a str,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u32,
}

fn token_response(pair: &TokenPair) -> Response {
    let body = TokenResponse {
        access_token: pair.access_token.expose_secret(),
        refresh_token: pair.refresh_token.expose_secret(),
        token_type: "Bearer",
        expires_in: pair.expires_in,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Logs in: identity checks the credentials, and a new session starts.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body(content = LoginBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in: a new session's token pair.", body = TokenResponse<'static>,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "Unknown e-mail or wrong password, never told apart \
                                      (`urn:keel:problem:unauthenticated`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The password matched but the e-mail address must be verified first \
                                      (`urn:keel:problem:forbidden`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = INVALID_BODY, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this account or from this address: refused \
                                      unchecked (`urn:keel:problem:rate-limited`).",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before the next attempt"))),
        (status = 503, description = "The identity service is down, signing keys are being rotated, or the \
                                      request ran out of time; retry shortly.",
         body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
async fn login(
    State(state): State<RestState>,
    client: ClientOrigin,
    Json(body): Json<LoginBody>,
) -> Result<Response, AuthError> {
    let origin = client.0;
    let pair = state.engine.login(&body.email, &body.password, &origin).await?;
    Ok(token_response(&pair))
}

/// Exchanges a refresh token for a new pair of the same session (rotation); presenting a used one
/// ends its session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body(content = RefreshBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new token pair; the presented refresh token is used up.",
         body = TokenResponse<'static>, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "The refresh token is unknown, expired, of an ended session, or was \
                                      already used, which ends its session \
                                      (`urn:keel:problem:unauthenticated`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = INVALID_BODY, body = Problem, content_type = "application/problem+json"),
        (status = 503,
         description = "Signing keys are being rotated or the request ran out of time; retry shortly.",
         body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
async fn refresh(
    State(state): State<RestState>,
    client: ClientOrigin,
    Json(body): Json<RefreshBody>,
) -> Result<Response, AuthError> {
    let origin = client.0;
    let pair = state.engine.refresh(&body.refresh_token, &origin).await?;
    Ok(token_response(&pair))
}

/// Ends the session of a refresh token of the caller's.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    request_body(content = RefreshBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended (also when it already was)."),
        (status = 401, description = "No valid access token, or the refresh token is not of a session of the \
                                      caller (`urn:keel:problem:unauthenticated`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = INVALID_BODY, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = UNAVAILABLE, body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
async fn logout(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Json(body): Json<RefreshBody>,
) -> Result<StatusCode, AuthError> {
    let origin = client.acting(principal.user_id);
    state
        .engine
        .logout(&body.refresh_token, Some(principal.user_id), &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public signing keys (JWKS, RFC 7517): every key whose tokens may still be live, newest first.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses(
        (status = 200, description = "The JWKS.", body = crate::keys::Jwks<'static>,
         content_type = "application/json",
         headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 503, description = "The request ran out of time; retry shortly.",
         body = Problem, content_type = "application/problem+json"),
        keel_http::InternalError,
    )
)]
async fn jwks(State(state): State<RestState>) -> Result<Response, AuthError> {
    let body = state.engine.jwks_json().await?;
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}

/// One session as the user sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView {
    /// The session's id (the `sid` of its access tokens).
    id: Uuid,
    /// The login.
    created_at: DateTime<Utc>,
    /// The last refresh.
    last_used_at: DateTime<Utc>,
    /// When the newest refresh token expires.
    expires_at: DateTime<Utc>,
    /// Client address at login.
    ip: Option<String>,
    /// Client user agent at login.
    user_agent: Option<String>,
    /// The session of the access token this request came with.
    current: bool,
}

/// The user's live sessions. Not paginated: a user has as many as live logins, few by nature.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionList {
    /// The live sessions, newest first.
    items: Vec<SessionView>,
}

/// The caller's live sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200,
         description = "The caller's live sessions; `current` marks the one of the presented token.",
         body = SessionList),
        (status = 503, description = UNAVAILABLE, body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
async fn list_sessions(
    State(state): State<RestState>,
    principal: Principal,
) -> Result<Json<SessionList>, AuthError> {
    let sessions = state.engine.list_sessions(principal.user_id).await?;
    let items = sessions
        .into_iter()
        .map(|s| SessionView {
            current: s.id == principal.session_id,
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(Json(SessionList { items }))
}

/// Ends one live session of the caller's.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    params(("id" = Uuid, Path, description = "The session's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended."),
        (status = 404,
         description = "No live session of the caller's has this id (`urn:keel:problem:not-found`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = BAD_ID, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = UNAVAILABLE, body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
async fn revoke_session(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    let session_id = parse_id(&id)?;
    let origin = client.acting(principal.user_id);
    state
        .engine
        .revoke_session(principal.user_id, session_id, RevokeReason::ByUser, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every live session of a user (an administrator's action; idempotent).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/sessions",
    tag = "auth",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every live session of the user is ended (none may have been live)."),
        (status = 403,
         description = "The caller lacks `platform.user.update` (`urn:keel:problem:forbidden`).",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = BAD_ID, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The authz service cannot answer the permission check, the signing keys \
                                      cannot be read, or the request ran out of time; retry shortly.",
         body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
async fn revoke_user_sessions(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    let user_id = parse_id(&id)?;
    let origin = client.acting(principal.user_id);
    state
        .engine
        .revoke_user_sessions(user_id, RevokeReason::ByAdmin, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_id(text: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(text).map_err(|_| AuthError::InvalidArgument {
        field: "id".to_owned(),
        message: "the id in the path is not a UUID".to_owned(),
    })
}
