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
//!    them, after it has verified who the caller is. Here and in every step, a name spelled with
//!    `_` for `-` (`X_User_Id`) goes where the real name would: CGI-style servers read both as
//!    one variable;
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

use crate::client_address::{Origin, ip_header_value};

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

/// The names the gateway sets on every request going upstream: no client field of these names
/// passes (steps 3 to 5; the internal ones of steps 2 and 6 go by [`is_internal`]).
const REPLACED: [HeaderName; 5] = [
    header::HOST,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    REQUEST_ID_HEADER_NAME,
];

/// The head fields a request carries upstream (steps 1 to 6 of the module documentation): which
/// of the client's fields pass on unchanged ([`UpstreamFields::passes`]) and the fields the
/// gateway sets in place of any the client sent ([`UpstreamFields::set`]).
///
/// Worked out once from the client's head, then used as the path sending the request needs it:
/// the general path applies it to the request's `HeaderMap` ([`UpstreamFields::apply`]), the fast
/// path writes the passing fields and the set ones straight to the upstream connection. Both send
/// the same fields because no set name passes.
#[derive(Debug)]
pub(crate) struct UpstreamFields {
    /// The names the client's `Connection` lists (step 1).
    connection_named: Vec<HeaderName>,
    /// What the gateway sets: first the `injected` trace-context fields, then the rest.
    set: Vec<(HeaderName, HeaderValue)>,
    /// How many of `set`'s first fields came from the trace-context propagator (their names vary
    /// with it, so they are looked up rather than fixed in [`REPLACED`]).
    injected: usize,
}

/// What the rewrite reads from the client's fields, collected in one pass.
#[derive(Default)]
struct Sent<'a> {
    host: Option<&'a HeaderValue>,
    forwarded_host: Option<&'a HeaderValue>,
    forwarded_proto: Option<&'a HeaderValue>,
    forwarded_for: Vec<&'a HeaderValue>,
    request_ids: (Option<&'a HeaderValue>, usize),
}

