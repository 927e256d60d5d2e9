//! `keel-perf`: drives a running Keel platform and prints one JSON line of figures per scenario.
//!
//! `perf/run.sh` starts a release platform, seeds it and runs every scenario in one go; the
//! figures it produced are in `docs/performance.md`. Each scenario here is also usable alone.
//!
//! `perf/gateway.sh` (the gateway against nginx, issue 4) uses the other subcommands: `upstream`,
//! the trivial server both proxies forward to; `measurement`, one JSON line from wrk's or oha's
//! output; `gateway-summary`, the ratios of a run.

mod load;
mod measurement;
mod scenarios;
mod stats;
mod summary;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Load scenarios against a running Keel platform.
#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open loop: POST /api/v1/auth/login at a fixed offered rate (latency percentiles).
    LoginOpen {
        #[command(flatten)]
        target: scenarios::HttpTarget,
        /// Logins per second offered.
        #[arg(long, default_value_t = 60.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Closed loop: logins with N concurrent clients (throughput at saturation).
    LoginClosed {
        #[command(flatten)]
        target: scenarios::HttpTarget,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Closed loop: each client logs in once, then rotates its refresh token as fast as it can.
    Refresh {
        #[command(flatten)]
        target: scenarios::HttpTarget,
        /// Concurrent clients (each its own session).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Time of one argon2id hash with the given parameters, and the login bound it implies.
    Argon2 {
        /// Memory in KiB.
        #[arg(long, default_value_t = 19_456)]
        memory_kib: u32,
        /// Iterations.
        #[arg(long, default_value_t = 2)]
        iterations: u32,
        /// Lanes.
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
        /// Hashes to time.
        #[arg(long, default_value_t = 30)]
        samples: u32,
    },
    /// Open loop: gRPC HasPermission against authz (warm cache after the first call).
    HasPermission {
        /// authz gRPC endpoint, e.g. http://127.0.0.1:9103
        #[arg(long)]
        grpc: String,
        /// The user to check.
        #[arg(long)]
        user_id: String,
        /// The permission to check.
        #[arg(long, default_value = "platform.user.read")]
        permission: String,
        /// Checks per second offered.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Closed loop: gRPC audit Record with batches of N records.
    AuditRecord {
        /// audit gRPC endpoint, e.g. http://127.0.0.1:9104
        #[arg(long)]
        grpc: String,
        /// Records per call.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent callers.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Serves a small fixed body to every request (the upstream of perf/gateway.sh) until stopped.
    Upstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: SocketAddr,
        /// Size of the body in bytes.
        #[arg(long, default_value_t = upstream::DEFAULT_BODY.len())]
        body_bytes: usize,
    },
    /// Prints one measurement line from a load tool's output (wrk with perf/wrk-report.lua, or
    /// oha --output-format json).
    Measurement {
        /// The tool that wrote the file.
        #[arg(long, value_enum)]
        tool: measurement::Tool,
        /// What was measured: saturation or fixed_rate.
        #[arg(long)]
        measurement: String,
        /// Whom: direct, nginx, gateway, platform-public or platform-jwt.
        #[arg(long)]
        target: String,
        /// The open-loop rate offered (fixed-rate runs).
        #[arg(long)]
        offered_rps: Option<f64>,
        /// Extra key=value fields for the line (a JSON value, or else a string); repeatable.
        #[arg(long = "label", value_parser = measurement::label)]
        labels: Vec<(String, serde_json::Value)>,
        /// The tool's output.
        file: PathBuf,
    },
    /// Prints the ratios of a perf/gateway.sh run from its measurement lines (one JSON line, then
    /// a table).
    GatewaySummary {
        /// The file holding the run's measurement lines (other lines are ignored).
        file: PathBuf,
    },
}

/// A rate, duration, concurrency, batch or sample count must be above zero.
fn positive(name: &str, value: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        value > 0.0 && value.is_finite(),
        "--{name} must be a positive number, got {value}"
    );
    Ok(())
}

fn validate(scenario: &Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::LoginOpen { rate, seconds, .. } | Scenario::HasPermission { rate, seconds, .. } => {
            positive("rate", *rate)?;
            positive("seconds", *seconds as f64)
        }
        Scenario::LoginClosed {
            concurrency, seconds, ..
        }
        | Scenario::Refresh {
            concurrency, seconds, ..
        } => {
            positive("concurrency", *concurrency as f64)?;
            positive("seconds", *seconds as f64)
        }
        Scenario::Argon2 { samples, .. } => positive("samples", f64::from(*samples)),
        Scenario::Upstream { .. } | Scenario::GatewaySummary { .. } => Ok(()),
        Scenario::Measurement { offered_rps, .. } => {
            offered_rps.map_or(Ok(()), |rate| positive("offered-rps", rate))
        }
        Scenario::AuditRecord {
            batch,
            concurrency,
            seconds,
            ..
        } => {
            positive("batch", *batch as f64)?;
            positive("concurrency", *concurrency as f64)?;
            positive("seconds", *seconds as f64)
        }
    }
}

/// `keel-perf measurement`: the tool's output in `file` as one measurement line.
fn measurement_line(
    tool: measurement::Tool,
    (measurement, target): (&str, &str),
    offered_rps: Option<f64>,
    labels: Vec<(String, serde_json::Value)>,
    file: &Path,
) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut line = measurement::parse(tool, &raw, measurement, target)
        .with_context(|| format!("{measurement} {target}: {}", file.display()))?;
    line.offered_rps = offered_rps;
    line.labels.extend(labels);
    Ok(serde_json::to_string(&line)?)
}

