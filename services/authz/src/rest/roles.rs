//! Handlers of `/api/v1/roles…`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use keel_authn::Principal;
use keel_clients::{NewRole, PageRequest, Role, RoleChanges};
use keel_http::{Json, Path, Problem};
use serde::Deserialize;

use super::{List, RestState, path_id};
use crate::AuthzError;
use keel_clients::ClientOrigin;

/// Body of `POST /api/v1/roles`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    /// Unique name regardless of case (stored lowercase): 1–64 characters, a letter first, then
    /// letters, digits, `_` and `-`.
    #[schema(example = "editor", pattern = r"^\s*[A-Za-z][A-Za-z0-9_-]*\s*$")]
    name: String,
    /// What the role is for, at most 500 characters; empty when absent.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
    /// Permissions of the catalogue granted from the start (`module.resource.action`).
    #[serde(default)]
    #[schema(example = json!(["platform.user.read"]))]
    permissions: Vec<String>,
}

/// Body of `PUT /api/v1/roles/{id}`: the whole editable representation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplaceBody {
    /// The role's name (a system role keeps its own).
    #[schema(pattern = r"^\s*[A-Za-z][A-Za-z0-9_-]*\s*$")]
    name: String,
    /// The description, at most 500 characters; an absent one becomes empty.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// Body of `PATCH /api/v1/roles/{id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    /// New name; absent (or `null`) leaves it as it is.
    #[schema(pattern = r"^\s*[A-Za-z][A-Za-z0-9_-]*\s*$")]
    name: Option<String>,
    /// New description, at most 500 characters; absent (or `null`) leaves it as it is.
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// Body of `POST /api/v1/roles/{id}/permissions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    /// Permissions of the catalogue to grant; at least one.
    #[schema(example = json!(["platform.user.read"]), min_items = 1)]
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
#[utoipa::path(
    post,
    path = "/api/v1/roles",
    operation_id = "create_role",
    tag = "authz",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The role was created", body = Role,
            headers(("Location" = String, description = "`/api/v1/roles/{id}` of the new role"))),
        (status = 409, description = "Another role already has this name (regardless of case)", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid: `errors[]` names it, e.g. `permissions[1]` with `unknown_permission`", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/roles",
    operation_id = "list_roles",
    tag = "authz",
    params(
        ("name" = Option<String>, Query, description = "Keeps only the role of this name (any case)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100; 20 when absent", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", min_length = 1, pattern = r"^[A-Za-z0-9_-]+$"),
    ),
    responses(
        (status = 200, description = "A page of roles ordered by name", body = List<Role>),
        (status = 400, description = "The query string could not be parsed", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` is not a whole number between 1 and 100, or `cursor` is not one this API returned", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(state): State<RestState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<List<Role>>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    // `limit=` and `cursor=` (present but empty) are refused like any malformed value, as identity
    // and audit refuse them: the documents say a whole number and a non-empty cursor.
    let limit = match query.limit.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<u32>()
                .map_err(|_| AuthzError::field("limit", "invalid_type", "limit is a whole number"))?,
        ),
    };
    if query.cursor.as_deref() == Some("") {
        return Err(AuthzError::field(
            "cursor",
            "invalid_cursor",
            "the cursor is not one this API returned",
        )
        .into());
    }
    let page = PageRequest {
        limit,
        cursor: query.cursor,
    };
    let page = state.engine.list_roles(query.name, page).await?;
    Ok(Json(List {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/roles/{id}`: the role with its permissions.
#[utoipa::path(
    get,
    path = "/api/v1/roles/{id}",
    operation_id = "get_role",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
    ),
    responses(
        (status = 200, description = "The role with its permissions", body = Role),
        (status = 404, description = "No role has this id", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get(
    State(state): State<RestState>,
    Path(id): Path<String>,
) -> Result<Json<Role>, Problem> {
    let id = path_id(&id, "role")?;
    Ok(Json(state.engine.get_role(id).await?))
}

/// `PUT /api/v1/roles/{id}`: replaces name and description.
#[utoipa::path(
    put,
    path = "/api/v1/roles/{id}",
    operation_id = "replace_role",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
    ),
    request_body(content = ReplaceBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The role after the change", body = Role),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
        super::openapi::RoleChangeErrors,
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    patch,
    path = "/api/v1/roles/{id}",
    operation_id = "update_role",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
    ),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The role after the change", body = Role),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
        super::openapi::RoleChangeErrors,
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    delete,
    path = "/api/v1/roles/{id}",
    operation_id = "delete_role",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
    ),
    responses(
        (status = 204, description = "The role was deleted; its holders lost it"),
        (status = 404, description = "No role has this id", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The role is a system role", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/roles/{id}/permissions",
    operation_id = "grant_permissions",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
    ),
    request_body(content = GrantBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The role with its permissions after the grant", body = Role),
        (status = 404, description = "No role has this id", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`permissions` is empty, or an entry is malformed or not in the catalogue (`permissions[i]`)", body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
        super::openapi::RoleManagerErrors,
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    delete,
    path = "/api/v1/roles/{id}/permissions/{permission}",
    operation_id = "revoke_permission",
    tag = "authz",
    params(
        ("id" = uuid::Uuid, Path, description = "The role's id (a malformed one is a 404)"),
        ("permission" = String, Path, description = "The permission to take, e.g. `platform.user.read`"),
    ),
    responses(
        (status = 204, description = "The role no longer holds the permission (also when it never did)"),
        (status = 404, description = "No role has this id, or the permission is not in the catalogue", body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The role is `admin`, which holds every permission", body = keel_http::Problem, content_type = "application/problem+json"),
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
