//! The gateway's HTTP/1.1 fast path: plain requests parsed, checked, forwarded and answered by one
//! task, without hyper's dispatcher or axum's router.
//!
//! Why it exists: issue 4 asks for nginx's throughput, and the general stack (hyper server, axum
//! router and middleware, hyper client connection driven by its own task) spends four times
//! nginx's user-space CPU per proxied request, spread thin over its layers
//! (docs/performance.md, "Gateway"). For the requests that make up most of an API's traffic
//! (no body, no upgrade) this path does the same work directly: it reads the head with
//! `httparse`, hands it to the same checks as the general path ([`Proxy::admit`]: header limits,
//! authentication, permission, rate limits), rewrites it with the same header policy
//! ([`prepare_upstream`]), writes it to a pooled upstream connection from the same task, and
//! passes the response back with its body streamed as it arrives.
//!
//! What it leaves to the general stack, untouched: any request with a body, `Transfer-Encoding`,
//! `Upgrade` or `Expect`, HTTP/1.0, HTTP/2, anything the parser rejects or that does not make an
//! `http` value, and the router's own paths (`/healthz`, `/ready`, `/metrics`). At the first such
//! request the connection, with every byte read and not served, is handed to hyper for the rest
//! of its life ([`keel_http::Handover`]), so those requests are answered exactly as before.
//! `gateway.fast_path: false` turns the path off, and so does a CORS configuration (the stack's
//! CORS layer acts on every response).
//!
//! What a request gets here is what the general path gives it: the stack's request id, span,
//! access log, metrics and security headers ([`keel_http::ObservedRequest`]), the `http.
//! request_timeout_ms` 503, the gateway's metrics, problems ([`fail`]) and rate-limit headers.

mod upstream;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};
use keel_http::{ConnectionFront, FrontConnection, Handover, ObservedRequest, RouteSeries};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::config::GatewayConfig;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::{self, NO_SERVICE, UNMATCHED_ROUTE};
use crate::pool::UpstreamError;
use crate::proxy::{Admitted, Proxy, fail, prepare_upstream, with_decision};
use crate::routes::has_dot_segment;
use upstream::{Connection, RawPools, ResponseHead};
use wire::{Admission, ChunkedScanner, Framing, Head};

/// The route template of the gateway's catch-all, the `route` label of `keel_http_*` metrics
/// (what axum's `MatchedPath` says on the general path).
const CATCH_ALL_ROUTE: &str = "/{*path}";
/// The same for the path `/`.
const ROOT_ROUTE: &str = "/";
/// Bytes read from a client at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Longest request head the fast path waits for: hyper's own buffer limit, so a head the fast path
/// gives up on is one hyper refuses at once (431) when it takes the connection over, instead of
/// waiting a second header read timeout for it.
const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's default limit of HTTP/1 header fields.
const DEFAULT_MAX_HEADERS: usize = 100;
/// Largest error body collected to answer it.
const MAX_LOCAL_BODY: usize = 64 * 1024;

/// The fast path as the HTTP server runs it in front of the gateway's router
/// ([`crate::Gateway::http1_front`]).
#[derive(Debug, Clone)]
pub(crate) struct FastPath {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    proxy: Arc<Proxy>,
    upstreams: Arc<RawPools>,
    security: wire::SecurityFields,
    request_timeout: Duration,
    admission: Admission,
    /// The stack's request series of the two route labels the fast path answers under.
    root_series: RouteSeries,
    catch_all_series: RouteSeries,
}

impl FastPath {
    /// The fast path over `proxy`, for a server configured by `http` whose router serves
    /// `reserved_paths` itself.
    pub(crate) fn new(
        proxy: Arc<Proxy>,
        config: &GatewayConfig,
        http: &keel_config::HttpConfig,
        reserved_paths: Vec<String>,
    ) -> Self {
        let limits = config.connection_limits(http);
        Self {
            inner: Arc::new(Inner {
                proxy,
                upstreams: RawPools::start(&config.upstream),
                security: wire::SecurityFields::new(keel_http::security_headers_of(http)),
                request_timeout: http.request_timeout(),
                admission: Admission {
                    max_headers: limits.max_headers.unwrap_or(DEFAULT_MAX_HEADERS),
                    reserved_paths,
                },
                root_series: RouteSeries::new(ROOT_ROUTE),
                catch_all_series: RouteSeries::new(CATCH_ALL_ROUTE),
            }),
        }
    }
}

