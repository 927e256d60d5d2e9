//! Request ids: honoured when the client sent a sane one, made fresh otherwise.

use http::HeaderValue;

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-sent id we honour.
const MAX_LEN: usize = 128;

/// The id of the request being served; in the request's extensions for handlers that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's id when it is sane (1 to 128 characters of letters, digits, `-`, `_`, `.`, `:`),
    /// else a new UUIDv7. A rejected id is not an error: the request proceeds under a fresh id, so a
    /// hostile header can neither break the request nor inject into logs.
    pub fn from_header(header: Option<&HeaderValue>) -> (Self, bool) {
        match header.and_then(|v| v.to_str().ok()) {
            Some(id) if is_sane(id) => (Self(id.to_owned()), true),
            _ => (Self(uuid::Uuid::now_v7().to_string()), false),
        }
    }
}

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
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
        let long = "a".repeat(MAX_LEN + 1);
        assert!(!RequestId::from_header(Some(&HeaderValue::from_str(&long).expect("ascii"))).1);
        assert!(!RequestId::from_header(None).1);
    }
}
