//! The authz service as an in-process [`AuthzClient`].
//!
//! Why this module exists: authz's own REST routes must check `platform.role.manage` without
//! calling themselves over the network, and a process hosting authz may hand the same handle to
//! its other components. The answers are the engine's, errors mapped exactly as on the wire.

use std::sync::Arc;

use async_trait::async_trait;
use keel_clients::{
    AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError,
};
use uuid::Uuid;

use crate::engine::{Authz, KeepAdmin};

/// An [`AuthzClient`] over the engine of this process.
pub(crate) struct LocalAuthzClient {
    engine: Arc<Authz>,
}

impl LocalAuthzClient {
    /// A client over `engine`.
    pub(crate) fn new(engine: Arc<Authz>) -> Self {
        Self { engine }
    }
}

#[async_trait]
impl AuthzClient for LocalAuthzClient {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        Ok(self.engine.has_permission(user_id, permission).await?)
    }

    async fn user_permissions(&self, user_id: Uuid) -> Result<Vec<String>, ServiceError> {
        Ok(self.engine.user_permissions(user_id).await?)
    }

    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        Ok(self.engine.list_permissions().await?)
    }

    async fn register_permissions(&self, permissions: Vec<Permission>) -> Result<u32, ServiceError> {
        Ok(self.engine.register_permissions(&permissions).await?)
    }

    async fn create_role(&self, role: NewRole, origin: &Origin) -> Result<Role, ServiceError> {
        Ok(self.engine.create_role(&role, origin).await?)
    }

    async fn get_role(&self, id: Uuid) -> Result<Role, ServiceError> {
        Ok(self.engine.get_role(id).await?)
    }

    async fn list_roles(&self, name: Option<String>, page: PageRequest) -> Result<Page<Role>, ServiceError> {
        Ok(self.engine.list_roles(name, page).await?)
    }

    async fn update_role(
        &self,
        id: Uuid,
        changes: RoleChanges,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        Ok(self.engine.update_role(id, &changes, origin).await?)
    }

    async fn delete_role(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        Ok(self.engine.delete_role(id, origin).await?)
    }

    async fn grant_permissions(
        &self,
        role_id: Uuid,
        permissions: Vec<String>,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        Ok(self
            .engine
            .grant_permissions(role_id, &permissions, origin)
            .await?)
    }

    async fn revoke_permission(
        &self,
        role_id: Uuid,
        permission: &str,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        Ok(self.engine.revoke_permission(role_id, permission, origin).await?)
    }

    async fn assign_roles(
        &self,
        user_id: Uuid,
        roles: RoleSelector,
        origin: &Origin,
    ) -> Result<Vec<Role>, ServiceError> {
        Ok(self.engine.assign_roles(user_id, &roles, origin).await?)
    }

    async fn revoke_role(&self, user_id: Uuid, role_id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        Ok(self.engine.revoke_role(user_id, role_id, origin).await?)
    }

    async fn revoke_all_roles(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError> {
        let revoked = self
            .engine
            .revoke_all_roles(user_id, origin, KeepAdmin::Yes)
            .await?;
        Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
    }

    async fn user_roles(&self, user_id: Uuid) -> Result<Vec<Role>, ServiceError> {
        Ok(self.engine.user_roles(user_id).await?)
    }
}