impl ConnectionFront for FastPath {
    fn serve(
        &self,
        connection: FrontConnection,
    ) -> Pin<Box<dyn Future<Output = Option<Handover>> + Send + 'static>> {
        Box::pin(Arc::clone(&self.inner).serve(connection))
    }
}

/// How a connection goes on after a request.
enum Next {
    KeepAlive,
    Close,
}

/// What waiting for a request head gave.
enum Wait {
    Head(wire::Taken),
    Close,
    Decline,
}

impl Inner {
    async fn serve(self: Arc<Self>, connection: FrontConnection) -> Option<Handover> {
        let FrontConnection {
            mut stream,
            peer,
            shutdown,
            limits,
            ..
        } = connection;
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let mut output = BytesMut::with_capacity(READ_CHUNK);
        let mut upstream_head = BytesMut::with_capacity(1024);
        // The request's header map, kept for the next request (cleared, its memory kept).
        let mut spare_headers = HeaderMap::new();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // One timer for the connection's life per deadline it waits on (the next head, an
        // upstream's answer), moved only when it must be ([`expires`]).
        let head_timer = tokio::time::sleep_until(tokio::time::Instant::now());
        let answer_timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(head_timer, answer_timer);
        loop {
            let waited = match limits.header_read_timeout {
                Some(timeout) => {
                    let deadline = tokio::time::Instant::now() + timeout;
                    let reading = self.read_head(&mut stream, &mut input, cancelled.as_mut());
                    tokio::select! {
                        biased;
                        waited = reading => waited,
                        () = expires(head_timer.as_mut(), deadline) => Wait::Close,
                    }
                }
                None => self.read_head(&mut stream, &mut input, cancelled.as_mut()).await,
            };
            let taken = match waited {
                Wait::Head(taken) => taken,
                Wait::Close => return None,
                Wait::Decline => return Some(Handover::new(stream, input.freeze())),
            };
            let head = input.split_to(taken.len()).freeze();
            let parts = wire::request_parts(&head, &taken, std::mem::take(&mut spare_headers))
                .filter(|(parts, _)| !self.admission.is_reserved(parts.uri.path()));
            let Some((mut parts, sent_id)) = parts else {
                // Not an `http` value after all, or the router's own path once parsed: the stack
                // reads the same bytes and answers.
                let mut unread = BytesMut::from(&head[..]);
                unread.extend_from_slice(&input);
                return Some(Handover::new(stream, unread.freeze()));
            };
            output.clear();
            let buffers = Buffers {
                output: &mut output,
                upstream_head: &mut upstream_head,
                answer_timer: answer_timer.as_mut(),
            };
            let closing = Closing {
                requested: taken.close,
                shutdown: &shutdown,
            };
            let request = Request {
                parts: &parts,
                sent_id: sent_id.as_ref(),
                peer,
            };
            let next = self.answer(&mut stream, buffers, request, closing).await;
            // Kept empty: its values are slices of this request's head, whose buffer `input`
            // reuses in place for the next read only once nothing else refers to it.
            spare_headers = std::mem::take(&mut parts.headers);
            spare_headers.clear();
            // A shutdown that started after the answer said keep-alive ends the connection at the
            // next wait for a head (`read_head`), or answers a request already sent with `close`;
            // a head the client has begun to send is waited for (as hyper waits for one), within
            // `http.header_read_timeout_ms` and the drain's grace period.
            match next {
                Next::KeepAlive => {}
                Next::Close => return None,
            }
        }
    }

    /// Reads until `input` starts with a whole request head the fast path takes, the client
    /// closes (or shutdown starts while it is idle), or the head is one to hand over.
    async fn read_head(
        &self,
        stream: &mut TcpStream,
        input: &mut BytesMut,
        mut cancelled: Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    ) -> Wait {
        loop {
            if !input.is_empty() {
                match wire::parse_request(input, &self.admission) {
                    Head::Take(taken) => return Wait::Head(taken),
                    Head::Decline => return Wait::Decline,
                    Head::Partial if input.len() >= MAX_HEAD_BYTES => return Wait::Decline,
                    Head::Partial => {}
                }
            }
            input.reserve(READ_CHUNK);
            let read = tokio::select! {
                biased;
                read = stream.read_buf(input) => read,
                () = cancelled.as_mut(), if input.is_empty() => return Wait::Close,
            };
            match read {
                Ok(0) | Err(_) => return Wait::Close,
                Ok(_) => {}
            }
        }
    }

