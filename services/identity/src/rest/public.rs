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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    email: String,
    password: SecretString,
    #[serde(default)]
    display_name: Option<String>,
}

/// `POST /api/v1/users/verify-email`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyEmailBody {
    token: SecretString,
}

/// `POST /api/v1/users/password-reset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequestBody {
    email: String,
}

/// `POST /api/v1/users/password-reset/confirm`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirmBody {
    token: SecretString,
    new_password: SecretString,
}

/// Registers a user: 201 with the user and its `Location`; 403 when registration is closed,
/// 409 when the address is taken, 422 when a value is rejected.
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
