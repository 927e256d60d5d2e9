//! A test signing key and the access tokens it signs, as the auth service would: Ed25519 (aws-lc-rs,
//! the provider already in the tree), `kid` in the header, the default `jwt` settings' claims.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, JwtSettings};
use serde_json::json;
use uuid::Uuid;

/// An Ed25519 key pair with its `kid`.
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    /// A fresh key pair.
    pub(crate) fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("key generation");
        Self {
            kid: format!("test-{}", Uuid::now_v7().simple()),
            pkcs8: pair.to_pkcs8().expect("pkcs8 export").as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The JWKS document publishing the public key.
    pub(crate) fn jwks(&self) -> String {
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        }]})
        .to_string()
    }

    /// A valid five-minute access token for `user_id`.
    pub(crate) fn token_for(&self, user_id: Uuid) -> String {
        let settings = JwtSettings::default();
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: settings.issuer,
            aud: settings.audience,
            sub: user_id.to_string(),
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
