//! Domain ↔ protobuf message conversions, one file per service.
//!
//! Why this module exists: servers build their answers from domain types and callers turn answers
//! back into them; both directions live here so a field added on one side is added on the other.
//! `From<domain> for message` cannot fail. `TryFrom<message> for domain` fails with
//! [`ServiceError::Internal`] naming the field: for a caller, a malformed answer is the server's
//! bug. (A server parsing a *request* into a domain type may map that error to `InvalidArgument`.)

mod audit;
mod auth;
mod authz;
mod identity;

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use uuid::Uuid;

use crate::ServiceError;
use crate::wire;

/// A required UUID field.
pub(crate) fn uuid(field: &str, text: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(text).map_err(|_| malformed(field, "is not a UUID"))
}

/// An optional UUID field (empty means absent).
pub(crate) fn optional_uuid(field: &str, text: &str) -> Result<Option<Uuid>, ServiceError> {
    match text {
        "" => Ok(None),
        text => uuid(field, text).map(Some),
    }
}

/// An optional text field (empty means absent).
pub(crate) fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A required timestamp field.
pub(crate) fn time(field: &str, ts: Option<&Timestamp>) -> Result<DateTime<Utc>, ServiceError> {
    let ts = ts.ok_or_else(|| malformed(field, "is missing"))?;
    wire::datetime(ts).map_err(|_| malformed(field, "is out of range"))
}

/// A required message field.
pub(crate) fn required<T>(field: &str, value: Option<T>) -> Result<T, ServiceError> {
    value.ok_or_else(|| malformed(field, "is missing"))
}

/// A required, non-empty text field.
pub(crate) fn non_empty(field: &str, text: String) -> Result<String, ServiceError> {
    if text.is_empty() {
        return Err(malformed(field, "is empty"));
    }
    Ok(text)
}

/// The error for a message field that does not hold what it must.
pub(crate) fn malformed(field: &str, problem: &str) -> ServiceError {
    ServiceError::Internal(format!("malformed message: `{field}` {problem}"))
}

/// An optional counter: the proto uses 0 for "none".
pub(crate) fn non_zero(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

/// The text of a conversion's error, prefixed as `Display` prints it; panics on success.
#[cfg(test)]
pub(crate) fn error_text<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> String {
    match result {
        Ok(value) => panic!("a malformed message was accepted as {value:?}"),
        Err(ServiceError::Internal(text)) => text,
        Err(other) => panic!("expected an internal error, got {other:?}"),
    }
}