    /// Serves one request: its answer written, its response body relayed.
    async fn answer(
        &self,
        client: &mut TcpStream,
        buffers: Buffers<'_>,
        request: Request<'_>,
        closing: Closing<'_>,
    ) -> Next {
        let Request { parts, sent_id, peer } = request;
        let (route_label, series) = match parts.uri.path() {
            "/" => (ROOT_ROUTE, &self.root_series),
            _ => (CATCH_ALL_ROUTE, &self.catch_all_series),
        };
        let method = parts.method.clone();
        // One clock reading for the request's start: its latency, its deadline.
        // Tokio's clock (paused in tests), as the route's deadline reads it.
        let arrived = tokio::time::Instant::now().into_std();
        // The client's head stays as sent: the request id goes upstream with the fields the
        // gateway sets (`headers::UpstreamFields`).
        let observed =
            ObservedRequest::begin_with_sent_id(&method, route_label, &parts.headers, sent_id, arrived);
        let request_id = observed.request_id_header();
        let (span, context) = (observed.span.clone(), observed.context.clone());
        let Buffers {
            output,
            upstream_head,
            answer_timer,
        } = buffers;
        upstream_head.clear();
        // `http.request_timeout_ms`, as the stack's timeout layer applies it.
        let request_deadline = tokio::time::Instant::from_std(arrived) + self.request_timeout;
        // Pinned in place (in this future's own state): the wrappers below then hold a pointer to
        // it, where taking it by value would move the whole (large) state machine into each, and
        // boxing it would cost an allocation and a copy per request.
        // A request cut short (the client left) is then dropped at the end of the block, outside
        // its span and request context: a `Drop` in it that logs has no request id.
        let incoming = Incoming {
            parts,
            request_id,
            peer,
            arrived,
        };
        let mut upstream_answer = None;
        let exchange = Exchange {
            request: upstream_head,
            answer: &mut upstream_answer,
        };
        // As hyper does, a client that closes its connection while its request is being served
        // ends the request: the upstream exchange is dropped (its connection with it).
        let outcome = {
            let working = std::pin::pin!(self.forward(incoming, request_deadline, exchange, answer_timer));
            let working = keel_telemetry::context::scope(context, working).instrument(span);
            tokio::select! {
                biased;
                outcome = working => outcome,
                () = client_gone(client) => return Next::Close,
            }
        };
        // Decided as late as possible: a shutdown that started meanwhile closes this connection.
        let close = closing.now();
        match outcome {
            Outcome::Local(response) | Outcome::TimedOut(response) => {
                let (mut head, body) = response.into_parts();
                observed.finish(
                    route_label,
                    head.status,
                    self.security.headers(),
                    &mut head.headers,
                );
                let body = axum::body::to_bytes(body, MAX_LOCAL_BODY)
                    .await
                    .unwrap_or_default();
                let length = HeaderValue::from(body.len());
                head.headers.insert(header::CONTENT_LENGTH, length);
                finish_head(&mut head.headers, close);
                wire::write_response_head(head.status, &head.headers, output);
                if method != Method::HEAD {
                    output.put_slice(&body);
                }
                match client.write_all(output).await {
                    Ok(()) if !close => Next::KeepAlive,
                    Ok(()) | Err(_) => Next::Close,
                }
            }
            Outcome::Upstream { status, answered_at } => {
                // `send` leaves the answer there whenever it answers `Upstream`.
                let Some(answer) = upstream_answer else {
                    tracing::error!("an upstream answer went missing; connection closed");
                    return Next::Close;
                };
                let request_id = observed.end_kept(series, status, answered_at);
                let close = close || answer.framing == Framing::UntilClose;
                let stamp = wire::Stamp {
                    request_id: request_id.as_ref(),
                    decision: answer.decision.as_ref(),
                    security: &self.security,
                    framing: answer.framing,
                    answers_head: method == Method::HEAD,
                    close,
                };
                let status_line = (status, answer.head.reason());
                wire::write_proxied_response_head(status_line, answer.head.fields(), &stamp, output);
                let relayed = self.relay(client, output, answer).await;
                match relayed {
                    Ok(()) if !close => Next::KeepAlive,
                    Ok(()) | Err(()) => Next::Close,
                }
            }
        }
    }

