//! Handlers of `/api/v1/roles…`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use keel_authn::Principal;
use keel_clients::{NewRole, PageRequest, Role, RoleChanges};
use keel_http::{Json, Problem};
use serde::Deserialize;

use super::{List, RestState, path_id};
use crate::AuthzError;
use keel_clients::ClientOrigin;

/// Body of `POST /api/v1/roles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Body of `PUT /api/v1/roles/{id}`: the whole editable representation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplaceBody {
    name: String,
    #[serde(default)]
    description: String,
}

/// Body of `PATCH /api/v1/roles/{id}`: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
}

/// Body of `POST /api/v1/roles/{id}/permissions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    permissions: Vec<String>,
}

/// `GET /api/v1/roles` query parameters (strings, so a bad value is a 422 naming it).
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    name: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `POST /api/v1/roles`: 201 with the role and its `Location`.
pub(super) async fn create(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Json(body): Json<CreateBody>,
) -> Result<Response, Problem> {
    let new = NewRole {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
    };
    let role = state
        .engine
        .create_role(&new, &client.acting(principal.user_id))
        .await?;
    let location = format!("/api/v1/roles/{}", role.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(role)).into_response())
}

/// `GET /api/v1/roles?name=&limit=&cursor=`: a page of roles by name.
pub(super) async fn list(
    State(state): State<RestState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<List<Role>>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = match query.limit.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<u32>()
                .map_err(|_| AuthzError::field("limit", "invalid_type", "limit is a whole number"))?,
        ),
    };
    let page = PageRequest {
        limit,
        cursor: query.cursor.filter(|c| !c.is_empty()),
    };
    let page = state.engine.list_roles(query.name, page).await?;
    Ok(Json(List {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/roles/{id}`: the role with its permissions.
pub(super) async fn get(
    State(state): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<Role>, Problem> {
    let id = path_id(&id, "role")?;
    Ok(Json(state.engine.get_role(id).await?))
}

/// `PUT /api/v1/roles/{id}`: replaces name and description.
pub(super) async fn replace(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
    Json(body): Json<ReplaceBody>,
) -> Result<Json<Role>, Problem> {
    let id = path_id(&id, "role")?;
    let changes = RoleChanges {
        name: Some(body.name),
        description: Some(body.description),
    };
    Ok(Json(
        state
            .engine
            .update_role(id, &changes, &client.acting(principal.user_id))
            .await?,
    ))
}

/// `PATCH /api/v1/roles/{id}`: changes the fields given.
pub(super) async fn update(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<Role>, Problem> {
    let id = path_id(&id, "role")?;
    let changes = RoleChanges {
        name: body.name,
        description: body.description,
    };
    Ok(Json(
        state
            .engine
            .update_role(id, &changes, &client.acting(principal.user_id))
            .await?,
    ))
}

/// `DELETE /api/v1/roles/{id}`: 204; 409 for a system role.
pub(super) async fn delete(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = path_id(&id, "role")?;
    state
        .engine
        .delete_role(id, &client.acting(principal.user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/roles/{id}/permissions`: the role after the grant.
pub(super) async fn grant(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path(id): Path<String>,
    Json(body): Json<GrantBody>,
) -> Result<Json<Role>, Problem> {
    let id = path_id(&id, "role")?;
    let role = state
        .engine
        .grant_permissions(id, &body.permissions, &client.acting(principal.user_id))
        .await?;
    Ok(Json(role))
}

/// `DELETE /api/v1/roles/{id}/permissions/{permission}`: 204.
pub(super) async fn revoke(
    State(state): State<RestState>,
    principal: Principal,
    client: ClientOrigin,
    Path((id, permission)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let id = path_id(&id, "role")?;
    state
        .engine
        .revoke_permission(id, &permission, &client.acting(principal.user_id))
        .await
        .map_err(|error| match error {
            // The permission is a path segment here, not a body field: a malformed one names nothing.
            AuthzError::Invalid(_) => AuthzError::PermissionNotFound(permission.clone()),
            other => other,
        })?;
    Ok(StatusCode::NO_CONTENT)
}
