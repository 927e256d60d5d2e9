//! The test harness: a built identity service on a fresh store (a SQLite file in a temp dir, or
//! a PostgreSQL schema of its own), with test doubles for its peers, the production middleware
//! stack in front of its router, and helpers to call it and read what it wrote.

mod client;
pub(crate) mod doubles;
pub(crate) mod keys;

pub(crate) use client::{Call, Reply};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Method, StatusCode};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_clients::ServiceClients;
use keel_db::{Database, ServiceDatabase};
use keel_events::InProcessBus;
use keel_identity::{IdentityDeps, IdentityService};
use keel_kernel::Kernel;
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::Value;
use uuid::Uuid;

use doubles::{ManualClock, NoIdentity, RecordingAudit, RecordingAuth, StaticAuthz};
use keys::SigningKey;

/// Where the store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A SQLite file in the test's temp directory.
    Sqlite,
    /// A schema of its own on `DATABASE_URL`.
    Postgres,
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests running `async fn name(Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::support::Backend::Postgres).await;
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// Cheap argon2 costs so tests do not wait on hashing (the costs themselves are tested apart).
pub(crate) const CHEAP_HASH: &[(&str, &str)] = &[
    ("KEEL_IDENTITY__PASSWORD_HASH__MEMORY_KIB", "64"),
    ("KEEL_IDENTITY__PASSWORD_HASH__ITERATIONS", "1"),
];

/// A password every policy accepts.
pub(crate) const GOOD_PASSWORD: &str = "violet-tangerine-47-harbour";

/// One identity service under test.
pub(crate) struct TestApp {
    pub(crate) service: IdentityService,
    pub(super) router: axum::Router,
    pub(crate) auth: Arc<RecordingAuth>,
    pub(crate) authz: Arc<StaticAuthz>,
    pub(crate) audit: Arc<RecordingAudit>,
    pub(crate) bus: Arc<InProcessBus>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) key: SigningKey,
    pub(crate) store: ServiceDatabase,
    pub(crate) kernel: Kernel,
    outbox_dir: PathBuf,
    vars: Vec<(String, String)>,
    schema: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A service with the shipped configuration and cheap hashing; `None` (skip printed) for
    /// PostgreSQL without `DATABASE_URL`.
    pub(crate) async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// As [`TestApp::start`], with extra configuration variables (`KEEL_IDENTITY__…`).
    pub(crate) async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox_dir = dir.path().join("outbox");
        let mut vars: Vec<(String, String)> = vec![(
            "KEEL_IDENTITY__OUTBOX_DIR".into(),
            outbox_dir.display().to_string(),
        )];
        let schema = match backend {
            Backend::Sqlite => {
                vars.push((
                    "KEEL_DATABASE__URL".into(),
                    format!("sqlite:{}", dir.path().join("db").display()),
                ));
                None
            }
            Backend::Postgres => {
                let url = keel_testkit::server_url("DATABASE_URL")?;
                let prefix = format!("{}_", keel_testkit::unique_name("kid"));
                vars.push(("KEEL_DATABASE__URL".into(), url.clone()));
                vars.push(("KEEL_DATABASE__SCHEMA_PREFIX".into(), prefix.clone()));
                Some((url, format!("{prefix}identity")))
            }
        };
        for (name, value) in CHEAP_HASH.iter().chain(extra) {
            vars.push(((*name).into(), (*value).into()));
        }
        let parts = Parts::build(&vars, None).await;
        Some(Self {
            service: parts.service,
            router: parts.router,
            auth: parts.auth,
            authz: parts.authz,
            audit: parts.audit,
            bus: parts.bus,
            clock: parts.clock,
            key: parts.key,
            store: parts.store,
            kernel: parts.kernel,
            outbox_dir,
            vars,
            schema,
            _dir: dir,
        })
    }

    /// A second service instance on the same store and outbox, with `extra` configuration on top
    /// of this one's (e.g. higher hashing costs), sharing this app's clock.
    pub(crate) async fn sibling(&self, extra: &[(&str, &str)]) -> IdentityService {
        let mut vars = self.vars.clone();
        vars.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        Parts::build(&vars, Some(self.clock.clone())).await.service
    }

    /// Starts a request.
    pub(crate) fn request(&self, method: Method, path: &str) -> Call<'_> {
        Call::new(self, method, path)
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path).json(&body).send().await
    }

    /// Registers `email` with [`GOOD_PASSWORD`] and returns the user's id.
    pub(crate) async fn register(&self, email: &str) -> Uuid {
        let reply = self
            .post(
                "/api/v1/users",
                serde_json::json!({"email": email, "password": GOOD_PASSWORD}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("user id")
    }

    /// A bearer token of `user`.
    pub(crate) fn token_for(&self, user: Uuid) -> String {
        self.key.token_for(user)
    }

    /// Rows of a query on the service's store.
    pub(crate) async fn rows(&self, sql: &str) -> Vec<sea_orm::QueryResult> {
        let backend = self.store.backend();
        self.store
            .connection()
            .query_all_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("query")
    }

    /// Runs `sql` (no result) on the service's store.
    /// Runs `sql` on the store, as another writer would: its outcome.
    pub(crate) async fn try_execute(&self, sql: &str) -> Result<(), sea_orm::DbErr> {
        let backend = self.store.backend();
        self.store
            .connection()
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .map(|_| ())
    }

    pub(crate) async fn execute(&self, sql: &str) {
        let backend = self.store.backend();
        self.store
            .connection()
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("execute");
    }

    /// How many users are stored.
    pub(crate) async fn user_count(&self) -> i64 {
        let rows = self.rows("SELECT COUNT(*) AS n FROM users").await;
        rows[0].try_get::<i64>("", "n").expect("count")
    }

    /// The stored password hash of `email`.
    pub(crate) async fn password_hash(&self, email: &str) -> String {
        let rows = self
            .rows(&format!(
                "SELECT password_hash FROM users WHERE email = '{email}'"
            ))
            .await;
        rows[0].try_get::<String>("", "password_hash").expect("hash")
    }

    /// The outbox: (kind, topic, payload), oldest first.
    pub(crate) async fn outbox(&self) -> Vec<(String, String, Value)> {
        self.rows("SELECT kind, topic, payload FROM keel_outbox ORDER BY id")
            .await
            .iter()
            .map(|row| {
                let payload: String = row.try_get("", "payload").expect("payload");
                (
                    row.try_get("", "kind").expect("kind"),
                    row.try_get("", "topic").expect("topic"),
                    serde_json::from_str(&payload).expect("json payload"),
                )
            })
            .collect()
    }

    /// The outbox's audit records (as JSON), oldest first.
    pub(crate) async fn audit_records(&self) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(k, ..)| k == "audit")
            .map(|(.., p)| p)
            .collect()
    }

    /// The outbox's events (as JSON), oldest first.
    pub(crate) async fn events(&self) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(k, ..)| k == "event")
            .map(|(.., p)| p)
            .collect()
    }

    /// The `.eml` files written so far, oldest first, as text.
    pub(crate) fn mails(&self) -> Vec<String> {
        read_mails(&self.outbox_dir)
    }

    /// Waits (up to 5 s) until at least `count` mails were written, and returns them.
    pub(crate) async fn mails_eventually(&self, count: usize) -> Vec<String> {
        for _ in 0..100 {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fewer than {count} mails after 5 s: {:?}", self.mails());
    }

    /// Stops background work and drops the PostgreSQL schema.
    pub(crate) async fn finish(mut self) {
        self.kernel.handle().shutdown();
        self.kernel.teardown().await;
        self.store.close().await;
        if let Some((url, schema)) = self.schema.take() {
            drop_schema(&url, &schema).await;
        }
    }
}

/// The token of the link in `mail` following `path?token=`.
pub(crate) fn token_in(mail: &str, path: &str) -> String {
    let marker = format!("/{path}?token=");
    let start = mail
        .find(&marker)
        .map(|i| i + marker.len())
        .expect("a link in the mail");
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn read_mails(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("mail"))
        .collect()
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(&mut conn)
    .await
    .expect("drop schema");
}

/// Everything one built service consists of.
struct Parts {
    service: IdentityService,
    router: axum::Router,
    auth: Arc<RecordingAuth>,
    authz: Arc<StaticAuthz>,
    audit: Arc<RecordingAudit>,
    bus: Arc<InProcessBus>,
    clock: Arc<ManualClock>,
    key: SigningKey,
    store: ServiceDatabase,
    kernel: Kernel,
}

impl Parts {
    async fn build(vars: &[(String, String)], clock: Option<Arc<ManualClock>>) -> Self {
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let config = keel_testkit::test_config(&pairs);
        let kernel = Kernel::builder(config.clone())
            .without_global_telemetry()
            .build()
            .expect("kernel");
        let (auth, authz, audit) = (
            Arc::new(RecordingAuth::default()),
            Arc::new(StaticAuthz::default()),
            Arc::new(RecordingAudit::default()),
        );
        let bus = Arc::new(InProcessBus::new(64));
        let clock = clock.unwrap_or_else(|| Arc::new(ManualClock::new()));
        let key = SigningKey::generate();
        let verifier = Arc::new(TokenVerifier::new(
            Arc::new(StaticJwks(key.jwks())),
            JwtSettings::default(),
        ));
        let clients = ServiceClients {
            identity: Arc::new(NoIdentity),
            auth: auth.clone(),
            authz: authz.clone(),
            audit: audit.clone(),
        };
        let mut deps = IdentityDeps::new(clients, bus.clone(), verifier);
        deps.clock = clock.clone();
        let service = IdentityService::build(&kernel.handle(), deps)
            .await
            .expect("service builds");
        let stack = keel_http::Stack::new(config.kernel().http.clone(), kernel.handle().error_bus().clone());
        let router = stack.apply(service.router());
        let store = Database::connect(&config.kernel().database, "identity")
            .await
            .expect("store");
        Self {
            service,
            router,
            auth,
            authz,
            audit,
            bus,
            clock,
            key,
            store,
            kernel,
        }
    }
}
