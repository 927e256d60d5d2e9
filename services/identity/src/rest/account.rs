//! Routes of an authenticated user: their own profile and password, and admin user management
//! (`platform.user.read|update|delete`, or the user themself for reading and updating).

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use http::StatusCode;
use keel_authn::Principal;
use keel_clients::{Page, PageRequest, User, UserChanges};
use keel_http::{FieldError, Json, Path, Problem};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::RestState;
use keel_clients::ClientOrigin;

/// Permission to read any user.
const READ: &str = "platform.user.read";
/// Permission to update any user.
const UPDATE: &str = "platform.user.update";
/// Permission to delete any user.
const DELETE: &str = "platform.user.delete";

/// `PATCH` bodies: the profile fields a user may change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileBody {
    /// New name shown to others, at most 100 characters; absent leaves it as it is.
    #[serde(default)]
    #[schema(max_length = 100)]
    display_name: Option<String>,
}

/// `PUT /api/v1/users/me/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordBody {
    /// The password the user has now.
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    /// The new password (the same policy as at registration).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// `GET /api/v1/users/me`.
///
/// The caller's own user.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    operation_id = "get_own_user",
    tag = "identity",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's user", body = User),
        (status = 404, description = "The caller's user no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Tokens cannot be checked (signing keys unavailable)", body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn me(State(state): State<RestState>, principal: Principal) -> Result<Json<User>, Problem> {
    Ok(Json(state.identity.get_user(principal.user_id).await?))
}

/// `PATCH /api/v1/users/me`.
///
/// Changes the caller's own profile and answers the user as it is now.
#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    operation_id = "update_own_user",
    tag = "identity",
    security(("bearer" = [])),
    request_body = ProfileBody,
    responses(
        (status = 200, description = "The caller's user, changed", body = User),
        (status = 404, description = "The caller's user no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A rejected `display_name`, or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Tokens cannot be checked (signing keys unavailable)", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn update_me(
    State(state): State<RestState>,
    principal: Principal,
    origin: ClientOrigin,
    Json(body): Json<ProfileBody>,
) -> Result<Json<User>, Problem> {
    let origin = origin.acting(principal.user_id);
    let changes = UserChanges {
        display_name: body.display_name,
    };
    Ok(Json(
        state
            .identity
            .update_user(principal.user_id, changes, &origin)
            .await?,
    ))
}

/// `PUT /api/v1/users/me/password`: 204; 403 when the current password is wrong (the bearer
/// token is fine, so not 401, which would make clients discard their session); 422 for a new
/// password the policy refuses; 503 when the sessions could not be ended (nothing changed).
#[utoipa::path(
    put,
    path = "/api/v1/users/me/password",
    operation_id = "change_own_password",
    tag = "identity",
    security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "The password is changed and the user's sessions are ended"),
        (status = 403, description = "The current password is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller's user no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The password was changed meanwhile; try again", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `new_password` the policy refuses, or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong current passwords lately (`identity.password_change_throttle`); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The user's sessions could not be ended, so nothing changed; or tokens cannot be checked", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn change_password(
    State(state): State<RestState>,
    principal: Principal,
    origin: ClientOrigin,
    Json(body): Json<ChangePasswordBody>,
) -> Result<StatusCode, Problem> {
    let origin = origin.acting(principal.user_id);
    state
        .identity
        .change_password(
            principal.user_id,
            &body.current_password,
            &body.new_password,
            &origin,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users?limit=&cursor=`: `{items, next_cursor}`, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "list_users",
    tag = "identity",
    security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Users per page, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page; absent for the first", min_length = 1, pattern = r"^[A-Za-z0-9_-]+$"),
    ),
    responses(
        (status = 200, description = "One page of users, oldest first", body = Page<User>),
        (status = 400, description = "The query string cannot be parsed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `platform.user.read`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `limit` or `cursor`, or an unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Authorization or token checks are unavailable", body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn list(
    State(state): State<RestState>,
    principal: Principal,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<User>>, Problem> {
    state.guard.require(&principal, READ).await?;
    let Query(pairs) = query.map_err(|_| Problem::bad_request("the query string could not be parsed"))?;
    let page = page_request(pairs)?;
    Ok(Json(state.identity.list_users(page).await?))
}

/// `GET /api/v1/users/{id}`.
///
/// One user: the caller themself, or anyone with `platform.user.read`.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    operation_id = "get_user",
    tag = "identity",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id; anything but a UUID is 404")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 403, description = "Another user, and the caller lacks `platform.user.read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Authorization or token checks are unavailable", body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn get(
    State(state): State<RestState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<User>, Problem> {
    let id = user_id(&id)?;
    self_or(&state, &principal, id, READ).await?;
    Ok(Json(state.identity.get_user(id).await?))
}

/// `PATCH /api/v1/users/{id}`.
///
/// Changes a user's profile: the caller's own, or anyone's with `platform.user.update`.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    operation_id = "update_user",
    tag = "identity",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id; anything but a UUID is 404")),
    request_body = ProfileBody,
    responses(
        (status = 200, description = "The user, changed", body = User),
        (status = 403, description = "Another user, and the caller lacks `platform.user.update`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A rejected `display_name`, or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Authorization or token checks are unavailable", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn update(
    State(state): State<RestState>,
    principal: Principal,
    Path(id): Path<String>,
    origin: ClientOrigin,
    Json(body): Json<ProfileBody>,
) -> Result<Json<User>, Problem> {
    let id = user_id(&id)?;
    self_or(&state, &principal, id, UPDATE).await?;
    let origin = origin.acting(principal.user_id);
    let changes = UserChanges {
        display_name: body.display_name,
    };
    Ok(Json(state.identity.update_user(id, changes, &origin).await?))
}

/// `DELETE /api/v1/users/{id}`: 204; 409 for the last administrator; 503 when the user's roles
/// or sessions could not be removed.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    operation_id = "delete_user",
    tag = "identity",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id; anything but a UUID is 404")),
    responses(
        (status = 204, description = "The user is deleted, their roles taken and their sessions ended"),
        (status = 403, description = "The caller lacks `platform.user.delete`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user is the last holder of the admin role; nothing was changed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The user's roles or sessions could not be removed, so the user was not deleted; or authorization or token checks are unavailable", body = Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    )
)]
pub(crate) async fn delete(
    State(state): State<RestState>,
    principal: Principal,
    Path(id): Path<String>,
    origin: ClientOrigin,
) -> Result<impl IntoResponse, Problem> {
    let id = user_id(&id)?;
    state.guard.require(&principal, DELETE).await?;
    let origin = origin.acting(principal.user_id);
    state.identity.delete_user(id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets the user act on their own account, anyone else only with `permission`.
async fn self_or(
    state: &RestState,
    principal: &Principal,
    target: Uuid,
    permission: &str,
) -> Result<(), Problem> {
    if principal.user_id == target {
        return Ok(());
    }
    state.guard.require(principal, permission).await
}

/// A path id that is not a UUID names no user.
fn user_id(text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found("no such user"))
}

/// `limit` and `cursor` from the query; anything else is refused, so a typo is not ignored.
fn page_request(pairs: Vec<(String, String)>) -> Result<PageRequest, Problem> {
    let mut page = PageRequest::default();
    let mut errors = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => match value.parse::<u32>() {
                Ok(limit) => page.limit = Some(limit),
                Err(_) => errors.push(FieldError::new(
                    "limit",
                    "invalid_type",
                    "limit must be a whole number",
                )),
            },
            "cursor" => page.cursor = Some(value),
            other => errors.push(FieldError::new(
                other,
                "unknown_parameter",
                "unknown query parameter",
            )),
        }
    }
    match errors.is_empty() {
        true => Ok(page),
        false => Err(Problem::validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn limit_and_cursor_are_read_and_other_parameters_refused() {
        let page = page_request(pairs(&[("limit", "5"), ("cursor", "abc")])).expect("valid");
        assert_eq!(page.limit, Some(5));
        assert_eq!(page.cursor.as_deref(), Some("abc"));
        let problem = page_request(pairs(&[("limit", "many"), ("sort", "x")])).expect_err("invalid");
        assert_eq!(problem.status, 422);
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "sort"]);
    }
}
