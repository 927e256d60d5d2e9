//! Opaque list cursors.
//!
//! Why this module exists: a page of the log ends at some sequence number and the next page starts
//! below it. Clients must treat the cursor as opaque (so its form can change), so it is the
//! sequence in a versioned envelope, base64url-encoded; anything else is rejected as a 422 on
//! `cursor` rather than silently restarting from the top.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AuditError;

const VERSION: &str = "v1:";
/// Longest cursor accepted: the envelope of the largest sequence is far shorter.
const MAX_LEN: usize = 64;

/// The cursor of a page whose last (oldest) record has `sequence`.
pub(crate) fn encode(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}{sequence}"))
}

/// The sequence a cursor stands for: the next page holds records strictly below it.
pub(crate) fn decode(cursor: &str) -> Result<i64, AuditError> {
    let invalid = || {
        AuditError::invalid(
            "cursor",
            "invalid_cursor",
            "the cursor is not one this API returned",
        )
    };
    if cursor.len() > MAX_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let sequence: i64 = text
        .strip_prefix(VERSION)
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(invalid)?;
    if sequence < 1 {
        return Err(invalid());
    }
    Ok(sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode(&encode(42)).unwrap(), 42);
        assert_eq!(decode(&encode(i64::MAX)).unwrap(), i64::MAX);
    }

    #[test]
    fn foreign_or_damaged_cursors_are_rejected() {
        for cursor in [
            "",
            "42",
            "not base64!",
            &URL_SAFE_NO_PAD.encode("v2:42"),
            &URL_SAFE_NO_PAD.encode("v1:0"),
            &URL_SAFE_NO_PAD.encode("v1:-3"),
            &"A".repeat(100),
        ] {
            assert!(
                matches!(decode(cursor), Err(AuditError::Invalid(_))),
                "{cursor:?} accepted"
            );
        }
    }
}
