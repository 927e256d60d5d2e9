//! Logs, traces and metrics for every Keel process, set up one way.
//!
//! Why this crate exists: correlation only works when every process logs, traces and counts alike.
//! [`init`] installs, once per process:
//! - a `tracing` subscriber writing JSON (production) or readable lines (development), filtered by
//!   `RUST_LOG` or `telemetry.log.level`; every line inside a request carries that request's
//!   `request_id` and `trace_id` because they are fields of the request span;
//! - an OpenTelemetry tracer provider behind `tracing` (spans become OTel spans), exporting to
//!   stdout or OTLP, or only making ids when export is off;
//! - the Prometheus recorder behind the `metrics` macros ([`metrics::install`]).
//!
//! [`propagation`] carries the W3C `traceparent` across HTTP and gRPC, in and out, so one trace
//! spans every service a request touches; [`context`] carries the request id and user id to code
//! that has no request at hand (outgoing calls, the error bus).

pub mod context;
mod logging;
pub mod metrics;
pub mod propagation;
mod tracer;

pub use logging::{SubscriberParts, build_subscriber, init};
pub use tracer::{TelemetryError, TelemetryGuard, build_tracer_provider};

/// Name of the span every HTTP or gRPC server opens per request; its fields (`request_id`,
/// `trace_id`, `user_id`) are what puts them on every log line of the request.
pub const REQUEST_SPAN: &str = "request";
