//! The test harness: a freshly built authz service per test (its own SQLite directory or its own
//! PostgreSQL schema), peer doubles, a signing key whose tokens the service accepts, and helpers
//! to call its REST routes and read its outbox.

pub(crate) mod doubles;
pub(crate) mod keys;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_authz::{AuthzDeps, AuthzService};
use keel_clients::{AuthzClient, ServiceClients};
use keel_db::Database;
use keel_events::InProcessBus;
use keel_kernel::{Kernel, KernelHandle};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use serde_json::Value;
use tower::ServiceExt as _;
use uuid::Uuid;

use self::doubles::{KnownUsers, RecordingAudit};
use self::keys::SigningKey;

/// Runs each named scenario (an `async fn(&TestApp) -> anyhow::Result<()>`) on SQLite and, when
/// `DATABASE_URL` is set, on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let app = $crate::support::TestApp::sqlite().await?;
                let outcome = super::$name(&app).await;
                app.finish().await?;
                outcome
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let Some(app) = $crate::support::TestApp::postgres().await? else { return Ok(()) };
                let outcome = super::$name(&app).await;
                app.finish().await?;
                outcome
            }
        }
    )+};
}

/// One row of the outbox.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    /// `event` or `audit`.
    pub(crate) kind: String,
    /// The event's topic or the audit record's action.
    pub(crate) topic: String,
    /// The whole event or audit record.
    pub(crate) payload: Value,
}

/// A built authz service with its peers.
pub(crate) struct TestApp {
    pub(crate) service: AuthzService,
    pub(crate) router: Router,
    pub(crate) kernel: KernelHandle,
    pub(crate) bus: Arc<InProcessBus>,
    pub(crate) audit: Arc<RecordingAudit>,
    pub(crate) users: Arc<KnownUsers>,
    pub(crate) key: SigningKey,
    /// A connection of the test's own to the service's store.
    pub(crate) db: DatabaseConnection,
    deps: AuthzDeps,
    owner: tokio::sync::Mutex<Kernel>,
    postgres_schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// A service on a SQLite directory of its own.
    pub(crate) async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite:{}", dir.path().display());
        Self::build(&[("KEEL_DATABASE__URL", &url)], None, Some(dir)).await
    }

    /// A service on a PostgreSQL schema of its own; `None` (printed skip) without `DATABASE_URL`.
    pub(crate) async fn postgres() -> anyhow::Result<Option<Self>> {
        let Some(url) = keel_testkit::server_url("DATABASE_URL") else {
            return Ok(None);
        };
        let prefix = format!("{}_", keel_testkit::unique_name("kz"));
        let vars = [
            ("KEEL_DATABASE__URL", url.as_str()),
            ("KEEL_DATABASE__SCHEMA_PREFIX", prefix.as_str()),
        ];
        let schema = Some((url.clone(), format!("{prefix}authz")));
        Ok(Some(Self::build(&vars, schema, None).await?))
    }

    async fn build(
        vars: &[(&str, &str)],
        postgres_schema: Option<(String, String)>,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Self> {
        let config = keel_testkit::test_config(vars);
        let kernel = Kernel::builder(config.clone())
            .without_global_telemetry()
            .build()?;
        let handle = kernel.handle();
        let bus = Arc::new(InProcessBus::new(256));
        let audit = Arc::new(RecordingAudit::default());
        let users = Arc::new(KnownUsers::default());
        let key = SigningKey::generate();
        let mut clients = ServiceClients::connect(handle.registry().clone(), &config.kernel().grpc);
        clients.identity = users.clone();
        clients.audit = audit.clone();
        let verifier = Arc::new(TokenVerifier::new(
            Arc::new(StaticJwks(key.jwks())),
            JwtSettings::default(),
        ));
        let deps = AuthzDeps {
            clients,
            events: bus.clone(),
            verifier,
        };
        let service = AuthzService::build(&handle, deps.clone()).await?;
        let router = service.router();
        let db = Database::connect(&config.kernel().database, "authz")
            .await?
            .connection()
            .clone();
        Ok(Self {
            service,
            router,
            kernel: handle,
            bus,
            audit,
            users,
            key,
            db,
            deps,
            owner: tokio::sync::Mutex::new(kernel),
            postgres_schema,
            _dir: dir,
        })
    }

    /// Stops background work and drops the PostgreSQL schema.
    pub(crate) async fn finish(&self) -> anyhow::Result<()> {
        self.owner.lock().await.teardown().await;
        if let Some((url, schema)) = &self.postgres_schema {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
        }
        Ok(())
    }

    /// Another instance of the service on the same store and bus, as a second replica would be.
    pub(crate) async fn second_instance(&self) -> anyhow::Result<AuthzService> {
        Ok(AuthzService::build(&self.kernel, self.deps.clone()).await?)
    }

    /// The in-process client.
    pub(crate) fn client(&self) -> Arc<dyn AuthzClient> {
        self.service.local_client()
    }

    /// A user the identity double knows.
    pub(crate) fn new_user(&self) -> Uuid {
        let id = Uuid::now_v7();
        self.users.add(id);
        id
    }

    /// Seeds the roles and returns a user holding `admin`.
    pub(crate) async fn admin(&self) -> anyhow::Result<Uuid> {
        self.service.seed_roles().await?;
        let admin = self.new_user();
        self.service.assign_roles_by_name(admin, &["admin"]).await?;
        Ok(admin)
    }

    /// Every outbox row, oldest first.
    pub(crate) async fn outbox(&self) -> anyhow::Result<Vec<OutboxRow>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT kind, topic, payload FROM keel_outbox ORDER BY id",
            ))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    kind: row.try_get("", "kind")?,
                    topic: row.try_get("", "topic")?,
                    payload: serde_json::from_str(&row.try_get::<String>("", "payload")?)?,
                })
            })
            .collect()
    }

    /// How many rows a table holds.
    pub(crate) async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        Ok(row.try_get("", "n")?)
    }

    /// Sends a request to the REST router, with `token` as bearer and `body` as JSON when given;
    /// returns the status, the content type and the JSON body (`Null` when empty).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, String, Value)> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body.to_string()))?,
            None => request.body(axum::body::Body::empty())?,
        };
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.into_body().collect().await?.to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, content_type, json))
    }
}

/// Polls `check` every 20 ms for up to 5 s; fails with `what` if it never holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
