//! The gRPC edge: `keel.authz.v1.AuthzService` over the engine.
//!
//! Why this module exists: peers (every service's permission checks, the module host registering
//! its permissions, admin tools) reach authz over gRPC. This module only translates: messages to
//! domain values (ids parsed, the caller's origin read), engine errors to statuses through
//! `keel_clients::wire::to_status`, domain values back to messages.

use std::sync::Arc;

use keel_clients::wire::{origin_from_authz, to_status};
use keel_clients::{NewRole, PageRequest, Permission, RoleChanges, RoleSelector, ServiceError};
use keel_proto::authz::v1 as pb;
use keel_proto::authz::v1::authz_service_server::AuthzService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::AuthzError;
use crate::engine::{Authz, KeepAdmin};

/// The tonic service.
pub(crate) struct GrpcAuthz {
    engine: Arc<Authz>,
}

impl GrpcAuthz {
    /// A service over `engine`.
    pub(crate) fn new(engine: Arc<Authz>) -> Self {
        Self { engine }
    }
}

/// The status of an engine error.
fn status(error: AuthzError) -> Status {
    to_status(ServiceError::from(error))
}

/// A UUID field of a request; INVALID_ARGUMENT naming `field` otherwise.
fn uuid(field: &str, text: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text)
        .map_err(|_| to_status(ServiceError::invalid_field(field, "invalid_uuid", "not a UUID")))
}

fn roles_message(roles: Vec<keel_clients::Role>) -> Vec<pb::Role> {
    roles.into_iter().map(pb::Role::from).collect()
}

#[tonic::async_trait]
impl AuthzService for GrpcAuthz {
    async fn has_permission(
        &self,
        request: Request<pb::HasPermissionRequest>,
    ) -> Result<Response<pb::HasPermissionResponse>, Status> {
        let request = request.into_inner();
        let user_id = uuid("user_id", &request.user_id)?;
        let allowed = self
            .engine
            .has_permission(user_id, &request.permission)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::HasPermissionResponse { allowed }))
    }

    async fn get_user_permissions(
        &self,
        request: Request<pb::GetUserPermissionsRequest>,
    ) -> Result<Response<pb::GetUserPermissionsResponse>, Status> {
        let user_id = uuid("user_id", &request.into_inner().user_id)?;
        let permissions = self.engine.user_permissions(user_id).await.map_err(status)?;
        Ok(Response::new(pb::GetUserPermissionsResponse { permissions }))
    }

    async fn list_permissions(
        &self,
        _request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        let permissions = self.engine.list_permissions().await.map_err(status)?;
        Ok(Response::new(pb::ListPermissionsResponse {
            permissions: permissions.into_iter().map(pb::Permission::from).collect(),
        }))
    }

    async fn register_permissions(
        &self,
        request: Request<pb::RegisterPermissionsRequest>,
    ) -> Result<Response<pb::RegisterPermissionsResponse>, Status> {
        // Validation (names, modules, field paths) is the engine's; empty names included.
        let permissions: Vec<Permission> = request
            .into_inner()
            .permissions
            .into_iter()
            .map(|p| Permission {
                name: p.name,
                description: p.description,
                module: p.module,
            })
            .collect();
        let added = self
            .engine
            .register_permissions(&permissions)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RegisterPermissionsResponse { added }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let request = request.into_inner();
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let new = NewRole {
            name: request.name,
            description: request.description,
            permissions: request.permissions,
        };
        let role = self.engine.create_role(&new, &origin).await.map_err(status)?;
        Ok(Response::new(role.into()))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::Role>, Status> {
        let id = uuid("id", &request.into_inner().id)?;
        let role = self.engine.get_role(id).await.map_err(status)?;
        Ok(Response::new(role.into()))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest {
            limit: (request.limit != 0).then_some(request.limit),
            cursor: (!request.cursor.is_empty()).then_some(request.cursor),
        };
        let page = self.engine.list_roles(request.name, page).await.map_err(status)?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles_message(page.items),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let changes = RoleChanges {
            name: request.name,
            description: request.description,
        };
        let role = self
            .engine
            .update_role(id, &changes, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(role.into()))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        self.engine.delete_role(id, &origin).await.map_err(status)?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn grant_permissions(
        &self,
        request: Request<pb::GrantPermissionsRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let request = request.into_inner();
        let role_id = uuid("role_id", &request.role_id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let role = self
            .engine
            .grant_permissions(role_id, &request.permissions, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(role.into()))
    }

    async fn revoke_permission(
        &self,
        request: Request<pb::RevokePermissionRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let request = request.into_inner();
        let role_id = uuid("role_id", &request.role_id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let role = self
            .engine
            .revoke_permission(role_id, &request.permission, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(role.into()))
    }

    async fn assign_roles(
        &self,
        request: Request<pb::AssignRolesRequest>,
    ) -> Result<Response<pb::AssignRolesResponse>, Status> {
        let request = request.into_inner();
        let user_id = uuid("user_id", &request.user_id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let ids = request
            .role_ids
            .iter()
            .enumerate()
            .map(|(index, id)| uuid(&format!("role_ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        let selector = RoleSelector {
            ids,
            names: request.role_names,
        };
        let roles = self
            .engine
            .assign_roles(user_id, &selector, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AssignRolesResponse {
            roles: roles_message(roles),
        }))
    }

    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        let request = request.into_inner();
        let user_id = uuid("user_id", &request.user_id)?;
        let role_id = uuid("role_id", &request.role_id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        self.engine
            .revoke_role(user_id, role_id, &origin)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeRoleResponse {}))
    }

    async fn revoke_all_roles(
        &self,
        request: Request<pb::RevokeAllRolesRequest>,
    ) -> Result<Response<pb::RevokeAllRolesResponse>, Status> {
        let request = request.into_inner();
        let user_id = uuid("user_id", &request.user_id)?;
        let origin = origin_from_authz(&request.origin).map_err(to_status)?;
        let revoked = self
            .engine
            .revoke_all_roles(user_id, &origin, KeepAdmin::Yes)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeAllRolesResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn list_user_roles(
        &self,
        request: Request<pb::ListUserRolesRequest>,
    ) -> Result<Response<pb::ListUserRolesResponse>, Status> {
        let user_id = uuid("user_id", &request.into_inner().user_id)?;
        let roles = self.engine.user_roles(user_id).await.map_err(status)?;
        Ok(Response::new(pb::ListUserRolesResponse {
            roles: roles_message(roles),
        }))
    }
}