impl UpstreamFields {
    /// The fields of the request `parts` for an upstream reached as `host`, from `origin` (`None`
    /// when the connection's peer is unknown), on behalf of `principal` when the gateway verified
    /// the caller. `request_id` is the stack's request id when the caller holds it (the fast path,
    /// whose `parts` are as the client sent them); without it, the id is the one the stack put in
    /// `parts` (the general path's edge layer). `traceparent` names the current span.
    pub(crate) fn of(
        parts: &Parts,
        request_id: Option<&HeaderValue>,
        host: HeaderValue,
        origin: Option<Origin>,
        principal: Option<&Principal>,
    ) -> Self {
        let mut connection_named = Vec::new();
        let mut sent = Sent::default();
        for (name, value) in &parts.headers {
            if *name == header::CONNECTION {
                connection_named.extend(
                    connection_options(value.as_bytes())
                        .filter_map(|token| HeaderName::from_bytes(token).ok()),
                );
            } else if *name == header::HOST {
                sent.host = sent.host.or(Some(value));
            } else if *name == X_FORWARDED_HOST {
                sent.forwarded_host = sent.forwarded_host.or(Some(value));
            } else if *name == X_FORWARDED_PROTO {
                sent.forwarded_proto = sent.forwarded_proto.or(Some(value));
            } else if *name == X_FORWARDED_FOR {
                sent.forwarded_for.push(value);
            } else if *name == REQUEST_ID_HEADER_NAME {
                sent.request_ids = (sent.request_ids.0.or(Some(value)), sent.request_ids.1 + 1);
            }
        }
        let mut set = Vec::with_capacity(10);
        // Step 5, first: the propagator's fields (normally `traceparent` alone).
        keel_telemetry::propagation::inject_current_fields(|name, value| set.push((name, value)));
        let injected = set.len();
        // Step 3. Only a trusted proxy's forwarded host and scheme are believed: the client's
        // own would let it choose how the upstream sees the request.
        let via_trusted_proxy = origin.is_some_and(|origin| origin.via_trusted_proxy);
        let believed = |forwarded: Option<&HeaderValue>| forwarded.filter(|_| via_trusted_proxy).cloned();
        let original_host = believed(sent.forwarded_host)
            .or_else(|| sent.host.cloned())
            .or_else(|| HeaderValue::from_str(parts.uri.authority()?.as_str()).ok());
        if let Some(original_host) = original_host {
            set.push((X_FORWARDED_HOST, original_host));
        }
        // Step 4.
        let proto = believed(sent.forwarded_proto).or_else(|| match parts.uri.scheme_str() {
            None | Some("http") => Some(HeaderValue::from_static("http")),
            Some("https") => Some(HeaderValue::from_static("https")),
            Some(other) => HeaderValue::from_str(other).ok(),
        });
        if let Some(proto) = proto {
            set.push((X_FORWARDED_PROTO, proto));
        }
        // Services trust the last hop of X-Forwarded-For as the one the gateway added: without a
        // peer address of our own there is none, and the client's chain does not pass either.
        if let Some(origin) = origin {
            let chain = match connection_named.contains(&X_FORWARDED_FOR) {
                true => &[][..],
                false => &sent.forwarded_for[..],
            };
            let peer = ip_header_value(origin.peer);
            if let Some(value) = forwarded_for(chain, &peer) {
                set.push((X_FORWARDED_FOR, value));
            }
            let client = match origin.client == origin.peer {
                true => peer,
                false => ip_header_value(origin.client),
            };
            set.push((X_KEEL_CLIENT_IP, client));
        }
        // Step 5: the stack's request id: given, or in the header already (the edge layer set it)
        // and then passed on as it is, not rebuilt.
        let request_id = match request_id {
            Some(id) => Some(id.clone()),
            None => stack_request_id(parts, sent.request_ids),
        };
        if let Some(id) = request_id {
            set.push((REQUEST_ID_HEADER_NAME, id));
        }
        set.push((header::HOST, host));
        // Step 6.
        if let Some(principal) = principal {
            for (name, id) in [
                (X_USER_ID, principal.user_id),
                (X_KEEL_SESSION_ID, principal.session_id),
            ] {
                // Not `to_string`: the formatting machinery costs more than the id itself.
                let text = id
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_owned();
                if let Ok(value) = HeaderValue::try_from(text) {
                    set.push((name, value));
                }
            }
        }
        let fields = Self {
            connection_named,
            set,
            injected,
        };
        debug_assert!(fields.set.iter().all(|(name, _)| !fields.passes(name)));
        fields
    }

    /// Whether the client's fields called `name` pass on unchanged (steps 1 and 2, and none of
    /// the names the gateway sets).
    pub(crate) fn passes(&self, name: &HeaderName) -> bool {
        // A byte loop, not `str::contains`: names are short, and this runs for every field.
        let look_alike = name.as_str().bytes().any(|byte| byte == b'_');
        !(self.drops(name) || (look_alike && self.drops_look_alike(name)))
    }

    /// Whether a client's field called `name` is removed or replaced.
    fn drops(&self, name: &HeaderName) -> bool {
        is_hop_by_hop(name)
            || is_internal(name)
            || REPLACED.contains(name)
            || self.set[..self.injected]
                .iter()
                .any(|(injected, _)| injected == name)
            || self.connection_named.contains(name)
    }

    /// Whether `name`, with its `_` read as `-`, is removed or replaced: a service behind a
    /// CGI-style server (WSGI, Rack, PHP, FastCGI) sees `X_User_Id` and `X-User-Id` as one
    /// variable (`HTTP_X_USER_ID`), so a look-alike must not pass where the real name would not.
    fn drops_look_alike(&self, name: &HeaderName) -> bool {
        let dashed = name.as_str().replace('_', "-");
        HeaderName::from_bytes(dashed.as_bytes()).is_ok_and(|dashed| self.drops(&dashed))
    }

