//! Test support shared by Keel's crates. Used only as a dev-dependency.
//!
//! Why this crate exists: every crate's tests need the same few things: to find a real server from
//! the environment (and fail, not skip, in CI), unique names so tests run in parallel, and a few
//! instruments that are not part of any product crate.

#![allow(clippy::print_stderr)]

/// Variable that turns a missing server URL from a printed skip into a test failure. `.ci/run` and
/// the README's test command set it, so CI never passes by skipping.
pub const REQUIRE_SERVERS: &str = "KEEL_REQUIRE_SERVERS";

/// The URL of a real server from the environment variable `var` (e.g. `DATABASE_URL`).
///
/// When the variable is unset, the test should return early: this prints the reason and returns
/// `None`. When [`REQUIRE_SERVERS`] is `1`, it panics instead, so a skipped test fails the run.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => missing(
            &format!("{var} is not set"),
            "set it to run this test against a real server",
        ),
    }
}

/// What a test does without something it needs: fail under [`REQUIRE_SERVERS`], else print the
/// `SKIPPED:` line that `.ci/run` looks for and return `None`.
fn missing<T>(what: &str, remedy: &str) -> Option<T> {
    if std::env::var(REQUIRE_SERVERS).as_deref() == Ok("1") {
        panic!("{what} but {REQUIRE_SERVERS}=1: this test needs it");
    }
    eprintln!("SKIPPED: {what}; {remedy}");
    None
}

/// A name no other test uses: `prefix` plus 12 random hex digits, lowercase, a valid SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &random[..12])
}

mod logs;
mod proxy;

pub use logs::{CapturedLogs, LogCapture, capture_logs};
pub use proxy::FaultProxy;

/// The echo gRPC service used by the gRPC foundation's tests.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod echo {
    tonic::include_proto!("keel.testkit.v1");
}

/// The repository's `config/` directory, so tests load the configuration files we ship.
pub fn config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The shipped configuration plus `vars`, with the HTTP server on a free port.
pub fn test_config(vars: &[(&str, &str)]) -> keel_config::Config {
    let mut loader = keel_config::ConfigLoader::new(config_dir()).with_var("KEEL_HTTP__PORT", "0");
    for (name, value) in vars {
        loader = loader.with_var(*name, *value);
    }
    loader.load().expect("the shipped configuration loads")
}

/// The path of an external tool the test needs (e.g. `promtool`), found on `PATH`.
///
/// Like [`server_url`]: `None` with a printed reason when missing, a panic under [`REQUIRE_SERVERS`].
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.or_else(|| missing(&format!("{name} is not on PATH"), "install it to run this test"))
}
