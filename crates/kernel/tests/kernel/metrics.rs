//! `/metrics`: route templates (not raw paths), gRPC and error series, and promtool's approval.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keel_grpc::GrpcServer;
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::Kernel;
use tokio::io::AsyncWriteExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{client, config};

#[tokio::test]
async fn metrics_use_route_templates_and_pass_promtool() {
    let config = config(&[]);
    let mut kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .build()
        .expect("kernel");
    let handle = kernel.handle();
    let router = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .merge(ops_router(handle.health().clone(), handle.metrics().clone()));
    let router = Stack::new(config.kernel().http.clone(), handle.error_bus().clone()).apply(router);
    let http = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let base = format!("http://{}", http.local_addr());
    tokio::spawn(http.serve(router, handle.shutdown_token(), Duration::from_secs(1)));
    let grpc = GrpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &config.kernel().grpc)
        .await
        .expect("bind grpc");
    let grpc_address = grpc.local_addr();
    tokio::spawn(grpc.serve(|router| router, handle.shutdown_token(), Duration::from_secs(1)));

    for path in ["/items/1", "/items/2", "/items/3", "/nowhere"] {
        client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
    }
    let channel =
        keel_grpc::connect_lazy(&format!("http://{grpc_address}"), &config.kernel().grpc).expect("channel");
    let health_channel = channel.clone();
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    // A call to a service the server does not have: its made-up names must not become labels.
    let mut raw = tonic::client::Grpc::new(health_channel.clone());
    raw.ready().await.expect("channel ready");
    let unimplemented = raw
        .unary(
            tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            }),
            http::uri::PathAndQuery::from_static("/made.up.Service/Nothing"),
            tonic_prost::ProstCodec::<HealthCheckRequest, tonic_health::pb::HealthCheckResponse>::default(),
        )
        .await;
    assert_eq!(
        unimplemented.map(drop).map_err(|status| status.code()),
        Err(tonic::Code::Unimplemented)
    );
    // Nor may a made-up HTTP method.
    let made_up = reqwest::Method::from_bytes(b"FOO1").expect("a token");
    client()
        .request(made_up, format!("{base}/items/1"))
        .send()
        .await
        .expect("request");
    handle
        .error_bus()
        .publish(keel_errorbus::ErrorRecord::new("test", "counted"));

    let response = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(
        text.contains(r#"keel_http_requests_total{method="GET",route="/items/{id}",status="200"}"#),
        "{text}"
    );
    assert!(!text.contains("/items/1"), "raw paths never become labels");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains("keel_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"keel_grpc_requests_total{service="grpc.health.v1.Health",method="Check",code="Ok"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"keel_grpc_client_requests_total{service="grpc.health.v1.Health",method="Check",code="Ok"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"keel_errors_total{kind="test"}"#), "{text}");
    assert!(
        text.contains(r#"keel_grpc_requests_total{service="unknown",method="unknown",code="Unimplemented"}"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"keel_grpc_requests_total{service="made.up.Service""#),
        "a caller's made-up gRPC names never become the server's labels"
    );
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("FOO1"), "made-up HTTP methods never become labels");

    if let Some(promtool) = keel_testkit::tool("promtool") {
        let mut child = tokio::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write");
        drop(stdin);
        let output = child.wait_with_output().await.expect("promtool ends");
        assert!(
            output.status.success(),
            "promtool rejected /metrics:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    handle.shutdown();
    kernel.teardown().await;
}
