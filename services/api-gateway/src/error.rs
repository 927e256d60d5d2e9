//! What can go wrong: at start-up ([`GatewayError`], for the operator) and per request
//! ([`ProxyError`], for the client, as problem+json).
//!
//! When to use which: a `GatewayError` stops the process from starting (bad routes, a registry
//! that cannot be watched); a `ProxyError` is one request's failure and becomes one response,
//! mapped to its status in exactly one place ([`ProxyError::problem`]).

use std::time::Duration;

use http::StatusCode;
use keel_config::ConfigError;
use keel_http::Problem;
use keel_registry::RegistryError;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The `gateway` section is missing or has the wrong shape.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The section parses but breaks a rule: a malformed or repeated prefix, an unnamed service, a
    /// zero timeout. Lists every problem found, each naming its key.
    #[error("invalid gateway configuration: {}", .problems.join("; "))]
    InvalidConfig {
        /// One message per problem, e.g. ``gateway.routes[2].prefix `/api//x` has an empty segment``.
        problems: Vec<String>,
    },
    /// The `ratelimit` section cannot give a limiter (e.g. `redis` without a URL).
    #[error("rate limits: {0}")]
    RateLimit(#[from] keel_ratelimit::RateLimitError),
    /// The registry refused to watch a routed service.
    #[error("cannot watch service `{service}` in the registry: {source}")]
    Registry {
        /// The service the gateway routes to.
        service: String,
        /// The registry's reason.
        source: RegistryError,
    },
}

/// Why one request could not be proxied. Crate-private: clients see its [`Problem`], operators its
/// log line and the `keel_gateway_upstream_errors_total` counter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No route's prefix matches the path.
    #[error("no route matches the path")]
    NoRoute,
    /// Module routes match the path, but none with the request's method (nor does any other
    /// route).
    #[error("the path's routes do not answer this method")]
    MethodNotAllowed {
        /// The methods they answer, for `Allow`.
        allowed: Vec<http::Method>,
    },
    /// The path has a `.` or `..` segment.
    #[error("the path has a dot segment")]
    DotSegment,
    /// The request has more header fields than `gateway.max_headers`.
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// The request's header section is larger than `gateway.max_header_bytes`.
    #[error("header section over {max_bytes} bytes")]
    HeadersTooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// The request body is larger than the route's limit (declared, or counted as it streamed).
    #[error("request body over the route's limit of {limit} bytes")]
    BodyTooLarge {
        /// The route's limit.
        limit: u64,
    },
    /// The client's request body broke off (or failed) while the gateway was reading it to send
    /// it whole (`gateway.upstream.buffer_body_bytes`).
    #[error("the request body could not be read: {source}")]
    ClientBody {
        /// What the server reported.
        source: axum::Error,
    },
    /// The client did not send its declared request body within the route's timeout.
    #[error("the request body did not arrive within {} ms", .after.as_millis())]
    ClientBodyTimeout {
        /// The route's timeout.
        after: Duration,
    },
    /// The route's service has no healthy instance with an `http` port.
    #[error("no healthy instance of `{service}`")]
    NoInstance {
        /// The routed service.
        service: String,
    },
    /// The instance's address does not make a URI (the registry accepted something odd).
    #[error("instance `{authority}` of `{service}` does not make an upstream URI: {source}")]
    BadTarget {
        /// The routed service.
        service: String,
        /// The instance's `host:port`.
        authority: String,
        /// Why it is not a URI.
        source: http::Error,
    },
    /// The instance could not be connected to (refused, unreachable, connect timeout).
    #[error("cannot connect to `{service}` at {authority}: {}", chain(.source))]
    Connect {
        /// The routed service.
        service: String,
        /// The instance's `host:port`.
        authority: String,
        /// What failed.
        source: crate::pool::UpstreamError,
    },
    /// The request was sent but the exchange failed (connection reset, malformed response).
    #[error("request to `{service}` at {authority} failed: {}", chain(.source))]
    Exchange {
        /// The routed service.
        service: String,
        /// The instance's `host:port`.
        authority: String,
        /// What failed.
        source: crate::pool::UpstreamError,
    },
    /// No response head within the route's timeout.
    #[error("`{service}` at {authority} did not answer within {} ms", .after.as_millis())]
    Timeout {
        /// The routed service.
        service: String,
        /// The instance's `host:port`.
        authority: String,
        /// The route's timeout.
        after: Duration,
    },
}

