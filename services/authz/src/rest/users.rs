//! Handlers of `/api/v1/users/{id}/roles…`, `/api/v1/users/{id}/permissions` and
//! `/api/v1/permissions`.

use axum::extract::State;
use http::StatusCode;
use keel_authn::Principal;
use keel_clients::{Permission, Role, RoleSelector, ServiceError};
use keel_http::{Json, Path, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{List, RestState, path_id};
use crate::AuthzError;
use crate::catalogue::ROLE_MANAGE;
use keel_clients::ClientOrigin;

/// Body of `POST /api/v1/users/{id}/roles`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    /// Ids of existing roles to give the user; at least one.
    #[schema(min_items = 1)]
    role_ids: Vec<Uuid>,
}

/// Answer of `GET /api/v1/users/{id}/permissions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EffectivePermissions {
    /// The user.
    user_id: Uuid,
    /// The user's effective permissions (the union of their roles' grants), sorted.
    permissions: Vec<String>,
}

/// `POST /api/v1/users/{id}/roles`: the user's roles after the assignment.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/roles",
    operation_id = "assign_roles",
    tag = "authz",
    params(
        ("id" = Uuid, Path, description = "The user's id (a malformed one is a 404)"),
    ),
    request_body(content = AssignBody, content_type = "application/json"),
    responses(
        (status = 200, description = "All the user's roles after the assignment (`next_cursor` is `null`)", body = List<Role>),
        (status = 403, description = "The caller lacks `platform.role.manage`", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The identity service knows no user with this id", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`role_ids` is empty or names a role that does not exist (`role_ids[i]`, `unknown_role`), or an id is not a UUID", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The identity service cannot tell whether the user exists, authentication is temporarily unavailable, or the request timed out", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn assign(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<Json<List<Role>>, Problem> {
    let user_id = path_id(&id, "user")?;
    if body.role_ids.is_empty() {
        return Err(AuthzError::field("role_ids", "required", "name at least one role").into());
    }
    require_user(&state, user_id).await?;
    let selector = RoleSelector {
        ids: body.role_ids,
        names: Vec::new(),
    };
    let roles = state
        .engine
        .assign_roles(user_id, &selector, &client.acting(principal.user_id))
        .await?;
    Ok(Json(List::whole(roles)))
}

/// `DELETE /api/v1/users/{id}/roles/{role_id}`: 204.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/roles/{role_id}",
    operation_id = "revoke_role",
    tag = "authz",
    params(
        ("id" = Uuid, Path, description = "The user's id (a malformed one is a 404)"),
        ("role_id" = Uuid, Path, description = "The role to take (a malformed id is a 404)"),
    ),
    responses(
        (status = 204, description = "The user no longer holds the role (also when they never did)"),
        (status = 404, description = "No role has this id", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would take `admin` from its last holder", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path((id, role_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let user_id = path_id(&id, "user")?;
    let role_id = path_id(&role_id, "role")?;
    state
        .engine
        .revoke_role(user_id, role_id, &client.acting(principal.user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users/{id}/roles`: the user's roles.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/roles",
    operation_id = "list_user_roles",
    tag = "authz",
    params(
        ("id" = Uuid, Path, description = "The user's id (a malformed one is a 404)"),
    ),
    responses(
        (status = 200, description = "The user's roles by name (`next_cursor` is `null`)", body = List<Role>),
        (status = 404, description = "The id is not a UUID", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn roles(
    State(state): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<List<Role>>, Problem> {
    let user_id = path_id(&id, "user")?;
    Ok(Json(List::whole(state.engine.user_roles(user_id).await?)))
}

/// `GET /api/v1/permissions`: the catalogue.
#[utoipa::path(
    get,
    path = "/api/v1/permissions",
    operation_id = "list_permissions",
    tag = "authz",
    responses(
        (status = 200, description = "The whole catalogue by name (`next_cursor` is `null`)", body = List<Permission>),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn catalogue(State(state): State<RestState>) -> Result<Json<List<Permission>>, Problem> {
    Ok(Json(List::whole(state.engine.list_permissions().await?)))
}

/// A user's effective permissions: for `platform.role.manage` holders, or the user themself.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/permissions",
    operation_id = "user_permissions",
    tag = "authz",
    params(
        ("id" = Uuid, Path, description = "The user's id (a malformed one is a 404)"),
    ),
    responses(
        (status = 200, description = "The user's effective permissions, sorted", body = EffectivePermissions),
        (status = 403, description = "The caller is not the user `{id}` and lacks `platform.role.manage`", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The id is not a UUID", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Authentication or authorization is temporarily unavailable, or the request timed out", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn permissions(
    State(state): State<RestState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<EffectivePermissions>, Problem> {
    let user_id = path_id(&id, "user")?;
    if principal.user_id != user_id {
        state.guard.require(&principal, ROLE_MANAGE).await?;
    }
    let permissions = state.engine.user_permissions(user_id).await?;
    Ok(Json(EffectivePermissions { user_id, permissions }))
}

/// 404 unless the identity service knows the user (roles are not given to users that do not exist).
async fn require_user(state: &RestState, user_id: Uuid) -> Result<(), AuthzError> {
    match state.identity.get_user(user_id).await {
        Ok(_) => Ok(()),
        Err(ServiceError::NotFound(_)) => Err(AuthzError::UserNotFound(user_id)),
        Err(error) => Err(AuthzError::Peer(error)),
    }
}
