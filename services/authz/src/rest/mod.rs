//! The REST edge: the role management API of plan story 2.4 and DESIGN §9.
//!
//! Why this module exists: administrators manage roles over HTTP through the gateway. Every route
//! but one requires `platform.role.manage` (checked by `keel_authn::require_permission` against
//! this process's own engine, no network hop); `GET /api/v1/users/{id}/permissions` also admits
//! the user themself. Handlers translate JSON to engine calls and engine errors to problem+json;
//! the rules live in the engine.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /api/v1/roles` `{name, description?, permissions?}` | 201 role, `Location` |
//! | `GET /api/v1/roles?name=&limit=&cursor=` | `{items, next_cursor}` |
//! | `GET /api/v1/roles/{id}` | role with permissions |
//! | `PUT /api/v1/roles/{id}` `{name, description?}` | role (replaces both fields) |
//! | `PATCH /api/v1/roles/{id}` `{name?, description?}` | role (changes the fields given) |
//! | `DELETE /api/v1/roles/{id}` | 204; 409 for a system role |
//! | `POST /api/v1/roles/{id}/permissions` `{permissions}` | role |
//! | `DELETE /api/v1/roles/{id}/permissions/{permission}` | 204 |
//! | `POST /api/v1/users/{id}/roles` `{role_ids}` | `{items, next_cursor: null}`: the user's roles |
//! | `DELETE /api/v1/users/{id}/roles/{role_id}` | 204 |
//! | `GET /api/v1/users/{id}/roles` | `{items, next_cursor: null}` |
//! | `GET /api/v1/permissions` | `{items, next_cursor: null}`: the catalogue |
//! | `GET /api/v1/users/{id}/permissions` | `{user_id, permissions}` |
//!
//! The OpenAPI document of these routes (see [`openapi`]) is served, without authentication, at
//! `GET /api/v1/authz/openapi.json`.

mod openapi;
mod roles;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use keel_authn::{PermissionGuard, TokenVerifier, require_permission};
use keel_clients::IdentityClient;
use keel_http::Problem;
use serde::Serialize;
use utoipa::OpenApi as _;
use uuid::Uuid;

use crate::SERVICE_NAME;
use crate::catalogue::ROLE_MANAGE;
use crate::engine::Authz;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct RestState {
    /// The engine.
    pub(crate) engine: Arc<Authz>,
    /// Verifies bearer tokens.
    pub(crate) verifier: Arc<TokenVerifier>,
    /// Checks permissions against this process's engine.
    pub(crate) guard: PermissionGuard,
    /// Tells whether a user exists before roles are assigned to it.
    pub(crate) identity: Arc<dyn IdentityClient>,
}

impl FromRef<RestState> for Arc<TokenVerifier> {
    fn from_ref(state: &RestState) -> Self {
        state.verifier.clone()
    }
}

/// The REST routes with their state applied, and their OpenAPI document (open to anyone).
pub(crate) fn router(state: RestState) -> Router {
    let managed = Router::new()
        .route("/api/v1/roles", post(roles::create).get(roles::list))
        .route(
            "/api/v1/roles/{id}",
            get(roles::get)
                .put(roles::replace)
                .patch(roles::update)
                .delete(roles::delete),
        )
        .route("/api/v1/roles/{id}/permissions", post(roles::grant))
        .route(
            "/api/v1/roles/{id}/permissions/{permission}",
            delete(roles::revoke),
        )
        .route("/api/v1/users/{id}/roles", post(users::assign).get(users::roles))
        .route("/api/v1/users/{id}/roles/{role_id}", delete(users::revoke))
        .route("/api/v1/permissions", get(users::catalogue))
        .route_layer(require_permission(
            state.verifier.clone(),
            state.guard.clone(),
            ROLE_MANAGE,
        ));
    // Also open to the user themself, so it checks inside the handler.
    let own = Router::new().route("/api/v1/users/{id}/permissions", get(users::permissions));
    let document = keel_http::openapi_router(SERVICE_NAME, openapi::ApiDoc::openapi());
    managed.merge(own).with_state(state).merge(document)
}

/// A list answer in the API's list shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    /// The items.
    pub(crate) items: Vec<T>,
    /// The cursor of the next page; `null` on the last (always, for unpaginated lists).
    #[schema(required = true)]
    pub(crate) next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A list that is a single page.
    pub(crate) fn whole(items: Vec<T>) -> Self {
        Self {
            items,
            next_cursor: None,
        }
    }
}

/// The id in a path segment; a malformed one names nothing that exists.
pub(crate) fn path_id(raw: &str, what: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(format!("no {what} has the id {raw}")))
}
