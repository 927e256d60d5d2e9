//! The REST surface of DESIGN §9 under `/api/v1/users`.
//!
//! Handlers parse bodies with `keel_http::Json` (400 malformed, 415 media type, 422 wrong or
//! unknown fields, with field paths), authenticate with `keel_authn::Principal` (401), check
//! permissions with `keel_authn::PermissionGuard` (403, 503 when authz is down), and turn flow
//! errors into problem+json through the one mapping in [`crate::IdentityError`]. No handler writes
//! anything before every check has passed.
//!
//! The OpenAPI document of these routes (`openapi`) is served with them, at
//! `/api/v1/identity/openapi.json`, without authentication.

mod account;
mod openapi;
mod public;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post, put};
use keel_authn::{PermissionGuard, TokenVerifier};

use crate::SERVICE_NAME;
use crate::config::Registration;
use crate::flows::Identity;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct RestState {
    /// The flows.
    pub(crate) identity: Arc<Identity>,
    /// Verifies access tokens (for the `Principal` extractor).
    pub(crate) verifier: Arc<TokenVerifier>,
    /// Checks permissions of admin routes.
    pub(crate) guard: Arc<PermissionGuard>,
    /// Whether `POST /api/v1/users` is open.
    pub(crate) registration: Registration,
}

impl FromRef<RestState> for Arc<TokenVerifier> {
    fn from_ref(state: &RestState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their state applied, and their OpenAPI document.
pub(crate) fn router(state: RestState) -> Router {
    Router::new()
        .route("/api/v1/users", post(public::register).get(account::list))
        .route("/api/v1/users/verify-email", post(public::verify_email))
        .route("/api/v1/users/password-reset", post(public::request_reset))
        .route(
            "/api/v1/users/password-reset/confirm",
            post(public::confirm_reset),
        )
        .route("/api/v1/users/me", get(account::me).patch(account::update_me))
        .route("/api/v1/users/me/password", put(account::change_password))
        .route(
            "/api/v1/users/{id}",
            get(account::get).patch(account::update).delete(account::delete),
        )
        .with_state(state)
        .merge(keel_http::openapi_router(SERVICE_NAME, openapi::document()))
}
