//! What callers may ask of the authz service.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Origin, Page, PageRequest, ServiceError};

/// A permission of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Permission {
    /// `module.resource.action`, e.g. `platform.user.read`.
    pub name: String,
    /// What it allows.
    pub description: String,
    /// The module (or `platform`) that declared it.
    pub module: String,
}

/// A role with its permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Role {
    /// UUID v7.
    pub id: Uuid,
    /// Unique, lower-case.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Permission names, sorted.
    pub permissions: Vec<String>,
    /// Seeded roles cannot be deleted or renamed.
    pub system: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change (including grants).
    pub updated_at: DateTime<Utc>,
}

/// A role to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRole {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Permissions granted from the start.
    pub permissions: Vec<String>,
}

/// Role fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// Roles named by id or by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSelector {
    /// By id.
    pub ids: Vec<Uuid>,
    /// By name (default roles, seeding).
    pub names: Vec<String>,
}

/// The authz service: permission checks, the catalogue, roles and assignments.
#[async_trait]
pub trait AuthzClient: Send + Sync {
    /// Does the user hold the permission?
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError>;
    /// The user's effective permissions, sorted.
    async fn user_permissions(&self, user_id: Uuid) -> Result<Vec<String>, ServiceError>;
    /// The catalogue, sorted by name.
    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError>;
    /// Adds permissions to the catalogue; returns how many were new.
    async fn register_permissions(&self, permissions: Vec<Permission>) -> Result<u32, ServiceError>;
    /// Creates a role.
    async fn create_role(&self, role: NewRole, origin: &Origin) -> Result<Role, ServiceError>;
    /// One role.
    async fn get_role(&self, id: Uuid) -> Result<Role, ServiceError>;
    /// Roles by name, optionally filtered by exact name.
    async fn list_roles(&self, name: Option<String>, page: PageRequest) -> Result<Page<Role>, ServiceError>;
    /// Renames or re-describes a role.
    async fn update_role(
        &self,
        id: Uuid,
        changes: RoleChanges,
        origin: &Origin,
    ) -> Result<Role, ServiceError>;
    /// Deletes a non-system role.
    async fn delete_role(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError>;
    /// Grants permissions to a role.
    async fn grant_permissions(
        &self,
        role_id: Uuid,
        permissions: Vec<String>,
        origin: &Origin,
    ) -> Result<Role, ServiceError>;
    /// Revokes one permission from a role.
    async fn revoke_permission(
        &self,
        role_id: Uuid,
        permission: &str,
        origin: &Origin,
    ) -> Result<Role, ServiceError>;
    /// Assigns roles to a user; returns the user's roles after the change.
    async fn assign_roles(
        &self,
        user_id: Uuid,
        roles: RoleSelector,
        origin: &Origin,
    ) -> Result<Vec<Role>, ServiceError>;
    /// Takes a role from a user.
    async fn revoke_role(&self, user_id: Uuid, role_id: Uuid, origin: &Origin) -> Result<(), ServiceError>;
    /// Takes every role from a user about to be deleted; returns how many they held. Refused
    /// (`FailedPrecondition`, nothing changed) when that would leave no holder of the admin role.
    /// Idempotent.
    async fn revoke_all_roles(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError>;
    /// The user's roles.
    async fn user_roles(&self, user_id: Uuid) -> Result<Vec<Role>, ServiceError>;
}
