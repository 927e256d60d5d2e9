//! Header rewriting between the client and an upstream.
//!
//! Why a module of its own: what a service may trust about a request (who sent it, through which
//! host, under which request id and trace, as which user) is decided here, in one place that
//! the edge authentication completes. In order, for a request going upstream:
//!
//! 1. hop-by-hop headers go (`Connection` and every header it names, `Keep-Alive`, `Proxy-*`,
//!    `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`): they describe the client's connection, not
//!    the request;
//! 2. client-sent internal identity headers go (`X-User-Id`, `X-Keel-*`): only the gateway may set
//!    them, after it has verified who the caller is;
//! 3. `Host` becomes the upstream's; the client's goes to `X-Forwarded-Host`;
//! 4. `X-Forwarded-For` gets the peer's address appended; `X-Forwarded-Proto` is the scheme the
//!    client used, and `X-Keel-Client-Ip` the client's address (the peer's, or behind a trusted
//!    proxy the one it forwarded, see the `client_address` module). Only from a trusted proxy are
//!    a sent `X-Forwarded-Proto` and `X-Forwarded-Host` kept (the balancer terminated TLS and knows
//!    the scheme and host the client used);
//! 5. `X-Request-ID` is the request's id, and `traceparent` names the current span;
//! 6. for a caller whose token the gateway verified, `X-User-Id` (the user's UUID) and
//!    `X-Keel-Session-Id` (the session's): a spoofed one never reaches an upstream, and an
//!    anonymous request carries neither.
//!
//! Responses lose their hop-by-hop headers too.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use keel_authn::Principal;
use keel_http::{REQUEST_ID_HEADER_NAME, RequestId};

use crate::client_address::{Origin, push_ip};

/// Identity headers a client must never be able to set.
const INTERNAL_HEADERS: &[&str] = &["x-user-id"];
/// Prefix of Keel's internal headers; every one a client sends is dropped.
const INTERNAL_PREFIX: &str = "x-keel-";
/// Prefix of proxy-to-proxy headers (`Proxy-Authorization`, `Proxy-Connection`, …).
const PROXY_PREFIX: &str = "proxy-";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The client's address as the gateway resolved it (internal: a client-sent one is dropped).
pub(crate) const X_KEEL_CLIENT_IP: HeaderName = HeaderName::from_static("x-keel-client-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// The headers step 1 removes whatever `Connection` says (besides `Proxy-*`).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
/// The verified caller's user id (the token's `sub`).
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
/// The verified caller's session id (the token's `sid`).
const X_KEEL_SESSION_ID: HeaderName = HeaderName::from_static("x-keel-session-id");

/// Rewrites the head of a request about to go upstream (steps 1 to 5 of the module documentation).
///
/// `origin` is where the request comes from (`None` when the connection's peer is unknown).
pub(crate) fn prepare_request(parts: &mut Parts, origin: Option<Origin>) {
    let via_trusted_proxy = origin.is_some_and(|origin| origin.via_trusted_proxy);
    let forwarded = |name: &HeaderName| {
        via_trusted_proxy
            .then(|| parts.headers.get(name).cloned())
            .flatten()
    };
    let original_host = forwarded(&X_FORWARDED_HOST)
        .or_else(|| parts.headers.get(header::HOST).cloned())
        .or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
    let proto = forwarded(&X_FORWARDED_PROTO)
        .or_else(|| HeaderValue::from_str(parts.uri.scheme_str().unwrap_or("http")).ok());
    let headers = &mut parts.headers;
    // One pass over the names first: most requests carry none of the headers steps 1 and 2
    // remove, and then nothing is looked up or removed.
    if headers
        .keys()
        .any(|name| is_hop_by_hop(name) || is_internal(name))
    {
        // Step 5 sets the request id whatever the client's `Connection` names.
        let request_id = headers.get(REQUEST_ID_HEADER_NAME).cloned();
        strip_hop_by_hop(headers);
        strip_internal(headers);
        if let Some(id) = request_id {
            headers.entry(REQUEST_ID_HEADER_NAME).or_insert(id);
        }
    }
    headers.remove(header::HOST);
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(proto) = proto {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    let mut peer = String::new();
    match origin {
        Some(origin) => {
            push_ip(&mut peer, origin.peer);
            append_forwarded_for(headers, &peer);
        }
        // Services trust the last hop of X-Forwarded-For as the one the gateway added: without a
        // peer address of our own, the client's value would pass as ours.
        None => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    if let Some(origin) = origin {
        let client = match origin.client == origin.peer {
            true => peer,
            false => {
                let mut client = String::new();
                push_ip(&mut client, origin.client);
                client
            }
        };
        if let Ok(value) = HeaderValue::try_from(client) {
            headers.insert(X_KEEL_CLIENT_IP, value);
        }
    }
    keel_telemetry::propagation::inject_current(headers);
    set_request_id(parts);
}

/// Step 5's `X-Request-ID`: the stack's request id (in the extensions on the general path) is
/// normally in the header already, as the edge layer (or the fast path's `ObservedRequest`) set
/// it, and is then checked, not rebuilt.
fn set_request_id(parts: &mut Parts) {
    let mut sent = parts.headers.get_all(REQUEST_ID_HEADER_NAME).iter();
    let only = sent.next().filter(|_| sent.next().is_none());
    let stack_id = parts.extensions.get::<RequestId>();
    let in_place = match stack_id {
        Some(id) => only.is_some_and(|sent| sent.as_bytes() == id.0.as_bytes()),
        None => only.is_some_and(RequestId::is_acceptable),
    };
    if in_place {
        return;
    }
    let id = match stack_id {
        Some(id) => id.clone(),
        None => RequestId::from_header(only).0,
    };
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        parts.headers.insert(REQUEST_ID_HEADER_NAME, value);
    }
}

/// Step 6, for a request whose caller the gateway verified: who it is, in the internal identity
/// headers (after step 2 removed any the client sent).
pub(crate) fn add_identity(headers: &mut HeaderMap, principal: &Principal) {
    for (name, id) in [
        (X_USER_ID, principal.user_id),
        (X_KEEL_SESSION_ID, principal.session_id),
    ] {
        if let Ok(value) = HeaderValue::try_from(id.to_string()) {
            headers.insert(name, value);
        }
    }
}

/// Removes the hop-by-hop headers of a response coming back from an upstream.
pub(crate) fn prepare_response(headers: &mut HeaderMap) {
    if headers.keys().any(is_hop_by_hop) {
        strip_hop_by_hop(headers);
    }
}

/// Whether step 1 removes every header called `name` whatever `Connection` says (the fixed
/// hop-by-hop set, `Connection` itself included, and `Proxy-*`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_name(name.as_str().as_bytes())
}

/// [`is_hop_by_hop`] for a name as it came on the wire (any case), for code that reads and
/// writes heads itself (the fast path).
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop.as_str().as_bytes()))
        || name
            .get(..PROXY_PREFIX.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(PROXY_PREFIX.as_bytes()))
}

