//! What the verifier accepts and every kind of token it must refuse.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, AuthnError, StaticJwks, TokenVerifier};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::keys::{SigningKey, b64, jwks, valid_claims};
use crate::support::TestJwks;

/// A verifier trusting `key` only, and the key.
fn setup() -> (SigningKey, Arc<TestJwks>, TokenVerifier) {
    let key = SigningKey::generate("k1");
    let source = TestJwks::new(jwks(&[key.jwk()]));
    let verifier = source.verifier();
    (key, source, verifier)
}

/// A compact JWS assembled by hand, for tokens no honest library would produce.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn claims_json(claims: &AccessClaims) -> Value {
    serde_json::to_value(claims).expect("claims serialise")
}

#[tokio::test]
async fn a_token_signed_by_the_published_key_yields_its_principal() {
    let (key, _, verifier) = setup();
    let claims = valid_claims();
    let principal = verifier.verify(&key.sign(&claims)).await.unwrap();
    assert_eq!(principal.user_id.to_string(), claims.sub);
    assert_eq!(principal.session_id.to_string(), claims.sid);
    assert_eq!(principal.token_id, claims.jti);
    assert_eq!(principal.expires_at.timestamp(), claims.exp);
}

#[tokio::test]
async fn a_static_jwks_serves_in_process_verification() {
    let key = SigningKey::generate("static");
    let verifier = TokenVerifier::new(
        Arc::new(StaticJwks(jwks(&[key.jwk()]))),
        keel_authn::JwtSettings::default(),
    );
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
}

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    let (_, _, verifier) = setup();
    let claims = claims_json(&valid_claims());
    for alg in ["none", "None", "NONE", ""] {
        let token = raw_token(&json!({"alg": alg, "kid": "k1", "typ": "JWT"}), &claims, b"");
        let error = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(error, AuthnError::Malformed(_)),
            "alg {alg:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn hs256_is_refused_even_with_the_public_key_as_hmac_secret() {
    let (key, source, verifier) = setup();
    let claims = valid_claims();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    // The classic confusion attack: the public key (raw, as published in `x`, or the whole JWK)
    // used as the HMAC secret.
    let jwk_text = key.jwk().to_string();
    let x = key.jwk()["x"].as_str().unwrap().to_owned();
    for secret in [key.public_bytes(), x.as_bytes(), jwk_text.as_bytes()] {
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        let error = verifier.verify(&token).await.unwrap_err();
        assert!(matches!(error, AuthnError::UnsupportedAlgorithm(_)), "{error:?}");
    }
    assert_eq!(
        source.fetches(),
        0,
        "a refused algorithm never costs a JWKS fetch"
    );
}

#[tokio::test]
async fn a_symmetric_key_published_in_the_jwks_is_never_used() {
    let ed = SigningKey::generate("k1");
    let secret = b"a-secret-that-leaked-into-the-jwks";
    let oct = json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(secret)});
    let verifier = TestJwks::new(jwks(&[ed.jwk(), oct])).verifier();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".to_owned());
    let token = jsonwebtoken::encode(&header, &valid_claims(), &EncodingKey::from_secret(secret)).unwrap();
    assert!(verifier.verify(&token).await.is_err());
    // An EdDSA header naming the symmetric key's kid finds no key either.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("hmac".to_owned());
    let error = verifier
        .verify(&ed.sign_with_header(&header, &valid_claims()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::UnknownKey(_)), "{error:?}");
}

/// An RS256 token signed with a fresh RSA key, whose public JWK is returned too.
fn rs256_token(kid: &str, claims: &AccessClaims) -> (String, Value) {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims_json(claims).to_string().as_bytes())
    );
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("RSA signing");
    let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": b64(&components.n), "e": b64(&components.e),
    });
    (format!("{signing_input}.{}", b64(&signature)), jwk)
}

#[tokio::test]
async fn rs256_is_refused_whether_its_key_is_unknown_or_published() {
    let (ed, source, verifier) = setup();
    let (token, rsa_jwk) = rs256_token("rsa-1", &valid_claims());
    let error = verifier.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthnError::UnsupportedAlgorithm(_)), "{error:?}");
    assert_eq!(source.fetches(), 0);

    // Even when the JWKS publishes that RSA key, only EdDSA is accepted (for now: DESIGN §10).
    source.publish(jwks(&[ed.jwk(), rsa_jwk]));
    assert!(verifier.verify(&ed.sign(&valid_claims())).await.is_ok());
    assert!(verifier.verify(&token).await.is_err());
}

#[tokio::test]
async fn a_wrong_issuer_or_audience_is_refused() {
    let (key, _, verifier) = setup();
    let wrong_iss = AccessClaims {
        iss: "someone-else".to_owned(),
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&wrong_iss)).await.unwrap_err();
    assert!(matches!(error, AuthnError::WrongIssuer), "{error:?}");
    let wrong_aud = AccessClaims {
        aud: "another-api".to_owned(),
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&wrong_aud)).await.unwrap_err();
    assert!(matches!(error, AuthnError::WrongAudience), "{error:?}");
}

