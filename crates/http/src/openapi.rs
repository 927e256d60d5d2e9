//! Serving a service's OpenAPI document at `/api/v1/<service>/openapi.json` (CONVENTIONS).
//!
//! Why here: every service serves its document the same way, generated from its handlers'
//! `#[utoipa::path]` annotations, with the same error schema ([`crate::Problem`]) and the same
//! bearer-token security scheme, so clients and the gateway find each one at the same place.

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::header;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Name of the bearer-token security scheme every document declares; handlers that need a token
/// name it in `security(("bearer" = []))`.
pub const BEARER_SCHEME: &str = "bearer";

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
