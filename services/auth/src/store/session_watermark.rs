//! `session_watermarks`: per user, the last time all of their sessions were ended.
//!
//! Why this table exists: ending a user's sessions (a password change or reset, a deletion, an
//! administrator) only reaches sessions that exist. A login whose credentials identity checked just
//! before that, and whose session is written just after, would outlive it: the old password would
//! keep a session. A login therefore compares the time it started with this mark once its session
//! is committed, and ends the session itself when the mark is not older (see `login.rs`).

use sea_orm::entity::prelude::*;

/// A user's watermark.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_watermarks")]
pub(crate) struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) user_id: Uuid,
    /// When all of the user's sessions were last ended: a login that started before this must not
    /// keep its session.
    pub(crate) not_before: DateTimeUtc,
}

/// No relations: the user lives in identity.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
