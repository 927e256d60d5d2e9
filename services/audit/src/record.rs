//! What the audit log accepts: validation of producers' records, and their normal form.
//!
//! Why this module exists: every way in (gRPC, the in-process client) must accept and reject the
//! same records and store them in the same form, or the same record would hash differently by the
//! path it took. A [`Prepared`] record is checked and normalised once: empty optional strings are
//! absent, timestamps are cut to the microsecond the database keeps, metadata is compact JSON text.

use chrono::{DateTime, Datelike, Utc};
use keel_clients::{AuditRecord, FieldViolation};
use uuid::Uuid;

use crate::AuditError;
use crate::chain::to_stored_precision;
use crate::error::violation;

/// Most records one Record call may carry.
pub(crate) const MAX_BATCH: usize = 1_000;
/// Largest metadata object, as compact JSON text.
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// A batch's response lists at most this many violations (the first ones found).
const MAX_VIOLATIONS: usize = 50;

/// Length limits (bytes) of the free-text fields.
const LIMITS: Limits = Limits {
    action: 128,
    source: 64,
    target_type: 64,
    target_id: 256,
    request_id: 128,
    ip: 64,
    user_agent: 1024,
    tenant_id: 128,
};

struct Limits {
    action: usize,
    source: usize,
    target_type: usize,
    target_id: usize,
    request_id: usize,
    ip: usize,
    user_agent: usize,
    tenant_id: usize,
}

/// A record that passed validation, in the form that is hashed and stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub(crate) id: Uuid,
    pub(crate) action: String,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) target_type: Option<String>,
    pub(crate) target_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) metadata: String,
    pub(crate) source: String,
    pub(crate) tenant_id: Option<String>,
}

/// Checks a batch and brings it into stored form. Violations name the field as
/// `records[<index>].<field>`; all of them are reported (up to a cap), not just the first.
pub(crate) fn prepare_batch(records: &[AuditRecord]) -> Result<Vec<Prepared>, AuditError> {
    if records.len() > MAX_BATCH {
        return Err(AuditError::invalid(
            "records",
            "too_many",
            format!("a batch holds at most {MAX_BATCH} records, not {}", records.len()),
        ));
    }
    let mut violations = Vec::new();
    let mut prepared = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let mut check = Checker {
            prefix: format!("records[{index}]"),
            violations: &mut violations,
        };
        prepared.extend(check.record(record));
        if violations.len() >= MAX_VIOLATIONS {
            violations.truncate(MAX_VIOLATIONS);
            break;
        }
    }
    if violations.is_empty() {
        Ok(prepared)
    } else {
        Err(AuditError::Invalid(violations))
    }
}

/// Collects the violations of one record.
struct Checker<'a> {
    prefix: String,
    violations: &'a mut Vec<FieldViolation>,
}

