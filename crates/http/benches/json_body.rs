//! What `keel_http::Json` costs over plain `serde_json` for a typical request body: the extractor
//! (media type check, body collection, the objects-only adapter, `serde_path_to_error`) against
//! `serde_json::from_slice` of the same bytes, in the same run. Run with
//! `cargo bench -p keel-http --bench json_body`.

#![allow(missing_docs, clippy::unwrap_used)]

use axum::body::Body;
use axum::extract::FromRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use serde::Deserialize;

/// A role body with a permission list, as `POST /api/v1/roles` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RoleBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

const BODY: &[u8] = br#"{"name": "editor", "description": "Edits every post of the blog", "permissions": ["blog.post.create", "blog.post.read", "blog.post.update", "blog.post.delete", "platform.user.read"]}"#;

fn request() -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/api/v1/roles")
        .header("content-type", "application/json")
        .body(Body::from(BODY))
        .unwrap()
}

fn json_body(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("json_body");
    group.bench_function("serde_json::from_slice", |b| {
        b.iter(|| serde_json::from_slice::<RoleBody>(std::hint::black_box(BODY)).unwrap());
    });
    group.bench_function("serde_path_to_error over serde_json", |b| {
        b.iter(|| {
            let deserializer = &mut serde_json::Deserializer::from_slice(std::hint::black_box(BODY));
            serde_path_to_error::deserialize::<_, RoleBody>(deserializer).unwrap()
        });
    });
    group.bench_function("keel_http::Json extractor", |b| {
        b.iter(|| {
            runtime
                .block_on(keel_http::Json::<RoleBody>::from_request(request(), &()))
                .unwrap()
        });
    });
    group.bench_function("request construction alone", |b| b.iter(request));
    group.finish();
}

criterion_group!(benches, json_body);
criterion_main!(benches);