impl ProxyError {
    /// The `kind` label of `keel_gateway_upstream_errors_total`; `None` for failures that never
    /// reached an upstream.
    pub(crate) fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Self::NoRoute
            | Self::MethodNotAllowed { .. }
            | Self::DotSegment
            | Self::TooManyHeaders { .. }
            | Self::HeadersTooLarge { .. }
            | Self::BodyTooLarge { .. }
            | Self::ClientBody { .. }
            | Self::ClientBodyTimeout { .. } => None,
            Self::NoInstance { .. } => Some("no_instance"),
            Self::BadTarget { .. } => Some("bad_target"),
            Self::Connect { .. } => Some("connect"),
            Self::Exchange { .. } => Some("exchange"),
            Self::Timeout { .. } => Some("timeout"),
        }
    }

    /// The client's answer. Details name the service but never an address or a cause.
    pub(crate) fn problem(&self) -> Problem {
        match self {
            Self::NoRoute => Problem::not_found("no route matches this path"),
            Self::MethodNotAllowed { allowed } => Problem::method_not_allowed()
                .with_detail(format!("this path answers {}", allow_header(allowed))),
            Self::DotSegment => Problem::bad_request("the path must not contain `.` or `..` segments"),
            Self::TooManyHeaders { max } => {
                headers_too_large(format!("the request has more than {max} header fields"))
            }
            Self::HeadersTooLarge { max_bytes } => headers_too_large(format!(
                "the request's header fields exceed the limit of {max_bytes} bytes"
            )),
            Self::BodyTooLarge { limit } => {
                Problem::payload_too_large(usize::try_from(*limit).unwrap_or(usize::MAX))
            }
            Self::ClientBody { .. } => {
                Problem::bad_request("the request body could not be read to its declared Content-Length")
            }
            Self::ClientBodyTimeout { after } => {
                Problem::new(StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout").with_detail(
                    format!("the request body did not arrive within {} ms", after.as_millis()),
                )
            }
            Self::NoInstance { service } => {
                Problem::unavailable(format!("no instance of the {service} service is available"))
                    .with_retry_after(1)
            }
            Self::BadTarget { service, .. } | Self::Connect { service, .. } => {
                bad_gateway(format!("the {service} service could not be reached"))
            }
            Self::Exchange { service, .. } => {
                bad_gateway(format!("the {service} service did not answer properly"))
            }
            Self::Timeout { service, after, .. } => {
                Problem::new(StatusCode::GATEWAY_TIMEOUT, "gateway-timeout", "Gateway timeout").with_detail(
                    format!(
                        "the {service} service did not answer within {} ms",
                        after.as_millis()
                    ),
                )
            }
        }
    }
}

/// The value of an `Allow` header listing `methods`.
pub(crate) fn allow_header(methods: &[http::Method]) -> String {
    methods
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn headers_too_large(detail: String) -> Problem {
    Problem::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "header-fields-too-large",
        "Request header fields too large",
    )
    .with_detail(detail)
}

fn bad_gateway(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway").with_detail(detail)
}

/// An error and its causes on one line: hyper's own message ("client error (Connect)") does not
/// say what happened.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_status_and_names_the_service_without_an_address() {
        let timeout = ProxyError::Timeout {
            service: "authz".into(),
            authority: "10.0.0.5:8083".into(),
            after: Duration::from_millis(250),
        };
        let cases = [
            (ProxyError::NoRoute, 404, None),
            (
                ProxyError::MethodNotAllowed {
                    allowed: vec![http::Method::GET, http::Method::HEAD],
                },
                405,
                None,
            ),
            (ProxyError::DotSegment, 400, None),
            (ProxyError::TooManyHeaders { max: 100 }, 431, None),
            (ProxyError::HeadersTooLarge { max_bytes: 32 }, 431, None),
            (ProxyError::BodyTooLarge { limit: 10 }, 413, None),
            (
                ProxyError::ClientBody {
                    source: axum::Error::new(std::io::Error::other("stream reset")),
                },
                400,
                None,
            ),
            (
                ProxyError::ClientBodyTimeout {
                    after: Duration::from_millis(300),
                },
                408,
                None,
            ),
            (
                ProxyError::NoInstance {
                    service: "audit".into(),
                },
                503,
                Some("audit"),
            ),
            (timeout, 504, Some("authz")),
        ];
        for (error, status, service) in cases {
            let problem = error.problem();
            assert_eq!(problem.status, status, "{error}");
            let detail = problem.detail.unwrap_or_default();
            if let Some(service) = service {
                assert!(detail.contains(service), "{detail}");
            }
            assert!(!detail.contains("10.0.0.5"), "{detail}");
        }
    }
}