    /// Routes, admits and forwards a request (by `request_deadline`, writing the upstream request
    /// and its answer in `exchange`, waiting for the answer on `answer_timer`); the answer to
    /// write.
    async fn forward(
        &self,
        incoming: Incoming<'_>,
        request_deadline: tokio::time::Instant,
        exchange: Exchange<'_>,
        answer_timer: Pin<&mut tokio::time::Sleep>,
    ) -> Outcome {
        let Incoming {
            parts,
            request_id,
            peer,
            arrived: received,
        } = incoming;
        let routing = self.proxy.routing.load_full();
        let path = parts.uri.path();
        let found = match has_dot_segment(path) {
            true => Err(ProxyError::DotSegment),
            false => routing
                .table
                .find(path, &parts.method)
                .map_err(|allowed| match allowed.is_empty() {
                    true => ProxyError::NoRoute,
                    false => ProxyError::MethodNotAllowed { allowed },
                }),
        };
        let (route, matched) = match found {
            Ok(found) => found,
            Err(error) => {
                let response = self
                    .proxy
                    .unrouted(&routing, &error, &parts.headers, Some(peer))
                    .await;
                metrics::request(UNMATCHED_ROUTE, NO_SERVICE, response.status());
                metrics::request_duration(UNMATCHED_ROUTE, received.elapsed());
                return Outcome::Local(Box::new(response));
            }
        };
        // A timer only when admission has to wait (a token to verify, a permission to ask).
        let admitted = tokio::time::timeout_at(
            request_deadline,
            self.proxy
                .admit(&routing, route, parts, Body::empty(), request_id, Some(peer)),
        );
        let outcome = match admitted.await {
            Err(_) => self.timed_out(),
            Ok(Err(refused)) => Outcome::Local(Box::new(refused)),
            Ok(Ok(admitted)) => {
                let deadlines = Deadlines {
                    request: request_deadline,
                    timer: answer_timer,
                };
                let incoming = Incoming {
                    parts,
                    request_id,
                    peer,
                    arrived: received,
                };
                self.send(route, matched, incoming, admitted, deadlines, exchange)
                    .await
            }
        };
        let (status, finished) = match &outcome {
            Outcome::Local(response) => (response.status(), Instant::now()),
            Outcome::Upstream { status, answered_at } => (*status, *answered_at),
            // On the general path the stack's timeout drops the proxy before it counts anything.
            Outcome::TimedOut(_) => return outcome,
        };
        route
            .metrics
            .answered(status, finished.saturating_duration_since(received));
        outcome
    }

    /// The stack's answer to a request over `http.request_timeout_ms`.
    fn timed_out(&self) -> Outcome {
        tracing::warn!(
            timeout_ms = self.request_timeout.as_millis() as u64,
            "request timed out"
        );
        let problem = keel_http::request_timeout_problem(self.request_timeout);
        Outcome::TimedOut(Box::new(axum::response::IntoResponse::into_response(problem)))
    }

