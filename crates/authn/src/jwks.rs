//! Where verification keys come from, and which published keys are accepted.
//!
//! Why this module exists: the set of algorithms a verifier accepts is a security decision and is
//! made here, once. Only Ed25519 keys (`kty: OKP`, `crv: Ed25519`) used with EdDSA are accepted;
//! every other key in a JWKS document (RSA, EC, and above all symmetric `oct` keys, which would turn
//! a public document into an HMAC secret) is skipped. To accept RS256 later (DESIGN §10: OIDC
//! clients), add it to [`ACCEPTED_ALGORITHMS`] and an arm to [`decoding_key`]: each key carries its
//! own algorithm, and a token is only checked with a key of the algorithm its header names.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keel_clients::AuthClient;
use serde::Deserialize;
use tokio::time::Instant;

use crate::{AuthnError, JwtSettings};

/// The algorithms a token header may name. The extension point for RS256 (see the module doc).
pub(crate) const ACCEPTED_ALGORITHMS: &[Algorithm] = &[Algorithm::EdDSA];

/// Length of an Ed25519 public key in bytes.
const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Delivers the JWKS document (RFC 7517 JSON) with the public keys that sign access tokens.
#[async_trait]
pub trait JwksSource: Send + Sync {
    /// Fetches the current document; fails with [`AuthnError::JwksFetch`] when it cannot be had.
    async fn fetch(&self) -> Result<String, AuthnError>;
}

/// A fixed JWKS document, for tests and for a process that holds the keys itself.
#[derive(Debug, Clone)]
pub struct StaticJwks(pub String);

#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<String, AuthnError> {
        Ok(self.0.clone())
    }
}

/// The auth service's JWKS, over its client (gRPC `Jwks` in production wiring).
#[derive(Clone)]
pub struct AuthServiceJwks(pub Arc<dyn AuthClient>);

impl std::fmt::Debug for AuthServiceJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthServiceJwks").finish_non_exhaustive()
    }
}

#[async_trait]
impl JwksSource for AuthServiceJwks {
    async fn fetch(&self) -> Result<String, AuthnError> {
        self.0
            .jwks()
            .await
            .map_err(|error| AuthnError::JwksFetch(error.to_string()))
    }
}

/// One accepted verification key, ready for the warm path (nothing is built per request).
pub(crate) struct VerifyingKey {
    /// The only algorithm this key verifies.
    pub(crate) algorithm: Algorithm,
    /// The public key.
    pub(crate) decoding: DecodingKey,
    /// Claim checks for tokens of this key: algorithm, issuer, audience, `exp`, `nbf`, leeway.
    pub(crate) validation: Validation,
}

/// The accepted keys of one JWKS document, by `kid`.
pub(crate) struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    /// When the document was fetched; `None` for the empty set a verifier starts with.
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// No keys: the state before the first fetch.
    pub(crate) fn empty() -> Self {
        Self {
            keys: HashMap::new(),
            fetched_at: None,
        }
    }

    /// Parses a JWKS document, keeping the accepted keys and logging why others were skipped. Fails
    /// when the document is not a JWKS or holds no accepted key.
    pub(crate) fn parse(jwks: &str, settings: &JwtSettings) -> Result<Self, AuthnError> {
        let raw: RawJwks = serde_json::from_str(jwks)
            .map_err(|error| AuthnError::JwksFetch(format!("not a JWKS document: {error}")))?;
        let mut keys = HashMap::with_capacity(raw.keys.len());
        for value in raw.keys {
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(error) => {
                    tracing::warn!(%error, "skipping a JWKS entry that is not a valid JWK");
                    continue;
                }
            };
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            match accepted_key(&jwk, settings) {
                Ok(_) if keys.contains_key(&kid) => {
                    tracing::warn!(kid, "skipping a JWK whose kid is already taken");
                }
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(reason) => tracing::debug!(kid, reason, "skipping a JWK that is not accepted"),
            }
        }
        if keys.is_empty() {
            // Most likely a broken or misconfigured publisher: better to keep the keys we have.
            return Err(AuthnError::JwksFetch("the JWKS holds no accepted key".to_owned()));
        }
        Ok(Self {
            keys,
            fetched_at: Some(Instant::now()),
        })
    }

    /// The key with this `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// No accepted key at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Fetched longer than `max_age` ago (the initial empty set counts as stale).
    pub(crate) fn is_older_than(&self, max_age: std::time::Duration) -> bool {
        self.fetched_at.is_none_or(|at| at.elapsed() > max_age)
    }
}

/// The key to verify with, or why this JWK is not accepted.
fn accepted_key(jwk: &Jwk, settings: &JwtSettings) -> Result<VerifyingKey, &'static str> {
    if jwk.common.key_id.as_deref().is_none_or(str::is_empty) {
        return Err("no kid");
    }
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)) => return Err("not a signing key"),
    }
    if let Some(operations) = &jwk.common.key_operations
        && !operations.contains(&KeyOperations::Verify)
    {
        return Err("key_ops does not allow verify");
    }
    let (algorithm, decoding) = decoding_key(jwk)?;
    if !ACCEPTED_ALGORITHMS.contains(&algorithm) {
        return Err("algorithm not accepted");
    }
    Ok(VerifyingKey {
        algorithm,
        decoding,
        validation: validation(algorithm, settings),
    })
}

/// The algorithm and public key of a JWK; the one place key types are admitted.
fn decoding_key(jwk: &Jwk) -> Result<(Algorithm, DecodingKey), &'static str> {
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            if jwk
                .common
                .key_algorithm
                .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
            {
                return Err("an Ed25519 key may only be used with EdDSA");
            }
            let key = DecodingKey::from_ed_components(&params.x).map_err(|_| "x is not base64url")?;
            match key.try_get_as_bytes() {
                Ok(bytes) if bytes.len() == ED25519_PUBLIC_KEY_LEN => Ok((Algorithm::EdDSA, key)),
                _ => Err("x is not a 32-byte Ed25519 public key"),
            }
        }
        AlgorithmParameters::OctetKeyPair(_) => Err("OKP curve other than Ed25519"),
        AlgorithmParameters::RSA(_) => Err("RSA keys are not accepted (yet)"),
        AlgorithmParameters::EllipticCurve(_) => Err("EC keys are not accepted"),
        AlgorithmParameters::OctetKey(_) => Err("symmetric keys are never accepted"),
        _ => Err("unknown key type"),
    }
}

/// The claim checks for tokens signed with `algorithm`.
fn validation(algorithm: Algorithm, settings: &JwtSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = settings.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[settings.audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation
}
