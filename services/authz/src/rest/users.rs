//! Handlers of `/api/v1/users/{id}/roles…`, `/api/v1/users/{id}/permissions` and
//! `/api/v1/permissions`.

use axum::extract::{Path, State};
use http::StatusCode;
use keel_authn::Principal;
use keel_clients::{Permission, Role, RoleSelector, ServiceError};
use keel_http::{Json, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{List, RestState, path_id};
use crate::AuthzError;
use crate::catalogue::ROLE_MANAGE;
use keel_clients::ClientOrigin;

/// Body of `POST /api/v1/users/{id}/roles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    role_ids: Vec<Uuid>,
}

/// Answer of `GET /api/v1/users/{id}/permissions`.
#[derive(Debug, Serialize)]
pub(super) struct EffectivePermissions {
    user_id: Uuid,
    permissions: Vec<String>,
}

/// `POST /api/v1/users/{id}/roles`: the user's roles after the assignment.
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
pub(super) async fn roles(
    State(state): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<List<Role>>, Problem> {
    let user_id = path_id(&id, "user")?;
    Ok(Json(List::whole(state.engine.user_roles(user_id).await?)))
}

/// `GET /api/v1/permissions`: the catalogue.
pub(super) async fn catalogue(State(state): State<RestState>) -> Result<Json<List<Permission>>, Problem> {
    Ok(Json(List::whole(state.engine.list_permissions().await?)))
}

/// A user's effective permissions: for `platform.role.manage` holders, or the user themself.
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
