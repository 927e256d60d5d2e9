//! [`AuthzClient`] over gRPC.

use std::sync::Arc;

use async_trait::async_trait;
use keel_config::GrpcConfig;
use keel_proto::authz::v1 as pb;
use keel_proto::authz::v1::authz_service_client::AuthzServiceClient as Client;
use keel_registry::ServiceRegistry;
use uuid::Uuid;

use super::caller::{Caller, Retry};
use super::{CallPolicy, all, into_page};
use crate::{
    AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError,
};

/// The authz service over gRPC, found in the registry as `authz`. Uncached: callers checking
/// permissions on every request wrap it in [`crate::CachedAuthzClient`].
#[derive(Debug)]
pub struct GrpcAuthzClient {
    caller: Caller,
}

impl GrpcAuthzClient {
    /// A client of the `authz` instances in `registry`.
    pub fn new(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig, policy: CallPolicy) -> Self {
        Self {
            caller: Caller::new("authz", registry, grpc, policy),
        }
    }
}

fn proto_origin(origin: &Origin) -> Option<pb::RequestOrigin> {
    Some(origin.into())
}

#[async_trait]
impl AuthzClient for GrpcAuthzClient {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        let request = pb::HasPermissionRequest {
            user_id: user_id.to_string(),
            permission: permission.to_owned(),
            resource: String::new(),
        };
        let response = self
            .caller
            .call(
                "HasPermission",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).has_permission(request).await },
            )
            .await?;
        Ok(response.allowed)
    }

    async fn user_permissions(&self, user_id: Uuid) -> Result<Vec<String>, ServiceError> {
        let request = pb::GetUserPermissionsRequest {
            user_id: user_id.to_string(),
        };
        let response = self
            .caller
            .call(
                "GetUserPermissions",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).get_user_permissions(request).await },
            )
            .await?;
        Ok(response.permissions)
    }

    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        let request = pb::ListPermissionsRequest {};
        let response = self
            .caller
            .call(
                "ListPermissions",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).list_permissions(request).await },
            )
            .await?;
        all(response.permissions)
    }

    async fn register_permissions(&self, permissions: Vec<Permission>) -> Result<u32, ServiceError> {
        let request = pb::RegisterPermissionsRequest {
            permissions: permissions.into_iter().map(Into::into).collect(),
        };
        let response = self
            .caller
            .call(
                "RegisterPermissions",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).register_permissions(request).await },
            )
            .await?;
        Ok(response.added)
    }

    async fn create_role(&self, role: NewRole, origin: &Origin) -> Result<Role, ServiceError> {
        let request = pb::CreateRoleRequest {
            name: role.name,
            description: role.description,
            permissions: role.permissions,
            origin: proto_origin(origin),
        };
        let role = self
            .caller
            .call(
                "CreateRole",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).create_role(request).await },
            )
            .await?;
        role.try_into()
    }

    async fn get_role(&self, id: Uuid) -> Result<Role, ServiceError> {
        let request = pb::GetRoleRequest { id: id.to_string() };
        let role = self
            .caller
            .call(
                "GetRole",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).get_role(request).await },
            )
            .await?;
        role.try_into()
    }

    async fn list_roles(&self, name: Option<String>, page: PageRequest) -> Result<Page<Role>, ServiceError> {
        let request = pb::ListRolesRequest {
            name,
            limit: page.limit.unwrap_or_default(),
            cursor: page.cursor.unwrap_or_default(),
        };
        let response = self
            .caller
            .call(
                "ListRoles",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).list_roles(request).await },
            )
            .await?;
        into_page(response.roles, response.next_cursor)
    }

    async fn update_role(
        &self,
        id: Uuid,
        changes: RoleChanges,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        let request = pb::UpdateRoleRequest {
            id: id.to_string(),
            name: changes.name,
            description: changes.description,
            origin: proto_origin(origin),
        };
        let role = self
            .caller
            .call(
                "UpdateRole",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).update_role(request).await },
            )
            .await?;
        role.try_into()
    }

    async fn delete_role(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::DeleteRoleRequest {
            id: id.to_string(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "DeleteRole",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).delete_role(request).await },
            )
            .await?;
        Ok(())
    }

    async fn grant_permissions(
        &self,
        role_id: Uuid,
        permissions: Vec<String>,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        let request = pb::GrantPermissionsRequest {
            role_id: role_id.to_string(),
            permissions,
            origin: proto_origin(origin),
        };
        let role = self
            .caller
            .call(
                "GrantPermissions",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).grant_permissions(request).await },
            )
            .await?;
        role.try_into()
    }

    async fn revoke_permission(
        &self,
        role_id: Uuid,
        permission: &str,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        let request = pb::RevokePermissionRequest {
            role_id: role_id.to_string(),
            permission: permission.to_owned(),
            origin: proto_origin(origin),
        };
        let role = self
            .caller
            .call(
                "RevokePermission",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).revoke_permission(request).await },
            )
            .await?;
        role.try_into()
    }

    async fn assign_roles(
        &self,
        user_id: Uuid,
        roles: RoleSelector,
        origin: &Origin,
    ) -> Result<Vec<Role>, ServiceError> {
        let request = pb::AssignRolesRequest {
            user_id: user_id.to_string(),
            role_ids: roles.ids.iter().map(Uuid::to_string).collect(),
            role_names: roles.names,
            origin: proto_origin(origin),
        };
        // Retried: assigning a role the user holds changes nothing.
        let response = self
            .caller
            .call(
                "AssignRoles",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).assign_roles(request).await },
            )
            .await?;
        all(response.roles)
    }

    async fn revoke_role(&self, user_id: Uuid, role_id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::RevokeRoleRequest {
            user_id: user_id.to_string(),
            role_id: role_id.to_string(),
            origin: proto_origin(origin),
        };
        self.caller
            .call(
                "RevokeRole",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).revoke_role(request).await },
            )
            .await?;
        Ok(())
    }

    async fn revoke_all_roles(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError> {
        let request = pb::RevokeAllRolesRequest {
            user_id: user_id.to_string(),
            origin: proto_origin(origin),
        };
        let response = self
            .caller
            .call(
                "RevokeAllRoles",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).revoke_all_roles(request).await },
            )
            .await?;
        Ok(response.revoked)
    }

    async fn user_roles(&self, user_id: Uuid) -> Result<Vec<Role>, ServiceError> {
        let request = pb::ListUserRolesRequest {
            user_id: user_id.to_string(),
        };
        let response = self
            .caller
            .call(
                "ListUserRoles",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).list_user_roles(request).await },
            )
            .await?;
        all(response.roles)
    }
}
