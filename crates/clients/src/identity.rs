//! What callers may ask of the identity service.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use crate::{Origin, Page, PageRequest, ServiceError};

/// A user as other services see it (never with credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// UUID v7.
    pub id: Uuid,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Name shown to others; may be empty.
    pub display_name: String,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// When the user registered.
    pub created_at: DateTime<Utc>,
    /// Last profile change.
    pub updated_at: DateTime<Utc>,
}

/// A registration.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// E-mail address as typed; the service normalises and validates it.
    pub email: String,
    /// Password as typed; the service applies the password policy.
    pub password: SecretString,
    /// Optional display name.
    pub display_name: Option<String>,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
}

/// The outcome of a credentials check. Unknown e-mail and wrong password are one variant on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsVerdict {
    /// E-mail and password match.
    Valid(User),
    /// Unknown e-mail or wrong password.
    Invalid,
    /// The password matches but the e-mail is unverified and configuration requires verification.
    EmailNotVerified(User),
}

/// The identity service: users, credentials, e-mail verification and password reset.
#[async_trait]
pub trait IdentityClient: Send + Sync {
    /// Registers a user (`AlreadyExists` when the e-mail is taken, `InvalidArgument` for policy).
    async fn create_user(&self, user: NewUser, origin: &Origin) -> Result<User, ServiceError>;
    /// One user by id.
    async fn get_user(&self, id: Uuid) -> Result<User, ServiceError>;
    /// One user by e-mail, case-insensitively.
    async fn get_user_by_email(&self, email: &str) -> Result<User, ServiceError>;
    /// Users, oldest first.
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, ServiceError>;
    /// Changes profile fields.
    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        origin: &Origin,
    ) -> Result<User, ServiceError>;
    /// Deletes a user.
    async fn delete_user(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError>;
    /// Checks credentials (used by auth's login).
    async fn verify_credentials(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError>;
    /// Consumes an e-mail verification token.
    async fn verify_email(&self, token: &SecretString, origin: &Origin) -> Result<(), ServiceError>;
    /// Sends a reset e-mail if the account exists; succeeds either way.
    async fn request_password_reset(&self, email: &str, origin: &Origin) -> Result<(), ServiceError>;
    /// Consumes a reset token and sets a new password.
    async fn reset_password(
        &self,
        token: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError>;
    /// Changes a password given the current one.
    async fn change_password(
        &self,
        user_id: Uuid,
        current_password: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError>;
}
