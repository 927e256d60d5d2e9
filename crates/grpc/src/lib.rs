//! The gRPC foundation: the server every service's gRPC API runs on, and the client layer every
//! caller wraps its channel in.
//!
//! Why this crate exists: calls between services must carry the request id and the trace context,
//! respect deadlines, and be counted the same way whoever makes them, or one request can no longer
//! be followed across services. Both sides are tower layers over the HTTP/2 requests tonic makes, so
//! they see the same headers the HTTP stack does:
//!
//! - [`ServerLayer`]: request id from `x-request-id` metadata (or a new one), a request span parented
//!   on the caller's `traceparent`, the request context, and `keel_grpc_requests_total` /
//!   `keel_grpc_request_duration_seconds` by service, method and gRPC status code.
//! - [`ClientLayer`]: a client span, `traceparent` and `x-request-id` injected, a default deadline
//!   (`grpc-timeout`) when the caller set none, and the client-side metrics.
//! - [`GrpcServer`]: binds, adds the standard `grpc.health.v1.Health` service, caps deadlines, and
//!   shuts down gracefully within a drain deadline.

mod client;
mod metered;
mod server;

pub use client::{ClientLayer, ClientService, GrpcClientError, connect_lazy};
pub use server::{GrpcError, GrpcServer, Layered, ServerLayer, ServerService};
/// The standard health service's reporter, to mark services serving or not.
pub use tonic_health::server::HealthReporter;

/// `/package.Service/Method` → (`package.Service`, `Method`); unknown shapes become `unknown`.
pub(crate) fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(service), Some(method)) if !service.is_empty() && !method.is_empty() => {
            (service.to_owned(), method.to_owned())
        }
        _ => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/keel.identity.v1.Identity/GetUser"),
            ("keel.identity.v1.Identity".into(), "GetUser".into())
        );
        assert_eq!(split_path("/garbage"), ("unknown".into(), "unknown".into()));
    }
}
