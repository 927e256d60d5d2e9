//! Serving a service's OpenAPI document at `/api/v1/<service>/openapi.json` (CONVENTIONS).
//!
//! Why here: every service serves its document the same way, generated from its handlers'
//! `#[utoipa::path]` annotations, with the same error schema ([`crate::Problem`]) and the same
//! bearer-token security scheme, so clients and the gateway find each one at the same place.

use std::collections::BTreeMap;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::header;
use utoipa::IntoResponses;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Name of the bearer-token security scheme every document declares; handlers that need a token
/// name it in `security(("bearer" = []))`.
pub const BEARER_SCHEME: &str = "bearer";

/// Media type of error answers.
const PROBLEM_JSON: &str = "application/problem+json";

/// A `Problem` answer (`application/problem+json`, the `Problem` schema) described as
/// `description`: for a service's own `IntoResponses` sets, as the ones below.
pub fn problem_response(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, content)
            .build(),
    )
}

/// The answers every route with a JSON body can give before its handler runs (`keel_http::Json`):
/// 400 malformed JSON, 413 body over the limit, 415 not `application/json`. Name it in
/// `#[utoipa::path(responses(..., keel_http::JsonBodyErrors))]`; 422 stays with each route, which
/// says what it validates.
pub struct JsonBodyErrors;

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            ("400".to_owned(), problem_response("The body is not valid JSON")),
            (
                "413".to_owned(),
                problem_response("The body is larger than the limit"),
            ),
            (
                "415".to_owned(),
                problem_response("The body is not `application/json`"),
            ),
        ])
    }
}

/// 401 of a route that needs a bearer token (`keel_authn::Principal`): none sent, or an invalid
/// or expired one (`WWW-Authenticate` says which).
pub struct Unauthenticated;

impl IntoResponses for Unauthenticated {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "401".to_owned(),
            problem_response("No bearer token, or an invalid or expired one"),
        )])
    }
}

/// 500: an unexpected failure, logged with its cause and the request id, never described to the
/// client. Every route can answer it.
pub struct InternalError;

impl IntoResponses for InternalError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "500".to_owned(),
            problem_response("An unexpected failure (logged with the request id)"),
        )])
    }
}

/// The path a service's document is served at.
pub fn openapi_path(service: &str) -> String {
    format!("/api/v1/{service}/openapi.json")
}

/// A router serving `document` (with the bearer security scheme and the `Problem` schema added)
/// at `/api/v1/<service>/openapi.json`. The document is serialized once, here; a document that
/// cannot be serialized (it always can: it is built from types) is served as `{}`.
pub fn openapi_router(service: &str, mut document: OpenApi) -> Router {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let json = Bytes::from(document.to_json().unwrap_or_else(|_| "{}".to_owned()));
    Router::new().route(
        &openapi_path(service),
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json).into_response() }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_document_is_served_as_json_with_the_bearer_scheme() -> Result<(), Box<dyn std::error::Error>>
    {
        let document = utoipa::openapi::OpenApiBuilder::new()
            .info(
                utoipa::openapi::InfoBuilder::new()
                    .title("Keel test")
                    .version("1")
                    .build(),
            )
            .build();
        let router = openapi_router("test", document);
        let request = http::Request::get("/api/v1/test/openapi.json").body(axum::body::Body::empty())?;
        let response = router.oneshot(request).await?;
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        assert_eq!(json["info"]["title"], "Keel test");
        assert_eq!(
            json["components"]["securitySchemes"][BEARER_SCHEME]["scheme"],
            "bearer"
        );
        assert_eq!(openapi_path("identity"), "/api/v1/identity/openapi.json");
        Ok(())
    }
}
