//! Who is calling: the result of verifying an access token.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The authenticated caller of a request, taken from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user (`sub`).
    pub user_id: Uuid,
    /// The session (refresh-token family) the token belongs to (`sid`).
    pub session_id: Uuid,
    /// The token's id (`jti`).
    pub token_id: String,
    /// When the token expires (`exp`).
    pub expires_at: DateTime<Utc>,
}
