//! Test signing keys and access tokens: an Ed25519 key generated per test with aws-lc-rs (the
//! crypto provider already in the tree), its JWKS, and tokens signed the way the auth service
//! signs them.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, JwtSettings};
use serde_json::{Value, json};
use uuid::Uuid;

/// An Ed25519 signing key with its `kid`.
pub(crate) struct SigningKey {
    kid: String,
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

    /// The public JWK.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        })
    }

    /// A token with these claims (EdDSA, `kid` in the header).
    pub(crate) fn sign(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("signing")
    }
}

/// A JWKS document of these JWKs.
pub(crate) fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Claims the default settings accept: valid from now for five minutes.
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
