//! `keel-perf`: drives a running Keel platform and prints one JSON line of figures per scenario.
//!
//! `perf/run.sh` starts a release platform, seeds it and runs every scenario in one go; the
//! figures it produced are in `docs/performance.md`. Each scenario here is also usable alone.

mod load;
mod scenarios;
mod stats;

use std::time::Duration;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scenario = Cli::parse().scenario;
    validate(&scenario)?;
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
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    Ok(())
}
