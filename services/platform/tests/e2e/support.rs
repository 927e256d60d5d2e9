//! Starting a real all-in-one platform on free ports and talking to it over HTTP only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_kernel::{Kernel, KernelHandle};
use keel_platform::Application;
use keel_testkit::test_config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The administrator every test platform seeds.
pub(crate) const ADMIN_EMAIL: &str = "admin@e2e.test";
/// Their password.
pub(crate) const ADMIN_PASSWORD: &str = "e2e admin passphrase 7";

/// A running platform with its own data directory.
pub(crate) struct Platform {
    pub(crate) base: String,
    pub(crate) data: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
    kernel: KernelHandle,
    running: tokio::task::JoinHandle<Result<(), keel_platform::PlatformError>>,
}

/// A response's status and JSON body (`Value::Null` when empty).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Platform {
    /// A platform on SQLite files in a fresh directory.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A platform with extra configuration variables.
    pub(crate) async fn start_with(vars: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temporary data directory");
        let url = format!("sqlite:{}", data.path().display());
        let outbox = data.path().join("outbox").display().to_string();
        let mut all = vec![
            ("KEEL_DATABASE__URL", url.as_str()),
            ("KEEL_IDENTITY__OUTBOX_DIR", outbox.as_str()),
            ("KEEL_ADMIN_EMAIL", ADMIN_EMAIL),
            ("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("KEEL_PLATFORM__SEED_ON_START", "true"),
        ];
        all.extend_from_slice(vars);
        let config = test_config(&all);
        let application = Application::build_with(Kernel::builder(config).without_global_telemetry())
            .await
            .expect("the platform builds");
        let base = format!("http://{}", application.address());
        let kernel = application.kernel();
        let running = tokio::spawn(application.run_until_stopped());
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let platform = Self {
            base,
            data,
            client,
            kernel,
            running,
        };
        platform.wait_until_ready().await;
        platform
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self.client.get(format!("{}/ready", self.base)).send().await;
            if ready.is_ok_and(|answer| answer.status() == StatusCode::OK) {
                return;
            }
            assert!(Instant::now() < deadline, "the platform did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the platform gracefully.
    pub(crate) async fn stop(self) {
        self.kernel.shutdown();
        self.running.await.expect("task").expect("stops cleanly");
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the platform answers");
        Self::answer(response).await
    }

    /// Sends a raw body with a content type.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> Answer {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the platform answers");
        Self::answer(response).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// Registers a user; panics unless 201.
    pub(crate) async fn register(&self, email: &str, password: &str) -> Value {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }

    /// Logs in; panics unless 200. Returns the token pair.
    pub(crate) async fn login(&self, email: &str, password: &str) -> Value {
        let answer = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    /// The administrator's access token.
    pub(crate) async fn admin_token(&self) -> String {
        access_token(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// The newest `?token=` link sent to `email` whose link path contains `kind`
    /// (`verify-email`, `reset-password`), read from the development e-mail outbox.
    pub(crate) async fn emailed_token(&self, email: &str, kind: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(token) = self.find_emailed_token(email, kind) {
                return token;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} e-mail to {email} in the outbox"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn find_emailed_token(&self, email: &str, kind: &str) -> Option<String> {
        let dir: PathBuf = self.data.path().join("outbox");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files.iter().rev().find_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            let text = text.replace("=\r\n", "").replace("=3D", "=");
            if !text.to_lowercase().contains(&format!("to: {email}")) {
                return None;
            }
            let start = text.find(&format!("/{kind}?token="))? + kind.len() + "/?token=".len();
            let token: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!token.is_empty()).then_some(token)
        })
    }

    /// Audit records matching `query` (e.g. `action=auth.login.succeeded`), polled until `until`
    /// holds or a deadline passes (records travel through outboxes, so they land shortly after).
    pub(crate) async fn audit_until(
        &self,
        token: &str,
        query: &str,
        until: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = self
                .call(
                    Method::GET,
                    &format!("/api/v1/audit-logs?limit=100&{query}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let items = answer.body["items"].as_array().cloned().unwrap_or_default();
            if until(&items) {
                return items;
            }
            assert!(
                Instant::now() < deadline,
                "audit records for {query} never matched; last page: {items:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The access token of a token pair.
pub(crate) fn access_token(pair: &Value) -> String {
    pair["access_token"].as_str().expect("access_token").to_owned()
}

/// The refresh token of a token pair.
pub(crate) fn refresh_token(pair: &Value) -> String {
    pair["refresh_token"].as_str().expect("refresh_token").to_owned()
}

/// A unique e-mail address for one test.
pub(crate) fn unique_email(who: &str) -> String {
    format!(
        "{who}-{}@e2e.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
