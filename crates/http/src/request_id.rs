//! Request ids: honoured when the client sent a sane one, made fresh otherwise.

use http::{HeaderName, HeaderValue};

pub use keel_telemetry::context::REQUEST_ID_HEADER;

/// [`REQUEST_ID_HEADER`] as a header name: looking a header up by a `&str` parses the name every
/// time, by this constant it does not.
pub const REQUEST_ID_HEADER_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The id of the request being served; in the request's extensions for handlers that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's id when it is sane (1 to 128 characters of letters, digits, `-`, `_`, `.`, `:`),
    /// else a new UUIDv7. A rejected id is not an error: the request proceeds under a fresh id, so a
    /// hostile header can neither break the request nor inject into logs.
    pub fn from_header(header: Option<&HeaderValue>) -> (Self, bool) {
        let (id, honoured) = keel_telemetry::context::accept_request_id(header.and_then(|v| v.to_str().ok()));
        (Self(id), honoured)
    }

    /// Whether `header` is a request id [`RequestId::from_header`] honours as it is.
    pub fn is_acceptable(header: &HeaderValue) -> bool {
        header
            .to_str()
            .is_ok_and(keel_telemetry::context::is_acceptable_request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_honoured_and_others_replaced() {
        let (id, honoured) = RequestId::from_header(Some(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(honoured);
        assert_eq!(id.0, "abc-123_x.y:z");
        for bad in ["", "has space", "new\\nline", "<script>"] {
            let value = HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static("x x"));
            let (id, honoured) = RequestId::from_header(Some(&value));
            assert!(!honoured, "{bad:?}");
            assert!(uuid::Uuid::parse_str(&id.0).is_ok());
        }
        let long = "a".repeat(129);
        assert!(!RequestId::from_header(Some(&HeaderValue::from_str(&long).expect("ascii"))).1);
        assert!(!RequestId::from_header(None).1);
    }
}
