//! `refresh_tokens`: every refresh token ever issued in a live family, by hash.

use sea_orm::entity::prelude::*;

/// A refresh token (its hash only).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub(crate) struct Model {
    /// Hex SHA-256 of the token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) hash: String,
    /// The session it belongs to.
    pub(crate) family_id: Uuid,
    /// When it was issued.
    pub(crate) issued_at: DateTimeUtc,
    /// When it stops being accepted.
    pub(crate) expires_at: DateTimeUtc,
    /// When it was exchanged; `None` while unused.
    pub(crate) used_at: Option<DateTimeUtc>,
    /// Hash of the token it was exchanged for.
    pub(crate) replaced_by: Option<String>,
}

/// A token belongs to a session.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    /// Its family.
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::FamilyId",
        to = "super::session::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
