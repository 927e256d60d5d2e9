//! Authz messages ↔ domain types.

use keel_proto::authz::v1 as pb;

use super::{non_empty, time, uuid};
use crate::wire::timestamp;
use crate::{Permission, Role, ServiceError};

impl From<Permission> for pb::Permission {
    fn from(permission: Permission) -> Self {
        Self {
            name: permission.name,
            description: permission.description,
            module: permission.module,
        }
    }
}

impl TryFrom<pb::Permission> for Permission {
    type Error = ServiceError;
    fn try_from(permission: pb::Permission) -> Result<Self, Self::Error> {
        Ok(Self {
            name: non_empty("permission.name", permission.name)?,
            description: permission.description,
            module: permission.module,
        })
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        Self {
            id: role.id.to_string(),
            name: role.name,
            description: role.description,
            permissions: role.permissions,
            system: role.system,
            created_at: Some(timestamp(role.created_at)),
            updated_at: Some(timestamp(role.updated_at)),
        }
    }
}

impl TryFrom<pb::Role> for Role {
    type Error = ServiceError;
    fn try_from(role: pb::Role) -> Result<Self, Self::Error> {
        Ok(Self {
            id: uuid("role.id", &role.id)?,
            name: non_empty("role.name", role.name)?,
            description: role.description,
            permissions: role.permissions,
            system: role.system,
            created_at: time("role.created_at", role.created_at.as_ref())?,
            updated_at: time("role.updated_at", role.updated_at.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::convert::error_text;

    #[test]
    fn permissions_round_trip_and_need_a_name() -> Result<(), ServiceError> {
        let permission = Permission {
            name: "platform.user.read".into(),
            description: "Read users".into(),
            module: "platform".into(),
        };
        assert_eq!(
            Permission::try_from(pb::Permission::from(permission.clone()))?,
            permission
        );
        let nameless = pb::Permission::default();
        assert_eq!(
            error_text(Permission::try_from(nameless)),
            "malformed message: `permission.name` is empty"
        );
        Ok(())
    }

    #[test]
    fn roles_round_trip() -> Result<(), ServiceError> {
        let role = Role {
            id: Uuid::now_v7(),
            name: "admin".into(),
            description: "Everything".into(),
            permissions: vec!["platform.role.manage".into(), "platform.user.read".into()],
            system: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert_eq!(Role::try_from(pb::Role::from(role.clone()))?, role);
        Ok(())
    }
}
