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
        _ => (fresh_request_id(), false),
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

/// A new UUIDv7: the current Unix time in milliseconds, then random bits from the thread's
/// generator. Not `Uuid::now_v7`, whose random bits cost a `getrandom` system call per id, on
/// every request that arrives without an id of its own.
fn fresh_request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    let random: [u8; 10] = rand::random();
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    // Not `to_string`: the formatting machinery costs more than the id itself.
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
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
    request_id: String,
    user_id: OnceLock<String>,
    audited: AtomicBool,
}

impl RequestContext {
    /// A context for the request with this id, without a user yet.
    pub fn new(request_id: impl Into<String>) -> Self {
        Self(Arc::new(Correlation {
            request_id: request_id.into(),
            user_id: OnceLock::new(),
            audited: AtomicBool::new(false),
        }))
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.0.request_id
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
            let (secs, _) = uuid.get_timestamp().expect("v7 has a timestamp").to_unix();
            let now = before
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            assert!(secs.abs_diff(now) <= 1, "{id}: {secs} vs {now}");
        }
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
