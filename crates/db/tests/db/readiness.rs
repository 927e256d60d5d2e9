//! The `database` readiness check: up on a live server, down fast when it is cut off, and back
//! by itself when it returns. Errors never show the password.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_db::{Database, DbError};
use keel_health::{HealthCheck as _, HealthRegistry};
use keel_testkit::FaultProxy;
use sea_orm::ConnectionTrait as _;

use crate::support::{self, PgUrl, database_url, drop_schemas};

const PASSWORD: &str = "not-shown-s3cret";

#[tokio::test]
async fn readiness_is_up_on_a_live_sqlite_database() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let db = Database::connect(&support::sqlite_config(temp.path()), "identity").await?;
    let check = db.readiness_check();
    assert_eq!(check.name(), "database:identity");
    assert!(check.critical());
    assert_eq!(check.check().await, Ok(()));
    Ok(())
}

#[tokio::test]
async fn readiness_goes_down_fast_when_postgres_is_cut_off_and_comes_back_with_it() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    let server = PgUrl::parse(&url)?;
    let proxy = FaultProxy::start(server.address().await?).await?;
    let prefix = support::unique_prefix();
    let config = support::config(&server.at(proxy.address(), PASSWORD), &prefix);
    let outcome = async {
        let db = Database::connect(&config, "readiness").await?;
        let registry = HealthRegistry::new(Duration::from_secs(5));
        registry.register(Arc::new(db.readiness_check()));
        assert!(registry.readiness().await.is_ready(), "up on a live server");

        proxy.go_down();
        let started = Instant::now();
        let report = registry.readiness().await;
        let elapsed = started.elapsed();
        assert!(!report.is_ready(), "down while the server is unreachable");
        let reason = report.checks[0].error.clone().unwrap_or_default();
        assert!(!reason.is_empty());
        assert!(!reason.contains(PASSWORD), "reason shows the password: {reason}");
        assert!(
            !reason.contains("timed out"),
            "failed on its own, not by the registry's timeout: {reason}"
        );
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

        proxy.come_back();
        assert!(
            registry.readiness().await.is_ready(),
            "up again once the server is back"
        );
        // The pool recovers too: its broken connections are replaced.
        db.connection().execute_unprepared("SELECT 1").await?;

        db.close().await;
        assert!(
            !registry.readiness().await.is_ready(),
            "down once the pool is closed"
        );
        anyhow::Ok(())
    }
    .await;
    drop_schemas(&url, &[format!("{prefix}readiness")]).await?;
    outcome
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_without_showing_the_password() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };
    let config = support::config(
        &PgUrl::parse(&url)?.at(closed, PASSWORD),
        &support::unique_prefix(),
    );

    let started = Instant::now();
    let outcome = Database::connect(&config, "identity").await;
    let elapsed = started.elapsed();

    let Err(error @ DbError::Connect { .. }) = outcome else {
        panic!("expected a connect error, got {outcome:?}")
    };
    let message = error.to_string();
    assert!(message.contains("identity"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(!format!("{error:?}").contains(PASSWORD));
    assert!(
        elapsed < Duration::from_secs(1),
        "took {elapsed:?} (the pool's retry loop would take the acquire timeout)"
    );
    Ok(())
}
