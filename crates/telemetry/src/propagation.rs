//! W3C trace-context (`traceparent`, `tracestate`) in and out of HTTP headers.
//!
//! gRPC metadata travels as HTTP/2 headers, so the same two functions serve HTTP and gRPC, servers
//! and clients. The propagator is used directly rather than through OpenTelemetry's global, so
//! nothing depends on what another part of the process installed.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// An injector handing each field to a closure, for code that writes heads without a `HeaderMap`.
struct FieldInjector<F>(F);

impl<F: FnMut(HeaderName, HeaderValue)> Injector for FieldInjector<F> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            (self.0)(name, value);
        }
    }
}

/// The remote parent context carried by `headers` (an empty context when there is none or it is
/// malformed; a malformed `traceparent` starts a new trace rather than failing the request).
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `context`'s span as `traceparent` (and `tracestate`) into `headers`.
pub fn inject(context: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

/// Makes `span` (a server's request span, declared with an empty `trace_id` field) continue the
/// trace `headers` carry, or start a new one, and records the resulting trace id in `trace_id`, so
/// every log line inside the span shows it. HTTP and gRPC servers both call this.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    // A span no layer records (every filter left it out) has no trace to join or to show.
    if span.is_disabled() {
        return;
    }
    let _ = span.set_parent(extract(headers));
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Writes the current `tracing` span's trace context into `headers`, for an outgoing call.
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&tracing::Span::current().context(), headers);
}

/// Hands the current `tracing` span's trace context to `add`, field by field (`traceparent`, and
/// `tracestate` when there is one), as [`inject_current`] writes them into a `HeaderMap`; nothing
/// when the span has no valid trace context.
pub fn inject_current_fields(add: impl FnMut(HeaderName, HeaderValue)) {
    TraceContextPropagator::new()
        .inject_context(&tracing::Span::current().context(), &mut FieldInjector(add));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_survives_extract_then_inject() {
        let mut incoming = HeaderMap::new();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        incoming.insert("traceparent", HeaderValue::from_static(traceparent));
        let context = extract(&incoming);
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut outgoing = HeaderMap::new();
        inject(&context, &mut outgoing);
        assert_eq!(
            outgoing.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(traceparent)
        );
    }

    #[test]
    fn fields_are_handed_out_as_they_would_be_inserted() {
        let mut incoming = HeaderMap::new();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        incoming.insert("traceparent", HeaderValue::from_static(traceparent));
        incoming.insert("tracestate", HeaderValue::from_static("vendor=value"));
        let context = extract(&incoming);
        let mut fields = Vec::new();
        TraceContextPropagator::new().inject_context(
            &context,
            &mut FieldInjector(|name, value| fields.push((name, value))),
        );
        let mut outgoing = HeaderMap::new();
        inject(&context, &mut outgoing);
        assert_eq!(fields.len(), 2);
        for (name, value) in &fields {
            assert_eq!(outgoing.get(name), Some(value), "{name}");
        }
        // No span, no trace context: nothing to hand out.
        let mut none = Vec::new();
        inject_current_fields(|name, value| none.push((name, value)));
        assert!(none.is_empty());
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", HeaderValue::from_static("garbage"));
        assert!(!extract(&incoming).span().span_context().is_valid());
    }
}
