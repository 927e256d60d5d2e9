//! The test harness: a freshly built auth service per test (its own SQLite directory or its own
//! PostgreSQL schema), peer doubles, a movable clock, and typed request helpers over its router.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use keel_auth::{AuthDeps, AuthService};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_clients::{AuditRecord, ServiceClients};
use keel_events::InProcessBus;
use keel_kernel::{Kernel, KernelHandle};
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::doubles::{NoAuth, TestAudit, TestAuthz, TestClock, TestIdentity};

/// Where a test's auth store lives.
pub(crate) struct Store {
    vars: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Store {
    /// A SQLite directory of its own.
    pub(crate) fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(Self {
            vars: vec![(
                "KEEL_DATABASE__URL".into(),
                format!("sqlite:{}", dir.path().display()),
            )],
            _dir: Some(dir),
            postgres: None,
        })
    }

    /// A PostgreSQL schema of its own; `None` (printed skip) without `DATABASE_URL`.
    pub(crate) fn postgres() -> Option<Self> {
        let url = keel_testkit::server_url("DATABASE_URL")?;
        let prefix = format!("{}_", keel_testkit::unique_name("ka"));
        Some(Self {
            vars: vec![
                ("KEEL_DATABASE__URL".into(), url.clone()),
                ("KEEL_DATABASE__SCHEMA_PREFIX".into(), prefix.clone()),
            ],
            _dir: None,
            postgres: Some((url, format!("{prefix}auth"))),
        })
    }

    /// Drops the PostgreSQL schema (SQLite directories go with the `TempDir`).
    pub(crate) async fn cleanup(&self) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        if let Some((url, schema)) = &self.postgres {
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

    fn config(&self, extra: &[(&str, &str)]) -> keel_config::Config {
        let mut vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.extend_from_slice(extra);
        keel_testkit::test_config(&vars)
    }
}

/// Runs a scenario on SQLite and, when `DATABASE_URL` is set, on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                let store = $crate::support::Store::sqlite()?;
                super::$name(&store).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                let Some(store) = $crate::support::Store::postgres() else { return Ok(()) };
                let outcome = super::$name(&store).await;
                store.cleanup().await?;
                outcome
            }
        }
    )+};
}

/// The peer doubles and the clock one or more service instances share.
#[derive(Clone)]
pub(crate) struct Peers {
    pub(crate) identity: Arc<TestIdentity>,
    pub(crate) authz: Arc<TestAuthz>,
    pub(crate) audit: Arc<TestAudit>,
    pub(crate) clock: Arc<TestClock>,
    pub(crate) bus: Arc<InProcessBus>,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            identity: Arc::default(),
            authz: Arc::default(),
            audit: Arc::default(),
            clock: Arc::default(),
            bus: Arc::new(InProcessBus::new(64)),
        }
    }
}

/// One built auth service and its router.
pub(crate) struct TestApp {
    pub(crate) service: AuthService,
    pub(crate) router: Router,
    pub(crate) peers: Peers,
    pub(crate) kernel: KernelHandle,
    _kernel: Kernel,
}

/// A reply: status, headers, JSON body (`Null` when empty).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

