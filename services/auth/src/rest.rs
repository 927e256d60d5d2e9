//! The REST face of the auth service (DESIGN §9): login, refresh, logout, the JWKS, and sessions.
//!
//! Handlers translate HTTP to [`Engine`] calls and back; every error is problem+json. Bodies are
//! parsed with `keel_http::Json` and reject unknown fields, so a typo never silently does nothing.
//! Token responses carry `Cache-Control: no-store` (RFC 6749 §5.1); tokens are never logged.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use keel_authn::{PermissionGuard, Principal, TokenVerifier, require_permission};
use keel_clients::{ClientOrigin, TokenPair};
use keel_http::Json;
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
}

/// `POST /api/v1/auth/login`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: SecretString,
}

/// `POST /api/v1/auth/refresh` and `/logout`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: SecretString,
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
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

async fn login(
    State(state): State<RestState>,
    client: ClientOrigin,
    Json(body): Json<LoginBody>,
) -> Result<Response, AuthError> {
    let origin = client.0;
    let pair = state.engine.login(&body.email, &body.password, &origin).await?;
    Ok(token_response(&pair))
}

async fn refresh(
    State(state): State<RestState>,
    client: ClientOrigin,
    Json(body): Json<RefreshBody>,
) -> Result<Response, AuthError> {
    let origin = client.0;
    let pair = state.engine.refresh(&body.refresh_token, &origin).await?;
    Ok(token_response(&pair))
}

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
#[derive(Serialize)]
struct SessionView {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// The session of the access token this request came with.
    current: bool,
}

/// The user's live sessions. Not paginated: a user has as many as live logins, few by nature.
#[derive(Serialize)]
struct SessionList {
    items: Vec<SessionView>,
}

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
