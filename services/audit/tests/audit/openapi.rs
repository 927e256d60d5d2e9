//! `GET /api/v1/audit/openapi.json`: the service's OpenAPI document, served by its REST router
//! without a token, describes exactly the router's routes, their answers and their security, and
//! its schemas match what the API really answers.

use std::collections::BTreeSet;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{TestAudit, on_both_backends, record};

on_both_backends!(openapi_document_describes_every_route);

/// Every route of the audit REST router, as (path, method).
const ROUTES: &[(&str, &str)] = &[("/api/v1/audit-logs", "get")];

/// The error statuses `GET /api/v1/audit-logs` documents.
const LIST_ERRORS: &[&str] = &["400", "401", "403", "422", "500", "503", "504"];

/// The query parameters `GET /api/v1/audit-logs` reads.
const LIST_PARAMETERS: &[&str] = &[
    "action",
    "actor_id",
    "cursor",
    "from",
    "limit",
    "request_id",
    "target_id",
    "to",
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn openapi_document_describes_every_route(audit: &TestAudit) -> anyhow::Result<()> {
    let base = audit.serve_rest().await?;
    let response = reqwest::get(format!("{base}/api/v1/audit/openapi.json")).await?;
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let doc: Value = serde_json::from_str(&response.text().await?)?;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Keel audit");

    // Exactly the router's routes.
    let paths = doc["paths"].as_object().context("paths is an object")?;
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (path.clone(), (*method).to_owned()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(path, method)| ((*path).to_owned(), (*method).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // The listing: its success answer, every documented error as problem+json, bearer security.
    let list = &doc["paths"]["/api/v1/audit-logs"]["get"];
    assert_eq!(list["tags"], serde_json::json!(["audit"]));
    assert_eq!(list["security"], serde_json::json!([{"bearer": []}]));
    assert!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer")),
        "{}",
        doc["components"]
    );
    let responses = list["responses"].as_object().context("responses")?;
    let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
    let mut wanted: BTreeSet<&str> = LIST_ERRORS.iter().copied().collect();
    wanted.insert("200");
    assert_eq!(statuses, wanted);
    for status in LIST_ERRORS {
        assert_eq!(
            responses[*status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let parameters = list["parameters"].as_array().context("parameters")?;
    let names: BTreeSet<&str> = parameters.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, LIST_PARAMETERS.iter().copied().collect());
    assert!(
        parameters
            .iter()
            .all(|p| p["in"] == "query" && p["required"] != true),
        "{parameters:?}"
    );

    // The page schema against a real answer: same fields, for the page and for a record.
    let page_ref = &responses["200"]["content"]["application/json"]["schema"];
    let page_fields = fields(&doc, page_ref)?;
    let items_ref = &schema(&doc, page_ref)?["properties"]["items"]["items"];
    let record_fields = fields(&doc, items_ref)?;

    let admin = Uuid::now_v7();
    audit.authz.grant_audit_read(admin);
    audit
        .client
        .record(&[record("auth.login.succeeded", None)])
        .await?;
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit-logs"))
        .bearer_auth(audit.token_for(admin))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page_fields, keys(&body), "{body}");
    assert_eq!(record_fields, keys(&body["items"][0]), "{body}");
    Ok(())
}

/// The schema `value` is, following a `$ref` into `components.schemas`.
fn schema<'a>(doc: &'a Value, value: &'a Value) -> anyhow::Result<&'a Value> {
    match value["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .context("a local schema reference")?;
            let found = &doc["components"]["schemas"][name];
            anyhow::ensure!(found.is_object(), "no schema {name}");
            Ok(found)
        }
        None => Ok(value),
    }
}

/// The property names of a schema, through `$ref` and `allOf` (how `#[serde(flatten)]` shows).
fn fields(doc: &Value, value: &Value) -> anyhow::Result<BTreeSet<String>> {
    let schema = schema(doc, value)?;
    let mut found: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        found.extend(fields(doc, part)?);
    }
    anyhow::ensure!(!found.is_empty(), "a schema without properties: {schema}");
    Ok(found)
}

/// The keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default()
}
