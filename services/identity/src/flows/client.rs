//! [`IdentityClient`] served in-process, for callers in the same process that should not pay for
//! a gRPC hop (seeding, tests). Behaves exactly as the gRPC server does.

use std::sync::Arc;

use async_trait::async_trait;
use keel_clients::{
    CredentialsVerdict, IdentityClient, NewUser, Origin, Page, PageRequest, ServiceError, User, UserChanges,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::Identity;

/// The identity service as an [`IdentityClient`], without the network.
#[derive(Clone)]
pub struct LocalIdentityClient {
    pub(crate) identity: Arc<Identity>,
}

impl std::fmt::Debug for LocalIdentityClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentityClient").finish_non_exhaustive()
    }
}

#[async_trait]
impl IdentityClient for LocalIdentityClient {
    async fn create_user(&self, user: NewUser, origin: &Origin) -> Result<User, ServiceError> {
        Ok(self.identity.create_user(user, origin).await?)
    }

    async fn get_user(&self, id: Uuid) -> Result<User, ServiceError> {
        Ok(self.identity.get_user(id).await?)
    }

    async fn get_user_by_email(&self, email: &str) -> Result<User, ServiceError> {
        Ok(self.identity.get_user_by_email(email).await?)
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, ServiceError> {
        Ok(self.identity.list_users(page).await?)
    }

    async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        origin: &Origin,
    ) -> Result<User, ServiceError> {
        Ok(self.identity.update_user(id, changes, origin).await?)
    }

    async fn delete_user(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        Ok(self.identity.delete_user(id, origin).await?)
    }

    async fn verify_credentials(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError> {
        Ok(self.identity.verify_credentials(email, password).await?)
    }

    async fn verify_email(&self, token: &SecretString, origin: &Origin) -> Result<(), ServiceError> {
        Ok(self.identity.verify_email(token, origin).await?)
    }

    async fn request_password_reset(&self, email: &str, origin: &Origin) -> Result<(), ServiceError> {
        Ok(self.identity.request_password_reset(email, origin).await?)
    }

    async fn reset_password(
        &self,
        token: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        Ok(self.identity.reset_password(token, new_password, origin).await?)
    }

    async fn change_password(
        &self,
        user_id: Uuid,
        current_password: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        Ok(self
            .identity
            .change_password(user_id, current_password, new_password, origin)
            .await?)
    }
}
