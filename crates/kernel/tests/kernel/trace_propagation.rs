//! One trace across HTTP → gRPC → HTTP: the W3C trace context and the request id survive every hop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keel_config::LogFormat;
use keel_grpc::GrpcServer;
use keel_http::{HttpServer, Stack};
use keel_testkit::echo::echo_client::EchoClient;
use keel_testkit::echo::echo_server::{Echo, EchoServer};
use keel_testkit::echo::{EchoReply, EchoRequest};
use opentelemetry::trace::TraceContextExt;
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::{capture_logs, client, config};

const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn current_trace_id() -> String {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

fn current_request_id() -> String {
    keel_telemetry::context::current()
        .map(|c| c.request_id().to_owned())
        .unwrap_or_default()
}

/// The gRPC hop: records what it saw, then makes the second HTTP hop.
struct EchoThenHttp {
    back_url: String,
}

#[tonic::async_trait]
impl Echo for EchoThenHttp {
    async fn echo(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let mut headers = http::HeaderMap::new();
        keel_telemetry::propagation::inject_current(&mut headers);
        if let Ok(value) = http::HeaderValue::from_str(&current_request_id()) {
            headers.insert("x-request-id", value);
        }
        let back = client()
            .get(&self.back_url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?
            .text()
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(EchoReply {
            message: request.into_inner().message,
            trace_id: current_trace_id(),
            request_id: current_request_id(),
            detail: back,
        }))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn traceparent_and_request_id_cross_http_grpc_http() {
    let _captured = capture_logs(LogFormat::Compact);
    let config = config(&[]);
    let kernel = config.kernel();
    let shutdown = CancellationToken::new();
    let (bus, _consumer) = keel_errorbus::ErrorBus::start(8, Vec::new(), shutdown.clone());

    let http = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind http");
    let http_address = http.local_addr();
    let grpc = GrpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &kernel.grpc)
        .await
        .expect("bind grpc");
    let grpc_address = grpc.local_addr();

    let channel = keel_grpc::connect_lazy(&format!("http://{grpc_address}"), &kernel.grpc).expect("channel");
    let router = Router::new()
        .route(
            "/front",
            get(move || {
                let mut echo = EchoClient::new(channel.clone());
                async move {
                    let reply = echo
                        .echo(EchoRequest { message: "hi".into() })
                        .await
                        .map_err(|status| keel_http::Problem::unavailable(status.message().to_owned()))?
                        .into_inner();
                    Ok::<_, keel_http::Problem>(axum::Json(serde_json::json!({
                        "front": {"trace_id": current_trace_id(), "request_id": current_request_id()},
                        "grpc": {"trace_id": reply.trace_id, "request_id": reply.request_id},
                        "back": serde_json::from_str::<serde_json::Value>(&reply.detail).unwrap_or_default(),
                    })))
                }
            }),
        )
        .route(
            "/back",
            get(|| async {
                axum::Json(
                    serde_json::json!({"trace_id": current_trace_id(), "request_id": current_request_id()}),
                )
            }),
        );
    let router = Stack::new(kernel.http.clone(), bus).apply(router);
    let echo = EchoThenHttp {
        back_url: format!("http://{http_address}/back"),
    };
    tokio::spawn(http.serve(router, shutdown.clone(), Duration::from_secs(1)));
    tokio::spawn(grpc.serve(
        move |r| r.add_service(EchoServer::new(echo)),
        shutdown.clone(),
        Duration::from_secs(1),
    ));

    let response = client()
        .get(format!("http://{http_address}/front"))
        .header("traceparent", format!("00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01"))
        .header("x-request-id", "trace-req-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let hops: serde_json::Value = response.json().await.expect("json");
    for hop in ["front", "grpc", "back"] {
        assert_eq!(
            hops[hop]["trace_id"], CLIENT_TRACE_ID,
            "{hop} continues the client's trace: {hops}"
        );
        assert_eq!(
            hops[hop]["request_id"], "trace-req-1",
            "{hop} carries the request id: {hops}"
        );
    }
    shutdown.cancel();
}
