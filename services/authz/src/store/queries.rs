//! Reads of the authz store, usable on the pool or inside a transaction.
//!
//! Why this module exists: the engine's writes validate against the same reads that answer
//! queries (does the role exist, what does it grant), and doing them on the transaction's
//! connection keeps validation and write consistent.

use std::collections::{BTreeMap, BTreeSet};

use keel_clients::{Permission, Role};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::entities::{permission, role, role_permission, user_role};

/// One role row by id.
pub(crate) async fn role_row<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<Option<role::Model>, DbErr> {
    role::Entity::find_by_id(id).one(conn).await
}

/// One role row by its (normalised) name.
pub(crate) async fn role_row_by_name<C: ConnectionTrait>(
    conn: &C,
    name: &str,
) -> Result<Option<role::Model>, DbErr> {
    role::Entity::find()
        .filter(role::Column::Name.eq(name))
        .one(conn)
        .await
}

/// The permissions each of `role_ids` grants, sorted per role.
pub(crate) async fn grants_of<C: ConnectionTrait>(
    conn: &C,
    role_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<String>>, DbErr> {
    let mut grants: BTreeMap<Uuid, Vec<String>> = role_ids.iter().map(|id| (*id, Vec::new())).collect();
    if role_ids.is_empty() {
        return Ok(grants);
    }
    let rows = role_permission::Entity::find()
        .filter(role_permission::Column::RoleId.is_in(role_ids.iter().copied()))
        .order_by_asc(role_permission::Column::Permission)
        .all(conn)
        .await?;
    for row in rows {
        grants.entry(row.role_id).or_default().push(row.permission);
    }
    Ok(grants)
}

/// Role rows with their permissions, in the order given.
pub(crate) async fn with_grants<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<role::Model>,
) -> Result<Vec<Role>, DbErr> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut grants = grants_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let permissions = grants.remove(&row.id).unwrap_or_default();
            to_role(row, permissions)
        })
        .collect())
}

/// One role with its permissions.
pub(crate) async fn role<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<Option<Role>, DbErr> {
    match role_row(conn, id).await? {
        Some(row) => Ok(with_grants(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// A page of roles ordered by name, starting after `after`, optionally only the one named `name`.
/// Fetches one more than `limit` so the caller knows whether another page follows.
pub(crate) async fn roles_page<C: ConnectionTrait>(
    conn: &C,
    name: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<role::Model>, DbErr> {
    let mut query = role::Entity::find().order_by_asc(role::Column::Name);
    if let Some(name) = name {
        query = query.filter(role::Column::Name.eq(name));
    }
    if let Some(after) = after {
        query = query.filter(role::Column::Name.gt(after));
    }
    query.limit(limit + 1).all(conn).await
}

/// The roles a user holds, by name, with their permissions.
pub(crate) async fn user_roles<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> Result<Vec<Role>, DbErr> {
    let rows = role::Entity::find()
        .inner_join(user_role::Entity)
        .filter(user_role::Column::UserId.eq(user_id))
        .order_by_asc(role::Column::Name)
        .all(conn)
        .await?;
    with_grants(conn, rows).await
}

/// The ids of the roles a user holds.
pub(crate) async fn user_role_ids<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
) -> Result<BTreeSet<Uuid>, DbErr> {
    Ok(user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.role_id)
        .collect())
}

/// A user's effective permissions, sorted: one join of `user_roles` (by its key prefix `user_id`)
/// with `role_permissions` (by its key).
pub(crate) async fn user_permissions<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
) -> Result<BTreeSet<String>, DbErr> {
    let query = Query::select()
        .distinct()
        .column((role_permission::Entity, role_permission::Column::Permission))
        .from(user_role::Entity)
        .inner_join(
            role_permission::Entity,
            Expr::col((role_permission::Entity, role_permission::Column::RoleId))
                .equals((user_role::Entity, user_role::Column::RoleId)),
        )
        .and_where(Expr::col((user_role::Entity, user_role::Column::UserId)).eq(user_id))
        .order_by(
            (role_permission::Entity, role_permission::Column::Permission),
            Order::Asc,
        )
        .to_owned();
    let rows = conn.query_all(&query).await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "permission"))
        .collect()
}

/// Which of `names` are in the catalogue.
pub(crate) async fn known_permissions<C: ConnectionTrait>(
    conn: &C,
    names: &[&str],
) -> Result<BTreeSet<String>, DbErr> {
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    Ok(permission::Entity::find()
        .filter(permission::Column::Name.is_in(names.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect())
}

/// The whole catalogue, sorted by name.
pub(crate) async fn catalogue<C: ConnectionTrait>(conn: &C) -> Result<Vec<Permission>, DbErr> {
    Ok(permission::Entity::find()
        .order_by_asc(permission::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| Permission {
            name: row.name,
            description: row.description,
            module: row.module,
        })
        .collect())
}

/// The domain view of a role row.
pub(crate) fn to_role(row: role::Model, permissions: Vec<String>) -> Role {
    Role {
        id: row.id,
        name: row.name,
        description: row.description,
        permissions,
        system: row.system,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
