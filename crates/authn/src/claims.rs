//! The claims of a Keel access token and the settings that say which tokens are ours.
//!
//! Why this module exists: the auth service signs tokens with [`AccessClaims`] and every verifier
//! reads them back with the same struct, so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::AuthnError;

/// The largest accepted `leeway_secs`: more would quietly extend every token's lifetime.
const MAX_LEEWAY_SECS: u64 = 300;

/// Claims of a Keel access token (a JWT signed with EdDSA whose header carries a `kid`), issued by
/// the auth service and verified locally by every service with [`crate::TokenVerifier`].
///
/// Times are Unix seconds. New claims (a tenant id, scopes) can be added later as optional fields
/// without breaking tokens already in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer; must equal [`JwtSettings::issuer`].
    pub iss: String,
    /// Audience; must equal [`JwtSettings::audience`].
    pub aud: String,
    /// Subject: the user's id (a UUID).
    pub sub: String,
    /// The token's unique id.
    pub jti: String,
    /// Issued at.
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// The session (refresh-token family) the token was issued in (a UUID).
    pub sid: String,
}

/// The `jwt` configuration section, shared by the signer (auth) and every verifier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The `iss` every access token carries, e.g. `keel`.
    pub issuer: String,
    /// The `aud` every access token carries, e.g. `keel-api`.
    pub audience: String,
    /// Clock skew tolerated when checking `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl JwtSettings {
    /// Reads and validates the `jwt` section of the configuration.
    pub fn from_config(config: &keel_config::Config) -> Result<Self, AuthnError> {
        let settings: Self = config
            .section("jwt")
            .map_err(|error| AuthnError::Settings(error.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values: issuer and audience set, leeway at most 300 s.
    pub fn validate(&self) -> Result<(), AuthnError> {
        if self.issuer.trim().is_empty() {
            return Err(AuthnError::Settings("jwt.issuer must not be empty".to_owned()));
        }
        if self.audience.trim().is_empty() {
            return Err(AuthnError::Settings("jwt.audience must not be empty".to_owned()));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthnError::Settings(format!(
                "jwt.leeway_secs must be at most {MAX_LEEWAY_SECS}"
            )));
        }
        Ok(())
    }
}

impl Default for JwtSettings {
    /// The values of `config/default.yaml`.
    fn default() -> Self {
        Self {
            issuer: "keel".to_owned(),
            audience: "keel-api".to_owned(),
            leeway_secs: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        assert!(JwtSettings::default().validate().is_ok());
        let empty_issuer = JwtSettings {
            issuer: " ".to_owned(),
            ..JwtSettings::default()
        };
        assert!(
            empty_issuer
                .validate()
                .unwrap_err()
                .to_string()
                .contains("jwt.issuer")
        );
        let huge_leeway = JwtSettings {
            leeway_secs: 3600,
            ..JwtSettings::default()
        };
        assert!(
            huge_leeway
                .validate()
                .unwrap_err()
                .to_string()
                .contains("jwt.leeway_secs")
        );
    }
}
