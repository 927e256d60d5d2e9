//! Latency samples and the figures reported from them.

use std::time::Duration;

use serde::Serialize;

/// Latencies of one scenario run, plus failures.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    latencies: Vec<Duration>,
    failures: u64,
    first_failure: Option<String>,
}

impl Samples {
    pub(crate) fn record(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    pub(crate) fn fail(&mut self, why: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(why);
    }

    pub(crate) fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Figures over the run, which lasted `elapsed`.
    pub(crate) fn report(mut self, scenario: &str, elapsed: Duration) -> Report {
        self.latencies.sort_unstable();
        let ok = self.latencies.len() as u64;
        let quantile = |q: f64| -> f64 {
            if self.latencies.is_empty() {
                return 0.0;
            }
            let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies[index].as_secs_f64() * 1000.0
        };
        Report {
            scenario: scenario.to_owned(),
            ok,
            failed: self.failures,
            first_failure: self.first_failure,
            seconds: elapsed.as_secs_f64(),
            throughput_per_sec: ok as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: quantile(1.0),
        }
    }
}

/// What a scenario prints (one JSON line).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) seconds: f64,
    pub(crate) throughput_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}
