//! An in-memory authz service: a catalogue, roles and assignments, checks computed from them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use keel_clients::wire::{origin_from_authz, to_status};
use keel_clients::{FieldViolation, Origin, Permission, Role, ServiceError};
use keel_proto::authz::v1 as pb;
use keel_proto::authz::v1::authz_service_server::{AuthzService, AuthzServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::support::{Knobs, lock};

/// The fake's state, readable and changeable by tests.
#[derive(Default)]
pub(crate) struct State {
    /// The catalogue.
    pub(crate) catalogue: Vec<Permission>,
    /// Every role.
    pub(crate) roles: Vec<Role>,
    /// Role ids by user.
    pub(crate) assignments: HashMap<Uuid, Vec<Uuid>>,
    /// The origin of the last mutating call.
    pub(crate) last_origin: Option<Origin>,
}

impl State {
    fn permissions_of(&self, user: Uuid) -> BTreeSet<String> {
        let held = self.assignments.get(&user).cloned().unwrap_or_default();
        let roles = self.roles.iter().filter(|r| held.contains(&r.id));
        roles.flat_map(|r| r.permissions.iter().cloned()).collect()
    }

    fn role_mut(&mut self, id: &str) -> Result<&mut Role, Status> {
        let role = self.roles.iter_mut().find(|r| r.id.to_string() == id);
        role.ok_or_else(|| to_status(ServiceError::NotFound("no such role".into())))
    }

    fn check_known(&self, permissions: &[String]) -> Result<(), Status> {
        let violations: Vec<FieldViolation> = permissions
            .iter()
            .enumerate()
            .filter(|(_, p)| !self.catalogue.iter().any(|known| &known.name == *p))
            .map(|(i, _)| FieldViolation {
                field: format!("permissions[{i}]"),
                code: "unknown_permission".into(),
                message: "is not in the catalogue".into(),
            })
            .collect();
        if violations.is_empty() {
            return Ok(());
        }
        Err(to_status(ServiceError::InvalidArgument {
            message: "unknown permissions".into(),
            violations,
        }))
    }
}

/// The fake service.
#[derive(Clone, Default)]
pub(crate) struct FakeAuthz {
    /// Call counts and failure injection.
    pub(crate) knobs: Arc<Knobs>,
    /// Catalogue, roles, assignments.
    pub(crate) state: Arc<Mutex<State>>,
}

impl FakeAuthz {
    /// The tonic service to serve.
    pub(crate) fn server(&self) -> AuthzServiceServer<Self> {
        AuthzServiceServer::new(self.clone())
    }

    fn remember(
        &self,
        origin: &Option<pb::RequestOrigin>,
    ) -> Result<std::sync::MutexGuard<'_, State>, Status> {
        let origin = origin_from_authz(origin).map_err(to_status)?;
        let mut state = lock(&self.state);
        state.last_origin = Some(origin);
        Ok(state)
    }
}

fn changed(role: &mut Role) -> pb::Role {
    role.permissions.sort();
    role.permissions.dedup();
    role.updated_at = Utc::now();
    role.clone().into()
}

fn roles_of(state: &State, user_id: &str) -> Vec<pb::Role> {
    let held = Uuid::parse_str(user_id)
        .ok()
        .and_then(|u| state.assignments.get(&u).cloned());
    let held = held.unwrap_or_default();
    state
        .roles
        .iter()
        .filter(|r| held.contains(&r.id))
        .map(|r| r.clone().into())
        .collect()
}

fn user(id: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id).map_err(|_| {
        to_status(ServiceError::invalid_field(
            "user_id",
            "invalid_uuid",
            "not a UUID",
        ))
    })
}

#[tonic::async_trait]
impl AuthzService for FakeAuthz {
    async fn has_permission(
        &self,
        request: Request<pb::HasPermissionRequest>,
    ) -> Result<Response<pb::HasPermissionResponse>, Status> {
        self.knobs.enter("HasPermission").await?;
        let request = request.into_inner();
        let allowed = lock(&self.state)
            .permissions_of(user(&request.user_id)?)
            .contains(&request.permission);
        Ok(Response::new(pb::HasPermissionResponse { allowed }))
    }

    async fn get_user_permissions(
        &self,
        request: Request<pb::GetUserPermissionsRequest>,
    ) -> Result<Response<pb::GetUserPermissionsResponse>, Status> {
        self.knobs.enter("GetUserPermissions").await?;
        let user = user(&request.into_inner().user_id)?;
        let permissions = lock(&self.state).permissions_of(user).into_iter().collect();
        Ok(Response::new(pb::GetUserPermissionsResponse { permissions }))
    }

    async fn list_permissions(
        &self,
        _request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        self.knobs.enter("ListPermissions").await?;
        let mut permissions = lock(&self.state).catalogue.clone();
        permissions.sort_by(|a, b| a.name.cmp(&b.name));
        let permissions = permissions.into_iter().map(Into::into).collect();
        Ok(Response::new(pb::ListPermissionsResponse { permissions }))
    }

