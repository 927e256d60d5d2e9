//! The HTTP stack end to end: a real server on a free port, a real client, captured logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use keel_config::{HttpConfig, LogFormat};
use keel_errorbus::{ErrorBus, ErrorRecord, ErrorSink};
use keel_http::{HttpServer, Json, Problem, Stack};
use keel_testkit::{CapturedLogs, capture_logs, test_config};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Records(Mutex<Vec<ErrorRecord>>);

impl ErrorSink for Records {
    fn record(&self, record: &ErrorRecord) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record.clone());
    }
}

/// A running server with its captured logs and error-bus records.
struct TestServer {
    base: String,
    records: Arc<Records>,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), keel_http::HttpError>>,
    captured: CapturedLogs,
}

fn http_config(vars: &[(&str, &str)]) -> HttpConfig {
    test_config(vars).kernel().http.clone()
}

async fn spawn(router: Router, config: HttpConfig, format: LogFormat) -> TestServer {
    let captured = capture_logs(format);
    let records = Arc::new(Records::default());
    let shutdown = CancellationToken::new();
    let (bus, _consumer) = ErrorBus::start(16, vec![records.clone()], CancellationToken::new());
    let router = Stack::new(config.clone(), bus).apply(router);
    let server = HttpServer::bind(std::net::SocketAddr::new(config.host, 0))
        .await
        .expect("binds");
    let base = format!("http://{}", server.local_addr());
    let served = tokio::spawn(server.serve(router, shutdown.clone(), Duration::from_secs(5)));
    TestServer {
        base,
        records,
        shutdown,
        served,
        captured,
    }
}

