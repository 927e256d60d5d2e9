//! Minting tokens: signed access tokens (JWT, EdDSA) and opaque refresh tokens.
//!
//! Why this module exists: what goes into a token and how a refresh token is stored are security
//! decisions made once. A refresh token is 32 random bytes, base64url; only its SHA-256 (hex) is
//! stored, so a copy of the database gives no usable token.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use keel_authn::{AccessClaims, JwtSettings};
use secrecy::SecretString;
use uuid::Uuid;

use crate::AuthError;
use crate::keys::SigningKey;

/// Random bytes in a refresh token.
const REFRESH_TOKEN_BYTES: usize = 32;
/// Longest refresh token looked up; anything longer cannot be one of ours.
const MAX_REFRESH_TOKEN_LEN: usize = 128;

/// A new refresh token and the hash it is stored under.
pub(crate) struct NewRefreshToken {
    /// The token handed to the client, once.
    pub(crate) token: SecretString,
    /// Hex SHA-256 of the token.
    pub(crate) hash: String,
}

/// A fresh random refresh token.
pub(crate) fn new_refresh_token() -> Result<NewRefreshToken, AuthError> {
    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::KeyMaterial("the system random generator failed".into()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    Ok(NewRefreshToken {
        token: SecretString::from(token),
        hash,
    })
}

/// The stored hash of a presented refresh token; `None` when it cannot be one of ours.
pub(crate) fn lookup_hash(token: &str) -> Option<String> {
    let plausible = !token.is_empty()
        && token.len() <= MAX_REFRESH_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| hash_refresh_token(token))
}

fn hash_refresh_token(token: &str) -> String {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What an access token is issued for.
pub(crate) struct AccessGrant {
    /// The user (`sub`).
    pub(crate) user_id: Uuid,
    /// The session (`sid`).
    pub(crate) session_id: Uuid,
    /// Issue time.
    pub(crate) now: DateTime<Utc>,
    /// Lifetime.
    pub(crate) ttl: Duration,
}

/// Signs an access token for `grant` with `key` (header `alg: EdDSA`, `typ: JWT`, `kid`).
pub(crate) fn sign_access_token(
    key: &SigningKey,
    jwt: &JwtSettings,
    grant: &AccessGrant,
) -> Result<SecretString, AuthError> {
    let issued = grant.now.timestamp();
    let lifetime = i64::try_from(grant.ttl.as_secs()).unwrap_or(i64::MAX);
    let claims = AccessClaims {
        iss: jwt.issuer.clone(),
        aud: jwt.audience.clone(),
        sub: grant.user_id.to_string(),
        jti: Uuid::new_v4().to_string(),
        iat: issued,
        nbf: issued,
        exp: issued.saturating_add(lifetime),
        sid: grant.session_id.to_string(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid().to_owned());
    let token = jsonwebtoken::encode(&header, &claims, key.encoding_key())?;
    Ok(SecretString::from(token))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn a_refresh_token_is_43_url_safe_characters_stored_by_its_hash() -> Result<(), AuthError> {
        let issued = new_refresh_token()?;
        let token = issued.token.expose_secret();
        assert_eq!(token.len(), 43);
        assert_eq!(lookup_hash(token).as_deref(), Some(issued.hash.as_str()));
        assert_eq!(issued.hash.len(), 64);
        assert_ne!(new_refresh_token()?.hash, issued.hash);
        Ok(())
    }

    #[test]
    fn implausible_refresh_tokens_are_not_looked_up() {
        assert_eq!(lookup_hash(""), None);
        assert_eq!(lookup_hash("has space"), None);
        assert_eq!(lookup_hash(&"a".repeat(129)), None);
    }

    #[test]
    fn an_access_token_names_its_key_and_carries_the_claims() -> Result<(), AuthError> {
        let key = SigningKey::generate()?;
        let now = Utc::now();
        let grant = AccessGrant {
            user_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            now,
            ttl: Duration::from_secs(900),
        };
        let token = sign_access_token(&key, &JwtSettings::default(), &grant)?;
        let header = jsonwebtoken::decode_header(token.expose_secret())?;
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let claims: AccessClaims = jsonwebtoken::dangerous::insecure_decode_claims(token.expose_secret())?;
        assert_eq!(claims.sub, grant.user_id.to_string());
        assert_eq!(claims.sid, grant.session_id.to_string());
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.iss, "keel");
        assert_eq!(claims.aud, "keel-api");
        Ok(())
    }
}
