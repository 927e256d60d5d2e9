//! Key caching: rotation, single-flight refetches, withdrawn keys and unavailable keys.

use std::sync::Arc;
use std::time::Duration;

use keel_authn::AuthnError;

use crate::keys::{SigningKey, jwks, valid_claims};
use crate::support::TestJwks;

#[tokio::test]
async fn both_keys_of_a_rotation_verify_from_one_fetch() {
    let old = SigningKey::generate("2026-10");
    let new = SigningKey::generate("2026-11");
    let source = TestJwks::new(jwks(&[old.jwk(), new.jwk()]));
    let verifier = source.verifier();
    assert!(verifier.verify(&old.sign(&valid_claims())).await.is_ok());
    assert!(verifier.verify(&new.sign(&valid_claims())).await.is_ok());
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn a_new_kid_triggers_a_refetch_that_finds_it() {
    let old = SigningKey::generate("2026-10");
    let source = TestJwks::new(jwks(&[old.jwk()]));
    let verifier = source.verifier();
    assert!(verifier.verify(&old.sign(&valid_claims())).await.is_ok());

    let new = SigningKey::generate("2026-11");
    source.publish(jwks(&[old.jwk(), new.jwk()]));
    assert!(verifier.verify(&new.sign(&valid_claims())).await.is_ok());
    assert!(verifier.verify(&old.sign(&valid_claims())).await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn the_warm_path_fetches_nothing() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = source.verifier();
    for _ in 0..50 {
        assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fetch() {
    let old = SigningKey::generate("old");
    let source = TestJwks::new(jwks(&[old.jwk()]));
    let verifier = Arc::new(source.verifier());
    assert!(verifier.verify(&old.sign(&valid_claims())).await.is_ok());

    let new = SigningKey::generate("new");
    source.publish(jwks(&[old.jwk(), new.jwk()]));
    source.set_delay(Duration::from_millis(100));
    let token = new.sign(&valid_claims());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = Arc::clone(&verifier);
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(source.fetches(), 2, "the warm-up fetch and one shared refetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_fetch() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    source.set_delay(Duration::from_millis(100));
    let verifier = Arc::new(source.verifier());
    let token = key.sign(&valid_claims());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = Arc::clone(&verifier);
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn unknown_kids_refetch_again_once_the_interval_has_passed() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = source
        .verifier()
        .with_min_refresh_interval(Duration::from_millis(50));
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
    let stranger = SigningKey::generate("stranger");
    assert!(verifier.verify(&stranger.sign(&valid_claims())).await.is_err());
    assert!(verifier.verify(&stranger.sign(&valid_claims())).await.is_err());
    assert_eq!(source.fetches(), 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(verifier.verify(&stranger.sign(&valid_claims())).await.is_err());
    assert_eq!(source.fetches(), 3);
}

#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_after_the_max_key_age() {
    let compromised = SigningKey::generate("compromised");
    let replacement = SigningKey::generate("replacement");
    let source = TestJwks::new(jwks(&[compromised.jwk()]));
    let verifier = source
        .verifier()
        .with_max_key_age(Duration::from_millis(50))
        .with_min_refresh_interval(Duration::from_millis(10));
    assert!(verifier.verify(&compromised.sign(&valid_claims())).await.is_ok());

    source.publish(jwks(&[replacement.jwk()]));
    tokio::time::sleep(Duration::from_millis(80)).await;
    let error = verifier
        .verify(&compromised.sign(&valid_claims()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::UnknownKey(_)), "{error:?}");
    assert!(verifier.verify(&replacement.sign(&valid_claims())).await.is_ok());
}

#[tokio::test]
async fn no_keys_and_a_failing_source_is_keys_unavailable_until_the_source_recovers() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    source.set_failing(true);
    let verifier = source
        .verifier()
        .with_min_refresh_interval(Duration::from_millis(20));
    let token = key.sign(&valid_claims());
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthnError::KeysUnavailable)
    ));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthnError::KeysUnavailable)
    ));
    assert_eq!(
        source.fetches(),
        1,
        "retries are rate limited even while no key is known"
    );

    source.set_failing(false);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_document_that_is_not_a_jwks_leaves_the_keys_unavailable() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new("<html>bad gateway</html>".to_owned());
    let verifier = source.verifier();
    let error = verifier.verify(&key.sign(&valid_claims())).await.unwrap_err();
    assert!(matches!(error, AuthnError::KeysUnavailable), "{error:?}");
}

#[tokio::test]
async fn a_failing_refetch_keeps_the_cached_keys() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = source.verifier();
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());

    source.set_failing(true);
    let stranger = SigningKey::generate("stranger");
    let error = verifier
        .verify(&stranger.sign(&valid_claims()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::UnknownKey(_)), "{error:?}");
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped_and_the_rest_used() {
    let key = SigningKey::generate("good");
    let entries = vec![
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"}),
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "no-kid"}),
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": key.jwk()["x"]}),
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "rs", "alg": "RS256", "x": key.jwk()["x"]}),
        serde_json::json!({"kty": "mystery", "kid": "m"}),
        serde_json::json!("not even an object"),
        key.jwk(),
    ];
    let verifier = TestJwks::new(jwks(&entries)).verifier();
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
}

#[tokio::test]
async fn a_jwks_without_any_accepted_key_does_not_replace_the_cached_keys() {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = source
        .verifier()
        .with_max_key_age(Duration::from_millis(20))
        .with_min_refresh_interval(Duration::from_millis(10));
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());

    source.publish(jwks(&[]));
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
    assert_eq!(source.fetches(), 2, "the empty document was fetched, and ignored");
}
