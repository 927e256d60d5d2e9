//! Seeding the system roles (`admin`, `user`, `guest`).
//!
//! Idempotent: a role that exists is kept (and marked system), and only the grants it lacks are
//! added, so a second seed changes nothing and publishes nothing. `admin` is re-granted the whole
//! catalogue on each seed, so permissions registered since reach it. Grants an operator added to
//! `user` or `guest` are never taken away.

use std::collections::BTreeMap;

use keel_clients::Origin;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;

use super::changes::{self, Change};
use super::grants::{grant_missing, touch};
use super::roles::insert_role;
use super::{Authz, Invalidate};
use crate::AuthzError;
use crate::catalogue::{Grants, SYSTEM_ROLES, SystemRole};
use crate::names::RoleName;
use crate::store::entities::role;
use crate::store::queries;

/// What a seed changed; empty when the roles were already in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeedReport {
    /// Roles created by this seed.
    pub created_roles: Vec<String>,
    /// Permissions granted by this seed, per role name.
    pub granted: BTreeMap<String, Vec<String>>,
}

impl SeedReport {
    /// True when the seed found everything in place.
    pub fn is_unchanged(&self) -> bool {
        self.created_roles.is_empty() && self.granted.is_empty()
    }
}

impl Authz {
    /// Creates the system roles that are missing and grants them what they lack, in one
    /// transaction.
    pub(crate) async fn seed_roles(&self) -> Result<SeedReport, AuthzError> {
        let tx = self.begin().await?;
        let catalogue: Vec<String> = queries::catalogue(&tx)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        let mut report = SeedReport::default();
        let mut recorded = Vec::new();
        for definition in SYSTEM_ROLES {
            let (row, created) = ensure_role(&tx, definition, &mut recorded).await?;
            if created {
                report.created_roles.push(row.name.clone());
            }
            let wanted: Vec<String> = match definition.grants {
                Grants::Everything => catalogue.clone(),
                Grants::Listed(names) => names
                    .iter()
                    .filter(|name| catalogue.iter().any(|known| known == *name))
                    .map(|name| (*name).to_owned())
                    .collect(),
            };
            let granted = grant_missing(&tx, row.id, &wanted).await?;
            if !granted.is_empty() {
                let row = if created { row } else { touch(&tx, row).await? };
                recorded.push(Change::permissions_granted(&row, &granted));
                report.granted.insert(row.name.clone(), granted);
            }
        }
        if recorded.is_empty() {
            return Ok(report);
        }
        changes::record(&tx, &Origin::default(), recorded).await?;
        self.commit(tx, Invalidate::Everyone).await?;
        tracing::info!(?report, "system roles seeded");
        Ok(report)
    }
}

/// The system role named by `definition`, created when missing (and marked system when an
/// operator created a role of that name before the first seed). Returns it and whether it is new.
async fn ensure_role<C: ConnectionTrait>(
    conn: &C,
    definition: &SystemRole,
    recorded: &mut Vec<Change>,
) -> Result<(role::Model, bool), AuthzError> {
    let name = RoleName::parse(definition.name, "name").map_err(|v| AuthzError::Invalid(vec![v]))?;
    match queries::role_row_by_name(conn, name.as_str()).await? {
        Some(row) if row.system => Ok((row, false)),
        Some(row) => {
            let previous_name = row.name.clone();
            let mut active: role::ActiveModel = row.into();
            active.system = Set(true);
            active.updated_at = Set(chrono::Utc::now());
            let row = active.update(conn).await?;
            recorded.push(Change::role_updated(&row, &previous_name));
            Ok((row, false))
        }
        None => {
            let row = insert_role(conn, &name, definition.description.to_owned(), true).await?;
            recorded.push(Change::role_created(&row));
            Ok((row, true))
        }
    }
}
