//! Granting permissions to roles and revoking them.
//!
//! Grants are idempotent: granting what a role holds changes nothing and publishes nothing.
//! Every listed name must be in the catalogue; unknown ones are rejected by their index in the
//! request (`permissions[1]`) before anything is written.

use std::collections::BTreeSet;

use chrono::Utc;
use keel_clients::{FieldViolation, Origin, Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::changes::{self, Change};
use super::{Authz, Invalidate};
use crate::AuthzError;
use crate::catalogue::ADMIN_ROLE;
use crate::names::{self, PermissionName};
use crate::store::entities::{role, role_permission};
use crate::store::queries;

impl Authz {
    /// Grants `permissions` to the role; returns the role after the change.
    pub(crate) async fn grant_permissions(
        &self,
        role_id: Uuid,
        permissions: &[String],
        origin: &Origin,
    ) -> Result<Role, AuthzError> {
        if permissions.is_empty() {
            return Err(AuthzError::field(
                "permissions",
                "required",
                "name at least one permission",
            ));
        }
        let listed = names::permission_list(permissions, "permissions").map_err(AuthzError::Invalid)?;
        let tx = self.begin().await?;
        let role = existing_role(&tx, role_id).await?;
        let names = require_known(&tx, "permissions", &listed).await?;
        let granted = grant_missing(&tx, role.id, &names).await?;
        if granted.is_empty() {
            return role_in(&tx, role_id).await;
        }
        let role = touch(&tx, role).await?;
        changes::record(&tx, origin, vec![Change::permissions_granted(&role, &granted)]).await?;
        let role = role_in(&tx, role_id).await?;
        self.commit(tx, Invalidate::Everyone).await?;
        Ok(role)
    }

    /// Takes `permission` from the role; returns the role after the change. Taking a permission the
    /// role does not hold changes nothing. The `admin` role keeps every permission.
    pub(crate) async fn revoke_permission(
        &self,
        role_id: Uuid,
        permission: &str,
        origin: &Origin,
    ) -> Result<Role, AuthzError> {
        let name =
            PermissionName::parse(permission, "permission").map_err(|v| AuthzError::Invalid(vec![v]))?;
        let tx = self.begin().await?;
        let role = existing_role(&tx, role_id).await?;
        if queries::known_permissions(&tx, &[name.as_str()])
            .await?
            .is_empty()
        {
            return Err(AuthzError::PermissionNotFound(name.into_string()));
        }
        if role.system && role.name == ADMIN_ROLE {
            return Err(AuthzError::SystemRole(
                "the admin role holds every permission; none can be revoked from it".to_owned(),
            ));
        }
        let removed = role_permission::Entity::delete_many()
            .filter(role_permission::Column::RoleId.eq(role.id))
            .filter(role_permission::Column::Permission.eq(name.as_str()))
            .exec(&tx)
            .await?;
        if removed.rows_affected == 0 {
            return role_in(&tx, role_id).await;
        }
        let role = touch(&tx, role).await?;
        let revoked = vec![name.into_string()];
        changes::record(&tx, origin, vec![Change::permissions_revoked(&role, &revoked)]).await?;
        let role = role_in(&tx, role_id).await?;
        self.commit(tx, Invalidate::Everyone).await?;
        Ok(role)
    }
}

/// The role with its permissions as `conn` sees it, or 404.
pub(super) async fn role_in<C: ConnectionTrait>(conn: &C, role_id: Uuid) -> Result<Role, AuthzError> {
    queries::role(conn, role_id)
        .await?
        .ok_or_else(|| AuthzError::RoleNotFound(role_id.to_string()))
}

/// The role row, or 404.
pub(super) async fn existing_role<C: ConnectionTrait>(
    conn: &C,
    role_id: Uuid,
) -> Result<role::Model, AuthzError> {
    queries::role_row(conn, role_id)
        .await?
        .ok_or_else(|| AuthzError::RoleNotFound(role_id.to_string()))
}

/// Checks that every listed permission is in the catalogue, naming unknown ones by their index in
/// the request's `field`; returns the names.
pub(super) async fn require_known<C: ConnectionTrait>(
    conn: &C,
    field: &str,
    listed: &[(usize, PermissionName)],
) -> Result<Vec<String>, AuthzError> {
    let wanted: Vec<&str> = listed.iter().map(|(_, name)| name.as_str()).collect();
    let known = queries::known_permissions(conn, &wanted).await?;
    let unknown: Vec<FieldViolation> = listed
        .iter()
        .filter(|(_, name)| !known.contains(name.as_str()))
        .map(|(index, name)| {
            names::violation(
                &format!("{field}[{index}]"),
                "unknown_permission",
                &format!("{} is not in the permission catalogue", name.as_str()),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(AuthzError::Invalid(unknown));
    }
    Ok(wanted.into_iter().map(str::to_owned).collect())
}

/// Grants the role what it lacks of `names` (all in the catalogue); returns what was newly
/// granted, sorted.
pub(super) async fn grant_missing<C: ConnectionTrait>(
    conn: &C,
    role_id: Uuid,
    names: &[String],
) -> Result<Vec<String>, DbErr> {
    let held: BTreeSet<String> = queries::grants_of(conn, &[role_id])
        .await?
        .remove(&role_id)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let new: BTreeSet<&String> = names.iter().filter(|name| !held.contains(*name)).collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    // One row at a time, keeping only the rows this call really inserted: a concurrent grant of
    // the same permission (PostgreSQL does not serialise the two transactions) wins the row, and
    // its event and audit record are then the only ones.
    let mut granted = Vec::with_capacity(new.len());
    for name in new {
        let inserted = role_permission::Entity::insert(role_permission::ActiveModel {
            role_id: Set(role_id),
            permission: Set(name.clone()),
            granted_at: Set(now),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(rows) if rows > 0) {
            granted.push(name.clone());
        }
    }
    Ok(granted)
}

/// Marks the role changed now.
pub(super) async fn touch<C: ConnectionTrait>(conn: &C, role: role::Model) -> Result<role::Model, DbErr> {
    let mut active: role::ActiveModel = role.into();
    active.updated_at = Set(Utc::now());
    active.update(conn).await
}
