//! A path-parameter extractor whose every rejection is a [`Problem`].
//!
//! axum's own `Path` answers a segment it cannot decode (percent-encoded bytes that are not UTF-8,
//! such as `/api/v1/users/%FF`) with a plain-text 400. Keel's path parameters name resources, and
//! a segment that cannot even be decoded names none: the answer is the same 404 problem+json as
//! for an id that is not a UUID. A route whose pattern lacks the parameter a handler asks for is a
//! programming error: 500, logged.

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The request's path parameters, deserialized as `T` (a `String`, a tuple of them, or a struct).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // axum reports a handler whose parameters do not fit its route (their number, or an
            // unsupported type) inside the same variant, with status 500: a programming error.
            Err(PathRejection::FailedToDeserializePathParams(error))
                if error.status() != http::StatusCode::INTERNAL_SERVER_ERROR =>
            {
                tracing::debug!(error = %error.body_text(), "undecodable path parameter");
                Err(Problem::not_found("no resource has this path"))
            }
            Err(rejection) => {
                tracing::error!(error = %rejection.body_text(), "the route's path parameters do not fit the handler");
                Err(Problem::internal())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use super::*;

    async fn answer(uri: &str) -> (StatusCode, String, String) {
        let app = Router::new()
            .route("/items/{id}", get(|Path(id): Path<String>| async move { id }))
            .route(
                "/items/{id}/parts/{part}",
                get(|Path((id, part)): Path<(String, String)>| async move { format!("{id}/{part}") }),
            )
            // A handler asking for two parameters on a route with one: a programming error.
            .route(
                "/wrong/{id}",
                get(|Path((id, part)): Path<(String, String)>| async move { format!("{id}/{part}") }),
            );
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (status, content_type, body)
    }

    #[tokio::test]
    async fn decoded_segments_pass_and_undecodable_ones_are_a_404_problem() {
        assert_eq!(answer("/items/a%20b").await.2, "a b");
        assert_eq!(answer("/items/1/parts/x").await.2, "1/x");
        for uri in ["/items/%FF", "/items/1/parts/%C3%28"] {
            let (status, content_type, body) = answer(uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(content_type, "application/problem+json", "{uri}");
            assert!(body.contains("urn:keel:problem:not-found"), "{body}");
        }
        let (status, content_type, _) = answer("/wrong/1").await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "application/problem+json")
        );
    }
}
