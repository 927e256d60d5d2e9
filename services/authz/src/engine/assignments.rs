//! Giving roles to users and taking them away.
//!
//! Assignments are idempotent: assigning a role the user holds, or revoking one they do not,
//! changes nothing and publishes nothing. Roles named in a request body that do not exist are
//! rejected by their index (`role_ids[1]`) before anything is written.

use std::collections::BTreeMap;

use chrono::Utc;
use keel_clients::{FieldViolation, Origin, Role, RoleSelector};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait as _, QueryFilter, QuerySelect as _, Set,
};
use uuid::Uuid;

use super::changes::{self, Change};
use super::grants::existing_role;
use super::{Authz, Invalidate};
use crate::AuthzError;
use crate::catalogue::ADMIN_ROLE;
use crate::names::{self, RoleName};
use crate::store::entities::{role, user_role};
use crate::store::queries;

impl Authz {
    /// Assigns the selected roles to the user; returns all the user's roles after the change.
    pub(crate) async fn assign_roles(
        &self,
        user_id: Uuid,
        selector: &RoleSelector,
        origin: &Origin,
    ) -> Result<Vec<Role>, AuthzError> {
        if selector.ids.is_empty() && selector.names.is_empty() {
            return Err(AuthzError::field(
                "role_ids",
                "required",
                "name at least one role",
            ));
        }
        let mut violations = Vec::new();
        let mut wanted_names = Vec::new();
        for (index, raw) in selector.names.iter().enumerate() {
            match RoleName::parse(raw, &format!("role_names[{index}]")) {
                Ok(name) => wanted_names.push((index, name)),
                Err(v) => violations.push(v),
            }
        }
        if !violations.is_empty() {
            return Err(AuthzError::Invalid(violations));
        }
        let tx = self.begin().await?;
        let mut resolved = resolve_ids(&tx, &selector.ids, &mut violations).await?;
        resolved.extend(resolve_names(&tx, &wanted_names, &mut violations).await?);
        if !violations.is_empty() {
            return Err(AuthzError::Invalid(violations));
        }
        let assigned = assign_missing(&tx, user_id, resolved.into_values().collect(), origin).await?;
        let roles = queries::user_roles(&tx, user_id).await?;
        if assigned > 0 {
            self.commit(tx, Invalidate::User(user_id)).await?;
        }
        Ok(roles)
    }

    /// Assigns those of `names` that exist (default roles on registration); returns the names that
    /// do not exist, so the caller can warn about them.
    pub(crate) async fn assign_existing_roles(
        &self,
        user_id: Uuid,
        names: &[String],
        origin: &Origin,
    ) -> Result<Vec<String>, AuthzError> {
        let tx = self.begin().await?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match queries::role_row_by_name(&tx, name).await? {
                Some(row) => found.push(row),
                None => missing.push(name.clone()),
            }
        }
        if assign_missing(&tx, user_id, found, origin).await? > 0 {
            self.commit(tx, Invalidate::User(user_id)).await?;
        }
        Ok(missing)
    }

    /// Takes a role from a user.
    pub(crate) async fn revoke_role(
        &self,
        user_id: Uuid,
        role_id: Uuid,
        origin: &Origin,
    ) -> Result<(), AuthzError> {
        let tx = self.begin().await?;
        let row = existing_role(&tx, role_id).await?;
        if row.name == ADMIN_ROLE {
            // Revocations of the admin role take its row's lock first (PostgreSQL: `SELECT … FOR
            // UPDATE`; SQLite runs one transaction at a time anyway), so they run one after the
            // other and the count below sees every earlier one committed: two administrators
            // removing each other at once cannot leave none.
            role::Entity::find_by_id(role_id)
                .lock_exclusive()
                .one(&tx)
                .await?;
        }
        let removed = user_role::Entity::delete_many()
            .filter(user_role::Column::UserId.eq(user_id))
            .filter(user_role::Column::RoleId.eq(role_id))
            .exec(&tx)
            .await?;
        if removed.rows_affected == 0 {
            return Ok(());
        }
        // Under the role's lock taken above.
        if row.name == ADMIN_ROLE {
            let admins_left = user_role::Entity::find()
                .filter(user_role::Column::RoleId.eq(role_id))
                .count(&tx)
                .await?;
            if admins_left == 0 {
                return Err(AuthzError::SystemRole(
                    "the last holder of the admin role cannot lose it; give it to someone else first"
                        .to_owned(),
                ));
            }
        }
        changes::record(&tx, origin, vec![Change::role_revoked(user_id, &row)]).await?;
        self.commit(tx, Invalidate::User(user_id)).await
    }

    /// Takes every role from a user (about to be deleted, or deleted); returns how many they
    /// held. With [`KeepAdmin::Yes`] the admin role's row lock is taken first (as
    /// [`Authz::revoke_role`] takes it), then the user's roles are read and removed, and the
    /// removal is refused, changing nothing, when it left the admin role without a holder.
    pub(crate) async fn revoke_all_roles(
        &self,
        user_id: Uuid,
        origin: &Origin,
        keep_admin: KeepAdmin,
    ) -> Result<usize, AuthzError> {
        let tx = self.begin().await?;
        let admin = match keep_admin {
            KeepAdmin::Yes => {
                role::Entity::find()
                    .filter(role::Column::Name.eq(ADMIN_ROLE))
                    .lock_exclusive()
                    .one(&tx)
                    .await?
            }
            KeepAdmin::No => None,
        };
        let held = queries::user_roles(&tx, user_id).await?;
        if held.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = held.iter().map(|r| r.id).collect();
        let rows = role::Entity::find()
            .filter(role::Column::Id.is_in(ids.iter().copied()))
            .all(&tx)
            .await?;
        // Exactly the roles read (and recorded below); one granted meanwhile stays, and goes with
        // the `platform.user.deleted` event.
        user_role::Entity::delete_many()
            .filter(user_role::Column::UserId.eq(user_id))
            .filter(user_role::Column::RoleId.is_in(ids))
            .exec(&tx)
            .await?;
        // Under the lock taken above: every other removal of the admin role waits for it.
        if let Some(admin) = admin.filter(|admin| rows.iter().any(|row| row.id == admin.id)) {
            let holders_left = user_role::Entity::find()
                .filter(user_role::Column::RoleId.eq(admin.id))
                .count(&tx)
                .await?;
            if holders_left == 0 {
                return Err(AuthzError::SystemRole(
                    "the last holder of the admin role cannot be deleted; give the role to someone else first"
                        .to_owned(),
                ));
            }
        }
        let revoked = rows
            .iter()
            .map(|row| Change::role_revoked(user_id, row))
            .collect();
        changes::record(&tx, origin, revoked).await?;
        self.commit(tx, Invalidate::User(user_id)).await?;
        Ok(held.len())
    }
}