    /// The fields the gateway sets, after the client's passing ones.
    pub(crate) fn set(&self) -> &[(HeaderName, HeaderValue)] {
        &self.set
    }

    /// Rewrites `headers` (the client's) into the upstream's: the fields that do not pass are
    /// removed, the set ones inserted.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        if headers.keys().any(|name| !self.passes(name)) {
            let doomed: Vec<HeaderName> = headers
                .keys()
                .filter(|name| !self.passes(name))
                .cloned()
                .collect();
            for name in doomed {
                headers.remove(name);
            }
        }
        for (name, value) in self.set {
            headers.insert(name, value);
        }
    }
}

/// Step 5's `X-Request-ID` on the general path: the stack's (in the extensions, and normally in
/// the header too), else the client's single acceptable one, else a fresh one. `sent` is the
/// first value the request carries and how many it carries.
fn stack_request_id(parts: &Parts, sent: (Option<&HeaderValue>, usize)) -> Option<HeaderValue> {
    let only = sent.0.filter(|_| sent.1 == 1);
    let stack_id = parts.extensions.get::<RequestId>();
    let in_place = match stack_id {
        Some(id) => only.is_some_and(|sent| sent.as_bytes() == id.0.as_bytes()),
        None => only.is_some_and(RequestId::is_acceptable),
    };
    if in_place {
        return only.cloned();
    }
    let id = match stack_id {
        Some(id) => id.clone(),
        None => RequestId::from_header(only).0,
    };
    HeaderValue::from_str(&id.0).ok()
}

