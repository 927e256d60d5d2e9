//! Capturing what the Keel subscriber writes, to assert on log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use keel_config::{LogConfig, LogFormat, TraceExporter, TracesConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::MakeWriter;

/// Keeps every callsite's cached interest at "sometimes" for the rest of the process, so each span
/// and event asks the current thread's subscriber whether it is enabled.
///
/// Why: `tracing-core` caches one interest per callsite for the whole process. While at most one
/// subscriber is registered it computes that interest from *the registering thread's* default
/// subscriber. A test without a capture, on another thread, that reaches a callsite first (say the
/// HTTP edge span) while exactly one capture exists would compute "never" from the no-op
/// subscriber, and the capturing test would then lose that span: its trace id reads all zeros.
/// Registering two never-enabled subscribers that answer "sometimes" for every callsite, before
/// the first capture, makes `tracing-core` combine the interests of all registered subscribers
/// from then on (two, so that the switch has happened before any capture's subscriber exists).
fn keep_callsites_dynamic() {
    static KEEPERS: std::sync::OnceLock<[tracing::Dispatch; 2]> = std::sync::OnceLock::new();
    KEEPERS.get_or_init(|| {
        [
            tracing::Dispatch::new(InterestKeeper),
            tracing::Dispatch::new(InterestKeeper),
        ]
    });
}

/// The subscriber behind [`keep_callsites_dynamic`]: interested "sometimes" in everything, enabled
/// for nothing, and never any thread's default.
struct InterestKeeper;

impl tracing::Subscriber for InterestKeeper {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A writer for `tracing_subscriber::fmt` that keeps everything written, shared by its clones.
#[derive(Clone, Default, Debug)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Non-empty lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.contents()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The Keel subscriber (the one `keel_telemetry::init` installs, with trace ids but no export) at
/// `info`, writing to a [`LogCapture`], as the current thread's default until dropped. Use it with a
/// current-thread runtime so the server under test logs on the same thread.
pub struct CapturedLogs {
    /// What was logged.
    pub logs: LogCapture,
    _guard: tracing::subscriber::DefaultGuard,
    _provider: SdkTracerProvider,
}

/// Starts capturing this thread's logs in `format`.
pub fn capture_logs(format: LogFormat) -> CapturedLogs {
    let logs = LogCapture::new();
    let traces = TracesConfig {
        exporter: TraceExporter::None,
        otlp_endpoint: String::new(),
        sample_ratio: 1.0,
    };
    let provider = keel_telemetry::build_tracer_provider(&traces, "test").expect("tracer provider");
    let log = LogConfig {
        level: "info".into(),
        format,
    };
    let parts = keel_telemetry::build_subscriber(&log, &traces, provider, logs.clone()).expect("subscriber");
    keep_callsites_dynamic();
    let guard = tracing::subscriber::set_default(parts.subscriber);
    CapturedLogs {
        logs,
        _guard: guard,
        _provider: parts.provider,
    }
}
