//! The request id and user id of the request being served, for code that has no request at hand.
//!
//! A server middleware runs each request inside [`scope`]; anything the request's task calls
//! (an outgoing gRPC call, a publish to the error bus) reads them with [`current`]. The user id is
//! filled in later by authentication, hence the interior cell; so is whether the request's work
//! wrote an audit record (a middleware audits the authenticated mutations that did not).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The header (HTTP) and metadata key (gRPC) carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-sent request id that is honoured.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id to serve a request under: the caller's when it is sane (1 to 128 characters of
/// letters, digits, `-`, `_`, `.`, `:`), else a new UUIDv7; and whether the caller's was honoured.
/// A rejected id is not an error: the request proceeds under a fresh id, so a hostile value can
/// neither break the request nor inject into logs. HTTP and gRPC servers both use this one rule.
pub fn accept_request_id(sent: Option<&str>) -> (String, bool) {
    match sent {
        Some(id) if is_acceptable_request_id(id) => (id.to_owned(), true),
        _ => (FreshRequestId::generate().as_str().to_owned(), false),
    }
}

/// Whether [`accept_request_id`] honours `id` as it is: a check for code that holds an id the
/// rule has already accepted and only needs to know it still passes, without copying it.
pub fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id, a UUIDv7 in its hyphenated lowercase form, held on the stack: what
/// [`accept_request_id`] makes when the caller sent no usable id, for code that keeps it in a
/// buffer of its own rather than in a new `String`.
///
/// The current Unix time in milliseconds, then 74 random bits from the thread's generator
/// (ChaCha, seeded from the operating system; RFC 9562 §6.9): not `Uuid::now_v7`, whose random
/// bits cost a `getrandom` system call per id, on every request that arrives without an id of its
/// own; and formatted digit by digit, without the formatting machinery.
#[derive(Clone, Copy)]
pub struct FreshRequestId([u8; 36]);

impl FreshRequestId {
    /// A new id.
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            });
        let mut rng = rand::rng();
        let random = (u128::from(rand::RngCore::next_u64(&mut rng)) << 64)
            | u128::from(rand::RngCore::next_u64(&mut rng));
        // RFC 9562 §5.7: unix_ts_ms (48 bits), ver (4 bits, 7), rand_a (12), var (2 bits, 10),
        // rand_b (62).
        let value = (u128::from(millis & 0xFFFF_FFFF_FFFF) << 80)
            | (0x7 << 76)
            | (random & (0xFFF << 64))
            | (0b10 << 62)
            | (random & ((1 << 62) - 1));
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        // Where each byte's two digits go: groups of 4, 2, 2, 2 and 6 bytes between hyphens.
        const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut text = [b'-'; 36];
        for (byte, at) in value.to_be_bytes().into_iter().zip(AT) {
            text[at] = DIGITS[usize::from(byte >> 4)];
            text[at + 1] = DIGITS[usize::from(byte & 0xF)];
        }
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Hex digits and hyphens only: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8; 36] {
        &self.0
    }
}

impl std::fmt::Debug for FreshRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Correlation data of one request. Cheap to clone: the clones share one allocation.
#[derive(Debug, Clone)]
pub struct RequestContext(Arc<Correlation>);

/// What a [`RequestContext`] and its clones share.
#[derive(Debug)]
struct Correlation {
    request_id: IdText,
    user_id: OnceLock<String>,
    audited: AtomicBool,
}

/// Longest request id kept inside the context's own allocation: a UUID (36) and most ids
/// clients send fit, so a context costs one allocation, not two.
const INLINE_ID_LEN: usize = 64;

/// A request id's text, inside the context when it is short enough.
#[derive(Debug)]
enum IdText {
    Inline { len: u8, bytes: [u8; INLINE_ID_LEN] },
    Heap(Box<str>),
}

