//! `GET /api/v1/audit-logs` over HTTP, with tokens signed by the test key.

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{TestAudit, on_both_backends, record};

on_both_backends!(
    listing_without_a_valid_token_is_401_problem_json,
    listing_without_the_read_permission_is_403_problem_json,
    listing_with_the_read_permission_returns_items_and_a_cursor,
    bad_query_parameters_are_422_with_field_paths,
);

async fn get(url: &str, token: Option<&str>) -> anyhow::Result<(StatusCode, String, Value)> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await?;
    Ok((status, content_type, body))
}

async fn listing_without_a_valid_token_is_401_problem_json(audit: &TestAudit) -> anyhow::Result<()> {
    let base = audit.serve_rest().await?;
    let url = format!("{base}/api/v1/audit-logs");
    for token in [None, Some("not.a.jwt")] {
        let (status, content_type, body) = get(&url, token).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 401);
    }
    assert!(
        audit.authz.checks().is_empty(),
        "no permission check without a principal"
    );
    Ok(())
}

async fn listing_without_the_read_permission_is_403_problem_json(audit: &TestAudit) -> anyhow::Result<()> {
    let base = audit.serve_rest().await?;
    let user = Uuid::now_v7();
    let (status, content_type, body) =
        get(&format!("{base}/api/v1/audit-logs"), Some(&audit.token_for(user))).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(audit.authz.checks(), [(user, "platform.audit.read".to_owned())]);
    Ok(())
}

async fn listing_with_the_read_permission_returns_items_and_a_cursor(
    audit: &TestAudit,
) -> anyhow::Result<()> {
    let admin = Uuid::now_v7();
    audit.authz.grant_audit_read(admin);
    let actor = Uuid::now_v7();
    let batch: Vec<_> = (0..3)
        .map(|_| record("auth.login.succeeded", Some(actor)))
        .collect();
    audit.client.record(&batch).await?;
    let base = audit.serve_rest().await?;
    let token = audit.token_for(admin);

    let url = format!("{base}/api/v1/audit-logs?actor_id={actor}&limit=2");
    let (status, _, body) = get(&url, Some(&token)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2);
    let newest = &items[0];
    assert_eq!(newest["id"], batch[2].id.to_string());
    assert_eq!(newest["sequence"], 3);
    assert_eq!(newest["action"], "auth.login.succeeded");
    assert_eq!(newest["actor_id"], actor.to_string());
    assert_eq!(
        newest["metadata"], batch[2].metadata,
        "metadata is a JSON object, not a string"
    );
    assert_eq!(newest["previous_hash"], items[1]["hash"]);
    for field in [
        "target_type",
        "target_id",
        "request_id",
        "ip",
        "user_agent",
        "occurred_at",
        "recorded_at",
        "source",
        "hash",
    ] {
        assert!(newest[field].is_string(), "{field} missing from {newest}");
    }
    let cursor = body["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty(), "{body}");

    let (status, _, rest) = get(&format!("{url}&cursor={cursor}"), Some(&token)).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rest["items"][0]["sequence"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    Ok(())
}

async fn bad_query_parameters_are_422_with_field_paths(audit: &TestAudit) -> anyhow::Result<()> {
    let admin = Uuid::now_v7();
    audit.authz.grant_audit_read(admin);
    let base = audit.serve_rest().await?;
    let token = audit.token_for(admin);
    let cases = [
        ("limit=0", "limit", "out_of_range"),
        ("limit=101", "limit", "out_of_range"),
        ("limit=ten", "limit", "invalid_integer"),
        ("cursor=bogus", "cursor", "invalid_cursor"),
        ("from=yesterday", "from", "invalid_datetime"),
        ("to=2026-13-01T00:00:00Z", "to", "invalid_datetime"),
        (
            "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "to",
            "invalid_range",
        ),
        ("actor_id=alice", "actor_id", "invalid_uuid"),
        ("actor=alice", "actor", "unknown_parameter"),
    ];
    for (query, field, code) in cases {
        let (status, content_type, body) =
            get(&format!("{base}/api/v1/audit-logs?{query}"), Some(&token)).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(content_type, "application/problem+json", "{query}");
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors.iter().any(|e| e["field"] == field && e["code"] == code),
            "{query}: {body}"
        );
    }
    Ok(())
}