    /// Sends an admitted request upstream and reads the response head, by the route's deadline
    /// (504) or the request's (503), whichever comes first: one timer for both.
    async fn send(
        &self,
        route: &crate::proxy::Route,
        matched: usize,
        incoming: Incoming<'_>,
        admitted: Admitted,
        deadlines: Deadlines<'_>,
        exchange: Exchange<'_>,
    ) -> Outcome {
        let request_deadline = deadlines.request;
        let service = route.upstream.service();
        let Admitted {
            principal,
            origin,
            decision,
            deadline,
            ..
        } = admitted;
        let failed = |error: ProxyError| {
            Outcome::Local(Box::new(with_decision(fail(service, &error), decision.as_ref())))
        };
        let Exchange { request, answer } = exchange;
        let parts = incoming.parts;
        let outbound = match prepare_upstream(
            route,
            matched,
            parts,
            incoming.request_id,
            principal.as_deref(),
            origin,
        ) {
            Ok(outbound) => outbound,
            Err(error) => return failed(error),
        };
        wire::write_request_head(parts, &outbound.uri, &outbound.fields, request);
        let safe = matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || parts.method.as_str() == "QUERY";
        let authority = outbound.pick.endpoint();
        let started = Instant::now();
        let sent = {
            // Pinned in place, as `answer` pins the request's future: not moved into each wrapper.
            let exchange = std::pin::pin!(self.upstreams.exchange(authority, request, safe, started));
            let exchange = exchange.instrument(outbound.span);
            tokio::select! {
                biased;
                sent = exchange => Ok(sent),
                () = expires(deadlines.timer, deadline.min(request_deadline)) => Err(()),
            }
        };
        // One clock reading for the end of the exchange and of the request's latency.
        let answered_at = Instant::now();
        route
            .metrics
            .upstream_duration(answered_at.saturating_duration_since(started));
        match sent {
            Ok(Ok((head, connection))) => {
                outbound.pick.succeeded();
                let framing = match wire::response_framing(&parts.method, head.status, head.fields()) {
                    Ok(framing) => framing,
                    Err(why) => {
                        return failed(ProxyError::Exchange {
                            service: service.to_owned(),
                            authority: authority.to_owned(),
                            source: UpstreamError::Malformed(why),
                        });
                    }
                };
                let reusable = framing != Framing::UntilClose && keeps_alive(&head);
                // The hop-by-hop fields are left out, and the decision's headers added, as the
                // head is written (`wire::write_proxied_response_head`).
                let status = head.status;
                *answer = Some(UpstreamAnswer {
                    head,
                    framing,
                    connection,
                    reusable,
                    authority: Arc::clone(&outbound.pick.payload().authority),
                    decision,
                });
                Outcome::Upstream { status, answered_at }
            }
            Ok(Err(source)) if source.is_connect() => {
                outbound.pick.failed();
                failed(ProxyError::Connect {
                    service: service.to_owned(),
                    authority: authority.to_owned(),
                    source,
                })
            }
            Ok(Err(source)) => failed(ProxyError::Exchange {
                service: service.to_owned(),
                authority: authority.to_owned(),
                source,
            }),
            Err(_) if request_deadline <= deadline => self.timed_out(),
            Err(_) => failed(ProxyError::Timeout {
                service: service.to_owned(),
                authority: authority.to_owned(),
                after: route.timeout,
            }),
        }
    }

    /// Writes `output` (the response head) with the body as it comes from the upstream; the
    /// connection goes back to the pool when the body ended cleanly. `Err` when either side
    /// failed (the client connection is then closed: its response is cut short).
    async fn relay(
        &self,
        client: &mut TcpStream,
        output: &mut BytesMut,
        answer: UpstreamAnswer,
    ) -> Result<(), ()> {
        let UpstreamAnswer {
            framing,
            mut connection,
            reusable,
            authority,
            ..
        } = answer;
        let ended = match framing {
            Framing::Empty => {
                client.write_all(output).await.map_err(drop)?;
                true
            }
            Framing::Length(length) => relay_length(client, output, &mut connection, length).await?,
            Framing::Chunked => relay_chunked(client, output, &mut connection).await?,
            Framing::UntilClose => {
                relay_until_close(client, output, &mut connection).await?;
                false
            }
        };
        if ended && reusable {
            self.upstreams.checkin(&authority, connection);
        }
        Ok(())
    }
}

/// A request as read from the client.
struct Request<'a> {
    /// Its head.
    parts: &'a http::request::Parts,
    /// Its first `X-Request-ID` field.
    sent_id: Option<&'a HeaderValue>,
    /// The connection's peer.
    peer: SocketAddr,
}

/// The request being served, as the client sent it.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    /// Its head.
    parts: &'a http::request::Parts,
    /// The stack's id for it (`ObservedRequest::request_id_header`).
    request_id: Option<&'a HeaderValue>,
    /// The connection's peer.
    peer: SocketAddr,
    /// When its head had been read (its latency counts from then).
    arrived: Instant,
}

