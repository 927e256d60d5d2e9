//! [`IdentityClient`] over gRPC.

use std::sync::Arc;

use async_trait::async_trait;
use keel_config::GrpcConfig;
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::identity_service_client::IdentityServiceClient as Client;
use keel_registry::ServiceRegistry;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::caller::{Caller, Retry};
use super::{CallPolicy, into_page};
use crate::{
    CredentialsVerdict, IdentityClient, NewUser, Origin, Page, PageRequest, ServiceError, User, UserChanges,
};

/// The identity service over gRPC, found in the registry as `identity`.
#[derive(Debug)]
pub struct GrpcIdentityClient {
    caller: Caller,
}

impl GrpcIdentityClient {
    /// A client of the `identity` instances in `registry`.
    pub fn new(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig, policy: CallPolicy) -> Self {
        Self {
            caller: Caller::new("identity", registry, grpc, policy),
        }
    }
}

fn proto_origin(origin: &Origin) -> Option<pb::RequestOrigin> {
    Some(origin.into())
}

#[async_trait]
impl IdentityClient for GrpcIdentityClient {
    async fn create_user(&self, user: NewUser, origin: &Origin) -> Result<User, ServiceError> {
        let request = pb::CreateUserRequest {
            email: user.email,
            password: user.password.expose_secret().to_owned(),
            display_name: user.display_name,
            origin: proto_origin(origin),
        };
        let user = self
            .caller
            .call(
                "CreateUser",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).create_user(request).await },
            )
            .await?;
        user.try_into()
    }

    async fn get_user(&self, id: Uuid) -> Result<User, ServiceError> {
        let request = pb::GetUserRequest { id: id.to_string() };
        let user = self
            .caller
            .call(
                "GetUser",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).get_user(request).await },
            )
            .await?;
        user.try_into()
    }

    async fn get_user_by_email(&self, email: &str) -> Result<User, ServiceError> {
        let request = pb::GetUserByEmailRequest {
            email: email.to_owned(),
        };
        let user = self
            .caller
            .call(
                "GetUserByEmail",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).get_user_by_email(request).await },
            )
            .await?;
        user.try_into()
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, ServiceError> {
        let request = pb::ListUsersRequest {
            limit: page.limit.unwrap_or_default(),
            cursor: page.cursor.unwrap_or_default(),
        };
        let response = self
            .caller
            .call(
                "ListUsers",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).list_users(request).await },
            )
            .await?;
        into_page(response.users, response.next_cursor)
    }

    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        origin: &Origin,
    ) -> Result<User, ServiceError> {
        let request = pb::UpdateUserRequest {
            id: id.to_string(),
            display_name: changes.display_name,
            origin: proto_origin(origin),
        };
        let user = self
            .caller
            .call(
                "UpdateUser",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).update_user(request).await },
            )
            .await?;
        user.try_into()
    }

    async fn delete_user(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::DeleteUserRequest {
            id: id.to_string(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "DeleteUser",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).delete_user(request).await },
            )
            .await?;
        Ok(())
    }

    async fn verify_credentials(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError> {
        let request = pb::VerifyCredentialsRequest {
            email: email.to_owned(),
            password: password.expose_secret().to_owned(),
        };
        let response = self
            .caller
            .call(
                "VerifyCredentials",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).verify_credentials(request).await },
            )
            .await?;
        response.try_into()
    }

    async fn verify_email(&self, token: &SecretString, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::VerifyEmailRequest {
            token: token.expose_secret().to_owned(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "VerifyEmail",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).verify_email(request).await },
            )
            .await?;
        Ok(())
    }

    async fn request_password_reset(&self, email: &str, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::RequestPasswordResetRequest {
            email: email.to_owned(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "RequestPasswordReset",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).request_password_reset(request).await },
            )
            .await?;
        Ok(())
    }

    async fn reset_password(
        &self,
        token: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        let request = pb::ResetPasswordRequest {
            token: token.expose_secret().to_owned(),
            new_password: new_password.expose_secret().to_owned(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "ResetPassword",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).reset_password(request).await },
            )
            .await?;
        Ok(())
    }

    async fn change_password(
        &self,
        user_id: Uuid,
        current_password: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        let request = pb::ChangePasswordRequest {
            user_id: user_id.to_string(),
            current_password: current_password.expose_secret().to_owned(),
            new_password: new_password.expose_secret().to_owned(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "ChangePassword",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).change_password(request).await },
            )
            .await?;
        Ok(())
    }
}
