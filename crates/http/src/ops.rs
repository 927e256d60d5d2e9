//! `/healthz`, `/ready` and `/metrics`: the routes orchestrators and scrapers use.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use keel_health::HealthRegistry;
use metrics_exporter_prometheus::PrometheusHandle;

#[derive(Clone)]
struct OpsState {
    health: HealthRegistry,
    metrics: PrometheusHandle,
}

/// The paths [`ops_router`] serves.
pub const OPS_PATHS: &[&str] = &["/healthz", "/ready", "/metrics"];

/// The operational routes, to merge into a service's router before [`crate::Stack::apply`]:
/// - `GET /healthz`: 200 `{"status":"up"}` while the process runs (touches no dependency);
/// - `GET /ready`: every registered check, 200 when ready, 503 when a critical one fails;
/// - `GET /metrics`: Prometheus text exposition format.
pub fn ops_router(health: HealthRegistry, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(liveness))
        .route("/ready", get(readiness))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { health, metrics })
}

async fn liveness() -> Response {
    axum::Json(serde_json::json!({"status": "up"})).into_response()
}

async fn readiness(State(state): State<OpsState>) -> Response {
    let report = state.health.readiness().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    let body = state.metrics.render();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}
