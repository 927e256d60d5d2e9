//! The hash chain: the canonical form of a stored record and the hash linking it to its
//! predecessor.
//!
//! Why this module exists: the appender and the verifier must compute exactly the same bytes, and
//! an operator must be able to recompute them without our code (docs/services/audit.md gives the
//! recipe). Everything about the format is here:
//!
//! `hash = lowercase_hex(SHA-256(previous_hash || canonical))`, where `previous_hash` is the
//! predecessor's 64 hex digits as ASCII ([`GENESIS_HASH`] for sequence 1) and `canonical` is the
//! compact JSON array (serde_json formatting, UTF-8)
//!
//! `["keel.audit.v1", sequence, id, action, actor_id, target_type, target_id, request_id, ip,
//! user_agent, occurred_at, metadata, source, tenant_id, recorded_at]`
//!
//! with `sequence` a number, absent optional fields `null`, UUIDs in hyphenated lowercase,
//! timestamps RFC 3339 in UTC with exactly six fractional digits and `Z`, and `metadata` the
//! stored JSON text as a string (the text itself is hashed, never a re-serialization of it).

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::entity;

/// The `previous_hash` of the first record: 64 zeros.
pub(crate) const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tag of the canonical form, so a future format can be told apart.
const FORMAT: &str = "keel.audit.v1";

/// Timestamps are kept to the microsecond, the precision PostgreSQL stores, so a record reads
/// back with exactly the instant that was hashed.
pub(crate) fn to_stored_precision(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant.trunc_subsecs(6)
}

/// The hash of `record` chained to `previous_hash`. The record's own `hash` and `previous_hash`
/// fields are not read.
pub(crate) fn hash(previous_hash: &str, record: &entity::Model) -> String {
    let mut digest = Sha256::new();
    digest.update(previous_hash.as_bytes());
    digest.update(canonical(record).as_bytes());
    hex(&digest.finalize())
}

/// The canonical JSON array of the record's fields (see the module documentation).
fn canonical(record: &entity::Model) -> String {
    let timestamp = |instant: DateTime<Utc>| instant.to_rfc3339_opts(SecondsFormat::Micros, true);
    serde_json::json!([
        FORMAT,
        record.sequence,
        record.id.hyphenated().to_string(),
        record.action,
        record.actor_id.map(|id| id.hyphenated().to_string()),
        record.target_type,
        record.target_id,
        record.request_id,
        record.ip,
        record.user_agent,
        timestamp(record.occurred_at),
        record.metadata,
        record.source,
        record.tenant_id,
        timestamp(record.recorded_at),
    ])
    .to_string()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn record() -> entity::Model {
        entity::Model {
            sequence: 1,
            id: Uuid::parse_str("0190f1c2-0000-7000-8000-000000000001").unwrap(),
            action: "auth.login.succeeded".to_owned(),
            actor_id: Some(Uuid::parse_str("0190f1c2-0000-7000-8000-0000000000aa").unwrap()),
            target_type: Some("user".to_owned()),
            target_id: None,
            request_id: Some("req-1".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("curl/8.0 \"quoted\"".to_owned()),
            occurred_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            metadata: r#"{"method":"password"}"#.to_owned(),
            source: "auth".to_owned(),
            tenant_id: None,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 6).unwrap(),
            previous_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_canonical_form_is_the_documented_json_array() {
        assert_eq!(
            canonical(&record()),
            r#"["keel.audit.v1",1,"0190f1c2-0000-7000-8000-000000000001","auth.login.succeeded","0190f1c2-0000-7000-8000-0000000000aa","user",null,"req-1","203.0.113.7","curl/8.0 \"quoted\"","2026-01-02T03:04:05.000000Z","{\"method\":\"password\"}","auth",null,"2026-01-02T03:04:06.000000Z"]"#
        );
    }

    /// Pinned against an independent computation:
    /// Python's `hashlib.sha256(('0' * 64 + canonical).encode())` over the array above.
    #[test]
    fn the_hash_matches_sha256_of_previous_hash_and_canonical_form() {
        assert_eq!(
            hash(GENESIS_HASH, &record()),
            "3b5715a3c08353bcdb600d718d62dcdfd994137778fa2604ed5dc11c1b6572e5"
        );
    }

    #[test]
    fn changing_any_field_or_the_predecessor_changes_the_hash() {
        let original = hash(GENESIS_HASH, &record());
        let mut changed = record();
        changed.metadata = r#"{"method":"passkey"}"#.to_owned();
        assert_ne!(hash(GENESIS_HASH, &changed), original);
        let mut moved = record();
        moved.sequence = 2;
        assert_ne!(hash(GENESIS_HASH, &moved), original);
        assert_ne!(hash(&original, &record()), original);
    }

    #[test]
    fn stored_precision_drops_nanoseconds_only() {
        let instant = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(to_stored_precision(instant).timestamp_subsec_nanos(), 123_456_000);
    }
}
