//! Access tokens for the tests: one Ed25519 key per test app, its JWKS, tokens for any user.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, JwtSettings};
use serde_json::json;
use uuid::Uuid;

/// A signing key as the auth service would hold one.
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    /// A fresh key.
    pub(crate) fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("key generation");
        Self {
            kid: format!("test-{}", Uuid::new_v4().simple()),
            pkcs8: pair.to_pkcs8().expect("pkcs8").as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The JWKS document publishing the public key.
    pub(crate) fn jwks(&self) -> String {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public);
        json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid, "x": x,
        }]})
        .to_string()
    }

    /// A valid access token of `user`.
    pub(crate) fn token_for(&self, user: Uuid) -> String {
        let settings = JwtSettings::default();
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: settings.issuer,
            aud: settings.audience,
            sub: user.to_string(),
            jti: Uuid::now_v7().to_string(),
            iat: now,
            nbf: now,
            exp: now + 300,
            sid: Uuid::now_v7().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("signing")
    }
}