/// The connection's buffers (and timer) a request uses.
struct Buffers<'a> {
    /// What goes to the client.
    output: &'a mut BytesMut,
    /// The request head for the upstream.
    upstream_head: &'a mut BytesMut,
    /// Times the upstream's answer.
    answer_timer: Pin<&'a mut tokio::time::Sleep>,
}

/// By when an upstream's answer must have come: the request's own deadline
/// (`http.request_timeout_ms`), and the connection's timer to wait for it and the route's on.
struct Deadlines<'a> {
    request: tokio::time::Instant,
    timer: Pin<&'a mut tokio::time::Sleep>,
}

/// Completes at `deadline`, on `timer`: a timer kept for a connection's life for deadlines that
/// come later and later (each request's, from its start). Instead of being moved (taken out of
/// the runtime's timer wheel and put back) for every request, it is moved when it fires before the
/// deadline it is waited for, at most once per timeout's length; only a deadline earlier than
/// the one it is set for (a route with a shorter timeout) moves it at once.
async fn expires(mut timer: Pin<&mut tokio::time::Sleep>, deadline: tokio::time::Instant) {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        timer.as_mut().await;
        if timer.deadline() >= deadline {
            return;
        }
        timer.as_mut().reset(deadline);
    }
}

/// Whether a connection closes after the request being served.
struct Closing<'a> {
    /// The client asked (`Connection: close`).
    requested: bool,
    shutdown: &'a tokio_util::sync::CancellationToken,
}

impl Closing<'_> {
    /// Whether the answer must say `Connection: close`: the client asked, or shutdown started.
    fn now(&self) -> bool {
        self.requested || self.shutdown.is_cancelled()
    }
}

/// Completes when the client has closed its connection (or it failed); pends forever once the
/// client has sent more (a pipelined request: it is still there).
async fn client_gone(client: &TcpStream) {
    let mut probe = [0_u8; 1];
    let peeked = std::future::poll_fn(|context| {
        let mut buffer = tokio::io::ReadBuf::new(&mut probe);
        client.poll_peek(context, &mut buffer)
    })
    .await;
    match peeked {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// What a request is answered with. Small, because it is moved up through every future that
/// polls the request's (the request context's, the span's, `select!`'s): an upstream's answer,
/// a few hundred bytes, waits in [`Exchange::answer`] instead, and the gateway's own answers
/// (errors, refusals: rare) are boxed.
enum Outcome {
    /// An answer of the gateway's own (a problem, a refusal).
    Local(Box<Response>),
    /// The stack's 503 for a request over `http.request_timeout_ms`.
    TimedOut(Box<Response>),
    /// The upstream answered with `status` at `answered_at`: the head is in
    /// [`Exchange::answer`], its body still to relay.
    Upstream {
        status: http::StatusCode,
        answered_at: Instant,
    },
}

/// What the upstream exchange of a request writes: kept in the state of the future serving the
/// request, so that nothing large moves up through the futures between.
struct Exchange<'a> {
    /// The request head for the upstream.
    request: &'a mut BytesMut,
    /// The upstream's answer, once its head has come.
    answer: &'a mut Option<UpstreamAnswer>,
}

struct UpstreamAnswer {
    head: ResponseHead,
    framing: Framing,
    connection: Connection,
    /// The upstream keeps the connection open after this response.
    reusable: bool,
    /// The instance's `host:port`, whose pool the connection goes back to.
    authority: Arc<str>,
    /// The rate-limit decision whose headers go on the answer.
    decision: Option<keel_ratelimit::Decision>,
}

/// Whether the upstream keeps the connection of `head` open.
fn keeps_alive(head: &ResponseHead) -> bool {
    let close = head
        .fields()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, value)| headers::connection_options(value))
        .any(|option| option.eq_ignore_ascii_case(b"close"));
    head.version == Version::HTTP_11 && !close
}

