//! One measurement line of `perf/gateway.sh` from a load tool's own output: wrk's figures (printed
//! as JSON by `perf/wrk-report.lua`) or oha's `--output-format json` report.
//!
//! Why here and not in the script: both tools count differently (wrk counts every answer as a
//! request and non-2xx ones as errors; oha keeps a status histogram and transport errors apart,
//! with latencies in seconds), and the summary's ratios are only fair if every line means the same:
//! `ok` is 2xx answers, `rps` is `ok` per second of the run, every other outcome is `failed`.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

/// The load tool whose output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Tool {
    /// wrk with `perf/wrk-report.lua` (its text output may surround the JSON line).
    Wrk,
    /// oha with `--output-format json`.
    Oha,
}

/// oha's error for requests still in flight when `-z` ends: the tool's own cut, not a failure.
const OHA_DEADLINE: &str = "aborted due to deadline";

/// The line printed for one run against one target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Measurement {
    /// `saturation` or `fixed_rate` (what the script passes).
    pub(crate) measurement: String,
    /// `direct`, `nginx`, `gateway`, `platform-public`, `platform-jwt`.
    pub(crate) target: String,
    /// `wrk` or `oha`.
    pub(crate) tool: &'static str,
    /// How long the run lasted.
    pub(crate) seconds: f64,
    /// 2xx answers.
    pub(crate) ok: u64,
    /// Everything else: other statuses, connection errors, timeouts.
    pub(crate) failed: u64,
    /// `ok` per second.
    pub(crate) rps: f64,
    /// The open-loop rate offered, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) offered_rps: Option<f64>,
    /// Latency percentiles and maximum, in milliseconds, over every answer.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9_ms")]
    pub(crate) p999_ms: f64,
    /// Slowest answer.
    pub(crate) max_ms: f64,
    /// The failures by kind (`status 502`, `connect`, an oha error message), when there were any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) failures: BTreeMap<String, u64>,
    /// Extra `key=value` labels given on the command line (connections, rate limiting on, ...).
    #[serde(flatten)]
    pub(crate) labels: Map<String, Value>,
}

/// Reads `raw` (the tool's output) into a measurement of `measurement` against `target`.
pub(crate) fn parse(tool: Tool, raw: &str, measurement: &str, target: &str) -> anyhow::Result<Measurement> {
    let mut parsed = match tool {
        Tool::Wrk => from_wrk(raw)?,
        Tool::Oha => from_oha(raw)?,
    };
    parsed.measurement = measurement.to_owned();
    parsed.target = target.to_owned();
    Ok(parsed)
}

