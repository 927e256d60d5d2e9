//! The HTTP server foundation every Keel service is built on.
//!
//! Why this crate exists: every service must answer the same way at the edge (problem+json errors,
//! `X-Request-ID` on every response, the same metrics and log fields, the same shutdown
//! behaviour), and that is only true if they share one stack rather than each wiring its own.
//!
//! - [`Problem`] is the RFC 9457 error body every endpoint returns; [`Json`] is the body extractor
//!   whose rejections are problems with field paths.
//! - [`Stack`] wraps a service's `Router` in the middleware stack, in a documented order.
//! - [`HttpServer`] binds, serves HTTP/1.1 and HTTP/2 (h2c) with graceful shutdown and a drain
//!   deadline, within [`ConnectionLimits`] (header read timeout, header parser limits); a
//!   [`ConnectionFront`] may serve a connection's plain HTTP/1.1 requests before the router does.
//! - [`ops_router`] serves `/healthz`, `/ready` and `/metrics`; [`openapi_router`] a service's
//!   OpenAPI document at `/api/v1/<service>/openapi.json`.

mod front;
mod json;
mod middleware;
mod objects_only;
mod openapi;
mod ops;
mod path;
mod problem;
mod request_id;
mod server;
mod shared_value;

pub use front::{ConnectionFront, FrontConnection, Handover};
pub use json::Json;
pub use middleware::{
    ObservedRequest, RouteSeries, SecurityHeaders, Stack, request_timeout_problem, security_headers_of,
};
pub use openapi::{
    BEARER_SCHEME, InternalError, JsonBodyErrors, Unauthenticated, openapi_path, openapi_router,
    problem_response,
};
pub use ops::{OPS_PATHS, ops_router};
pub use path::Path;
pub use problem::{FieldError, Problem};
pub use request_id::{REQUEST_ID_HEADER, REQUEST_ID_HEADER_NAME, RequestId};
pub use server::{ConnectionLimits, ConnectionTasks, HttpError, HttpServer};
pub use shared_value::shared_header_value;
