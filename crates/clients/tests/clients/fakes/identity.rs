//! An in-memory identity service: users with plain-text passwords, verification and reset tokens
//! equal to the user's id. Enough behaviour to drive every RPC; nothing like the real service.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use keel_clients::wire::{origin_from_identity, to_status};
use keel_clients::{CredentialsVerdict, FieldViolation, Origin, ServiceError, User};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::support::{Knobs, lock};

/// The fake's state, readable by tests.
#[derive(Default)]
pub(crate) struct State {
    /// Users in creation order, with their passwords.
    pub(crate) users: Vec<(User, String)>,
    /// The origin of the last mutating call.
    pub(crate) last_origin: Option<Origin>,
    /// E-mail addresses a reset was requested for.
    pub(crate) resets: Vec<String>,
}

/// The fake service.
#[derive(Clone, Default)]
pub(crate) struct FakeIdentity {
    /// Call counts and failure injection.
    pub(crate) knobs: Arc<Knobs>,
    /// Users and what was asked.
    pub(crate) state: Arc<Mutex<State>>,
}

impl FakeIdentity {
    /// The tonic service to serve.
    pub(crate) fn server(&self) -> IdentityServiceServer<Self> {
        IdentityServiceServer::new(self.clone())
    }

    fn remember(&self, origin: &Option<pb::RequestOrigin>) -> Result<(), Status> {
        let origin = origin_from_identity(origin).map_err(to_status)?;
        lock(&self.state).last_origin = Some(origin);
        Ok(())
    }

    /// Applies `change` to the user with `id` and answers the user after it.
    fn with_user<T>(&self, id: &str, change: impl FnOnce(&mut (User, String)) -> T) -> Result<T, Status> {
        let mut state = lock(&self.state);
        let user = state.users.iter_mut().find(|(u, _)| u.id.to_string() == id);
        user.map(change)
            .ok_or_else(|| to_status(ServiceError::NotFound("no such user".into())))
    }
}

fn validate(request: &pb::CreateUserRequest) -> Result<(), ServiceError> {
    let mut violations = Vec::new();
    if !request.email.contains('@') {
        violations.push(FieldViolation {
            field: "email".into(),
            code: "invalid_email".into(),
            message: "is not an e-mail address".into(),
        });
    }
    if request.password.len() < 8 {
        violations.push(FieldViolation {
            field: "password".into(),
            code: "too_short".into(),
            message: "needs at least 8 characters".into(),
        });
    }
    match violations.is_empty() {
        true => Ok(()),
        false => Err(ServiceError::InvalidArgument {
            message: "the registration was rejected".into(),
            violations,
        }),
    }
}

#[tonic::async_trait]
impl IdentityService for FakeIdentity {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.knobs.enter("CreateUser").await?;
        let request = request.into_inner();
        validate(&request).map_err(to_status)?;
        self.remember(&request.origin)?;
        let mut state = lock(&self.state);
        if state.users.iter().any(|(u, _)| u.email == request.email) {
            return Err(to_status(ServiceError::AlreadyExists(
                "the e-mail is taken".into(),
            )));
        }
        let now = Utc::now();
        let user = User {
            id: Uuid::now_v7(),
            email: request.email,
            display_name: request.display_name.unwrap_or_default(),
            email_verified: false,
            created_at: now,
            updated_at: now,
        };
        state.users.push((user.clone(), request.password));
        Ok(Response::new(user.into()))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        self.knobs.enter("GetUser").await?;
        let user = self.with_user(&request.into_inner().id, |(user, _)| user.clone())?;
        Ok(Response::new(user.into()))
    }

    async fn get_user_by_email(
        &self,
        request: Request<pb::GetUserByEmailRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.knobs.enter("GetUserByEmail").await?;
        let email = request.into_inner().email.to_lowercase();
        let state = lock(&self.state);
        let user = state
            .users
            .iter()
            .find(|(u, _)| u.email == email)
            .map(|(u, _)| u.clone());
        let user = user.ok_or_else(|| to_status(ServiceError::NotFound("no such user".into())))?;
        Ok(Response::new(user.into()))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.knobs.enter("ListUsers").await?;
        let request = request.into_inner();
        let start: usize = request.cursor.parse().unwrap_or(0);
        let limit = usize::try_from(request.limit).unwrap_or(20).clamp(1, 100);
        let state = lock(&self.state);
        let users: Vec<pb::User> = state
            .users
            .iter()
            .skip(start)
            .take(limit)
            .map(|(u, _)| u.clone().into())
            .collect();
        let next = start + users.len();
        let next_cursor = if next < state.users.len() {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListUsersResponse { users, next_cursor }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.knobs.enter("UpdateUser").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        let user = self.with_user(&request.id, |(user, _)| {
            if let Some(name) = request.display_name {
                user.display_name = name;
            }
            user.clone()
        })?;
        Ok(Response::new(user.into()))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        self.knobs.enter("DeleteUser").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        let mut state = lock(&self.state);
        let before = state.users.len();
        state.users.retain(|(u, _)| u.id.to_string() != request.id);
        if state.users.len() == before {
            return Err(to_status(ServiceError::NotFound("no such user".into())));
        }
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn verify_credentials(
        &self,
        request: Request<pb::VerifyCredentialsRequest>,
    ) -> Result<Response<pb::VerifyCredentialsResponse>, Status> {
        self.knobs.enter("VerifyCredentials").await?;
        let request = request.into_inner();
        let state = lock(&self.state);
        let found = state
            .users
            .iter()
            .find(|(u, p)| u.email == request.email && *p == request.password);
        let verdict = match found {
            Some((user, _)) if user.email_verified => CredentialsVerdict::Valid(user.clone()),
            Some((user, _)) => CredentialsVerdict::EmailNotVerified(user.clone()),
            None => CredentialsVerdict::Invalid,
        };
        Ok(Response::new(verdict.into()))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        self.knobs.enter("VerifyEmail").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        self.with_user(&request.token, |(user, _)| user.email_verified = true)
            .map_err(|_| {
                to_status(ServiceError::invalid_field(
                    "token",
                    "invalid_token",
                    "unknown token",
                ))
            })?;
        Ok(Response::new(pb::VerifyEmailResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        self.knobs.enter("RequestPasswordReset").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        lock(&self.state).resets.push(request.email);
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        self.knobs.enter("ResetPassword").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        self.with_user(&request.token, |(_, password)| *password = request.new_password)?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        self.knobs.enter("ChangePassword").await?;
        let request = request.into_inner();
        self.remember(&request.origin)?;
        let changed = self.with_user(&request.user_id, |(_, password)| {
            let matches = *password == request.current_password;
            if matches {
                *password = request.new_password;
            }
            matches
        })?;
        if !changed {
            return Err(to_status(ServiceError::Unauthenticated("wrong password".into())));
        }
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }
}