/// The names a `Connection` field's `value` lists (each hop-by-hop for its message).
pub(crate) fn connection_options(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|byte| *byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Whether step 2 removes a header called `name`.
fn is_internal(name: &HeaderName) -> bool {
    INTERNAL_HEADERS.contains(&name.as_str()) || name.as_str().starts_with(INTERNAL_PREFIX)
}

/// Step 1: `Connection` and the headers it names, and the fixed hop-by-hop set.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| connection_options(value.as_bytes()))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    remove_prefixed(headers, PROXY_PREFIX);
}

/// Step 2: identity headers only the gateway may set.
fn strip_internal(headers: &mut HeaderMap) {
    for name in INTERNAL_HEADERS {
        headers.remove(*name);
    }
    remove_prefixed(headers, INTERNAL_PREFIX);
}

/// Removes every header whose (lowercase) name starts with `prefix`; allocates only when one does.
fn remove_prefixed(headers: &mut HeaderMap, prefix: &str) {
    if !headers.keys().any(|name| name.as_str().starts_with(prefix)) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(prefix))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Step 4: `X-Forwarded-For: <what the client sent>, <peer>`, as one header.
fn append_forwarded_for(headers: &mut HeaderMap, peer: &str) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        if let Ok(value) = HeaderValue::from_str(peer) {
            headers.insert(X_FORWARDED_FOR, value);
        }
        return;
    }
    let mut chain: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .collect();
    chain.push(peer);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri("/api/v1/users");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder
            .body(())
            .map(http::Request::into_parts)
            .unwrap_or_else(|e| panic!("{e}"));
        parts
    }

    /// The peer every test request comes from.
    fn peer() -> IpAddr {
        IpAddr::from([192, 0, 2, 7])
    }

    /// A request straight from [`peer`], no trusted proxy in between.
    fn direct() -> Option<Origin> {
        Some(Origin {
            peer: peer(),
            client: peer(),
            via_trusted_proxy: false,
        })
    }

    fn value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
        parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed_and_end_to_end_ones_kept() {
        let mut parts = parts(&[
            ("connection", "keep-alive, X-Custom-Hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
            ("authorization", "Bearer t"),
        ]);
        prepare_request(&mut parts, direct());
        for gone in [
            "connection",
            "x-custom-hop",
            "keep-alive",
            "proxy-authorization",
            "te",
            "trailer",
            "upgrade",
        ] {
            assert_eq!(value(&parts, gone), None, "{gone}");
        }
        assert_eq!(value(&parts, "accept"), Some("application/json"));
        assert_eq!(value(&parts, "authorization"), Some("Bearer t"));
    }

    #[test]
    fn internal_identity_headers_from_the_client_are_dropped() {
        let mut parts = parts(&[
            ("x-user-id", "admin"),
            ("X-Keel-Roles", "admin"),
            ("x-keelish", "kept"),
        ]);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-user-id"), None);
        assert_eq!(value(&parts, "x-keel-roles"), None);
        assert_eq!(value(&parts, "x-keelish"), Some("kept"));
    }

    #[test]
    fn forwarding_headers_describe_the_client_and_the_host_becomes_the_upstreams() {
        let mut parts = parts(&[
            ("host", "api.example.com"),
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "198.51.100.2"),
            ("x-forwarded-proto", "https"),
        ]);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "host"), None);
        assert_eq!(value(&parts, "x-forwarded-host"), Some("api.example.com"));
        assert_eq!(
            value(&parts, "x-forwarded-for"),
            Some("203.0.113.1, 198.51.100.2, 192.0.2.7")
        );
        assert_eq!(value(&parts, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&parts, "x-keel-client-ip"), Some("192.0.2.7"));
    }

    #[test]
    fn a_trusted_proxys_forwarded_scheme_and_host_are_kept_and_its_client_named() {
        let sent = [
            ("host", "gateway.internal"),
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-keel-client-ip", "198.51.100.66"),
        ];
        let mut parts = parts(&sent);
        let via_balancer = Origin {
            peer: peer(),
            client: IpAddr::from([203, 0, 113, 1]),
            via_trusted_proxy: true,
        };
        prepare_request(&mut parts, Some(via_balancer));
        assert_eq!(value(&parts, "x-forwarded-proto"), Some("https"));
        assert_eq!(value(&parts, "x-forwarded-host"), Some("app.example.com"));
        assert_eq!(value(&parts, "x-forwarded-for"), Some("203.0.113.1, 192.0.2.7"));
        assert_eq!(value(&parts, "x-keel-client-ip"), Some("203.0.113.1"));

        // The same headers from anyone else describe only what the gateway saw.
        let mut parts = super::tests::parts(&sent);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&parts, "x-forwarded-host"), Some("gateway.internal"));
        assert_eq!(value(&parts, "x-keel-client-ip"), Some("192.0.2.7"));
    }

    #[test]
    fn a_request_id_named_in_connection_still_reaches_the_upstream() {
        let mut parts = parts(&[("connection", "x-request-id"), ("x-request-id", "abc")]);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-request-id"), Some("abc"));

        let mut parts = super::tests::parts(&[("connection", "x-request-id"), ("x-request-id", "abc")]);
        parts.extensions.insert(RequestId("stack-id".into()));
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-request-id"), Some("stack-id"));

        // Two values are never passed on, even when the first is acceptable.
        let mut parts = super::tests::parts(&[("x-request-id", "abc"), ("x-request-id", "def")]);
        prepare_request(&mut parts, direct());
        assert_eq!(parts.headers.get_all("x-request-id").iter().count(), 1);
    }

    #[test]
    fn the_request_id_is_the_one_the_stack_chose_else_a_sane_one() {
        let mut parts = parts(&[("x-request-id", "client-id")]);
        parts.extensions.insert(RequestId("stack-id".into()));
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-request-id"), Some("stack-id"));

        let mut parts = super::tests::parts(&[("x-request-id", "<bad id>")]);
        prepare_request(&mut parts, direct());
        let id = value(&parts, "x-request-id").unwrap_or_default();
        assert!(!id.is_empty() && id != "<bad id>", "{id}");
    }
}
