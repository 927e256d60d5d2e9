//! The test harness: an audit service built on a fresh store (a SQLite temp dir or a PostgreSQL
//! schema of its own), its in-process client, a second raw connection to the same store (what an
//! attacker with database access holds), test signing keys and a recording authz double; plus
//! REST and gRPC servers on port 0 when a test wants the wire.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_audit::{AuditDeps, AuditService};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_clients::{
    AuditClient, AuditRecord, AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges,
    RoleSelector, ServiceClients, ServiceError,
};
use keel_db::{Database, ServiceDatabase};
use keel_kernel::{Kernel, KernelHandle};
use keel_registry::ServiceInstance;
use sea_orm::{ConnectionTrait as _, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::keys::{SigningKey, jwks};

/// One audit service on its own store.
pub(crate) struct TestAudit {
    /// The service under test.
    pub(crate) service: AuditService,
    /// Its in-process client.
    pub(crate) client: Arc<dyn AuditClient>,
    /// Another pool on the same store, for raw SQL.
    pub(crate) raw: ServiceDatabase,
    /// The key the test's access tokens are signed with (the verifier trusts it).
    pub(crate) key: SigningKey,
    /// The authz double the permission guard asks.
    pub(crate) authz: Arc<TestAuthz>,
    kernel: Kernel,
    stop: CancellationToken,
}

impl TestAudit {
    async fn build(vars: &[(&str, &str)]) -> anyhow::Result<Self> {
        let config = keel_testkit::test_config(vars);
        let stop = CancellationToken::new();
        let kernel = Kernel::builder(config)
            .without_global_telemetry()
            .with_shutdown_token(stop.clone())
            .build()?;
        let handle = kernel.handle();
        let key = SigningKey::generate("audit-test");
        let verifier = Arc::new(TokenVerifier::new(
            Arc::new(StaticJwks(jwks(&[key.jwk()]))),
            JwtSettings::default(),
        ));
        let authz = Arc::new(TestAuthz::default());
        let mut clients = ServiceClients::connect(handle.registry().clone(), &handle.config().kernel().grpc);
        clients.authz = authz.clone();
        let service = AuditService::build(&handle, AuditDeps { clients, verifier }).await?;
        let raw = Database::connect(&handle.config().kernel().database, "audit").await?;
        Ok(Self {
            client: service.local_client(),
            service,
            raw,
            key,
            authz,
            kernel,
            stop,
        })
    }

    /// The kernel the service was built on.
    pub(crate) fn kernel(&self) -> KernelHandle {
        self.kernel.handle()
    }

    /// Runs raw SQL on the store, as someone with database access would.
    pub(crate) async fn sql(&self, sql: &str) -> Result<u64, sea_orm::DbErr> {
        let statement = Statement::from_string(self.raw.backend(), sql);
        Ok(self
            .raw
            .connection()
            .execute_raw(statement)
            .await?
            .rows_affected())
    }

    /// One integer from raw SQL.
    pub(crate) async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        let statement = Statement::from_string(self.raw.backend(), sql);
        let row = self
            .raw
            .connection()
            .query_one_raw(statement)
            .await?
            .context("no row")?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    /// One text value from raw SQL.
    pub(crate) async fn text(&self, sql: &str) -> anyhow::Result<String> {
        let statement = Statement::from_string(self.raw.backend(), sql);
        let row = self
            .raw
            .connection()
            .query_one_raw(statement)
            .await?
            .context("no row")?;
        Ok(row.try_get_by_index::<String>(0)?)
    }

    /// Serves the REST router on a free port; its base URL.
    pub(crate) async fn serve_rest(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let router = self.service.router();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(format!("http://{address}"))
    }

    /// Serves gRPC on a free port and registers it as `audit` in the kernel's registry, where
    /// keel-clients' `GrpcAuditClient` finds it.
    pub(crate) async fn serve_grpc(&self) -> anyhow::Result<()> {
        let handle = self.kernel();
        let grpc =
            keel_grpc::GrpcServer::bind("127.0.0.1:0".parse()?, &handle.config().kernel().grpc).await?;
        let port = grpc.local_addr().port();
        let server = self.service.grpc_service();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let _ = grpc
                .serve(
                    move |router| router.add_service(server),
                    stop,
                    std::time::Duration::from_secs(1),
                )
                .await;
        });
        let instance =
            ServiceInstance::new("audit", "audit-test", "127.0.0.1").with_port(ServiceInstance::GRPC, port);
        let _registration = handle.registry().register(instance).await?;
        Ok(())
    }

    /// A fresh access token for `user_id`.
    pub(crate) fn token_for(&self, user_id: Uuid) -> String {
        let mut claims = crate::keys::valid_claims();
        claims.sub = user_id.to_string();
        self.key.sign(&claims)
    }

    /// A second audit service on the same store, connected as the database role `user`.
    pub(crate) async fn connect_as(&self, user: &str) -> anyhow::Result<TestAudit> {
        use keel_config::ExposeSecret as _;
        let kernel = self.kernel();
        let database = &kernel.config().kernel().database;
        let url = as_user(database.url.expose_secret(), user)?;
        TestAudit::build(&[
            ("KEEL_DATABASE__URL", &url),
            ("KEEL_DATABASE__SCHEMA_PREFIX", &database.schema_prefix),
        ])
        .await
    }

    /// Stops its servers and closes the raw pool.
    pub(crate) async fn shut_down(self) {
        self.stop.cancel();
        self.raw.close().await;
    }
}