/// `key=value` → (key, value as JSON when it parses as JSON, else as a string).
pub(crate) fn label(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| format!("expected key=value, got `{text}`"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

fn empty(tool: &'static str) -> Measurement {
    Measurement {
        measurement: String::new(),
        target: String::new(),
        tool,
        seconds: 0.0,
        ok: 0,
        failed: 0,
        rps: 0.0,
        offered_rps: None,
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
        failures: BTreeMap::new(),
        labels: Map::new(),
    }
}

fn number(value: &Value, pointer: &str) -> anyhow::Result<f64> {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .with_context(|| format!("no number at {pointer}"))
}

/// wrk's text output with, on a line of its own, the object `perf/wrk-report.lua` printed.
fn from_wrk(raw: &str) -> anyhow::Result<Measurement> {
    let report: Value = raw
        .lines()
        .rev()
        .filter(|line| line.trim_start().starts_with('{'))
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value["tool"] == "wrk")
        .context("no JSON line from perf/wrk-report.lua in wrk's output (was it run with -s?)")?;
    let requests = number(&report, "/requests")? as u64;
    let mut failures = BTreeMap::new();
    for kind in ["status", "connect", "read", "write", "timeout"] {
        let count = number(&report, &format!("/errors/{kind}"))? as u64;
        if count > 0 {
            // wrk counts answers with a status of 400 or more as `status` errors.
            let name = if kind == "status" { "status >= 400" } else { kind };
            failures.insert(name.to_owned(), count);
        }
    }
    let status_errors = failures.get("status >= 400").copied().unwrap_or(0);
    let ms = |key: &str| number(&report, &format!("/latency_us/{key}")).map(|us| us / 1000.0);
    let mut measurement = empty("wrk");
    measurement.seconds = number(&report, "/duration_us")? / 1e6;
    measurement.ok = requests.saturating_sub(status_errors);
    measurement.failed = failures.values().sum();
    measurement.rps = per_second(measurement.ok, measurement.seconds);
    measurement.p50_ms = ms("p50")?;
    measurement.p90_ms = ms("p90")?;
    measurement.p99_ms = ms("p99")?;
    measurement.p999_ms = ms("p99.9")?;
    measurement.max_ms = ms("max")?;
    measurement.failures = failures;
    Ok(measurement)
}

/// oha's JSON report: latencies in seconds, a status histogram and transport errors apart.
fn from_oha(raw: &str) -> anyhow::Result<Measurement> {
    let report: Value = serde_json::from_str(raw).context("oha's output is not its JSON report")?;
    let mut measurement = empty("oha");
    let mut failures = BTreeMap::new();
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution")?;
    for (status, count) in statuses {
        let count = count.as_u64().unwrap_or(0);
        if status.starts_with('2') {
            measurement.ok += count;
        } else {
            failures.insert(format!("status {status}"), count);
        }
    }
    if let Some(errors) = report["errorDistribution"].as_object() {
        for (error, count) in errors.iter().filter(|(error, _)| *error != OHA_DEADLINE) {
            failures.insert(error.clone(), count.as_u64().unwrap_or(0));
        }
    }
    // oha writes null percentiles when nothing completed.
    let ms = |key: &str| report["latencyPercentiles"][key].as_f64().unwrap_or(0.0) * 1000.0;
    measurement.seconds = number(&report, "/summary/total")?;
    measurement.failed = failures.values().sum();
    measurement.rps = per_second(measurement.ok, measurement.seconds);
    measurement.p50_ms = ms("p50");
    measurement.p90_ms = ms("p90");
    measurement.p99_ms = ms("p99");
    measurement.p999_ms = ms("p99.9");
    measurement.max_ms = report["summary"]["slowest"].as_f64().unwrap_or(0.0) * 1000.0;
    measurement.failures = failures;
    Ok(measurement)
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:18090/perf/hello\n  2 threads and 64 connections\n\
        Requests/sec:  50000.00\n\
        {\"tool\":\"wrk\",\"duration_us\":2000000,\"requests\":100010,\"bytes\":1300000,\
        \"errors\":{\"connect\":0,\"read\":0,\"write\":0,\"status\":10,\"timeout\":2},\
        \"latency_us\":{\"mean\":1200.5,\"max\":9000,\"p50\":1000,\"p90\":2000,\"p99\":4000,\"p99.9\":8000}}\n";

    const OHA: &str = r#"{"summary":{"successRate":1.0,"total":2.0,"slowest":0.004,"fastest":0.0001,
        "average":0.0003,"requestsPerSec":10000.0},
        "latencyPercentiles":{"p10":0.0001,"p50":0.00025,"p90":0.0005,"p99":0.001,"p99.9":0.002},
        "statusCodeDistribution":{"200":19990,"502":4},
        "errorDistribution":{"aborted due to deadline":6,"connection refused":1}}"#;

    #[test]
    fn wrk_answers_of_400_and_more_and_socket_errors_are_failures_not_throughput() -> anyhow::Result<()> {
        let m = parse(Tool::Wrk, WRK, "saturation", "gateway")?;
        assert_eq!(
            (m.measurement.as_str(), m.target.as_str(), m.tool),
            ("saturation", "gateway", "wrk")
        );
        assert_eq!(m.seconds, 2.0);
        assert_eq!((m.ok, m.failed), (100_000, 12));
        assert_eq!(m.rps, 50_000.0);
        assert_eq!(
            (m.p50_ms, m.p90_ms, m.p99_ms, m.p999_ms, m.max_ms),
            (1.0, 2.0, 4.0, 8.0, 9.0)
        );
        assert_eq!(m.failures.get("status >= 400"), Some(&10));
        assert_eq!(m.failures.get("timeout"), Some(&2));
        Ok(())
    }

    #[test]
    fn wrk_output_without_the_script_line_is_refused() {
        let error = parse(Tool::Wrk, "Requests/sec: 1\n", "saturation", "direct")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("wrk-report.lua"), "{error}");
    }

    #[test]
    fn oha_counts_2xx_as_ok_and_ignores_its_own_deadline_cut() -> anyhow::Result<()> {
        let m = parse(Tool::Oha, OHA, "fixed_rate", "nginx")?;
        assert_eq!((m.ok, m.failed), (19_990, 5));
        assert_eq!(m.rps, 9_995.0);
        assert_eq!(m.failures.get("status 502"), Some(&4));
        assert_eq!(m.failures.get("connection refused"), Some(&1));
        assert!(!m.failures.contains_key(OHA_DEADLINE));
        assert!((m.p50_ms - 0.25).abs() < 1e-9 && (m.p99_ms - 1.0).abs() < 1e-9);
        assert!((m.p999_ms - 2.0).abs() < 1e-9 && (m.max_ms - 4.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn labels_keep_json_values_and_fall_back_to_strings() {
        assert_eq!(
            label("connections=64"),
            Ok(("connections".to_owned(), Value::from(64)))
        );
        assert_eq!(
            label("rate_limited=true"),
            Ok(("rate_limited".to_owned(), Value::Bool(true)))
        );
        assert_eq!(
            label("url=http://x/y"),
            Ok(("url".to_owned(), Value::from("http://x/y")))
        );
        // A short hash that reads as a number stays a string when passed as a JSON string.
        assert_eq!(
            label("revision=\"8267e31\""),
            Ok(("revision".to_owned(), Value::from("8267e31")))
        );
        assert!(label("novalue").is_err());
        assert!(label("=1").is_err());
    }

    #[test]
    fn the_printed_line_flattens_labels_and_names_the_99_9th_percentile() -> anyhow::Result<()> {
        let mut m = parse(Tool::Oha, OHA, "fixed_rate", "direct")?;
        m.offered_rps = Some(10_000.0);
        m.labels.insert("connections".to_owned(), Value::from(64));
        let line = serde_json::to_value(&m)?;
        assert_eq!(line["connections"], 64);
        assert_eq!(line["offered_rps"], 10_000.0);
        assert!(line.get("p99.9_ms").is_some());
        assert!(line.get("labels").is_none());
        Ok(())
    }
}
