//! `sessions`: one row per login, the family its rotated refresh tokens belong to.

use sea_orm::entity::prelude::*;

/// A session (refresh-token family).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub(crate) struct Model {
    /// UUID v7; the `sid` claim of its access tokens.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    /// The user who logged in.
    pub(crate) user_id: Uuid,
    /// The login.
    pub(crate) created_at: DateTimeUtc,
    /// The last refresh (the login until then).
    pub(crate) last_used_at: DateTimeUtc,
    /// When the newest refresh token expires.
    pub(crate) expires_at: DateTimeUtc,
    /// When it was ended; `None` while live.
    pub(crate) revoked_at: Option<DateTimeUtc>,
    /// Why it was ended: `logout`, `refresh_token_reuse`, `revoked_by_user`, `revoked_by_admin`,
    /// `password_changed`, `user_deleted`, `revoked_by_service`, `ended_during_login`.
    pub(crate) revoke_reason: Option<String>,
    /// Client address at login.
    pub(crate) ip: Option<String>,
    /// Client user agent at login.
    pub(crate) user_agent: Option<String>,
}

/// A session has many refresh tokens.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    /// Its tokens.
    #[sea_orm(has_many = "super::refresh_token::Entity")]
    RefreshTokens,
}

impl Related<super::refresh_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
