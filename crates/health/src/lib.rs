//! Health checks behind `/healthz` and `/ready`.
//!
//! Why this crate exists: liveness and readiness mean the same thing in every Keel process, and
//! every component that a process depends on (its database, a broker, a peer service) must be able
//! to say whether it is usable. A component implements [`HealthCheck`]; the process registers it
//! in its [`HealthRegistry`]; `/ready` runs every check concurrently, each bounded by a timeout, and
//! reports 503 when a critical one fails. `/healthz` only says the process is alive: it never
//! touches a dependency, so a database outage does not make an orchestrator restart healthy
//! processes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

/// One dependency's health. Implementations must be cheap (a ping, not a scan); the registry
/// bounds each call by its timeout anyway.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Short stable name, e.g. `database` or `audit-grpc`. Shown in the `/ready` report.
    fn name(&self) -> &str;

    /// Whether the process cannot serve without it. A failing non-critical check is reported but
    /// keeps the process ready.
    fn critical(&self) -> bool {
        true
    }

    /// `Ok` when usable; `Err` with a reason an operator can act on (never a secret).
    async fn check(&self) -> Result<(), String>;
}

/// State of one check in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The check passed.
    Up,
    /// The check failed or timed out.
    Down,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub status: CheckStatus,
    /// Whether its failure makes the process unready.
    pub critical: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of all checks, as `/ready` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// `Up` unless a critical check is down.
    pub status: CheckStatus,
    /// Each check, in registration order.
    pub checks: Vec<CheckReport>,
}

impl ReadinessReport {
    /// Whether the process should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.status == CheckStatus::Up
    }
}

/// The checks of one process. Cheap to clone; clones share the same list, so a component can
/// register its check after the HTTP server has started.
#[derive(Clone)]
pub struct HealthRegistry {
    checks: Arc<RwLock<Vec<Arc<dyn HealthCheck>>>>,
    timeout: Duration,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("checks", &self.names())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HealthRegistry {
    /// An empty registry whose checks may each take up to `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Arc::default(),
            timeout,
        }
    }

    /// Adds a check.
    pub fn register(&self, check: Arc<dyn HealthCheck>) {
        self.checks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(check);
    }

    /// Names of the registered checks.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().iter().map(|c| c.name().to_owned()).collect()
    }

    fn snapshot(&self) -> Vec<Arc<dyn HealthCheck>> {
        self.checks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs every check concurrently, each bounded by the timeout, so the whole report takes at
    /// most about one timeout however many checks hang.
    pub async fn readiness(&self) -> ReadinessReport {
        let checks = self.snapshot();
        let runs = checks.iter().map(|check| self.run(check.as_ref()));
        let checks = futures_util::future::join_all(runs).await;
        let ready = checks.iter().all(|c| !c.critical || c.status == CheckStatus::Up);
        ReadinessReport {
            status: if ready { CheckStatus::Up } else { CheckStatus::Down },
            checks,
        }
    }

    async fn run(&self, check: &dyn HealthCheck) -> CheckReport {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, check.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(reason) = &outcome {
            tracing::warn!(check = check.name(), %reason, "health check failed");
        }
        CheckReport {
            name: check.name().to_owned(),
            status: if outcome.is_ok() {
                CheckStatus::Up
            } else {
                CheckStatus::Down
            },
            critical: check.critical(),
            duration_ms,
            error: outcome.err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        name: &'static str,
        critical: bool,
        outcome: Result<(), String>,
        delay: Duration,
    }

    #[async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        fn critical(&self) -> bool {
            self.critical
        }
        async fn check(&self) -> Result<(), String> {
            tokio::time::sleep(self.delay).await;
            self.outcome.clone()
        }
    }

    fn fixed(
        name: &'static str,
        critical: bool,
        outcome: Result<(), String>,
        delay_ms: u64,
    ) -> Arc<dyn HealthCheck> {
        Arc::new(Fixed {
            name,
            critical,
            outcome,
            delay: Duration::from_millis(delay_ms),
        })
    }

    #[tokio::test]
    async fn an_empty_registry_is_ready() {
        assert!(
            HealthRegistry::new(Duration::from_millis(50))
                .readiness()
                .await
                .is_ready()
        );
    }

    #[tokio::test]
    async fn a_failing_critical_check_makes_the_process_unready() {
        let registry = HealthRegistry::new(Duration::from_millis(200));
        registry.register(fixed("db", true, Err("refused".into()), 0));
        registry.register(fixed("cache", false, Ok(()), 0));
        let report = registry.readiness().await;
        assert!(!report.is_ready());
        assert_eq!(report.checks[0].error.as_deref(), Some("refused"));
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["status"], "down");
        assert_eq!(json["checks"][1]["status"], "up");
    }

    #[tokio::test]
    async fn a_failing_non_critical_check_keeps_the_process_ready() {
        let registry = HealthRegistry::new(Duration::from_millis(200));
        registry.register(fixed("cache", false, Err("down".into()), 0));
        assert!(registry.readiness().await.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_checks_time_out_together_not_one_after_another() {
        let registry = HealthRegistry::new(Duration::from_millis(100));
        for name in ["a", "b", "c"] {
            registry.register(fixed(name, true, Ok(()), 10_000));
        }
        let started = tokio::time::Instant::now();
        let report = registry.readiness().await;
        assert!(!report.is_ready());
        assert!(
            report
                .checks
                .iter()
                .all(|c| c.error.as_deref() == Some("timed out after 100 ms"))
        );
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "checks run concurrently"
        );
    }
}
