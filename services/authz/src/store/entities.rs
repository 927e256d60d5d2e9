//! sea-orm entities of the authz schema: one module per table.
//!
//! Why this module exists: the engine reads and writes the four tables through typed models; the
//! table definitions themselves (keys, cascades, indexes) are in [`super::migration`].

/// The permission catalogue: one row per permission, keyed by name.
pub(crate) mod permission {
    use sea_orm::entity::prelude::*;

    /// A catalogue entry.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "permissions")]
    pub(crate) struct Model {
        /// `module.resource.action`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) name: String,
        /// What it allows.
        pub(crate) description: String,
        /// The declaring module (`platform` for core permissions).
        pub(crate) module: String,
        /// When it was registered.
        pub(crate) created_at: DateTimeUtc,
    }

    /// No navigation is used from this side.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Roles.
pub(crate) mod role {
    use sea_orm::entity::prelude::*;

    /// A role.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "roles")]
    pub(crate) struct Model {
        /// UUID v7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        /// Lowercase, unique.
        pub(crate) name: String,
        /// What it is for.
        pub(crate) description: String,
        /// Seeded roles cannot be deleted or renamed.
        pub(crate) system: bool,
        /// Creation time.
        pub(crate) created_at: DateTimeUtc,
        /// Last change, grants and revocations included.
        pub(crate) updated_at: DateTimeUtc,
    }

    /// No navigation is used from this side.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    /// Roles joined to their holders (a user's roles).
    impl Related<super::user_role::Entity> for Entity {
        fn to() -> RelationDef {
            super::user_role::Relation::Role.def().rev()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which permissions each role grants.
pub(crate) mod role_permission {
    use sea_orm::entity::prelude::*;

    /// One grant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "role_permissions")]
    pub(crate) struct Model {
        /// The role.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) role_id: Uuid,
        /// The permission's name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) permission: String,
        /// When it was granted.
        pub(crate) granted_at: DateTimeUtc,
    }

    /// Joins used by the permission queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {
        /// The role granting it.
        #[sea_orm(
            belongs_to = "super::role::Entity",
            from = "Column::RoleId",
            to = "super::role::Column::Id",
            on_delete = "Cascade"
        )]
        Role,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which roles each user holds.
pub(crate) mod user_role {
    use sea_orm::entity::prelude::*;

    /// One assignment.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_roles")]
    pub(crate) struct Model {
        /// The user (owned by the identity service; not a foreign key).
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) user_id: Uuid,
        /// The role.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) role_id: Uuid,
        /// When it was assigned.
        pub(crate) assigned_at: DateTimeUtc,
        /// Who assigned it; `None` for the system (default roles, seeding).
        pub(crate) assigned_by: Option<Uuid>,
    }

    /// Joins used by the permission queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {
        /// The role held.
        #[sea_orm(
            belongs_to = "super::role::Entity",
            from = "Column::RoleId",
            to = "super::role::Column::Id",
            on_delete = "Cascade"
        )]
        Role,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