/// Runs `scenario` on an audit service over a SQLite store in a temporary directory.
pub(crate) async fn on_sqlite<F>(scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestAudit) -> anyhow::Result<()>,
{
    on_sqlite_with(&[], scenario).await
}

/// As [`on_sqlite`], with more configuration variables (`KEEL_…`).
pub(crate) async fn on_sqlite_with<F>(vars: &[(&str, &str)], scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestAudit) -> anyhow::Result<()>,
{
    let directory = tempfile::tempdir()?;
    let url = format!("sqlite:{}", directory.path().display());
    let mut all = vec![("KEEL_DATABASE__URL", url.as_str())];
    all.extend_from_slice(vars);
    let audit = TestAudit::build(&all).await?;
    let outcome = scenario(&audit).await;
    audit.shut_down().await;
    outcome
}

/// Runs `scenario` on an audit service over a PostgreSQL schema of its own (dropped afterwards);
/// skipped with a printed reason when `DATABASE_URL` is unset.
pub(crate) async fn on_postgres<F>(scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestAudit) -> anyhow::Result<()>,
{
    let Some(url) = keel_testkit::server_url("DATABASE_URL") else {
        return Ok(());
    };
    let prefix = format!("{}_", keel_testkit::unique_name("kta"));
    let outcome = run_on(&url, &prefix, scenario).await;
    admin(
        &url,
        &[format!(r#"DROP SCHEMA IF EXISTS "{prefix}audit" CASCADE"#)],
    )
    .await?;
    outcome
}

/// As [`on_postgres`], but the way docs/services/audit.md recommends deploying: the service
/// connects as a fresh role that is no superuser and owns the audit schema (made for it by an
/// administrator). The role and the schema are dropped afterwards.
pub(crate) async fn on_postgres_as_schema_owner<F>(scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestAudit) -> anyhow::Result<()>,
{
    let Some(url) = keel_testkit::server_url("DATABASE_URL") else {
        return Ok(());
    };
    let prefix = format!("{}_", keel_testkit::unique_name("kta"));
    let role = keel_testkit::unique_name("kta_role");
    let schema = format!("{prefix}audit");
    admin(
        &url,
        &[
            format!(r#"CREATE ROLE "{role}" LOGIN"#),
            format!(r#"CREATE SCHEMA "{schema}" AUTHORIZATION "{role}""#),
        ],
    )
    .await?;
    let outcome = run_on(&as_user(&url, &role)?, &prefix, scenario).await;
    admin(
        &url,
        &[
            format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#),
            format!(r#"DROP ROLE IF EXISTS "{role}""#),
        ],
    )
    .await?;
    outcome
}

async fn run_on<F>(url: &str, prefix: &str, scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestAudit) -> anyhow::Result<()>,
{
    let audit = TestAudit::build(&[
        ("KEEL_DATABASE__URL", url),
        ("KEEL_DATABASE__SCHEMA_PREFIX", prefix),
    ])
    .await?;
    let outcome = scenario(&audit).await;
    audit.shut_down().await;
    outcome
}

/// `url` with `user` (and no password) as its user.
fn as_user(url: &str, user: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("a URL with a scheme")?;
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    Ok(format!("{scheme}://{user}@{host_and_path}"))
}

/// Runs statements as the administrator of `DATABASE_URL`.
pub(crate) async fn admin(url: &str, statements: &[String]) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// Declares `sqlite` and `postgres` tests running the scenario `async fn $name(&TestAudit)`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                crate::support::on_sqlite(super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                crate::support::on_postgres(super::$name).await
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// A valid record of `action`, happening now, by `actor`.
pub(crate) fn record(action: &str, actor: Option<Uuid>) -> AuditRecord {
    record_at(action, actor, Utc::now())
}

/// A valid record of `action` at `occurred_at`.
pub(crate) fn record_at(action: &str, actor: Option<Uuid>, occurred_at: DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        id: Uuid::now_v7(),
        action: action.to_owned(),
        actor_id: actor,
        target_type: Some("user".to_owned()),
        target_id: Some(Uuid::now_v7().to_string()),
        request_id: Some(format!("req-{}", Uuid::now_v7().simple())),
        ip: Some("192.0.2.10".to_owned()),
        user_agent: Some("keel-tests/1.0".to_owned()),
        occurred_at,
        metadata: serde_json::json!({"reason": "test", "attempt": 1}),
        source: "auth".to_owned(),
        tenant_id: None,
    }
}

/// Every stored record, oldest first, read through the client's pages.
pub(crate) async fn all_records(
    client: &dyn AuditClient,
) -> anyhow::Result<Vec<keel_clients::StoredAuditRecord>> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .query(keel_clients::AuditQuery {
                page: PageRequest {
                    limit: Some(100),
                    cursor,
                },
                ..Default::default()
            })
            .await?;
        records.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    records.reverse();
    Ok(records)
}

/// The fields and codes of a validation error.
pub(crate) fn violations(error: &ServiceError) -> Vec<(String, String)> {
    match error {
        ServiceError::InvalidArgument { violations, .. } => violations
            .iter()
            .map(|v| (v.field.clone(), v.code.clone()))
            .collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// An authz double: users in `granted` hold `platform.audit.read`, nobody holds anything else;
/// every check is recorded. The rest of the trait is not used by the audit service.
#[derive(Default)]
pub(crate) struct TestAuthz {
    granted: Mutex<HashSet<Uuid>>,
    checks: Mutex<Vec<(Uuid, String)>>,
}

impl TestAuthz {
    /// Gives `user` the audit read permission.
    pub(crate) fn grant_audit_read(&self, user: Uuid) {
        self.granted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user);
    }

    /// The (user, permission) checks made so far.
    pub(crate) fn checks(&self) -> Vec<(Uuid, String)> {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn unused<T>() -> Result<T, ServiceError> {
    Err(ServiceError::Unavailable(
        "authz double: not used by the audit service".to_owned(),
    ))
}

#[async_trait]
impl AuthzClient for TestAuthz {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((user_id, permission.to_owned()));
        Ok(permission == "platform.audit.read"
            && self
                .granted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&user_id))
    }
    async fn user_permissions(&self, _: Uuid) -> Result<Vec<String>, ServiceError> {
        unused()
    }
    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        unused()
    }
    async fn register_permissions(&self, _: Vec<Permission>) -> Result<u32, ServiceError> {
        unused()
    }
    async fn create_role(&self, _: NewRole, _: &Origin) -> Result<Role, ServiceError> {
        unused()
    }
    async fn get_role(&self, _: Uuid) -> Result<Role, ServiceError> {
        unused()
    }
    async fn list_roles(&self, _: Option<String>, _: PageRequest) -> Result<Page<Role>, ServiceError> {
        unused()
    }
    async fn update_role(&self, _: Uuid, _: RoleChanges, _: &Origin) -> Result<Role, ServiceError> {
        unused()
    }
    async fn delete_role(&self, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        unused()
    }
    async fn grant_permissions(&self, _: Uuid, _: Vec<String>, _: &Origin) -> Result<Role, ServiceError> {
        unused()
    }
    async fn revoke_permission(&self, _: Uuid, _: &str, _: &Origin) -> Result<Role, ServiceError> {
        unused()
    }
    async fn assign_roles(&self, _: Uuid, _: RoleSelector, _: &Origin) -> Result<Vec<Role>, ServiceError> {
        unused()
    }
    async fn revoke_role(&self, _: Uuid, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        unused()
    }
    async fn revoke_all_roles(&self, _: Uuid, _: &Origin) -> Result<u32, ServiceError> {
        unused()
    }
    async fn user_roles(&self, _: Uuid) -> Result<Vec<Role>, ServiceError> {
        unused()
    }
}