/// The roles with these ids; unknown ones are reported as `role_ids[i]`.
async fn resolve_ids<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
    violations: &mut Vec<FieldViolation>,
) -> Result<BTreeMap<Uuid, role::Model>, AuthzError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let found: BTreeMap<Uuid, role::Model> = role::Entity::find()
        .filter(role::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    for (index, id) in ids.iter().enumerate() {
        if !found.contains_key(id) {
            violations.push(names::violation(
                &format!("role_ids[{index}]"),
                "unknown_role",
                &format!("no role has the id {id}"),
            ));
        }
    }
    Ok(found)
}

/// The roles with these names; unknown ones are reported as `role_names[i]`.
async fn resolve_names<C: ConnectionTrait>(
    conn: &C,
    wanted: &[(usize, RoleName)],
    violations: &mut Vec<FieldViolation>,
) -> Result<BTreeMap<Uuid, role::Model>, AuthzError> {
    let mut found = BTreeMap::new();
    for (index, name) in wanted {
        match queries::role_row_by_name(conn, name.as_str()).await? {
            Some(row) => {
                found.insert(row.id, row);
            }
            None => violations.push(names::violation(
                &format!("role_names[{index}]"),
                "unknown_role",
                &format!("no role is named {}", name.as_str()),
            )),
        }
    }
    Ok(found)
}

/// Assigns the roles the user does not hold yet, recording each; returns how many were new.
async fn assign_missing<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    roles: Vec<role::Model>,
    origin: &Origin,
) -> Result<usize, AuthzError> {
    // Held roles and repeats in `roles` are skipped alike.
    let mut seen = queries::user_role_ids(conn, user_id).await?;
    let new: Vec<role::Model> = roles.into_iter().filter(|row| seen.insert(row.id)).collect();
    if new.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    // One row at a time, recording only what this call really inserted: a concurrent assignment
    // of the same role wins the row, and its event and audit record are then the only ones.
    let mut recorded = Vec::with_capacity(new.len());
    for row in &new {
        let inserted = user_role::Entity::insert(user_role::ActiveModel {
            user_id: Set(user_id),
            role_id: Set(row.id),
            assigned_at: Set(now),
            assigned_by: Set(origin.actor_id),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(rows) if rows > 0) {
            recorded.push(Change::role_assigned(user_id, row));
        }
    }
    let assigned = recorded.len();
    if assigned > 0 {
        changes::record(conn, origin, recorded).await?;
    }
    Ok(assigned)
}

/// Whether [`Authz::revoke_all_roles`] must leave the admin role a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAdmin {
    /// Refuse when the user is its last holder (a user about to be deleted).
    Yes,
    /// Take it anyway (the user is already gone).
    No,
}
