//! The OpenAPI document: served without a token at `/api/v1/authz/openapi.json`, OpenAPI 3.1, and
//! describing exactly the REST router's operations, with their success and error answers and the
//! `bearer` security they need.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use serde_json::Value;

use crate::on_both_stores;
use crate::support::TestApp;

on_both_stores!(
    the_document_is_served_without_a_token_as_openapi_3_1_json,
    the_document_describes_exactly_the_routes_of_the_router,
    every_documented_operation_is_a_route_that_wants_a_token,
);

const DOCUMENT: &str = "/api/v1/authz/openapi.json";

/// One operation of the REST router: method, path template, success status, error statuses.
struct Operation {
    method: &'static str,
    path: &'static str,
    success: &'static str,
    errors: &'static [&'static str],
}

/// Errors of an authenticated route that takes no body and names a resource in its path.
const READ: &[&str] = &["401", "403", "404", "500", "503"];
/// Errors of a route that changes a role from a JSON body (`PUT`/`PATCH /api/v1/roles/{id}`).
const WRITE: &[&str] = &[
    "400", "401", "403", "404", "409", "413", "415", "422", "500", "503",
];

/// Every operation of the REST router, as `src/rest/mod.rs` mounts it.
const OPERATIONS: &[Operation] = &[
    Operation {
        method: "post",
        path: "/api/v1/roles",
        success: "201",
        errors: &["400", "401", "403", "409", "413", "415", "422", "500", "503"],
    },
    Operation {
        method: "get",
        path: "/api/v1/roles",
        success: "200",
        errors: &["400", "401", "403", "422", "500", "503"],
    },
    Operation {
        method: "get",
        path: "/api/v1/roles/{id}",
        success: "200",
        errors: READ,
    },
    Operation {
        method: "put",
        path: "/api/v1/roles/{id}",
        success: "200",
        errors: WRITE,
    },
    Operation {
        method: "patch",
        path: "/api/v1/roles/{id}",
        success: "200",
        errors: WRITE,
    },
    Operation {
        method: "delete",
        path: "/api/v1/roles/{id}",
        success: "204",
        errors: &["401", "403", "404", "409", "500", "503"],
    },
    Operation {
        method: "post",
        path: "/api/v1/roles/{id}/permissions",
        success: "200",
        errors: &["400", "401", "403", "404", "413", "415", "422", "500", "503"],
    },
    Operation {
        method: "delete",
        path: "/api/v1/roles/{id}/permissions/{permission}",
        success: "204",
        errors: &["401", "403", "404", "409", "500", "503"],
    },
    Operation {
        method: "post",
        path: "/api/v1/users/{id}/roles",
        success: "200",
        errors: &["400", "401", "403", "404", "413", "415", "422", "500", "503"],
    },
    Operation {
        method: "get",
        path: "/api/v1/users/{id}/roles",
        success: "200",
        errors: READ,
    },
    Operation {
        method: "delete",
        path: "/api/v1/users/{id}/roles/{role_id}",
        success: "204",
        errors: &["401", "403", "404", "409", "500", "503"],
    },
    Operation {
        method: "get",
        path: "/api/v1/permissions",
        success: "200",
        errors: &["401", "403", "500", "503"],
    },
    Operation {
        method: "get",
        path: "/api/v1/users/{id}/permissions",
        success: "200",
        errors: READ,
    },
];

/// The operation keys of an OpenAPI path item.
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document as the router serves it.
async fn document(app: &TestApp) -> anyhow::Result<Value> {
    let (status, content_type, document) = app.call(Method::GET, DOCUMENT, None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    Ok(document)
}

async fn the_document_is_served_without_a_token_as_openapi_3_1_json(app: &TestApp) -> anyhow::Result<()> {
    let document = document(app).await?;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "Keel authz");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "Role",
        "Permission",
        "Problem",
        "FieldError",
        "CreateBody",
        "ReplaceBody",
        "UpdateBody",
        "GrantBody",
        "AssignBody",
        "EffectivePermissions",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "schema {schema} is missing"
        );
    }
    // Every reference points at a schema the document defines.
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"][name].is_object(),
            "dangling reference {reference}"
        );
    }
    Ok(())
}

async fn the_document_describes_exactly_the_routes_of_the_router(app: &TestApp) -> anyhow::Result<()> {
    let document = document(app).await?;
    let paths = document["paths"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no paths object"))?;
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            HTTP_METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| ((*method).to_owned(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|op| (op.method.to_owned(), op.path.to_owned()))
        .collect();
    assert_eq!(documented, expected);

    let mut operation_ids = BTreeSet::new();
    for op in OPERATIONS {
        let operation = &paths[op.path][op.method];
        let what = format!("{} {}", op.method, op.path);
        assert_eq!(operation["tags"], serde_json::json!(["authz"]), "{what}");
        assert!(
            operation_ids.insert(operation["operationId"].as_str().unwrap_or_default().to_owned()),
            "{what}: operationId missing or not unique"
        );
        assert_eq!(
            operation["security"],
            serde_json::json!([{"bearer": []}]),
            "{what} names the bearer scheme"
        );
        let responses = operation["responses"]
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("{what}: no responses"))?;
        let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = std::iter::once(op.success)
            .chain(op.errors.iter().copied())
            .collect();
        assert_eq!(statuses, wanted, "{what}");
        if op.success != "204" {
            assert!(
                responses[op.success]["content"]["application/json"]["schema"].is_object(),
                "{what}: success answer has a JSON body"
            );
        }
        for status in op.errors {
            assert_eq!(
                responses[*status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{what} {status}"
            );
        }
        let parameters: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(|list| list.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        let in_path: BTreeSet<&str> = op
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert!(in_path.is_subset(&parameters), "{what}: path parameters");
        let has_body = operation["requestBody"]["content"]["application/json"]["schema"].is_object();
        assert_eq!(has_body, op.errors.contains(&"415"), "{what}: request body");
    }
    let list = &document["components"]["schemas"]["List_Role"];
    assert_eq!(list["required"], serde_json::json!(["items", "next_cursor"]));
    let created = &paths["/api/v1/roles"]["post"]["responses"]["201"];
    assert!(created["headers"]["Location"].is_object());
    let list = &paths["/api/v1/roles"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .map(|list| list.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["name", "limit", "cursor"]);
    Ok(())
}

async fn every_documented_operation_is_a_route_that_wants_a_token(app: &TestApp) -> anyhow::Result<()> {
    let document = document(app).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut seen = BTreeMap::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in HTTP_METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let concrete = path
                .replace("{id}", &id)
                .replace("{role_id}", &id)
                .replace("{permission}", "platform.user.read");
            let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let (status, content_type, _) = app.call(method.clone(), &concrete, None, None).await?;
            assert_eq!(
                (status, content_type.as_str()),
                (StatusCode::UNAUTHORIZED, "application/problem+json"),
                "{method} {path} is a route of the router that wants a token"
            );
            seen.insert((method.to_string(), path.clone()), status);
        }
    }
    assert_eq!(seen.len(), OPERATIONS.len());
    Ok(())
}

/// Every `$ref` value in `value`.
fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_references(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, into)),
        _ => {}
    }
}
