//! Calling the service's router as a client would: requests with JSON bodies and bearer tokens,
//! replies with their problem details.

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use uuid::Uuid;

use super::TestApp;

/// A request being built.
pub(crate) struct Call<'a> {
    app: &'a TestApp,
    builder: http::request::Builder,
    body: Body,
}

impl<'a> Call<'a> {
    /// `method path` on `app`, without a body yet.
    pub(super) fn new(app: &'a TestApp, method: http::Method, path: &str) -> Self {
        Self {
            app,
            builder: Request::builder().method(method).uri(path),
            body: Body::empty(),
        }
    }

    /// A JSON body.
    pub(crate) fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    /// A raw body of `content_type`.
    pub(crate) fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.builder = self.builder.header(header::CONTENT_TYPE, content_type);
        self.body = Body::from(body.to_owned());
        self
    }

    /// `Authorization: Bearer <token of user>`.
    pub(crate) fn bearer_of(mut self, user: Uuid) -> Self {
        let token = self.app.token_for(user);
        self.builder = self
            .builder
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        self
    }

    /// Any header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends it through the service's router (with the middleware stack).
    pub(crate) async fn send(self) -> Reply {
        let request = self.builder.body(self.body).expect("request");
        let response = self
            .app
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// A response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// The `errors[].field` and `errors[].code` pairs of a problem.
    pub(crate) fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or_default().to_owned(),
                            e["code"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts a problem+json answer with `status`.
    pub(crate) fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json");
    }
}