/// Adds `Date` when missing (as hyper does) and `Connection: close` when the connection ends
/// after this response (an answer of the gateway's own).
fn finish_head(headers: &mut HeaderMap, close: bool) {
    if !headers.contains_key(header::DATE)
        && let Ok(date) = wire::with_date(HeaderValue::from_bytes)
    {
        headers.insert(header::DATE, date);
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Relays a body of `length` bytes; whether the upstream connection ended exactly at its end.
async fn relay_length(
    client: &mut TcpStream,
    output: &mut BytesMut,
    connection: &mut Connection,
    length: u64,
) -> Result<bool, ()> {
    let mut remaining = length;
    loop {
        let take = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(connection.buffer.len());
        output.put_slice(&connection.buffer.split_to(take));
        remaining -= take as u64;
        client.write_all(output).await.map_err(drop)?;
        output.clear();
        if remaining == 0 {
            // More than the declared length: the connection's state is unknown.
            return Ok(connection.buffer.is_empty());
        }
        read_more(connection).await?;
    }
}

/// Relays a chunked body as it comes; whether it ended cleanly.
async fn relay_chunked(
    client: &mut TcpStream,
    output: &mut BytesMut,
    connection: &mut Connection,
) -> Result<bool, ()> {
    let mut scanner = ChunkedScanner::new();
    loop {
        let scanned = scanner.scan(&connection.buffer);
        let take = match scanned {
            Ok(take) | Err((take, _)) => take,
        };
        output.put_slice(&connection.buffer.split_to(take));
        if let Err((_, why)) = scanned {
            // What was valid goes out; the client sees the body end early (the connection closes).
            tracing::debug!(why, "malformed chunked body from an upstream; response cut short");
            let _ = client.write_all(output).await;
            return Err(());
        }
        client.write_all(output).await.map_err(drop)?;
        output.clear();
        if scanner.is_done() {
            return Ok(connection.buffer.is_empty());
        }
        read_more(connection).await?;
    }
}

/// Relays a body delimited by the end of the connection.
async fn relay_until_close(
    client: &mut TcpStream,
    output: &mut BytesMut,
    connection: &mut Connection,
) -> Result<(), ()> {
    loop {
        output.put_slice(&connection.buffer.split());
        client.write_all(output).await.map_err(drop)?;
        output.clear();
        connection.buffer.reserve(READ_CHUNK);
        match connection.stream.read_buf(&mut connection.buffer).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(()),
        }
    }
}

/// Reads the next bytes of a body; `Err` when the connection ended before the body did.
async fn read_more(connection: &mut Connection) -> Result<(), ()> {
    connection.buffer.reserve(READ_CHUNK);
    match connection.stream.read_buf(&mut connection.buffer).await {
        Ok(0) | Err(_) => Err(()),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// Runs `expires` on `timer` for `after` from now; when it completed, from the start.
    async fn waited(timer: Pin<&mut tokio::time::Sleep>, after: Duration) -> Duration {
        let start = Instant::now();
        expires(timer, start + after).await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_expires_at_each_deadline_later_or_earlier() {
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        assert_eq!(
            waited(timer.as_mut(), Duration::from_secs(10)).await,
            Duration::from_secs(10)
        );
        // Later deadlines, one after the other, each waited for in full.
        assert_eq!(
            waited(timer.as_mut(), Duration::from_secs(30)).await,
            Duration::from_secs(30)
        );
        // An earlier one than the timer is set for (a route with a shorter timeout).
        let start = Instant::now();
        let abandoned = tokio::time::timeout(
            Duration::from_secs(1),
            expires(timer.as_mut(), start + Duration::from_secs(60)),
        );
        assert!(
            abandoned.await.is_err(),
            "a deadline 60 s away is not reached after 1 s"
        );
        assert_eq!(
            waited(timer.as_mut(), Duration::from_millis(300)).await,
            Duration::from_millis(300)
        );
        // A wait abandoned early leaves the timer set for its deadline; the next, later, still
        // waits for its own in full.
        let abandoned = tokio::time::timeout(
            Duration::from_secs(2),
            expires(timer.as_mut(), Instant::now() + Duration::from_secs(5)),
        );
        assert!(abandoned.await.is_err());
        assert_eq!(
            waited(timer.as_mut(), Duration::from_secs(8)).await,
            Duration::from_secs(8)
        );
        // A deadline already passed: at once.
        assert_eq!(waited(timer.as_mut(), Duration::ZERO).await, Duration::ZERO);
    }
}
