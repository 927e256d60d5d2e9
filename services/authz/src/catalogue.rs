//! The core permission catalogue and the definitions of the seeded (system) roles.
//!
//! Why this module exists: the platform's own permissions (DESIGN §4) and what each seeded role
//! holds are facts of the product, written down once here and read by the build (catalogue
//! registration) and by [`crate::AuthzService::seed_roles`].

/// The module name of the core platform's permissions.
pub(crate) const PLATFORM_MODULE: &str = "platform";

/// The core permissions, registered in the catalogue whenever the service is built.
pub(crate) const CORE_PERMISSIONS: &[(&str, &str)] = &[
    ("platform.user.read", "Read any user's profile"),
    ("platform.user.update", "Update any user's profile"),
    ("platform.user.delete", "Delete users"),
    (
        "platform.role.manage",
        "Manage roles, their permissions and users' roles",
    ),
    ("platform.audit.read", "Read the audit log"),
];

/// The permission that guards every role management route.
pub(crate) const ROLE_MANAGE: &str = "platform.role.manage";

/// The name of the role that holds every permission of the catalogue.
pub(crate) const ADMIN_ROLE: &str = "admin";

/// What a seeded role holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grants {
    /// Every permission of the catalogue, re-granted on each seed and whenever permissions are
    /// registered.
    Everything,
    /// These permissions, each granted only when it is in the catalogue (module permissions appear
    /// when their module registers them).
    Listed(&'static [&'static str]),
}

/// A seeded role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SystemRole {
    /// Its name.
    pub(crate) name: &'static str,
    /// Its description.
    pub(crate) description: &'static str,
    /// What it holds.
    pub(crate) grants: Grants,
}

/// The seeded roles, in seeding order.
///
/// "Self" rules (a user reading and updating their own profile, reading their own permissions,
/// editing their own posts) are ownership checks made by the service that owns the resource, not
/// permissions: `user` therefore needs no `platform.*` permission to manage itself, and the
/// `.own` permissions of the blog say "may act on one's own posts", checked against the owner by
/// the blog module.
pub(crate) const SYSTEM_ROLES: &[SystemRole] = &[
    SystemRole {
        name: ADMIN_ROLE,
        description: "Administrators: every permission of the catalogue",
        grants: Grants::Everything,
    },
    SystemRole {
        name: "user",
        description: "Registered users: their own profile, and creating and managing their own posts",
        grants: Grants::Listed(&[
            "blog.post.create",
            "blog.post.read",
            "blog.post.update.own",
            "blog.post.delete.own",
        ]),
    },
    SystemRole {
        name: "guest",
        description: "Guests: read-only access to public content",
        grants: Grants::Listed(&["blog.post.read"]),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{PermissionName, RoleName};

    #[test]
    fn every_built_in_name_is_well_formed() {
        for (name, _) in CORE_PERMISSIONS {
            let parsed = PermissionName::parse(name, "catalogue").expect("core permission is well formed");
            assert_eq!(parsed.module(), PLATFORM_MODULE);
        }
        for role in SYSTEM_ROLES {
            assert!(RoleName::parse(role.name, "role").is_ok(), "{}", role.name);
            if let Grants::Listed(permissions) = role.grants {
                for name in permissions {
                    assert!(PermissionName::parse(name, "grant").is_ok(), "{name}");
                }
            }
        }
        assert!(CORE_PERMISSIONS.iter().any(|(name, _)| *name == ROLE_MANAGE));
    }
}
