//! Routes anyone may call: registration, e-mail verification, password reset.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keel_clients::{NewUser, User};
use keel_http::{Json, Problem};
use secrecy::SecretString;
use serde::Deserialize;

use super::RestState;
use crate::IdentityError;
use crate::config::Registration;
use keel_clients::ClientOrigin;

/// `POST /api/v1/users`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    /// E-mail address; trimmed and lower-cased, at most 254 characters.
    #[schema(pattern = r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
    email: String,
    /// Password: 8 to 128 characters, not a common password, not the e-mail address.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    password: SecretString,
    /// Name shown to others, at most 100 characters; empty when absent.
    #[serde(default)]
    #[schema(max_length = 100)]
    display_name: Option<String>,
}

/// `POST /api/v1/users/verify-email`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyEmailBody {
    /// The token of the verification link.
    #[schema(value_type = String, format = Password, min_length = 1)]
    token: SecretString,
}

/// `POST /api/v1/users/password-reset`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequestBody {
    /// The account's e-mail address.
    #[schema(pattern = r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
    email: String,
}

/// `POST /api/v1/users/password-reset/confirm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirmBody {
    /// The token of the reset link.
    #[schema(value_type = String, format = Password, min_length = 1)]
    token: SecretString,
    /// The new password (the same policy as at registration).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Registers a user: 201 with the user and its `Location`; 403 when registration is closed,
/// 409 when the address is taken, 422 when a value is rejected.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "register_user",
    tag = "identity",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The user was registered", body = User,
            headers(("Location" = String, description = "`/api/v1/users/{id}` of the new user"))),
        (status = 403, description = "Registration is closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An account with this e-mail address exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Rejected values (`email`, `password`, `display_name`), wrong or unknown fields: all of them in `errors[]`", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
pub(crate) async fn register(
    State(state): State<RestState>,
    ClientOrigin(origin): ClientOrigin,
    Json(body): Json<RegisterBody>,
) -> Result<Response, Problem> {
    if state.registration == Registration::Closed {
        return Err(IdentityError::RegistrationClosed.into());
    }
    let new = NewUser {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
    };
    let user = state.identity.create_user(new, &origin).await?;
    Ok(created(user))
}

fn created(user: User) -> Response {
    let location = HeaderValue::from_str(&format!("/api/v1/users/{}", user.id));
    let mut response = (StatusCode::CREATED, Json(user)).into_response();
    if let Ok(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Consumes a verification token: 204, or 422 (`token: invalid_token`) when it is unknown, used
/// or expired.
#[utoipa::path(
    post,
    path = "/api/v1/users/verify-email",
    operation_id = "verify_email",
    tag = "identity",
    request_body = VerifyEmailBody,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 422, description = "`token: invalid_token` (unknown, used or expired alike), or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
pub(crate) async fn verify_email(
    State(state): State<RestState>,
    ClientOrigin(origin): ClientOrigin,
    Json(body): Json<VerifyEmailBody>,
) -> Result<StatusCode, Problem> {
    state.identity.verify_email(&body.token, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks for a reset e-mail: 202 whether or not the account exists (422 only for a malformed
/// address).
#[utoipa::path(
    post,
    path = "/api/v1/users/password-reset",
    operation_id = "request_password_reset",
    tag = "identity",
    request_body = ResetRequestBody,
    responses(
        (status = 202, description = "Accepted, whether or not the account exists"),
        (status = 422, description = "A malformed address (`email`), or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many reset requests for this address lately", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a request for this address is accepted again"))),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
pub(crate) async fn request_reset(
    State(state): State<RestState>,
    ClientOrigin(origin): ClientOrigin,
    Json(body): Json<ResetRequestBody>,
) -> Result<StatusCode, Problem> {
    state
        .identity
        .request_password_reset(&body.email, &origin)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset token: 204; 422 for a bad token or password; 503 when the
/// user's sessions could not be ended (then nothing changed).
#[utoipa::path(
    post,
    path = "/api/v1/users/password-reset/confirm",
    operation_id = "confirm_password_reset",
    tag = "identity",
    request_body = ResetConfirmBody,
    responses(
        (status = 204, description = "The password is set and the user's sessions are ended"),
        (status = 422, description = "`token: invalid_token`, a `new_password` the policy refuses, or wrong or unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The user's sessions could not be ended, so nothing changed (the token stays usable)", body = Problem, content_type = "application/problem+json"),
        keel_http::JsonBodyErrors,
        keel_http::InternalError,
    )
)]
pub(crate) async fn confirm_reset(
    State(state): State<RestState>,
    ClientOrigin(origin): ClientOrigin,
    Json(body): Json<ResetConfirmBody>,
) -> Result<StatusCode, Problem> {
    state
        .identity
        .reset_password(&body.token, &body.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