/// The tokens of a successful login or refresh.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl TestApp {
    /// A service over `store` with configuration overrides `vars` and fresh peers.
    pub(crate) async fn spawn(store: &Store, vars: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::spawn_with(store, vars, Peers::default()).await
    }

    /// A service over `store` sharing `peers` with others.
    pub(crate) async fn spawn_with(
        store: &Store,
        vars: &[(&str, &str)],
        peers: Peers,
    ) -> anyhow::Result<Self> {
        let kernel = Kernel::builder(store.config(vars))
            .without_global_telemetry()
            .build()?;
        let handle = kernel.handle();
        let clients = ServiceClients {
            identity: peers.identity.clone(),
            auth: Arc::new(NoAuth),
            authz: peers.authz.clone(),
            audit: peers.audit.clone(),
        };
        let deps = AuthDeps {
            clients,
            events: peers.bus.clone(),
            clock: peers.clock.clone(),
        };
        let service = AuthService::build(&handle, deps).await?;
        let router = service.router();
        Ok(Self {
            service,
            router,
            peers,
            kernel: handle,
            _kernel: kernel,
        })
    }

    /// Sends a request with a raw body.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        bearer: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(axum::body::Body::from(body))?)
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| format!("body of {status} is not JSON"))?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends `body` as JSON.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> anyhow::Result<Reply> {
        match body {
            Some(body) => {
                self.raw(
                    method,
                    path,
                    Some("application/json"),
                    serde_json::to_vec(&body)?,
                    bearer,
                )
                .await
            }
            None => self.raw(method, path, None, Vec::new(), bearer).await,
        }
    }

    /// `POST /api/v1/auth/login`.
    pub(crate) async fn login(&self, email: &str, password: &str) -> anyhow::Result<Reply> {
        self.send(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": email, "password": password})),
            None,
        )
        .await
    }

    /// A login that must succeed.
    pub(crate) async fn login_ok(&self, email: &str, password: &str) -> anyhow::Result<Tokens> {
        tokens(self.login(email, password).await?)
    }

    /// `POST /api/v1/auth/refresh`.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Reply> {
        self.send(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(json!({"refresh_token": refresh_token})),
            None,
        )
        .await
    }

    /// The served JWKS document.
    pub(crate) async fn jwks(&self) -> anyhow::Result<Value> {
        let reply = self
            .send(Method::GET, "/.well-known/jwks.json", None, None)
            .await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "JWKS answered {}", reply.status);
        Ok(reply.body)
    }

    /// The `kid`s of the served JWKS.
    pub(crate) async fn published_kids(&self) -> anyhow::Result<Vec<String>> {
        let jwks = self.jwks().await?;
        Ok(jwks["keys"]
            .as_array()
            .context("no keys array")?
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect())
    }

    /// A fresh verifier (keel-authn, default `jwt` settings) over the JWKS served right now.
    pub(crate) async fn verifier(&self) -> anyhow::Result<TokenVerifier> {
        let jwks = self.jwks().await?.to_string();
        Ok(TokenVerifier::new(
            Arc::new(StaticJwks(jwks)),
            JwtSettings::default(),
        ))
    }

    /// The audit records waiting in the outbox, oldest first.
    pub(crate) async fn outbox_audit(&self) -> anyhow::Result<Vec<AuditRecord>> {
        let db = self.service.database().connection();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT payload FROM keel_outbox WHERE kind = 'audit'",
            ))
            .await?;
        let mut records = rows
            .iter()
            .map(|row| -> anyhow::Result<AuditRecord> {
                let payload: String = row.try_get("", "payload")?;
                Ok(serde_json::from_str(&payload)?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        records.sort_by_key(|r| r.id);
        Ok(records)
    }

    /// The actions of the outbox's audit records, oldest first.
    pub(crate) async fn audit_actions(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.outbox_audit().await?.into_iter().map(|r| r.action).collect())
    }

    /// The `hash` column of every stored refresh token, sorted.
    pub(crate) async fn stored_refresh_hashes(&self) -> anyhow::Result<Vec<String>> {
        let db = self.service.database().connection();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT hash FROM refresh_tokens".to_owned(),
            ))
            .await?;
        let mut hashes = rows
            .iter()
            .map(|row| row.try_get::<String>("", "hash"))
            .collect::<Result<Vec<_>, _>>()?;
        hashes.sort();
        Ok(hashes)
    }

    /// Rows in a table of the auth store.
    pub(crate) async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let db = self.service.database().connection();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await?
            .context("no count")?;
        Ok(row.try_get("", "n")?)
    }
}

/// The tokens of a 200 token response.
pub(crate) fn tokens(reply: Reply) -> anyhow::Result<Tokens> {
    anyhow::ensure!(
        reply.status == StatusCode::OK,
        "expected 200, got {}: {}",
        reply.status,
        reply.body
    );
    Ok(Tokens {
        access: reply.body["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned(),
        refresh: reply.body["refresh_token"]
            .as_str()
            .context("no refresh_token")?
            .to_owned(),
    })
}

/// The claims of an access token, read without verifying (the tests verify separately).
pub(crate) fn claims(access_token: &str) -> anyhow::Result<keel_authn::AccessClaims> {
    Ok(jsonwebtoken::dangerous::insecure_decode_claims(access_token)?)
}

/// The `kid` of an access token's header.
pub(crate) fn kid(access_token: &str) -> anyhow::Result<String> {
    jsonwebtoken::decode_header(access_token)?.kid.context("no kid")
}
