//! The service's tables as sea-orm entities.

/// `users`: one row per account. `email` is stored lower-cased and is UNIQUE, so the database
/// itself refuses a second account for one address, whatever the concurrency.
pub(crate) mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        #[sea_orm(unique)]
        pub(crate) email: String,
        pub(crate) password_hash: String,
        pub(crate) display_name: String,
        pub(crate) email_verified: bool,
        pub(crate) created_at: DateTimeUtc,
        pub(crate) updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl From<Model> for keel_clients::User {
        fn from(row: Model) -> Self {
            Self {
                id: row.id,
                email: row.email,
                display_name: row.display_name,
                email_verified: row.email_verified,
                created_at: row.created_at,
                updated_at: row.updated_at,
            }
        }
    }
}

/// `tokens`: e-mail verification and password reset tokens, by SHA-256 only.
pub(crate) mod token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tokens")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        pub(crate) user_id: Uuid,
        /// `verify` or `reset`.
        pub(crate) kind: String,
        /// SHA-256 of the token, lower-case hex.
        #[sea_orm(unique)]
        pub(crate) token_hash: String,
        pub(crate) expires_at: DateTimeUtc,
        /// Set when consumed; a token is usable only while this is NULL.
        pub(crate) used_at: Option<DateTimeUtc>,
        pub(crate) created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