fn routes() -> Router {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Note {
        title: String,
    }
    Router::new()
        .route(
            "/hello/{name}",
            get(|| async {
                tracing::info!("inside the handler");
                "hi"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .route("/notes", post(|Json(_note): Json<Note>| async { "created" }))
        .route(
            "/conflict",
            get(|| async { Err::<(), _>(Problem::conflict("already there")) }),
        )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_without_an_id_gets_a_fresh_one_on_the_response_and_every_log_line() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Compact).await;
    let response = client()
        .get(format!("{}/hello/ada", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh UUID: {id}");
    let lines: Vec<String> = server
        .captured
        .logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("handler") || l.contains("request completed"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(
            line.contains(&id),
            "every line of the request carries its id: {line}"
        );
        assert!(line.contains("trace_id="), "and its trace id: {line}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_sane_client_id_is_honoured_and_an_insane_one_replaced() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Compact).await;
    let honoured = client()
        .get(format!("{}/hello/ada", server.base))
        .header("x-request-id", "client-id-123")
        .send()
        .await
        .expect("request");
    assert_eq!(honoured.headers()["x-request-id"], "client-id-123");
    let hostile = "a".repeat(200);
    let replaced = client()
        .get(format!("{}/hello/ada", server.base))
        .header("x-request-id", &hostile)
        .send()
        .await
        .expect("request");
    let id = replaced.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, hostile);
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert!(
        !server.captured.logs.contents().contains(&hostile),
        "a rejected id never reaches the logs"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn production_logs_are_json_with_the_request_id() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Json).await;
    let response = client()
        .get(format!("{}/hello/ada", server.base))
        .header("x-request-id", "json-req-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let lines = server.captured.logs.lines();
    let completed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON"))
        .filter(|v| v["message"] == "request completed")
        .collect();
    assert_eq!(completed.len(), 1);
    let spans = completed[0]["spans"].as_array().expect("span list");
    assert_eq!(spans[0]["request_id"], "json-req-1");
    assert_eq!(
        spans[0]["route"], "/hello/{name}",
        "the route template, not the raw path"
    );
    assert!(spans[0]["trace_id"].as_str().is_some_and(|t| t.len() == 32));
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_handler_answers_500_problem_and_publishes_one_record() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Compact).await;
    let response = client()
        .get(format!("{}/panic", server.base))
        .header("x-request-id", "panic-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["instance"], "panic-1");
    assert!(
        !body.to_string().contains("boom"),
        "the panic message is not shown to the client"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let records = server.records.0.lock().expect("lock").clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, "panic");
    assert_eq!(records[0].request_id.as_deref(), Some("panic-1"));
    assert!(records[0].message.contains("boom"));
    let again = client()
        .get(format!("{}/hello/ada", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 200, "the server lives on");
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_routes_and_methods_are_problems() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Compact).await;
    let missing = client()
        .get(format!("{}/nope", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let wrong = client()
        .delete(format!("{}/hello/ada", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    let conflict = client()
        .get(format!("{}/conflict", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(conflict.status(), 409);
}

#[tokio::test(flavor = "current_thread")]
async fn bad_json_bodies_are_typed_problems() {
    let server = spawn(routes(), http_config(&[]), LogFormat::Compact).await;
    let url = format!("{}/notes", server.base);
    let post = |body: &'static str, content_type: &'static str| {
        client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = post("{\"title\":", "application/json").await.expect("request");
    assert_eq!(malformed.status(), 400);
    let unknown = post(r#"{"title":"a","owner":"me"}"#, "application/json")
        .await
        .expect("request");
    assert_eq!(unknown.status(), 422);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "unknown_field");
    assert_eq!(body["errors"][0]["field"], "owner");
    let wrong_type = post(r#"{"title":5}"#, "application/json").await.expect("request");
    let body: serde_json::Value = wrong_type.json().await.expect("json");
    assert_eq!(body["errors"][0]["field"], "title");
    let media = post(r#"{"title":"a"}"#, "text/plain").await.expect("request");
    assert_eq!(media.status(), 415);
}

#[tokio::test(flavor = "current_thread")]
async fn an_oversized_body_is_413_whether_declared_or_streamed() {
    let server = spawn(
        routes(),
        http_config(&[("KEEL_HTTP__BODY_LIMIT_BYTES", "1024")]),
        LogFormat::Compact,
    )
    .await;
    let url = format!("{}/notes", server.base);
    let big = format!("{{\"title\":\"{}\"}}", "x".repeat(4096));
    let declared = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(declared.status(), 413);
    assert_eq!(declared.headers()["content-type"], "application/problem+json");
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let streamed = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    assert_eq!(streamed.status(), 413);
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_over_its_deadline_is_503_problem() {
    let server = spawn(
        routes(),
        http_config(&[("KEEL_HTTP__REQUEST_TIMEOUT_MS", "100")]),
        LogFormat::Compact,
    )
    .await;
    let response = client()
        .get(format!("{}/slow", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test(flavor = "current_thread")]
async fn security_headers_are_on_every_answer_including_errors() {
    let server = spawn(
        routes(),
        http_config(&[("KEEL_HTTP__SECURITY_HEADERS__HSTS_MAX_AGE_SECS", "600")]),
        LogFormat::Compact,
    )
    .await;
    for path in ["/hello/ada", "/nope", "/panic"] {
        let response = client()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("request");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            headers["strict-transport-security"], "max-age=600; includeSubDomains",
            "{path}"
        );
        assert!(headers.contains_key("content-security-policy"), "{path}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn cors_preflight_is_allowed_for_configured_origins_only() {
    let config = http_config(&[(
        "KEEL_HTTP__CORS__ALLOWED_ORIGINS",
        "[\"https://app.example.com\"]",
    )]);
    let server = spawn(routes(), config, LogFormat::Compact).await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/notes", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("request");
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let denied = preflight("https://evil.example.com").await.expect("request");
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "current_thread")]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    // The handler says when it has started, so shutdown begins with the request surely in flight
    // (a fixed sleep raced the request on a loaded machine).
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = Arc::clone(&started);
    let router = routes().route(
        "/slow-signalled",
        get(move || {
            let signal = Arc::clone(&signal);
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }
        }),
    );
    let server = spawn(router, http_config(&[]), LogFormat::Compact).await;
    let url = format!("{}/slow-signalled", server.base);
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    started.notified().await;
    server.shutdown.cancel();
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "done");
    server.served.await.expect("task").expect("server stops cleanly");
    let refused = client().get(format!("{}/hello/ada", server.base)).send().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}