impl IdText {
    fn new(id: &str) -> Self {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE_ID_LEN => {
                let mut bytes = [0; INLINE_ID_LEN];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(id.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str`: always UTF-8.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Self::Heap(id) => id,
        }
    }
}

impl RequestContext {
    /// A context for the request with this id, without a user yet.
    pub fn new(request_id: &str) -> Self {
        Self(Arc::new(Correlation {
            request_id: IdText::new(request_id),
            user_id: OnceLock::new(),
            audited: AtomicBool::new(false),
        }))
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        self.0.request_id.as_str()
    }

    /// The authenticated user, once authentication has run.
    pub fn user_id(&self) -> Option<&str> {
        self.0.user_id.get().map(String::as_str)
    }

    /// Records the authenticated user (first call wins) and adds it to the request span.
    pub fn set_user_id(&self, user_id: impl Into<String>) {
        let user_id = user_id.into();
        tracing::Span::current().record("user_id", user_id.as_str());
        let _ = self.0.user_id.set(user_id);
    }

    /// Notes that the request's work wrote an audit record of what it did.
    pub fn mark_audited(&self) {
        self.0.audited.store(true, Ordering::Relaxed);
    }

    /// Whether [`mark_audited`](Self::mark_audited) was called for this request.
    pub fn is_audited(&self) -> bool {
        self.0.audited.load(Ordering::Relaxed)
    }
}

/// Runs `future` with `context` as the current request context.
pub async fn scope<F: Future>(context: RequestContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The current request context, when running inside [`scope`].
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_distinct_uuidv7s_of_now() {
        let before = std::time::SystemTime::now();
        let (first, honoured) = accept_request_id(None);
        let (second, _) = accept_request_id(Some("not sane!"));
        assert!(!honoured);
        assert_ne!(first, second);
        for id in [&first, &second] {
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(uuid.hyphenated().to_string(), *id, "lowercase, hyphenated");
            let (secs, _) = uuid.get_timestamp().expect("v7 has a timestamp").to_unix();
            let now = before
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            assert!(secs.abs_diff(now) <= 1, "{id}: {secs} vs {now}");
        }
    }

    #[test]
    fn fresh_ids_keep_their_random_bits_apart_from_the_fixed_ones() {
        // Over many ids every random bit is seen both ways; the version and variant never move.
        let ids: Vec<u128> = (0..256)
            .map(|_| {
                uuid::Uuid::parse_str(FreshRequestId::generate().as_str())
                    .expect("a UUID")
                    .as_u128()
            })
            .collect();
        let (ones, zeros) = ids
            .iter()
            .fold((0_u128, 0_u128), |(ones, zeros), id| (ones | id, zeros | !id));
        let random = (0xFFF_u128 << 64) | ((1 << 62) - 1);
        assert_eq!(ones & random, random, "every random bit is set in some id");
        assert_eq!(zeros & random, random, "every random bit is clear in some id");
        assert!(
            ids.iter()
                .all(|id| (id >> 76) & 0xF == 7 && (id >> 62) & 0b11 == 0b10)
        );
    }

    #[test]
    fn ids_of_every_accepted_length_are_kept_whole() {
        for len in [
            1,
            36,
            INLINE_ID_LEN - 1,
            INLINE_ID_LEN,
            INLINE_ID_LEN + 1,
            MAX_REQUEST_ID_LEN,
        ] {
            let id = "a".repeat(len);
            assert_eq!(RequestContext::new(&id).request_id(), id, "length {len}");
        }
        assert_eq!(RequestContext::new("").request_id(), "");
    }

    #[tokio::test]
    async fn the_context_is_visible_inside_its_scope_only() {
        assert!(current().is_none());
        let context = RequestContext::new("req-42");
        scope(context, async {
            let seen = current().expect("inside the scope");
            assert_eq!(seen.request_id(), "req-42");
            seen.set_user_id("user-7");
            assert_eq!(
                current().and_then(|c| c.user_id().map(str::to_owned)).as_deref(),
                Some("user-7")
            );
            assert!(!seen.is_audited());
            if let Some(context) = current() {
                context.mark_audited();
            }
            assert!(seen.is_audited(), "clones share the request's state");
        })
        .await;
        assert!(current().is_none());
    }
}
