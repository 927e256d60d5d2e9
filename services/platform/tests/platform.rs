//! The platform process end to end: built from the shipped configuration, served on a free port,
//! driven over HTTP only, stopped gracefully.

use std::time::Duration;

use keel_kernel::Kernel;
use keel_platform::Application;
use keel_testkit::test_config;

#[tokio::test]
async fn the_platform_serves_liveness_readiness_and_metrics_then_stops_gracefully() {
    let data = tempfile::tempdir().expect("temporary data directory");
    let url = format!("sqlite:{}", data.path().display());
    let config = test_config(&[("KEEL_DATABASE__URL", url.as_str())]);
    let application = Application::build_with(Kernel::builder(config).without_global_telemetry())
        .await
        .expect("builds");
    let base = format!("http://{}", application.address());
    let kernel = application.kernel();
    let running = tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    let live = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(live.status(), 200);
    assert!(live.headers().contains_key("x-request-id"));
    assert_eq!(
        live.json::<serde_json::Value>().await.expect("json")["status"],
        "up"
    );

    let ready = client.get(format!("{base}/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    let report: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(report["checks"][0]["name"], "database:platform");
    assert_eq!(report["checks"][0]["status"], "up");
    assert!(
        data.path().join("platform.db").exists(),
        "the platform's own SQLite store was created"
    );

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("body");
    assert!(text.contains(r#"route="/healthz""#), "{text}");

    let missing = client
        .get(format!("{base}/api/v1/nothing"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");

    kernel.shutdown();
    running.await.expect("task").expect("stops cleanly");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let data = tempfile::tempdir().expect("temporary data directory");
    let url = format!("sqlite:{}", data.path().display());
    let config = test_config(&[
        ("KEEL_HTTP__PORT", port.as_str()),
        ("KEEL_DATABASE__URL", url.as_str()),
    ]);
    let error = Application::build_with(Kernel::builder(config).without_global_telemetry())
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&port), "{error}");
}
