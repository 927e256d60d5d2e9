//! Creating, changing and deleting roles.
//!
//! Names are unique regardless of case (stored lowercase). System roles (the seeded `admin`,
//! `user`, `guest`) can be re-described but neither renamed nor deleted.

use chrono::Utc;
use keel_clients::{NewRole, Origin, Role, RoleChanges};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
    SqlErr,
};
use uuid::Uuid;

use super::changes::{self, Change};
use super::grants::{existing_role, grant_missing, require_known, role_in};
use super::{Authz, Invalidate};
use crate::AuthzError;
use crate::names::{self, RoleName};
use crate::store::entities::{role, role_permission, user_role};
use crate::store::queries;

impl Authz {
    /// Creates a role, granting it `permissions` from the start.
    pub(crate) async fn create_role(&self, new: &NewRole, origin: &Origin) -> Result<Role, AuthzError> {
        let mut violations = Vec::new();
        let name = RoleName::parse(&new.name, "name")
            .map_err(|v| violations.push(v))
            .ok();
        let description = names::description(&new.description, "description")
            .map_err(|v| violations.push(v))
            .ok();
        let listed = names::permission_list(&new.permissions, "permissions")
            .map_err(|v| violations.extend(v))
            .ok();
        let (Some(name), Some(description), Some(listed)) = (name, description, listed) else {
            return Err(AuthzError::Invalid(violations));
        };
        let tx = self.begin().await?;
        let permissions = require_known(&tx, "permissions", &listed).await?;
        if queries::role_row_by_name(&tx, name.as_str()).await?.is_some() {
            return Err(AuthzError::RoleNameTaken(name.into_string()));
        }
        let row = insert_role(&tx, &name, description, false).await?;
        let granted = grant_missing(&tx, row.id, &permissions).await?;
        let mut recorded = vec![Change::role_created(&row)];
        if !granted.is_empty() {
            recorded.push(Change::permissions_granted(&row, &granted));
        }
        changes::record(&tx, origin, recorded).await?;
        let role = role_in(&tx, row.id).await?;
        // A new role has no holders yet: nobody's permissions changed.
        self.commit(tx, Invalidate::Nothing).await?;
        Ok(role)
    }

    /// Renames or re-describes a role. A change to the same values changes nothing.
    pub(crate) async fn update_role(
        &self,
        id: Uuid,
        changes: &RoleChanges,
        origin: &Origin,
    ) -> Result<Role, AuthzError> {
        let mut violations = Vec::new();
        let name = match &changes.name {
            Some(raw) => RoleName::parse(raw, "name").map_err(|v| violations.push(v)).ok(),
            None => None,
        };
        let description = match &changes.description {
            Some(raw) => names::description(raw, "description")
                .map_err(|v| violations.push(v))
                .ok(),
            None => None,
        };
        if !violations.is_empty() {
            return Err(AuthzError::Invalid(violations));
        }
        let tx = self.begin().await?;
        let row = existing_role(&tx, id).await?;
        let new_name = name.filter(|name| name.as_str() != row.name);
        let new_description = description.filter(|description| *description != row.description);
        if let Some(name) = &new_name {
            if row.system {
                return Err(AuthzError::SystemRole(format!(
                    "the system role {} cannot be renamed",
                    row.name
                )));
            }
            if queries::role_row_by_name(&tx, name.as_str()).await?.is_some() {
                return Err(AuthzError::RoleNameTaken(name.as_str().to_owned()));
            }
        }
        if new_name.is_none() && new_description.is_none() {
            return role_in(&tx, id).await;
        }
        let previous_name = row.name.clone();
        let attempted_name = new_name
            .as_ref()
            .map_or_else(|| previous_name.clone(), |n| n.as_str().to_owned());
        let mut active: role::ActiveModel = row.into();
        if let Some(name) = new_name {
            active.name = Set(name.into_string());
        }
        if let Some(description) = new_description {
            active.description = Set(description);
        }
        active.updated_at = Set(Utc::now());
        let row = active
            .update(&tx)
            .await
            .map_err(|e| name_conflict(e, &attempted_name))?;
        changes::record(&tx, origin, vec![Change::role_updated(&row, &previous_name)]).await?;
        let role = role_in(&tx, id).await?;
        self.commit(tx, Invalidate::Nothing).await?;
        Ok(role)
    }

    /// Deletes a role that is not a system role; its holders lose it.
    pub(crate) async fn delete_role(&self, id: Uuid, origin: &Origin) -> Result<(), AuthzError> {
        let tx = self.begin().await?;
        let row = existing_role(&tx, id).await?;
        if row.system {
            return Err(AuthzError::SystemRole(format!(
                "the system role {} cannot be deleted",
                row.name
            )));
        }
        let holders = user_role::Entity::find()
            .filter(user_role::Column::RoleId.eq(id))
            .count(&tx)
            .await?;
        let permissions = queries::grants_of(&tx, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        // The foreign keys cascade too; deleting explicitly keeps the outcome independent of them.
        user_role::Entity::delete_many()
            .filter(user_role::Column::RoleId.eq(id))
            .exec(&tx)
            .await?;
        role_permission::Entity::delete_many()
            .filter(role_permission::Column::RoleId.eq(id))
            .exec(&tx)
            .await?;
        role::Entity::delete_by_id(id).exec(&tx).await?;
        let holders = usize::try_from(holders).unwrap_or(usize::MAX);
        changes::record(
            &tx,
            origin,
            vec![Change::role_deleted(&row, holders, &permissions)],
        )
        .await?;
        self.commit(tx, Invalidate::Everyone).await
    }
}

/// Inserts a role row.
pub(super) async fn insert_role<C: ConnectionTrait>(
    conn: &C,
    name: &RoleName,
    description: String,
    system: bool,
) -> Result<role::Model, AuthzError> {
    let now = Utc::now();
    role::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.as_str().to_owned()),
        description: Set(description),
        system: Set(system),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .map_err(|e| name_conflict(e, name.as_str()))
}

/// A unique-index violation on insert or rename is a concurrent writer taking the name first.
fn name_conflict(error: DbErr, name: &str) -> AuthzError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AuthzError::RoleNameTaken(name.to_owned()),
        _ => AuthzError::Store(error),
    }
}
