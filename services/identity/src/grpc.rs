//! The gRPC server of `keel.identity.v1.IdentityService`: decodes requests, calls the flows,
//! encodes answers. Errors travel as [`ServiceError`]s through `keel_clients::wire::to_status`, so
//! callers get back exactly what the flow meant (field violations included).

use std::sync::Arc;

use keel_clients::wire::{origin_from_identity, to_status};
use keel_clients::{NewUser, PageRequest, ServiceError, UserChanges};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::identity_service_server::IdentityService;
use secrecy::SecretString;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::IdentityError;
use crate::flows::Identity;

/// The implementation of `keel.identity.v1.IdentityService`, served by
/// [`crate::IdentityService::grpc_service`].
pub struct IdentityGrpc {
    identity: Arc<Identity>,
}

impl IdentityGrpc {
    pub(crate) fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

impl std::fmt::Debug for IdentityGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityGrpc").finish_non_exhaustive()
    }
}

fn status(error: IdentityError) -> Status {
    to_status(ServiceError::from(error))
}

fn user_id(field: &str, text: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text)
        .map_err(|_| to_status(ServiceError::invalid_field(field, "invalid_uuid", "not a UUID")))
}

fn origin(origin: &Option<pb::RequestOrigin>) -> Result<keel_clients::Origin, Status> {
    origin_from_identity(origin).map_err(to_status)
}

#[tonic::async_trait]
impl IdentityService for IdentityGrpc {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.origin)?;
        let new = NewUser {
            email: request.email,
            password: SecretString::from(request.password),
            display_name: request.display_name,
        };
        let user = self.identity.create_user(new, &origin).await.map_err(status)?;
        Ok(Response::new(user.into()))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let id = user_id("id", &request.get_ref().id)?;
        let user = self.identity.get_user(id).await.map_err(status)?;
        Ok(Response::new(user.into()))
    }

    async fn get_user_by_email(
        &self,
        request: Request<pb::GetUserByEmailRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let user = self
            .identity
            .get_user_by_email(&request.get_ref().email)
            .await
            .map_err(status)?;
        Ok(Response::new(user.into()))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest {
            limit: (request.limit != 0).then_some(request.limit),
            cursor: (!request.cursor.is_empty()).then_some(request.cursor),
        };
        let page = self.identity.list_users(page).await.map_err(status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.items.into_iter().map(pb::User::from).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let request = request.into_inner();
        let id = user_id("id", &request.id)?;
        let origin = origin(&request.origin)?;
        let changes = UserChanges {
            display_name: request.display_name,
        };
        let user = self
            .identity
            .update_user(id, changes, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(user.into()))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let request = request.into_inner();
        let id = user_id("id", &request.id)?;
        let origin = origin(&request.origin)?;
        self.identity.delete_user(id, &origin).await.map_err(status)?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn verify_credentials(
        &self,
        request: Request<pb::VerifyCredentialsRequest>,
    ) -> Result<Response<pb::VerifyCredentialsResponse>, Status> {
        let request = request.into_inner();
        let password = SecretString::from(request.password);
        let verdict = self
            .identity
            .verify_credentials(&request.email, &password)
            .await
            .map_err(status)?;
        Ok(Response::new(verdict.into()))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.origin)?;
        let token = SecretString::from(request.token);
        self.identity
            .verify_email(&token, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::VerifyEmailResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.origin)?;
        self.identity
            .request_password_reset(&request.email, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.origin)?;
        let token = SecretString::from(request.token);
        let new_password = SecretString::from(request.new_password);
        self.identity
            .reset_password(&token, &new_password, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let request = request.into_inner();
        let user = user_id("user_id", &request.user_id)?;
        let origin = origin(&request.origin)?;
        let current = SecretString::from(request.current_password);
        let new = SecretString::from(request.new_password);
        self.identity
            .change_password(user, &current, &new, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }
}
