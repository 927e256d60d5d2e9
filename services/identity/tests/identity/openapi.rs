//! `GET /api/v1/identity/openapi.json`: the OpenAPI document describes exactly the REST router's
//! operations, each with its success answer, the error answers it can give (problem+json) and,
//! where a token is needed, the `bearer` security scheme.

use std::collections::BTreeSet;

use http::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::{Backend, TestApp};

const DOCUMENT: &str = "/api/v1/identity/openapi.json";

/// One operation of the router: method, path, success status, error statuses, whether it needs a
/// bearer token.
struct Operation {
    method: &'static str,
    path: &'static str,
    success: &'static str,
    errors: &'static [&'static str],
    bearer: bool,
}

/// Every operation of `rest::router`, as DESIGN §9 and the handlers define them.
const OPERATIONS: &[Operation] = &[
    Operation {
        method: "post",
        path: "/api/v1/users",
        success: "201",
        errors: &["400", "403", "409", "413", "415", "422", "500"],
        bearer: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/users",
        success: "200",
        errors: &["400", "401", "403", "422", "500", "503"],
        bearer: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/users/verify-email",
        success: "204",
        errors: &["400", "413", "415", "422", "500"],
        bearer: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/users/password-reset",
        success: "202",
        errors: &["400", "413", "415", "422", "429", "500"],
        bearer: false,
    },
    Operation {
        method: "post",
        path: "/api/v1/users/password-reset/confirm",
        success: "204",
        errors: &["400", "413", "415", "422", "500", "503"],
        bearer: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/users/me",
        success: "200",
        errors: &["401", "404", "500", "503"],
        bearer: true,
    },
    Operation {
        method: "patch",
        path: "/api/v1/users/me",
        success: "200",
        errors: &["400", "401", "404", "413", "415", "422", "500", "503"],
        bearer: true,
    },
    Operation {
        method: "put",
        path: "/api/v1/users/me/password",
        success: "204",
        errors: &[
            "400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503",
        ],
        bearer: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/users/{id}",
        success: "200",
        errors: &["401", "403", "404", "500", "503"],
        bearer: true,
    },
    Operation {
        method: "patch",
        path: "/api/v1/users/{id}",
        success: "200",
        errors: &["400", "401", "403", "404", "413", "415", "422", "500", "503"],
        bearer: true,
    },
    Operation {
        method: "delete",
        path: "/api/v1/users/{id}",
        success: "204",
        errors: &["401", "403", "404", "409", "500", "503"],
        bearer: true,
    },
];

/// The HTTP methods an OpenAPI path item can hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn fetch_document(app: &TestApp) -> Value {
    let reply = app.request(Method::GET, DOCUMENT).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert!(reply.body.is_object(), "the document is a JSON object");
    reply.body
}

/// `(method, path)` of every operation the document names.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths object");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("path item object");
        for method in item.keys().filter(|key| METHODS.contains(&key.as_str())) {
            operations.insert((method.clone(), path.clone()));
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes_with_their_answers_and_security() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let document = fetch_document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "Keel identity");

    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|op| (op.method.to_owned(), op.path.to_owned()))
        .collect();
    assert_eq!(documented_operations(&document), expected);

    let mut operation_ids = BTreeSet::new();
    for op in OPERATIONS {
        let name = format!("{} {}", op.method, op.path);
        let operation = &document["paths"][op.path][op.method];
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{name}: operationId {id} is unique"
        );
        assert_eq!(operation["tags"], serde_json::json!(["identity"]), "{name}");
        let responses = operation["responses"].as_object().expect("responses");
        let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = op.errors.iter().copied().chain([op.success]).collect();
        assert_eq!(statuses, wanted, "{name}");
        for error in op.errors {
            let problem = &responses[*error]["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(problem, "#/components/schemas/Problem", "{name} {error}");
        }
        match op.bearer {
            true => assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}]),
                "{name}"
            ),
            false => assert!(operation.get("security").is_none(), "{name} needs no token"),
        }
    }

    let created = &document["paths"]["/api/v1/users"]["post"]["responses"]["201"];
    assert_eq!(
        created["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/User"
    );
    assert!(
        created["headers"]["Location"].is_object(),
        "201 names its Location"
    );
    let page = &document["paths"]["/api/v1/users"]["get"]["responses"]["200"];
    assert_eq!(
        page["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Page_User"
    );
    let parameters: BTreeSet<&str> = document["paths"]["/api/v1/users"]["get"]["parameters"]
        .as_array()
        .expect("list parameters")
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "query");
            p["name"].as_str().expect("parameter name")
        })
        .collect();
    assert_eq!(parameters, BTreeSet::from(["cursor", "limit"]));
    for method in ["get", "patch", "delete"] {
        let parameters = &document["paths"]["/api/v1/users/{id}"][method]["parameters"];
        assert_eq!(parameters[0]["name"], "id", "{method}");
        assert_eq!(parameters[0]["in"], "path", "{method}");
        assert_eq!(parameters[0]["schema"]["format"], "uuid", "{method}");
    }

    let components = &document["components"];
    assert_eq!(components["securitySchemes"]["bearer"]["type"], "http");
    assert_eq!(components["securitySchemes"]["bearer"]["scheme"], "bearer");
    let schemas = &components["schemas"];
    let user: BTreeSet<&str> = schemas["User"]["properties"]
        .as_object()
        .expect("User properties")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        user,
        BTreeSet::from([
            "created_at",
            "display_name",
            "email",
            "email_verified",
            "id",
            "updated_at"
        ])
    );
    // A generic's parameter may be referenced or inlined; either way it is the user schema.
    let page_item = &schemas["Page_User"]["properties"]["items"]["items"];
    assert!(
        page_item["$ref"] == "#/components/schemas/User" || page_item["properties"]["email"].is_object(),
        "{page_item}"
    );
    assert_eq!(
        schemas["Page_User"]["required"],
        serde_json::json!(["items", "next_cursor"])
    );
    assert!(schemas["Problem"]["properties"]["errors"].is_object());
    for (schema, field) in [
        ("RegisterBody", "password"),
        ("VerifyEmailBody", "token"),
        ("ResetConfirmBody", "token"),
        ("ResetConfirmBody", "new_password"),
        ("ChangePasswordBody", "current_password"),
        ("ChangePasswordBody", "new_password"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["type"], "string", "{schema}.{field}");
        assert_eq!(property["format"], "password", "{schema}.{field}");
    }
    app.finish().await;
}

/// The document and the router agree: every documented operation is routed (the router answers
/// neither 404 nor 405, whatever the handler then says), and every other method on a documented
/// path is 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_no_other_method_is() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else {
        return;
    };
    let document = fetch_document(&app).await;
    let documented = documented_operations(&document);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    let some_id = uuid::Uuid::now_v7().to_string();
    for path in paths {
        let concrete = path.replace("{id}", &some_id);
        for method in ["get", "put", "post", "delete", "patch"] {
            let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let reply = app.request(http_method, &concrete).send().await;
            let name = format!("{method} {path}");
            if documented.contains(&(method.to_owned(), path.clone())) {
                assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{name} is routed");
                assert_ne!(reply.status, StatusCode::NOT_FOUND, "{name} is routed");
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{name} is not routed"
                );
            }
        }
    }
    app.finish().await;
}