/// `keel-perf gateway-summary`: the ratios as one JSON line, then the table.
fn gateway_summary(file: &Path) -> anyhow::Result<String> {
    let lines = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let summary = summary::summarize(&lines);
    Ok(format!("{}\n{}", summary.json(), summary.table().trim_end()))
}

/// Runs one of the load scenarios against a running platform; its figures as a JSON line.
async fn load_scenario(scenario: Scenario) -> anyhow::Result<String> {
    let report = match scenario {
        Scenario::LoginOpen {
            target,
            rate,
            seconds,
        } => scenarios::login_open(&target, rate, Duration::from_secs(seconds)).await?,
        Scenario::LoginClosed {
            target,
            concurrency,
            seconds,
        } => scenarios::login_closed(&target, concurrency, Duration::from_secs(seconds)).await?,
        Scenario::Refresh {
            target,
            concurrency,
            seconds,
        } => scenarios::refresh(&target, concurrency, Duration::from_secs(seconds)).await?,
        Scenario::Argon2 {
            memory_kib,
            iterations,
            parallelism,
            samples,
        } => scenarios::argon2(memory_kib, iterations, parallelism, samples)?,
        Scenario::HasPermission {
            grpc,
            user_id,
            permission,
            rate,
            seconds,
        } => scenarios::has_permission(grpc, user_id, permission, rate, Duration::from_secs(seconds)).await?,
        Scenario::AuditRecord {
            grpc,
            batch,
            concurrency,
            seconds,
        } => scenarios::audit_record(grpc, batch, concurrency, Duration::from_secs(seconds)).await?,
        Scenario::Upstream { .. } | Scenario::Measurement { .. } | Scenario::GatewaySummary { .. } => {
            anyhow::bail!("not a load scenario")
        }
    };
    Ok(report.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scenario = Cli::parse().scenario;
    validate(&scenario)?;
    let output = match scenario {
        Scenario::Upstream { listen, body_bytes } => {
            return upstream::run(listen, upstream::body_of_size(body_bytes)).await;
        }
        Scenario::Measurement {
            tool,
            measurement,
            target,
            offered_rps,
            labels,
            file,
        } => measurement_line(tool, (&measurement, &target), offered_rps, labels, &file)?,
        Scenario::GatewaySummary { file } => gateway_summary(&file)?,
        load => load_scenario(load).await?,
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{output}");
    }
    Ok(())
}
