//! The OpenAPI document of the REST routes, generated from the handlers' `#[utoipa::path]`
//! annotations.
//!
//! Why this module exists: CONVENTIONS asks every service to describe each of its routes in an
//! OpenAPI document generated from the code and served at `/api/v1/<service>/openapi.json`.
//! [`ApiDoc`] gathers the operations of [`super::router`] and the schemas of their bodies;
//! `keel_http::openapi_router` adds the `bearer` security scheme and serves it.

use keel_clients::{Permission, Role};

use super::List;
use super::roles::{CreateBody, GrantBody, ReplaceBody, UpdateBody};
use super::users::{AssignBody, EffectivePermissions};
use super::{roles, users};

/// The authz service's OpenAPI document: every operation of the role management API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel authz",
        description = "The role management API of the authz service: roles, their permissions, \
                       users' roles and effective permissions, and the permission catalogue. \
                       Every operation but `GET /api/v1/users/{id}/permissions` (also open to the \
                       user themself) requires `platform.role.manage`; errors are \
                       `application/problem+json`.",
    ),
    paths(
        roles::create,
        roles::list,
        roles::get,
        roles::replace,
        roles::update,
        roles::delete,
        roles::grant,
        roles::revoke,
        users::assign,
        users::revoke,
        users::roles,
        users::catalogue,
        users::permissions,
    ),
    components(schemas(
        Role,
        Permission,
        List<Role>,
        List<Permission>,
        CreateBody,
        ReplaceBody,
        UpdateBody,
        GrantBody,
        AssignBody,
        EffectivePermissions,
        keel_http::Problem,
        keel_http::FieldError,
    )),
    tags((name = "authz", description = "Roles, grants, assignments and the permission catalogue")),
)]
pub(crate) struct ApiDoc;

/// The answers every role-managing route shares besides its own: 403 without
/// `platform.role.manage`, 503 when the token or permission check cannot be made or the request
/// timed out. Named in those routes' `responses(...)`.
pub(crate) struct RoleManagerErrors;

impl utoipa::IntoResponses for RoleManagerErrors {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>> {
        std::collections::BTreeMap::from([
            (
                "403".to_owned(),
                keel_http::problem_response("The caller lacks `platform.role.manage`"),
            ),
            (
                "503".to_owned(),
                keel_http::problem_response(
                    "Authentication or authorization is temporarily unavailable, or the request timed out",
                ),
            ),
        ])
    }
}

/// The answers of a change to a role's name and description (`PUT` and `PATCH
/// /api/v1/roles/{id}`) besides the shared ones: 404 for an unknown role, 409 for a taken name or
/// a system role, 422 for an invalid field.
pub(crate) struct RoleChangeErrors;

impl utoipa::IntoResponses for RoleChangeErrors {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>> {
        std::collections::BTreeMap::from([
            (
                "404".to_owned(),
                keel_http::problem_response("No role has this id"),
            ),
            (
                "409".to_owned(),
                keel_http::problem_response(
                    "Another role has this name, or the role is a system role (which cannot be renamed)",
                ),
            ),
            (
                "422".to_owned(),
                keel_http::problem_response("A field is invalid: `errors[]` names it"),
            ),
        ])
    }
}