/// Step 4's `X-Forwarded-For: <what the client sent>, <peer>`, as one field (`chain`: the
/// client's values, in order; `peer`: the connection's peer address as text).
fn forwarded_for(chain: &[&HeaderValue], peer: &HeaderValue) -> Option<HeaderValue> {
    if chain.is_empty() {
        return Some(peer.clone());
    }
    let mut value = String::new();
    for sent in chain {
        let Ok(sent) = sent.to_str() else { continue };
        let sent = sent.trim();
        if !sent.is_empty() {
            value.push_str(sent);
            value.push_str(", ");
        }
    }
    value.push_str(peer.to_str().ok()?);
    HeaderValue::try_from(value).ok()
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
    // A `HeaderName` is lowercase: compared as such, without folding case.
    HOP_BY_HOP.contains(name) || name.as_str().starts_with(PROXY_PREFIX)
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

    /// The `Host` of the upstream in these tests.
    const UPSTREAM_HOST: &str = "upstream.internal:8080";

    /// What the general path does to `parts` for an anonymous caller from `origin`.
    fn prepare_request(parts: &mut Parts, origin: Option<Origin>) {
        UpstreamFields::of(parts, None, HeaderValue::from_static(UPSTREAM_HOST), origin, None)
            .apply(&mut parts.headers);
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
        assert_eq!(value(&parts, "host"), Some(UPSTREAM_HOST));
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

        // Handed over by the caller (the fast path): the client's, as sent, never pass.
        let mut parts = super::tests::parts(&[("x-request-id", "client-id"), ("x-request-id", "two")]);
        let stack_id = HeaderValue::from_static("stack-id");
        let host = HeaderValue::from_static(UPSTREAM_HOST);
        UpstreamFields::of(&parts, Some(&stack_id), host, direct(), None).apply(&mut parts.headers);
        let ids: Vec<_> = parts.headers.get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["stack-id"]);
    }

    #[test]
    fn a_verified_callers_identity_replaces_any_the_client_sent() {
        let principal = Principal {
            user_id: uuid::Uuid::from_u128(7),
            session_id: uuid::Uuid::from_u128(9),
            token_id: "jti".to_owned(),
            expires_at: chrono::Utc::now(),
        };
        let mut parts = parts(&[("x-user-id", "admin"), ("x-keel-session-id", "stolen")]);
        let fields = UpstreamFields::of(
            &parts,
            None,
            HeaderValue::from_static(UPSTREAM_HOST),
            direct(),
            Some(&principal),
        );
        fields.apply(&mut parts.headers);
        let ids: Vec<_> = parts.headers.get_all("x-user-id").iter().collect();
        assert_eq!(ids, [principal.user_id.to_string().as_str()]);
        assert_eq!(
            value(&parts, "x-keel-session-id"),
            Some(principal.session_id.to_string().as_str())
        );

        let mut parts = super::tests::parts(&[("x-user-id", "admin")]);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-user-id"), None);
        assert_eq!(value(&parts, "x-keel-session-id"), None);
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_client_never_pass_on_their_own() {
        // No `Host` to take `X-Forwarded-Host` from: the client's still does not pass.
        let mut parts = parts(&[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ]);
        parts.headers.remove(header::HOST);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-forwarded-host"), None);
        assert_eq!(value(&parts, "x-forwarded-proto"), Some("http"));

        // Without a peer address, no `X-Forwarded-For` at all (its last hop would pass as ours).
        let mut parts = super::tests::parts(&[("x-forwarded-for", "203.0.113.1")]);
        prepare_request(&mut parts, None);
        assert_eq!(value(&parts, "x-forwarded-for"), None);
        assert_eq!(value(&parts, "x-keel-client-ip"), None);

        // A chain the client's `Connection` names is hop-by-hop: only the peer is listed.
        let mut parts = super::tests::parts(&[
            ("connection", "X-Forwarded-For"),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        prepare_request(&mut parts, direct());
        assert_eq!(value(&parts, "x-forwarded-for"), Some("192.0.2.7"));
    }

    #[test]
    fn look_alikes_with_underscores_go_where_their_names_would() {
        let mut parts = parts(&[
            ("x_user_id", "admin"),
            ("X_Keel_Session_Id", "stolen"),
            ("x_forwarded_for", "203.0.113.1"),
            ("x_request_id", "mine"),
            ("proxy_authorization", "Basic x"),
            ("x_custom_thing", "kept"),
        ]);
        prepare_request(&mut parts, direct());
        for gone in [
            "x_user_id",
            "x_keel_session_id",
            "x_forwarded_for",
            "x_request_id",
            "proxy_authorization",
        ] {
            assert_eq!(value(&parts, gone), None, "{gone}");
        }
        assert_eq!(value(&parts, "x_custom_thing"), Some("kept"));
        assert_eq!(value(&parts, "x-forwarded-for"), Some("192.0.2.7"));
    }

    #[test]
    fn no_field_the_gateway_sets_also_passes_from_the_client() {
        let sent = [
            ("host", "api.example.com"),
            ("connection", "x-custom"),
            ("x-custom", "1"),
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-host", "a.example"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "abc"),
            ("x-user-id", "admin"),
            ("x-keel-client-ip", "198.51.100.1"),
            ("accept", "*/*"),
        ];
        let principal = Principal {
            user_id: uuid::Uuid::from_u128(1),
            session_id: uuid::Uuid::from_u128(2),
            token_id: "jti".to_owned(),
            expires_at: chrono::Utc::now(),
        };
        for origin in [None, direct()] {
            for principal in [None, Some(&principal)] {
                let parts = parts(&sent);
                let fields = UpstreamFields::of(
                    &parts,
                    None,
                    HeaderValue::from_static(UPSTREAM_HOST),
                    origin,
                    principal,
                );
                for (name, _) in fields.set() {
                    assert!(!fields.passes(name), "{name} is both set and passed on");
                }
                assert!(fields.passes(&header::ACCEPT));
                assert!(!fields.passes(&HeaderName::from_static("x-custom")));
            }
        }
    }
}
