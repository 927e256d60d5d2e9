//! Capturing what the Keel subscriber writes, to assert on log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use keel_config::{LogConfig, LogFormat, TraceExporter, TracesConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::MakeWriter;

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
    let parts = keel_telemetry::build_subscriber(&log, provider, logs.clone()).expect("subscriber");
    let guard = tracing::subscriber::set_default(parts.subscriber);
    // Other tests of the same binary run on other threads without this subscriber; make every
    // callsite re-evaluate its interest now that this one exists.
    tracing::callsite::rebuild_interest_cache();
    CapturedLogs {
        logs,
        _guard: guard,
        _provider: parts.provider,
    }
}
