//! `/ready` follows the database: 503 within the check timeout when it is unreachable, 200 again
//! when it returns (real PostgreSQL behind a proxy we can cut).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_db::Database;
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::Kernel;
use keel_testkit::{FaultProxy, server_url, unique_name};
use sea_orm::ConnectionTrait;

use crate::support::config;

/// `postgres://user@host:port/db` → (`host:port`, its socket address).
fn host_port(url: &str) -> (String, SocketAddr) {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after_user = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, rest)| rest);
    let host_port = after_user
        .split(['/', '?'])
        .next()
        .unwrap_or(after_user)
        .to_owned();
    let address = host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("DATABASE_URL names host:port");
    (host_port, address)
}

#[tokio::test]
async fn ready_turns_503_when_the_database_is_unreachable_and_200_when_it_returns() {
    let Some(url) = server_url("DATABASE_URL") else {
        return;
    };
    let (original, upstream) = host_port(&url);
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    let proxied = url.replacen(&original, &proxy.address().to_string(), 1);
    let prefix = format!("{}_", unique_name("ready"));
    let config = config(&[
        ("KEEL_DATABASE__URL", proxied.as_str()),
        ("KEEL_DATABASE__SCHEMA_PREFIX", prefix.as_str()),
        ("KEEL_HEALTH__CHECK_TIMEOUT_MS", "1000"),
        ("KEEL_DATABASE__POOL__CONNECT_TIMEOUT_MS", "500"),
    ]);
    let mut kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .build()
        .expect("kernel");
    let handle = kernel.handle();
    let database = Database::connect(&config.kernel().database, "readiness")
        .await
        .expect("connects");
    handle.health().register(Arc::new(database.readiness_check()));
    let router = Stack::new(config.kernel().http.clone(), handle.error_bus().clone())
        .apply(ops_router(handle.health().clone(), handle.metrics().clone()));
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let ready_url = format!("http://{}/ready", server.local_addr());
    tokio::spawn(server.serve(router, handle.shutdown_token(), Duration::from_secs(1)));
    // A client timeout well above the check timeout: if /ready hung, this would fail the test.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    let up = client.get(&ready_url).send().await.expect("ready answers");
    assert_eq!(up.status(), 200);
    let body: serde_json::Value = up.json().await.expect("json");
    assert_eq!(body["checks"][0]["name"], "database:readiness");
    assert_eq!(body["checks"][0]["status"], "up");

    proxy.go_down();
    let down = client
        .get(&ready_url)
        .send()
        .await
        .expect("ready answers while the database is down");
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.expect("json");
    assert_eq!(body["status"], "down");
    assert_eq!(body["checks"][0]["status"], "down");
    assert!(body["checks"][0]["error"].as_str().is_some_and(|e| !e.is_empty()));

    proxy.come_back();
    let mut recovered = false;
    for _ in 0..40 {
        if client
            .get(&ready_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "/ready is 200 again once the database is back");

    let cleanup = sea_orm::Database::connect(url.as_str())
        .await
        .expect("direct connection");
    cleanup
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{prefix}readiness\" CASCADE"))
        .await
        .expect("drop schema");
    handle.shutdown();
    kernel.teardown().await;
}
