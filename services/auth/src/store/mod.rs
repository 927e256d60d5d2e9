//! The auth store: signing keys, sessions (refresh-token families), refresh tokens, and the
//! per-user marks of when all of a user's sessions were last ended.
//!
//! Why this module exists: the tables and their migrations live together, and only the auth
//! service reaches them (DESIGN §3). Refresh tokens are kept as SHA-256 hashes only; private keys
//! are kept only when the service generated them (a key supplied by configuration stays out).

mod migration;
pub(crate) mod refresh_token;
pub(crate) mod session;
pub(crate) mod session_watermark;
pub(crate) mod signing_key;

pub(crate) use migration::Migrator;

/// Whether a failed statement broke a unique constraint (another replica got there first).
pub(crate) fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