impl Checker<'_> {
    fn record(&mut self, record: &AuditRecord) -> Option<Prepared> {
        let before = self.violations.len();
        if record.id.is_nil() {
            self.reject("id", "invalid_uuid", "the record id must not be the nil UUID");
        }
        self.action(&record.action);
        self.source(&record.source);
        let metadata = self.metadata(&record.metadata);
        self.occurred_at(record.occurred_at);
        let prepared = Prepared {
            id: record.id,
            action: record.action.clone(),
            actor_id: record.actor_id,
            target_type: self.optional("target_type", &record.target_type, LIMITS.target_type),
            target_id: self.optional("target_id", &record.target_id, LIMITS.target_id),
            request_id: self.optional("request_id", &record.request_id, LIMITS.request_id),
            ip: self.optional("ip", &record.ip, LIMITS.ip),
            user_agent: self.optional("user_agent", &record.user_agent, LIMITS.user_agent),
            occurred_at: to_stored_precision(record.occurred_at),
            metadata: metadata.unwrap_or_default(),
            source: record.source.clone(),
            tenant_id: self.optional("tenant_id", &record.tenant_id, LIMITS.tenant_id),
        };
        (self.violations.len() == before).then_some(prepared)
    }

    fn reject(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.violations
            .push(violation(format!("{}.{field}", self.prefix), code, message));
    }

    /// `action`: exactly three dot-separated segments of lowercase letters, digits and `_`, each
    /// starting with a letter (`<service or module>.<resource>.<past-tense verb>`).
    fn action(&mut self, value: &str) {
        if value.is_empty() {
            self.reject("action", "required", "the action is required");
        } else if value.len() > LIMITS.action {
            self.reject("action", "too_long", format!("at most {} bytes", LIMITS.action));
        } else if !(value.split('.').count() == 3 && value.split('.').all(is_segment)) {
            self.reject(
                "action",
                "invalid_format",
                "the action must look like <service>.<resource>.<verb>, e.g. auth.login.succeeded \
                 (lowercase letters, digits and _)",
            );
        }
    }

    /// `source`: a service or module name, one segment.
    fn source(&mut self, value: &str) {
        if value.is_empty() {
            self.reject(
                "source",
                "required",
                "the producing service or module is required",
            );
        } else if value.len() > LIMITS.source {
            self.reject("source", "too_long", format!("at most {} bytes", LIMITS.source));
        } else if !is_name(value) {
            self.reject(
                "source",
                "invalid_format",
                "the source must be a service or module name (lowercase letters, digits, _ and -)",
            );
        }
    }

    fn metadata(&mut self, value: &serde_json::Value) -> Option<String> {
        if !value.is_object() {
            self.reject("metadata", "invalid_type", "the metadata must be a JSON object");
            return None;
        }
        let text = value.to_string();
        if text.len() > MAX_METADATA_BYTES {
            self.reject(
                "metadata",
                "too_large",
                format!("the metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            );
            return None;
        }
        Some(text)
    }

    /// Years 1970 to 9999: a clock far off is a producer bug, and the stored text form of a
    /// timestamp only sorts correctly with four-digit years.
    fn occurred_at(&mut self, value: DateTime<Utc>) {
        if !(1970..=9999).contains(&value.year()) {
            self.reject(
                "occurred_at",
                "out_of_range",
                "the time must be between 1970 and 9999",
            );
        }
    }

    /// An optional text: an empty string counts as absent.
    fn optional(&mut self, field: &str, value: &Option<String>, limit: usize) -> Option<String> {
        let value = value.as_deref().filter(|v| !v.is_empty())?;
        if value.len() > limit {
            self.reject(field, "too_long", format!("at most {limit} bytes"));
        }
        Some(value.to_owned())
    }
}

/// `[a-z][a-z0-9_-]*`, the form of service and module names.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `[a-z][a-z0-9_]*`
fn is_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn valid() -> AuditRecord {
        AuditRecord {
            id: Uuid::now_v7(),
            action: "auth.login.succeeded".to_owned(),
            actor_id: None,
            target_type: Some(String::new()),
            target_id: Some("user-1".to_owned()),
            request_id: None,
            ip: None,
            user_agent: None,
            occurred_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            metadata: serde_json::json!({"b": 1, "a": [true]}),
            source: "api-gateway".to_owned(),
            tenant_id: None,
        }
    }

    fn fields(error: AuditError) -> Vec<(String, String)> {
        match error {
            AuditError::Invalid(violations) => violations.into_iter().map(|v| (v.field, v.code)).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_valid_record_is_normalised() {
        let prepared = prepare_batch(&[valid()]).unwrap().remove(0);
        assert_eq!(prepared.target_type, None, "empty strings count as absent");
        assert_eq!(prepared.occurred_at.timestamp_subsec_nanos(), 123_456_000);
        assert!(prepared.metadata.starts_with('{'));
    }

    #[test]
    fn every_violation_is_reported_with_its_path() {
        let mut bad = valid();
        bad.action = "Login".to_owned();
        bad.metadata = serde_json::json!([1]);
        bad.source = String::new();
        let mut too_long = valid();
        too_long.user_agent = Some("x".repeat(2_000));
        let found = fields(prepare_batch(&[valid(), bad, too_long]).unwrap_err());
        let expected = [
            ("records[1].action", "invalid_format"),
            ("records[1].source", "required"),
            ("records[1].metadata", "invalid_type"),
            ("records[2].user_agent", "too_long"),
        ];
        for (field, code) in expected {
            assert!(
                found.contains(&(field.to_owned(), code.to_owned())),
                "{field} {code} missing from {found:?}"
            );
        }
        assert_eq!(found.len(), expected.len());
    }

    #[test]
    fn actions_need_exactly_three_lowercase_segments() {
        for action in [
            "auth.login",
            "auth.login.succeeded.twice",
            "auth..x",
            "auth.Login.x",
            "1a.b.c",
        ] {
            let mut record = valid();
            record.action = action.to_owned();
            assert!(prepare_batch(&[record]).is_err(), "{action} was accepted");
        }
        let mut record = valid();
        record.action = "auth.refresh.reuse_detected".to_owned();
        assert!(prepare_batch(&[record]).is_ok());
    }

    #[test]
    fn a_batch_over_the_limit_is_rejected_as_a_whole() {
        let batch: Vec<_> = (0..=MAX_BATCH).map(|_| valid()).collect();
        assert_eq!(
            fields(prepare_batch(&batch).unwrap_err()),
            [("records".to_owned(), "too_many".to_owned())]
        );
    }
}
