//! Secrets never reach the logs, even where the configuration is logged whole.

use keel_config::{ExposeSecret, LogFormat};
use keel_kernel::Kernel;

use crate::support::{capture_logs, config};

#[tokio::test(flavor = "current_thread")]
async fn the_database_password_is_absent_from_every_log_line() {
    let captured = capture_logs(LogFormat::Json);
    let config = config(&[(
        "KEEL_DATABASE__URL",
        "postgres://keel:Sup3r-s3cret@127.0.0.1:1/keel",
    )]);
    assert!(
        config
            .kernel()
            .database
            .url
            .expose_secret()
            .contains("Sup3r-s3cret"),
        "the secret did load"
    );
    let mut kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .build()
        .expect("kernel");
    tracing::info!(config = ?config.kernel(), "debug of the typed configuration");
    // A connection attempt to the (closed) port fails; its error is logged too.
    if let Err(error) = keel_db::Database::connect(&config.kernel().database, "secrets").await {
        tracing::error!(%error, "expected connection failure");
    }
    kernel.teardown().await;
    let logs = captured.logs.contents();
    assert!(
        logs.contains("kernel built"),
        "the configuration was logged: {logs}"
    );
    assert!(
        logs.contains("postgres://keel:<redacted>@127.0.0.1:1/keel"),
        "in redacted form"
    );
    assert!(!logs.contains("Sup3r-s3cret"), "no secret in the logs:\n{logs}");
}
