//! The OpenAPI document: served without a token at `/api/v1/auth/openapi.json`, and describing
//! exactly the routes the REST router answers, with their statuses and security.

use anyhow::Context as _;
use http::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::{Store, TestApp};

const DOCUMENT: &str = "/api/v1/auth/openapi.json";

/// Every operation of the REST router: method, path (OpenAPI syntax), whether it needs a bearer
/// token, its success status, and the error statuses it documents.
const OPERATIONS: &[(&str, &str, bool, &str, &[&str])] = &[
    (
        "post",
        "/api/v1/auth/login",
        false,
        "200",
        &["400", "401", "403", "413", "415", "422", "429", "500", "503"],
    ),
    (
        "post",
        "/api/v1/auth/refresh",
        false,
        "200",
        &["400", "401", "413", "415", "422", "500", "503"],
    ),
    (
        "post",
        "/api/v1/auth/logout",
        true,
        "204",
        &["400", "401", "413", "415", "422", "500", "503"],
    ),
    ("get", "/.well-known/jwks.json", false, "200", &["500", "503"]),
    (
        "get",
        "/api/v1/auth/sessions",
        true,
        "200",
        &["401", "500", "503"],
    ),
    (
        "delete",
        "/api/v1/auth/sessions/{id}",
        true,
        "204",
        &["401", "404", "422", "500", "503"],
    ),
    (
        "delete",
        "/api/v1/users/{id}/sessions",
        true,
        "204",
        &["401", "403", "422", "500", "503"],
    ),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> anyhow::Result<Value> {
    let reply = app.send(Method::GET, DOCUMENT, None, None).await?;
    anyhow::ensure!(
        reply.status == StatusCode::OK,
        "{DOCUMENT} answered {}",
        reply.status
    );
    let content_type = reply
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    anyhow::ensure!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    Ok(reply.body)
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_lists_exactly_the_routes() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    let doc = document(&app).await?;

    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Keel auth");
    let paths = doc["paths"].as_object().context("no paths object")?;

    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, path, ..)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    for (method, path, protected, success, errors) in OPERATIONS {
        let operation = &paths[*path][*method];
        assert_eq!(operation["tags"], serde_json::json!(["auth"]), "{method} {path}");
        let responses = operation["responses"]
            .as_object()
            .with_context(|| format!("{method} {path}: no responses"))?;
        assert!(responses.contains_key(*success), "{method} {path}: no {success}");
        let mut statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        statuses.sort_unstable();
        let mut wanted: Vec<&str> = errors.to_vec();
        wanted.push(success);
        wanted.sort_unstable();
        assert_eq!(statuses, wanted, "{method} {path}: documented statuses");
        for status in *errors {
            let content = &responses[*status]["content"];
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                "{method} {path} {status}: not a Problem"
            );
        }
        let security = &operation["security"];
        if *protected {
            assert_eq!(
                security,
                &serde_json::json!([{"bearer": []}]),
                "{method} {path}: security"
            );
        } else {
            assert!(
                security.is_null(),
                "{method} {path}: unexpected security {security}"
            );
        }
    }

    // The path ids are typed, and the bodies and answers refer to described schemas.
    let id = &paths["/api/v1/auth/sessions/{id}"]["delete"]["parameters"][0];
    assert_eq!(id["name"], "id");
    assert_eq!(id["in"], "path");
    assert_eq!(id["schema"]["format"], "uuid");
    let schemas = doc["components"]["schemas"].as_object().context("no schemas")?;
    for name in [
        "LoginBody",
        "RefreshBody",
        "TokenResponse",
        "SessionList",
        "SessionView",
        "Jwks",
        "Jwk",
        "Problem",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    assert_eq!(
        schemas["LoginBody"]["properties"]["password"]["format"],
        "password"
    );
    assert_eq!(
        paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginBody"
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    Ok(())
}

/// The expected list is the router's: each documented operation is routed (neither 404 nor 405
/// without a token or body), and every other method on its path is 405. The other methods are
/// sent with the token of an administrator, since the admin route's permission layer answers
/// before the method is matched.
#[tokio::test]
async fn the_documented_operations_are_the_routers() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    let admin = app.peers.identity.add("admin@example.com", "pw", true);
    app.peers.authz.grant(admin, "platform.user.update");
    let token = app.login_ok("admin@example.com", "pw").await?.access;
    let id = uuid::Uuid::now_v7().to_string();
    for (method, path, ..) in OPERATIONS {
        let concrete = path.replace("{id}", &id);
        for candidate in ["get", "put", "post", "delete", "patch"] {
            let verb = Method::from_bytes(candidate.to_ascii_uppercase().as_bytes())?;
            if candidate == *method {
                let reply = app.raw(verb, &concrete, None, Vec::new(), None).await?;
                assert!(
                    reply.status != StatusCode::NOT_FOUND && reply.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not routed: {}",
                    reply.status
                );
            } else {
                let reply = app.raw(verb, &concrete, None, Vec::new(), Some(&token)).await?;
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{candidate} {path} is routed but not documented"
                );
            }
        }
    }
    Ok(())
}