    async fn register_permissions(
        &self,
        request: Request<pb::RegisterPermissionsRequest>,
    ) -> Result<Response<pb::RegisterPermissionsResponse>, Status> {
        self.knobs.enter("RegisterPermissions").await?;
        let mut state = lock(&self.state);
        let mut added = 0;
        for permission in request.into_inner().permissions {
            let permission = Permission::try_from(permission).map_err(to_status)?;
            if !state.catalogue.iter().any(|p| p.name == permission.name) {
                state.catalogue.push(permission);
                added += 1;
            }
        }
        Ok(Response::new(pb::RegisterPermissionsResponse { added }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        self.knobs.enter("CreateRole").await?;
        let request = request.into_inner();
        let mut state = self.remember(&request.origin)?;
        state.check_known(&request.permissions)?;
        if state.roles.iter().any(|r| r.name == request.name) {
            return Err(to_status(ServiceError::AlreadyExists("the role exists".into())));
        }
        let now = Utc::now();
        let mut role = Role {
            id: Uuid::now_v7(),
            name: request.name,
            description: request.description,
            permissions: request.permissions,
            system: false,
            created_at: now,
            updated_at: now,
        };
        let answer = changed(&mut role);
        state.roles.push(role);
        Ok(Response::new(answer))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::Role>, Status> {
        self.knobs.enter("GetRole").await?;
        let mut state = lock(&self.state);
        let role = state.role_mut(&request.into_inner().id)?;
        Ok(Response::new(role.clone().into()))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        self.knobs.enter("ListRoles").await?;
        let request = request.into_inner();
        let state = lock(&self.state);
        let mut roles: Vec<&Role> = state.roles.iter().collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles.retain(|r| {
            request
                .name
                .as_ref()
                .is_none_or(|name| r.name.eq_ignore_ascii_case(name))
        });
        let start: usize = request.cursor.parse().unwrap_or(0);
        let limit = usize::try_from(request.limit).unwrap_or(20).clamp(1, 100);
        let page: Vec<pb::Role> = roles
            .iter()
            .skip(start)
            .take(limit)
            .map(|r| (*r).clone().into())
            .collect();
        let next = start + page.len();
        let next_cursor = if next < roles.len() {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListRolesResponse {
            roles: page,
            next_cursor,
        }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        self.knobs.enter("UpdateRole").await?;
        let request = request.into_inner();
        let mut state = self.remember(&request.origin)?;
        let role = state.role_mut(&request.id)?;
        if role.system && request.name.is_some() {
            return Err(to_status(ServiceError::FailedPrecondition(
                "system roles keep their name".into(),
            )));
        }
        if let Some(name) = request.name {
            role.name = name;
        }
        if let Some(description) = request.description {
            role.description = description;
        }
        Ok(Response::new(changed(role)))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        self.knobs.enter("DeleteRole").await?;
        let request = request.into_inner();
        let mut state = self.remember(&request.origin)?;
        let role = state.role_mut(&request.id)?;
        if role.system {
            return Err(to_status(ServiceError::FailedPrecondition(
                "system roles stay".into(),
            )));
        }
        let id = role.id;
        state.roles.retain(|r| r.id != id);
        state
            .assignments
            .values_mut()
            .for_each(|held| held.retain(|r| *r != id));
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn grant_permissions(
        &self,
        request: Request<pb::GrantPermissionsRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        self.knobs.enter("GrantPermissions").await?;
        let request = request.into_inner();
        let mut state = self.remember(&request.origin)?;
        state.check_known(&request.permissions)?;
        let role = state.role_mut(&request.role_id)?;
        role.permissions.extend(request.permissions);
        Ok(Response::new(changed(role)))
    }

    async fn revoke_permission(
        &self,
        request: Request<pb::RevokePermissionRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        self.knobs.enter("RevokePermission").await?;
        let request = request.into_inner();
        let mut state = self.remember(&request.origin)?;
        let role = state.role_mut(&request.role_id)?;
        role.permissions.retain(|p| *p != request.permission);
        Ok(Response::new(changed(role)))
    }

    async fn assign_roles(
        &self,
        request: Request<pb::AssignRolesRequest>,
    ) -> Result<Response<pb::AssignRolesResponse>, Status> {
        self.knobs.enter("AssignRoles").await?;
        let request = request.into_inner();
        let user = user(&request.user_id)?;
        let mut state = self.remember(&request.origin)?;
        let mut ids = Vec::new();
        for role in &state.roles {
            if request.role_ids.contains(&role.id.to_string()) || request.role_names.contains(&role.name) {
                ids.push(role.id);
            }
        }
        if ids.len() != request.role_ids.len() + request.role_names.len() {
            return Err(to_status(ServiceError::NotFound("no such role".into())));
        }
        let held = state.assignments.entry(user).or_default();
        held.extend(ids);
        held.sort();
        held.dedup();
        let roles = roles_of(&state, &request.user_id);
        Ok(Response::new(pb::AssignRolesResponse { roles }))
    }

    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        self.knobs.enter("RevokeRole").await?;
        let request = request.into_inner();
        let user = user(&request.user_id)?;
        let mut state = self.remember(&request.origin)?;
        let held = state.assignments.entry(user).or_default();
        held.retain(|r| r.to_string() != request.role_id);
        Ok(Response::new(pb::RevokeRoleResponse {}))
    }

    async fn revoke_all_roles(
        &self,
        request: Request<pb::RevokeAllRolesRequest>,
    ) -> Result<Response<pb::RevokeAllRolesResponse>, Status> {
        self.knobs.enter("RevokeAllRoles").await?;
        let request = request.into_inner();
        let user = user(&request.user_id)?;
        let mut state = self.remember(&request.origin)?;
        let held = state.assignments.remove(&user).unwrap_or_default();
        let revoked = u32::try_from(held.len()).unwrap_or(u32::MAX);
        Ok(Response::new(pb::RevokeAllRolesResponse { revoked }))
    }

    async fn list_user_roles(
        &self,
        request: Request<pb::ListUserRolesRequest>,
    ) -> Result<Response<pb::ListUserRolesResponse>, Status> {
        self.knobs.enter("ListUserRoles").await?;
        let roles = roles_of(&lock(&self.state), &request.into_inner().user_id);
        Ok(Response::new(pb::ListUserRolesResponse { roles }))
    }
}
