//! Warm-path cost of verifying an access token: keys cached, no network, one Ed25519 check.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};

#[path = "../tests/authn/keys.rs"]
#[allow(dead_code)]
mod keys;

fn warm_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let key = keys::SigningKey::generate("bench");
    let verifier = TokenVerifier::new(
        Arc::new(StaticJwks(keys::jwks(&[key.jwk()]))),
        JwtSettings::default(),
    );
    let token = key.sign(&keys::valid_claims());
    runtime
        .block_on(verifier.verify(&token))
        .expect("the benchmark token verifies");

    c.bench_function("verify_warm", |b| {
        b.to_async(&runtime).iter(|| verifier.verify(&token))
    });
}

criterion_group!(benches, warm_verify);
criterion_main!(benches);