#[tokio::test]
async fn expiry_is_enforced_with_the_configured_leeway() {
    let (key, _, verifier) = setup();
    let now = chrono::Utc::now().timestamp();
    let expired = AccessClaims {
        iat: now - 400,
        nbf: now - 400,
        exp: now - 60,
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&expired)).await.unwrap_err();
    assert!(matches!(error, AuthnError::Expired), "{error:?}");
    let within_leeway = AccessClaims {
        exp: now - 10,
        ..expired
    };
    assert!(verifier.verify(&key.sign(&within_leeway)).await.is_ok());
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused_beyond_the_leeway() {
    let (key, _, verifier) = setup();
    let now = chrono::Utc::now().timestamp();
    let future = AccessClaims {
        nbf: now + 120,
        exp: now + 600,
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&future)).await.unwrap_err();
    assert!(matches!(error, AuthnError::NotYetValid), "{error:?}");
    let within_leeway = AccessClaims {
        nbf: now + 10,
        ..future
    };
    assert!(verifier.verify(&key.sign(&within_leeway)).await.is_ok());
}

#[tokio::test]
async fn a_token_without_a_kid_is_refused() {
    let (key, _, verifier) = setup();
    let no_kid = key.sign_with_header(&Header::new(Algorithm::EdDSA), &valid_claims());
    assert!(matches!(
        verifier.verify(&no_kid).await,
        Err(AuthnError::MissingKeyId)
    ));
    let mut empty = Header::new(Algorithm::EdDSA);
    empty.kid = Some(String::new());
    let empty_kid = key.sign_with_header(&empty, &valid_claims());
    assert!(matches!(
        verifier.verify(&empty_kid).await,
        Err(AuthnError::MissingKeyId)
    ));
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_one_refetch() {
    let (key, source, verifier) = setup();
    assert!(verifier.verify(&key.sign(&valid_claims())).await.is_ok());
    assert_eq!(source.fetches(), 1);
    let stranger = SigningKey::generate("unknown");
    let error = verifier
        .verify(&stranger.sign(&valid_claims()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthnError::UnknownKey(ref kid) if kid == "unknown"),
        "{error:?}"
    );
    assert_eq!(source.fetches(), 2, "exactly one refetch for the unknown kid");
    let another = SigningKey::generate("unknown-2");
    assert!(verifier.verify(&another.sign(&valid_claims())).await.is_err());
    assert_eq!(
        source.fetches(),
        2,
        "no second refetch within the refresh interval"
    );
}

#[tokio::test]
async fn a_signature_by_another_key_under_a_known_kid_is_refused() {
    let (_, _, verifier) = setup();
    let impostor = SigningKey::generate("k1");
    let error = verifier
        .verify(&impostor.sign(&valid_claims()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::BadSignature), "{error:?}");
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let (key, _, verifier) = setup();
    let token = key.sign(&valid_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = AccessClaims {
        sub: uuid::Uuid::now_v7().to_string(),
        ..valid_claims()
    };
    parts[1] = b64(claims_json(&forged).to_string().as_bytes());
    let error = verifier.verify(&parts.join(".")).await.unwrap_err();
    assert!(matches!(error, AuthnError::BadSignature), "{error:?}");
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (key, _, verifier) = setup();
    let good = key.sign(&valid_claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (body, _signature) = rest.split_once('.').unwrap();
    let oversized = format!("{head}.{}.{}", "A".repeat(9000), "A");
    let cases = [
        String::new(),
        "not-a-jwt".to_owned(),
        format!("{head}.{body}"),
        format!("{good}.extra"),
        format!("!!!.{body}.AAAA"),
        format!("{}.{body}.AAAA", b64(b"not json")),
        format!("{head}.{}.AAAA", b64(b"not json")),
        format!("{head}.{body}.%%%"),
        format!("{head}.{body}."),
        oversized,
    ];
    for token in cases {
        let error = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(error, AuthnError::Malformed(_) | AuthnError::BadSignature),
            "{token:.60}: {error:?}"
        );
    }
}

#[tokio::test]
async fn claims_of_the_wrong_shape_are_refused() {
    let (key, _, verifier) = setup();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    let mut missing_nbf = claims_json(&valid_claims());
    missing_nbf.as_object_mut().unwrap().remove("nbf");
    let mut aud_list = claims_json(&valid_claims());
    aud_list["aud"] = json!(["keel-api"]);
    let mut exp_text = claims_json(&valid_claims());
    exp_text["exp"] = json!("tomorrow");
    for claims in [missing_nbf, aud_list, exp_text] {
        let error = verifier
            .verify(&key.sign_with_header(&header, &claims))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthnError::Malformed(_)), "{claims}: {error:?}");
    }
}

#[tokio::test]
async fn sub_and_sid_must_be_uuids() {
    let (key, _, verifier) = setup();
    let bad_sub = AccessClaims {
        sub: "admin".to_owned(),
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&bad_sub)).await.unwrap_err();
    assert!(
        matches!(error, AuthnError::InvalidClaim { claim: "sub", .. }),
        "{error:?}"
    );
    let bad_sid = AccessClaims {
        sid: "42".to_owned(),
        ..valid_claims()
    };
    let error = verifier.verify(&key.sign(&bad_sid)).await.unwrap_err();
    assert!(
        matches!(error, AuthnError::InvalidClaim { claim: "sid", .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_critical_header_extension_is_refused() {
    let (key, _, verifier) = setup();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    header.crit = Some(vec!["exp".to_owned()]);
    let error = verifier
        .verify(&key.sign_with_header(&header, &valid_claims()))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthnError::Malformed(_)), "{error:?}");
}
