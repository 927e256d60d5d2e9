//! Shared set-up: configuration from the shipped files, a per-test subscriber with captured logs.

use keel_config::{Config, ConfigLoader, LogConfig, LogFormat, TraceExporter, TracesConfig};
use keel_testkit::{LogCapture, config_dir};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Configuration from the shipped files plus `vars`, on free ports.
pub(crate) fn config(vars: &[(&str, &str)]) -> Config {
    let mut loader = ConfigLoader::new(config_dir()).with_var("KEEL_HTTP__PORT", "0");
    for (name, value) in vars {
        loader = loader.with_var(*name, *value);
    }
    loader.load().expect("configuration loads")
}

/// Logs captured for the current thread (use a current-thread runtime) until dropped.
pub(crate) struct CapturedLogs {
    pub(crate) logs: LogCapture,
    _guard: tracing::subscriber::DefaultGuard,
    _provider: SdkTracerProvider,
}

pub(crate) fn capture_logs(format: LogFormat) -> CapturedLogs {
    let logs = LogCapture::new();
    let traces = TracesConfig {
        exporter: TraceExporter::None,
        otlp_endpoint: String::new(),
        sample_ratio: 1.0,
    };
    let provider = keel_telemetry::build_tracer_provider(&traces, "test").expect("provider");
    let parts = keel_telemetry::build_subscriber(
        &LogConfig {
            level: "info".into(),
            format,
        },
        provider,
        logs.clone(),
    )
    .expect("subscriber");
    let guard = tracing::subscriber::set_default(parts.subscriber);
    // Other tests of this binary run on other threads without this subscriber; make every callsite
    // re-evaluate its interest now that this one exists.
    tracing::callsite::rebuild_interest_cache();
    CapturedLogs {
        logs,
        _guard: guard,
        _provider: parts.provider,
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}
