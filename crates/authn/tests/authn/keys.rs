//! Test signing keys and tokens: Ed25519 keys generated per test with aws-lc-rs (the crypto
//! provider already in the tree), JWKS documents and access tokens built from them. Shared with
//! the benchmark through `#[path]`.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, JwtSettings};
use serde_json::{Value, json};
use uuid::Uuid;

/// An Ed25519 signing key with its `kid`, as the auth service holds one.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    /// A fresh key pair.
    pub(crate) fn generate(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("key generation");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8 export").as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8,
        }
    }

    /// The raw 32-byte public key.
    pub(crate) fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// The public JWK, as the auth service publishes it.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid, "x": b64(&self.public),
        })
    }

    /// A token with these claims, signed like the auth service signs (EdDSA, `kid` in the header).
    pub(crate) fn sign(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(&header, claims)
    }

    /// A token with a header of the caller's making, signed with this key.
    pub(crate) fn sign_with_header(&self, header: &Header, claims: &impl serde::Serialize) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("signing")
    }
}

/// A JWKS document of these JWKs.
pub(crate) fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Claims the default settings accept: valid from now for five minutes, fresh ids.
pub(crate) fn valid_claims() -> AccessClaims {
    let settings = JwtSettings::default();
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        iss: settings.issuer,
        aud: settings.audience,
        sub: Uuid::now_v7().to_string(),
        jti: Uuid::now_v7().to_string(),
        iat: now,
        nbf: now,
        exp: now + 300,
        sid: Uuid::now_v7().to_string(),
    }
}

/// Base64url without padding, as JWS uses.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
