//! `platformctl`: operator commands that work on a platform's stores directly, whether or not
//! the services are running.
//!
//! - `platformctl seed`: the system roles and the administrator (`KEEL_ADMIN_EMAIL`,
//!   `KEEL_ADMIN_PASSWORD`), idempotently (plan story 2.6).
//! - `platformctl audit verify`: recomputes the audit log's hash chain and exits 1 when it is broken.
//!
//! Configuration is read exactly as the services read it (`config/`, `KEEL_ENV`, `KEEL_*`), so the
//! commands reach the same databases.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keel_config::ConfigLoader;
use keel_events::InProcessBus;
use keel_kernel::Kernel;
use keel_platform::{CoreService, CoreServices, seed};
use keel_service::{EVENT_BUS_CAPACITY, SharedRuntime};

/// Keel operator commands.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the system roles and the administrator; changes nothing that exists.
    Seed,
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recomputes the hash chain; exit status 1 when a record was altered or removed.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("platformctl: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("platformctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let config = ConfigLoader::from_process().load().context("configuration")?;
    match command {
        Command::Seed => {
            let mut kernel = Kernel::builder(config).build().context("kernel")?;
            let handle = kernel.handle();
            let shared = SharedRuntime::new(&handle, Arc::new(InProcessBus::new(EVENT_BUS_CAPACITY)))?;
            let core =
                CoreServices::build_stores(&handle, &shared, &[CoreService::Authz, CoreService::Identity])
                    .await?;
            let (Some(identity), Some(authz)) = (&core.identity, &core.authz) else {
                anyhow::bail!("identity and authz were not built");
            };
            let outcome = seed::seed(identity, authz, handle.config()).await?;
            seed::report(&outcome);
            kernel.teardown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = keel_audit::verify_store(&config).await?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
