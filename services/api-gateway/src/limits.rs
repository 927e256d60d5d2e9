//! Size limits on what a client sends: the header section (431) and the request body (413).
//!
//! Why a module of its own: the gateway streams bodies (all but small ones of a declared length,
//! which `proxy` reads whole first), so the HTTP stack's body limit (which works through
//! extractors, and is one value for the whole server) cannot apply; each route has its own limit,
//! enforced here on the stream itself. A declared `Content-Length` over the limit is refused before
//! anything is sent upstream; a body without one (chunked, or HTTP/2 without the header) is counted
//! as it passes, and the upstream exchange is cut off as soon as the count passes the limit: the
//! upstream never receives more than the limit, and the client gets the 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body::{Frame, SizeHint};
use keel_http::REQUEST_ID_HEADER_NAME;

use crate::error::ProxyError;

/// Bytes a header field costs beyond its name and value: `: ` and the line end, as on the wire.
const FIELD_OVERHEAD: usize = 4;

/// The header limits of `gateway.max_headers` and `gateway.max_header_bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderLimits {
    /// Most header fields.
    pub(crate) max_headers: usize,
    /// Largest header section in bytes.
    pub(crate) max_bytes: usize,
}

impl HeaderLimits {
    /// `Err` (a 431) when `headers` has more fields or more bytes than allowed. Counts the fields
    /// as the general path receives them, where the HTTP stack's edge layer has replaced any
    /// `X-Request-ID` the client sent with the request's id: `stack_id` is that id when
    /// `headers` are still as the client sent them (the fast path), counted in place of the
    /// client's `X-Request-ID` fields; `None` when `headers` hold it already.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        stack_id: Option<&HeaderValue>,
    ) -> Result<(), ProxyError> {
        let mut fields = 0;
        let mut bytes = 0;
        for (name, value) in headers {
            if stack_id.is_some() && *name == REQUEST_ID_HEADER_NAME {
                continue;
            }
            fields += 1;
            bytes += name.as_str().len() + value.len() + FIELD_OVERHEAD;
        }
        if let Some(id) = stack_id {
            fields += 1;
            bytes += REQUEST_ID_HEADER_NAME.as_str().len() + id.len() + FIELD_OVERHEAD;
        }
        if fields > self.max_headers {
            return Err(ProxyError::TooManyHeaders {
                max: self.max_headers,
            });
        }
        match bytes > self.max_bytes {
            true => Err(ProxyError::HeadersTooLarge {
                max_bytes: self.max_bytes,
            }),
            false => Ok(()),
        }
    }
}

/// A request body on its way upstream, within `limit`.
pub(crate) struct Limited {
    /// The body to send.
    pub(crate) body: Body,
    /// Set when a streamed body passed the limit (`None` when the length was declared).
    pub(crate) tripped: Option<Arc<AtomicBool>>,
    /// The `Content-Length` the client declared (within the limit), if it declared one.
    pub(crate) declared: Option<u64>,
    /// The whole body, when it was read before sending (small, of a declared length): what a
    /// replay sends again.
    pub(crate) whole: Option<Bytes>,
}

impl Limited {
    /// Whether the body was cut off for passing the limit.
    pub(crate) fn was_tripped(tripped: Option<&Arc<AtomicBool>>) -> bool {
        tripped.is_some_and(|flag| flag.load(Ordering::Acquire))
    }
}

/// Applies `limit` to a request body with `headers`: a declared length over it is refused at once,
/// a declared length within it passes unchanged (the server enforces that the body has exactly
/// that length), and an undeclared one is counted as it streams.
pub(crate) fn limit_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Limited, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ProxyError::BodyTooLarge { limit }),
        Some(length) => Ok(Limited {
            body,
            tripped: None,
            declared: Some(length),
            whole: None,
        }),
        None if http_body::Body::is_end_stream(&body) => Ok(Limited {
            body,
            tripped: None,
            declared: None,
            whole: None,
        }),
        None => {
            let tripped = Arc::new(AtomicBool::new(false));
            let counted = CountedBody {
                inner: body,
                remaining: limit,
                tripped: Arc::clone(&tripped),
            };
            Ok(Limited {
                body: Body::new(counted),
                tripped: Some(tripped),
                declared: None,
                whole: None,
            })
        }
    }
}

