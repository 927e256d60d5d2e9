//! The `tracing` subscriber: formatted log lines plus the OpenTelemetry bridge.

use std::io::IsTerminal;

use keel_config::{Config, LogConfig, LogFormat, TraceExporter, TracesConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::{EnvFilter, Registry};

use crate::tracer::{TelemetryError, TelemetryGuard, build_tracer_provider};

/// A subscriber and the tracer provider feeding its OpenTelemetry layer.
pub struct SubscriberParts {
    /// The subscriber, to install globally ([`init`]) or per test (`tracing::subscriber::set_default`).
    pub subscriber: Box<dyn Subscriber + Send + Sync>,
    /// The provider; keep it alive as long as the subscriber and shut it down to flush spans.
    pub provider: SdkTracerProvider,
}

/// Builds the subscriber for `log` writing to `writer`, with spans bridged to `provider`, which
/// sends them where `traces` says.
///
/// `RUST_LOG`, when set in the process, wins over `log.level`. Tests pass their own writer to read
/// what was logged.
pub fn build_subscriber<W>(
    log: &LogConfig,
    traces: &TracesConfig,
    provider: SdkTracerProvider,
    writer: W,
) -> Result<SubscriberParts, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let directive = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| log.level.clone());
    let filter = EnvFilter::builder()
        .parse(&directive)
        .map_err(|e| TelemetryError::Filter {
            directive: directive.clone(),
            reason: e.to_string(),
        })?;

    // Colour only for people: a readable format on a terminal, unless NO_COLOR says otherwise.
    let ansi = log.format != LogFormat::Json
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(true)
        .with_ansi(ansi);
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
        LogFormat::Pretty => fmt.pretty().boxed(),
        LogFormat::Compact => fmt.compact().boxed(),
    };
    let tracer = provider.tracer("keel");
    // A span's busy and idle times (attributes of the exported span) cost two clock reads each
    // time it is entered and left, several times per request: only worth it when spans are
    // exported. Trace ids are made and propagated either way.
    let exported = traces.exporter != TraceExporter::None;
    let otel_layer: Box<dyn Layer<Registry> + Send + Sync> = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(exported)
        .boxed();
    let subscriber = Registry::default().with(vec![fmt_layer, otel_layer]).with(filter);
    Ok(SubscriberParts {
        subscriber: Box::new(subscriber),
        provider,
    })
}

/// Installs logging and tracing for this process from `config`, and the metrics recorder.
/// Call once, inside the Tokio runtime, before anything logs. Configuration warnings (unknown
/// `KEEL_` variables) are logged right after, since logging did not exist when they were found.
pub fn init(config: &Config) -> Result<TelemetryGuard, TelemetryError> {
    let kernel = config.kernel();
    let provider = build_tracer_provider(&kernel.telemetry.traces, &kernel.app.name)?;
    let telemetry = &kernel.telemetry;
    let parts = build_subscriber(&telemetry.log, &telemetry.traces, provider, std::io::stdout)?;
    tracing::subscriber::set_global_default(parts.subscriber)
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    // Route `log` records of dependencies (sqlx, hyper) into tracing.
    let _ = tracing_log::LogTracer::init();
    crate::metrics::install();
    for warning in config.warnings() {
        tracing::warn!(target: "keel::config", "{warning}");
    }
    Ok(TelemetryGuard::new(parts.provider))
}
