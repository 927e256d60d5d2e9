//! The etcd gateway's JSON, as far as the backend reads it: int64 fields are JSON strings, keys
//! and values base64, and fields at their default value are left out (a put event has no `type`,
//! a delete event no `value`), so every field has a default.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A key and its value, decoded.
#[derive(Debug, Clone)]
pub(super) struct KeyValue {
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
}

/// The revision a read or a watch answer was made at.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Header {
    #[serde(deserialize_with = "int64")]
    pub(super) revision: i64,
}

/// A lease grant or keep-alive answer; a TTL of 0 (left out) means the lease is gone.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LeaseAnswer {
    #[serde(rename = "ID", deserialize_with = "int64")]
    pub(super) id: i64,
    #[serde(rename = "TTL", deserialize_with = "int64")]
    pub(super) ttl: i64,
}

/// A keep-alive answer: the stream's one message, under `result`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct KeepAliveAnswer {
    pub(super) result: Option<LeaseAnswer>,
}

/// A range answer: the keys found and the revision they were read at.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RangeAnswer {
    pub(super) header: Header,
    pub(super) kvs: Vec<RawKeyValue>,
}

/// A key-value pair as the gateway writes it; `value` is absent in a delete event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawKeyValue {
    key: String,
    value: String,
}

impl RawKeyValue {
    pub(super) fn decode(self) -> Result<KeyValue, base64::DecodeError> {
        Ok(KeyValue {
            key: BASE64.decode(self.key)?,
            value: BASE64.decode(self.value)?,
        })
    }
}

/// One line of a watch stream: a result, or an error that ends the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WatchLine {
    pub(super) result: Option<WatchResult>,
    pub(super) error: Option<serde_json::Value>,
}

/// One watch answer: creation, cancellation, or some events.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WatchResult {
    pub(super) header: Header,
    pub(super) created: bool,
    pub(super) canceled: bool,
    pub(super) cancel_reason: String,
    #[serde(deserialize_with = "int64")]
    pub(super) compact_revision: i64,
    pub(super) events: Vec<Event>,
}

/// A change of one key. `type` is left out for a put (the enum's default, 0).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Event {
    #[serde(rename = "type")]
    pub(super) kind: EventKind,
    pub(super) kv: RawKeyValue,
}

/// What happened to the key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum EventKind {
    /// Written (created or changed).
    #[default]
    #[serde(rename = "PUT")]
    Put,
    /// Deleted, or its lease expired or was revoked.
    #[serde(rename = "DELETE")]
    Delete,
}

/// An int64 as the gateway writes it (a JSON string), or as a number.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(text) => text.parse().map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_decode_as_the_gateway_writes_them() -> Result<(), Box<dyn std::error::Error>> {
        // Recorded from etcd 3.4.23: a put (no "type"), then a delete (no value).
        let put: WatchLine = serde_json::from_str(
            r#"{"result":{"header":{"cluster_id":"1","revision":"3","raft_term":"2"},"events":[{"kv":{"key":"L3QvYS8y","create_revision":"3","mod_revision":"3","version":"1","value":"eA=="}}]}}"#,
        )?;
        let result = put.result.ok_or("no result")?;
        assert_eq!(result.header.revision, 3);
        let event = result.events.into_iter().next().ok_or("no event")?;
        assert_eq!(event.kind, EventKind::Put);
        let kv = event.kv.decode()?;
        assert_eq!(
            (kv.key.as_slice(), kv.value.as_slice()),
            (&b"/t/a/2"[..], &b"x"[..])
        );
        let delete: WatchLine = serde_json::from_str(
            r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"L3QvYS8y","mod_revision":"4"}}]}}"#,
        )?;
        let events = delete.result.ok_or("no result")?.events;
        assert_eq!(events.first().map(|e| e.kind), Some(EventKind::Delete));
        let canceled: WatchLine =
            serde_json::from_str(r#"{"result":{"header":{},"canceled":true,"compact_revision":"4"}}"#)?;
        assert_eq!(
            canceled.result.map(|r| (r.canceled, r.compact_revision)),
            Some((true, 4))
        );
        Ok(())
    }
}