/// The error a [`CountedBody`] ends with when its count passes the limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds the route's limit")]
struct OverLimit;

/// A body that fails, and says so through `tripped`, once more than `remaining` bytes pass.
struct CountedBody {
    inner: Body,
    remaining: u64,
    tripped: Arc<AtomicBool>,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let Some(Ok(frame)) = frame else {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        };
        if let Some(data) = frame.data_ref() {
            let length = data.len() as u64;
            if length > self.remaining {
                self.tripped.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(OverLimit.into())));
            }
            self.remaining -= length;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http_body_util::BodyExt;

    use super::*;

    fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn header_count_and_size_are_limited() {
        let limits = HeaderLimits {
            max_headers: 2,
            max_bytes: 20,
        };
        assert!(limits.check(&headers(&[("a", "1"), ("b", "2")]), None).is_ok());
        assert!(matches!(
            limits.check(&headers(&[("a", "1"), ("a", "2"), ("b", "3")]), None),
            Err(ProxyError::TooManyHeaders { max: 2 })
        ));
        // 4 + 12 + 4 = 20 bytes fits; one more byte does not.
        assert!(limits.check(&headers(&[("name", "twelve bytes")]), None).is_ok());
        assert!(matches!(
            limits.check(&headers(&[("name", "thirteen byte")]), None),
            Err(ProxyError::HeadersTooLarge { max_bytes: 20 })
        ));
    }

    #[test]
    fn the_client_head_counts_as_the_general_path_sees_it_with_the_stacks_request_id() {
        let limits = HeaderLimits {
            max_headers: 2,
            max_bytes: 100,
        };
        let stack_id = HeaderValue::from_static("0123456789");
        // The general path's edge layer would have added the id: one field too many.
        assert!(matches!(
            limits.check(&headers(&[("a", "1"), ("b", "2")]), Some(&stack_id)),
            Err(ProxyError::TooManyHeaders { max: 2 })
        ));
        // The client's own ids (two, and a long one) are replaced by the stack's, counted once.
        let long = "x".repeat(90);
        let mut sent = headers(&[("a", "1"), ("x-request-id", "one")]);
        sent.append(
            "x-request-id",
            HeaderValue::from_str(&long).unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(limits.check(&sent, Some(&stack_id)).is_ok());
        assert!(limits.check(&sent, None).is_err());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_at_once() {
        let declared = headers(&[("content-length", "11")]);
        assert!(matches!(
            limit_body(&declared, Body::from("hello world"), 10),
            Err(ProxyError::BodyTooLarge { limit: 10 })
        ));
        let within = limit_body(&declared, Body::from("hello world"), 11)
            .map(|limited| (limited.tripped.is_none(), limited.declared));
        assert!(matches!(within, Ok((true, Some(11)))));
    }

    #[tokio::test]
    async fn a_streamed_body_fails_once_its_count_passes_the_limit() -> Result<(), axum::BoxError> {
        let chunks = || {
            let parts = ["12345", "67890", "x"].map(|p| Ok::<_, std::io::Error>(Bytes::from(p)));
            Body::from_stream(futures_util::stream::iter(parts))
        };
        let within = limit_body(&HeaderMap::new(), chunks(), 11)?;
        assert_eq!(within.body.collect().await?.to_bytes(), "1234567890x");
        assert!(!Limited::was_tripped(within.tripped.as_ref()));

        let over = limit_body(&HeaderMap::new(), chunks(), 10)?;
        let tripped = over.tripped.clone();
        assert!(over.body.collect().await.is_err());
        assert!(Limited::was_tripped(tripped.as_ref()));
        Ok(())
    }
}
