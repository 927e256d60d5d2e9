//! `platform`: runs Keel (all services in one process, embedded defaults) or prints its
//! effective configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keel_config::ConfigLoader;
use keel_platform::Application;

/// Keel platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the platform until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Prints the effective configuration as JSON, secrets redacted.
    Config,
}

/// mimalloc serves the many small, short-lived allocations of serving requests (the gateway
/// proxying, JSON, gRPC frames) faster than glibc's malloc, with less contention between threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ConfigLoader::from_process().load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            match serde_json::to_string_pretty(&config.redacted()) {
                Ok(text) => {
                    #[allow(clippy::print_stdout)]
                    {
                        println!("{text}");
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("cannot print configuration: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(config),
    }
}

fn serve(config: keel_config::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let application = Application::build(config).await?;
        application.run_until_stopped().await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "platform stopped with an error");
            eprintln!("platform: {error}");
            ExitCode::FAILURE
        }
    }
}
