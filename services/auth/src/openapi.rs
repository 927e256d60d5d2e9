//! The auth service's OpenAPI document, served at `/api/v1/auth/openapi.json`.
//!
//! Why this module exists: CONVENTIONS wants every route described in a document generated from
//! the code, so it cannot drift from the handlers. The operations are the `#[utoipa::path]`
//! annotations on the handlers in [`crate::rest`] (DESIGN §9: login, refresh, logout, sessions,
//! the admin's `DELETE /api/v1/users/{id}/sessions` and `/.well-known/jwks.json`); this module only
//! gathers them, and [`router`] serves the result through `keel_http::openapi_router`, which adds
//! the `bearer` security scheme the protected operations name.

use utoipa::OpenApi;

use crate::keys::{Jwk, Jwks};
use crate::rest::{self, LoginBody, RefreshBody, SessionList, SessionView, TokenResponse};

/// The document: every operation of the REST router and the schemas of their bodies.
#[derive(OpenApi)]
#[openapi(
    info(title = "Keel auth"),
    paths(
        rest::login,
        rest::refresh,
        rest::logout,
        rest::jwks,
        rest::list_sessions,
        rest::revoke_session,
        rest::revoke_user_sessions,
    ),
    components(schemas(
        LoginBody,
        RefreshBody,
        TokenResponse<'static>,
        SessionView,
        SessionList,
        Jwks<'static>,
        Jwk<'static>,
        keel_http::Problem,
        keel_http::FieldError,
    )),
    tags((
        name = "auth",
        description = "Login, token refresh and logout, sessions, and the signing keys (JWKS)."
    ))
)]
pub(crate) struct ApiDoc;

/// The route serving [`ApiDoc`] at `/api/v1/auth/openapi.json` (no authentication).
pub(crate) fn router() -> axum::Router {
    keel_http::openapi_router(crate::SERVICE, ApiDoc::openapi())
}
