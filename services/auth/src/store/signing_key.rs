//! `signing_keys`: one row per access-token signing key, numbered by `generation`.
//!
//! The newest generation is the active key; `generation` is unique, so two replicas that rotate
//! (or start for the first time) together cannot both install a key: the second insert fails and
//! that replica adopts the winner's key.

use sea_orm::entity::prelude::*;

/// A signing key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub(crate) struct Model {
    /// RFC 7638 thumbprint of the public key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) kid: String,
    /// Order of installation; the greatest is the active key.
    #[sea_orm(unique)]
    pub(crate) generation: i64,
    /// JWS algorithm, `EdDSA` (room for RS256 beside it).
    pub(crate) algorithm: String,
    /// Base64 of the PKCS#8 DER; `None` when the key came from configuration.
    pub(crate) private_key: Option<String>,
    /// The raw public key, base64url (the JWK `x`).
    pub(crate) public_key: String,
    /// When it was installed.
    pub(crate) created_at: DateTimeUtc,
    /// When it stops signing; `None` while a configured key has not been replaced.
    pub(crate) retire_after: Option<DateTimeUtc>,
    /// When it leaves the JWKS (every token it signed has expired by then); `None` while it signs
    /// with no planned end.
    pub(crate) expires_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
