//! What authenticating a request costs the gateway: a full verification of the token (signature
//! and claims, keys cached) against a hit in the cache of verified tokens (a SHA-256 digest and a
//! map lookup). The gap is why `gateway.token_cache_entries` exists.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../tests/gateway/doubles.rs"]
#[allow(dead_code)]
mod doubles;

fn edge_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let key = doubles::SigningKey::generate("bench");
    let verifier = key.verifier();
    let auth = doubles::edge_auth(&key, &Arc::new(doubles::TestAuthz::default()));
    let token = key.sign(&doubles::valid_claims());
    runtime
        .block_on(auth.verify(&token))
        .expect("the benchmark token verifies");

    c.bench_function("verify_every_time", |b| {
        b.to_async(&runtime).iter(|| verifier.verify(&token))
    });
    c.bench_function("verify_cached", |b| {
        b.to_async(&runtime).iter(|| auth.verify(&token))
    });
}

criterion_group!(benches, edge_auth);
criterion_main!(benches);
