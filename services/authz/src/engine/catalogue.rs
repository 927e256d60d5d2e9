//! Registering permissions in the catalogue.
//!
//! The core platform registers its permissions at build; each module registers those of its
//! manifest (over gRPC `RegisterPermissions`). Registration is idempotent: existing entries are
//! kept as they are. The seeded `admin` role holds every permission of the catalogue, so newly
//! registered permissions are granted to it in the same transaction.

use chrono::Utc;
use keel_clients::{FieldViolation, Origin, Permission};
use sea_orm::{EntityTrait, Set};

use super::changes::{self, Change};
use super::grants::{grant_missing, touch};
use super::{Authz, Invalidate};
use crate::AuthzError;
use crate::catalogue::ADMIN_ROLE;
use crate::names::{self, PermissionName};
use crate::store::entities::permission;
use crate::store::queries;

/// A validated catalogue entry.
struct Entry {
    name: PermissionName,
    description: String,
    module: String,
}

impl Authz {
    /// Adds the permissions the catalogue lacks; returns how many were new.
    pub(crate) async fn register_permissions(&self, permissions: &[Permission]) -> Result<u32, AuthzError> {
        let entries = validate(permissions).map_err(AuthzError::Invalid)?;
        if entries.is_empty() {
            return Ok(0);
        }
        let tx = self.begin().await?;
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let known = queries::known_permissions(&tx, &names).await?;
        let new: Vec<&Entry> = entries
            .iter()
            .filter(|e| !known.contains(e.name.as_str()))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        permission::Entity::insert_many(new.iter().map(|entry| permission::ActiveModel {
            name: Set(entry.name.as_str().to_owned()),
            description: Set(entry.description.clone()),
            module: Set(entry.module.clone()),
            created_at: Set(now),
        }))
        .on_conflict_do_nothing()
        .exec_without_returning(&tx)
        .await?;
        let added: Vec<String> = new.iter().map(|e| e.name.as_str().to_owned()).collect();
        let mut invalidate = Invalidate::Nothing;
        if let Some(admin) = queries::role_row_by_name(&tx, ADMIN_ROLE)
            .await?
            .filter(|r| r.system)
        {
            let granted = grant_missing(&tx, admin.id, &added).await?;
            if !granted.is_empty() {
                let admin = touch(&tx, admin).await?;
                changes::record(
                    &tx,
                    &Origin::default(),
                    vec![Change::permissions_granted(&admin, &granted)],
                )
                .await?;
                invalidate = Invalidate::Everyone;
            }
        }
        self.commit(tx, invalidate).await?;
        tracing::info!(added = ?added, "permissions registered in the catalogue");
        Ok(u32::try_from(added.len()).unwrap_or(u32::MAX))
    }
}

/// Checks each entry: a well-formed name, a module that is the name's first segment (or empty, to
/// take it from the name), a description of sensible length. Repeated names keep the first.
fn validate(permissions: &[Permission]) -> Result<Vec<Entry>, Vec<FieldViolation>> {
    let mut entries: Vec<Entry> = Vec::with_capacity(permissions.len());
    let mut violations = Vec::new();
    for (index, permission) in permissions.iter().enumerate() {
        let field = format!("permissions[{index}]");
        let name = match PermissionName::parse(&permission.name, &format!("{field}.name")) {
            Ok(name) => name,
            Err(v) => {
                violations.push(v);
                continue;
            }
        };
        let module = permission.module.trim();
        if !module.is_empty() && module != name.module() {
            violations.push(names::violation(
                &format!("{field}.module"),
                "module_mismatch",
                &format!("{} belongs to the module {}", name.as_str(), name.module()),
            ));
            continue;
        }
        let description = match names::description(&permission.description, &format!("{field}.description")) {
            Ok(description) => description,
            Err(v) => {
                violations.push(v);
                continue;
            }
        };
        if entries.iter().all(|e| e.name != name) {
            let module = name.module().to_owned();
            entries.push(Entry {
                name,
                description,
                module,
            });
        }
    }
    if violations.is_empty() {
        Ok(entries)
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(name: &str, module: &str) -> Permission {
        Permission {
            name: name.to_owned(),
            description: String::new(),
            module: module.to_owned(),
        }
    }

    #[test]
    fn the_module_defaults_to_the_first_segment_and_must_match_it() {
        let entries = validate(&[permission("blog.post.read", "")])
            .ok()
            .unwrap_or_default();
        assert_eq!(entries[0].module, "blog");
        let violations = validate(&[
            permission("blog.post.read", "blog"),
            permission("blog.post.create", "shop"),
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(violations[0].field, "permissions[1].module");
    }
}
