//! Access-token verification for every Keel service and the gateway.
//!
//! Why this crate exists: the auth service signs access tokens, and every other process must check
//! them locally, quickly and identically (DESIGN §3: no network call per request). This crate is
//! that check, plus the axum glue that turns it into a [`Principal`] for handlers and a permission
//! rule for routes.
//!
//! - [`AccessClaims`] are the claims the auth service signs and [`JwtSettings`] (config section
//!   `jwt`) the issuer, audience and clock leeway both sides agree on.
//! - [`TokenVerifier`] verifies a token against the JWKS from a [`JwksSource`]
//!   ([`AuthServiceJwks`] in production, [`StaticJwks`] in tests and in-process use). Only EdDSA
//!   (Ed25519) is accepted; the header must name a `kid`; `iss`, `aud`, `exp` and `nbf` (with
//!   leeway) are checked, and `sub`/`sid` must be UUIDs. Keys are cached; an unknown `kid` causes
//!   at most one refetch per interval, shared by concurrent requests.
//! - [`Principal`] (and `Option<Principal>`) is an axum extractor when `Arc<TokenVerifier>` is in
//!   the router state; it records the user id in the request's telemetry context.
//! - [`PermissionGuard`] asks the authz service; [`require_permission`] is the route layer that
//!   authenticates and checks in one step.
//!
//! Errors: every failure is an [`AuthnError`], mapped once to a `keel_clients::ServiceError` and
//! answered as problem+json: 401 with `WWW-Authenticate: Bearer` for a missing or invalid token (the
//! client is never told which check failed), 403 naming a missing permission, 503 when signing keys
//! or authz are unavailable. See `docs/authn.md` for the full description.

mod claims;
mod error;
mod extract;
mod guard;
mod jwks;
mod principal;
mod verifier;

pub use claims::{AccessClaims, JwtSettings};
pub use error::AuthnError;
pub use extract::{bearer_token, note_authentication};
pub use guard::{PermissionGuard, RequirePermission, RequirePermissionLayer, require_permission};
pub use jwks::{AuthServiceJwks, JwksSource, StaticJwks};
pub use principal::Principal;
pub use verifier::TokenVerifier;
