//! The OpenTelemetry tracer provider: ids always, export as configured.

use std::time::Duration;

use keel_config::{TraceExporter, TracesConfig};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// How long shutdown waits for buffered spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from its settings.
    #[error("cannot build the OTLP span exporter for {endpoint}: {reason}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// What the exporter said.
        reason: String,
    },
    /// The log filter directive does not parse.
    #[error("invalid log filter {directive:?} (telemetry.log.level or RUST_LOG): {reason}")]
    Filter {
        /// The directive as given.
        directive: String,
        /// What the parser said.
        reason: String,
    },
    /// A global subscriber was installed already (telemetry initialised twice).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialised,
}

/// A tracer provider for `service_name` exporting as `config` says. With the `none` exporter it still
/// creates and samples spans, so trace ids exist for logs and propagation. An OTLP exporter must be
/// built inside a Tokio runtime (its gRPC channel belongs to the runtime).
pub fn build_tracer_provider(
    config: &TracesConfig,
    service_name: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler);
    let builder = match config.exporter {
        TraceExporter::None => builder,
        TraceExporter::Stdout => builder.with_batch_exporter(opentelemetry_stdout::SpanExporter::default()),
        TraceExporter::Otlp => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.otlp_endpoint.clone())
                .with_timeout(FLUSH_TIMEOUT)
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint: config.otlp_endpoint.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_batch_exporter(exporter)
        }
    };
    Ok(builder.build())
}

/// Keeps telemetry alive; flushes buffered spans when shut down or dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    pub(crate) fn new(provider: SdkTracerProvider) -> Self {
        Self {
            provider: Some(provider),
        }
    }

    /// Flushes and stops span export. Called by the kernel as the last step of shutdown.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(%error, "span export did not shut down cleanly");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}
