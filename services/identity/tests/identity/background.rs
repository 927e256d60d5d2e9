//! Background work: the outbox relay delivers events to the bus and audit records to the audit
//! service, with the request id of the request that caused them.

use std::time::Duration;

use serde_json::json;

use crate::support::{Backend, GOOD_PASSWORD, TestApp, on_both_backends};

on_both_backends!(the_relay_delivers_the_outbox_to_the_bus_and_the_audit_service);

async fn the_relay_delivers_the_outbox_to_the_bus_and_the_audit_service(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let mut users = keel_events::EventBus::subscribe(&*app.bus, "platform.user.*")
        .await
        .expect("subscribe");
    app.service.start_background(&app.kernel.handle());
    let reply = app
        .request(http::Method::POST, "/api/v1/users")
        .header("x-request-id", "bg-req-7")
        .json(&json!({"email": "relay@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await;
    assert_eq!(reply.status, http::StatusCode::CREATED);
    let event = tokio::time::timeout(Duration::from_secs(5), users.next())
        .await
        .expect("an event within 5 s")
        .expect("the bus is open");
    assert_eq!(event.topic, "platform.user.created");
    assert_eq!(event.request_id.as_deref(), Some("bg-req-7"));
    assert_eq!(event.payload["email"], "relay@example.com");
    for _ in 0..100 {
        if !app.audit.records().is_empty() && app.outbox().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = app.audit.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "identity.user.registered");
    assert_eq!(records[0].request_id.as_deref(), Some("bg-req-7"));
    assert!(app.outbox().await.is_empty(), "delivered rows leave the outbox");
    app.finish().await;
}
