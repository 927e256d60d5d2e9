//! Ed25519 key material: generating, parsing and naming keys, and the JWKS document.
//!
//! Why this module exists: the cryptography is kept in one place, away from storage and rotation.
//! A key's id (`kid`) is its RFC 7638 JWK thumbprint, so every replica (and every operator) derives
//! the same id from the same key, whether it was generated here or supplied by configuration.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde::Serialize;

use crate::AuthError;

/// PEM label of an unencrypted PKCS#8 private key.
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// A private signing key, ready to sign with. `Debug` shows the key id only.
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: PublicKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// The key id (RFC 7638 thumbprint).
    pub(crate) kid: String,
    /// The raw 32-byte public key, base64url without padding (the JWK `x`).
    pub(crate) x: String,
}

impl SigningKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<Self, AuthError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AuthError::KeyMaterial("generating an Ed25519 key failed".into()))?;
        Self::from_pkcs8(document.as_ref())
    }

    /// A key from its PKCS#8 (v1 or v2) DER encoding.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, AuthError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| AuthError::KeyMaterial(format!("not an Ed25519 PKCS#8 private key: {e}")))?;
        // Re-encode as v2 so what we store and hand to the signer is one canonical form.
        let pkcs8 = pair
            .to_pkcs8()
            .map_err(|_| AuthError::KeyMaterial("encoding the Ed25519 key failed".into()))?
            .as_ref()
            .to_vec();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&x);
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            public: PublicKey { kid: kid.clone(), x },
            kid,
            pkcs8,
        })
    }

    /// A key from a PEM file's text (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm
    /// ed25519` writes it).
    pub(crate) fn from_pem(text: &str) -> Result<Self, AuthError> {
        let start = text
            .find(PEM_BEGIN)
            .ok_or_else(|| AuthError::KeyMaterial(format!("no `{PEM_BEGIN}` block")))?;
        let body = &text[start + PEM_BEGIN.len()..];
        let end = body
            .find(PEM_END)
            .ok_or_else(|| AuthError::KeyMaterial(format!("no `{PEM_END}` line")))?;
        let base64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(base64)
            .map_err(|_| AuthError::KeyMaterial("the PEM block is not valid base64".into()))?;
        Self::from_pkcs8(&der)
    }

    /// A key from its stored form (base64 of the PKCS#8 DER).
    pub(crate) fn from_stored(encoded: &str) -> Result<Self, AuthError> {
        let der = STANDARD
            .decode(encoded)
            .map_err(|_| AuthError::KeyMaterial("a stored private key is not valid base64".into()))?;
        Self::from_pkcs8(&der)
    }

    /// The stored form: base64 of the PKCS#8 v2 DER.
    pub(crate) fn to_stored(&self) -> String {
        STANDARD.encode(&self.pkcs8)
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half.
    pub(crate) fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key in the form `jsonwebtoken` signs with.
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK: SHA-256 over the required members in lexicographic
/// order without whitespace, base64url without padding.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// One JWK of the published set (RFC 7517, RFC 8037 for OKP keys).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Jwk<'a> {
    /// Key type: always `OKP`.
    #[schema(example = "OKP")]
    kty: &'static str,
    /// Curve: always `Ed25519`.
    #[schema(example = "Ed25519")]
    crv: &'static str,
    /// The public key, base64url without padding.
    x: &'a str,
    /// The key's id: its RFC 7638 thumbprint, named in the `kid` header of the tokens it signs.
    kid: &'a str,
    /// Algorithm: always `EdDSA`.
    #[schema(example = "EdDSA")]
    alg: &'static str,
    /// Use: always `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    usage: &'static str,
}

/// The published key set (its schema is what the OpenAPI document gives `/.well-known/jwks.json`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Jwks<'a> {
    /// The keys whose tokens may still be live, newest first.
    keys: Vec<Jwk<'a>>,
}

/// The JWKS document publishing `keys`, in the given order.
pub(crate) fn jwks_json(keys: &[PublicKey]) -> String {
    let document = Jwks {
        keys: keys
            .iter()
            .map(|key| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: &key.x,
                kid: &key.kid,
                alg: "EdDSA",
                usage: "sig",
            })
            .collect(),
    };
    // Serializing string fields into a JSON string cannot fail.
    serde_json::to_string(&document).unwrap_or_else(|_| r#"{"keys":[]}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 appendix A.1 private key (PKCS#8 v1, as `openssl genpkey` writes it).
    const RFC8037_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn the_rfc_8037_key_gets_the_rfc_8037_public_key_and_thumbprint() -> Result<(), AuthError> {
        let key = SigningKey::from_pem(RFC8037_PEM)?;
        assert_eq!(key.public().x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        // RFC 8037 A.3.
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        Ok(())
    }

    #[test]
    fn a_stored_key_comes_back_with_the_same_id() -> Result<(), AuthError> {
        let key = SigningKey::generate()?;
        let again = SigningKey::from_stored(&key.to_stored())?;
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public(), key.public());
        Ok(())
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKey::from_pem("hello").is_err());
        assert!(SigningKey::from_stored("AAAA").is_err());
    }

    #[test]
    fn the_jwks_names_curve_algorithm_and_use() -> Result<(), AuthError> {
        let key = SigningKey::generate()?;
        let json: serde_json::Value = serde_json::from_str(&jwks_json(&[key.public().clone()]))
            .map_err(|e| AuthError::KeyMaterial(e.to_string()))?;
        let jwk = &json["keys"][0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid());
        assert!(jwk.get("d").is_none(), "never the private part");
        Ok(())
    }
}
