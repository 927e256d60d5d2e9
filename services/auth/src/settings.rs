//! The `auth` configuration section, read once at start and checked before anything is opened.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::AuthError;

/// Longest access-token lifetime accepted: a day. Access tokens cannot be revoked, so a longer one
/// would outlive a logout or a password change by too much.
const MAX_ACCESS_TTL_SECS: u32 = 86_400;
/// Longest refresh-token lifetime accepted: a year.
const MAX_REFRESH_TTL_SECS: u64 = 365 * 86_400;
/// Longest reuse grace window accepted: five minutes (it weakens reuse detection).
const MAX_GRACE_SECS: u64 = 300;
/// Longest key rotation period accepted: a year.
const MAX_ROTATION_DAYS: u32 = 365;

/// `auth:` in `config/default.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSettings {
    /// Lifetime of an access token.
    access_token_ttl_secs: u32,
    /// Lifetime of a refresh token (each rotation starts a new one).
    refresh_token_ttl_secs: u64,
    /// How long after a rotation the rotated token may be presented again without counting as reuse.
    refresh_reuse_grace_secs: u64,
    /// How long a generated signing key signs before a new one replaces it.
    key_rotation_days: u32,
    /// An Ed25519 private key (PKCS#8 PEM text) to sign with; empty to generate and store keys.
    /// Usually given as a secret file: `KEEL_AUTH__SIGNING_PRIVATE_KEY_FILE=/run/secrets/auth.pem`.
    signing_private_key: SecretString,
    /// Growing delays after failed logins, per account and per client address.
    #[serde(default)]
    login_throttle: crate::throttle::LoginThrottleSettings,
}

impl AuthSettings {
    /// Reads and checks the section.
    pub(crate) fn load(config: &keel_config::Config) -> Result<Self, AuthError> {
        let settings: Self = config.section("auth")?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), AuthError> {
        let invalid = |key: &str, message: String| AuthError::Settings {
            key: format!("auth.{key}"),
            message,
        };
        if !(60..=MAX_ACCESS_TTL_SECS).contains(&self.access_token_ttl_secs) {
            return Err(invalid(
                "access_token_ttl_secs",
                format!("must be between 60 and {MAX_ACCESS_TTL_SECS}"),
            ));
        }
        if self.refresh_token_ttl_secs <= u64::from(self.access_token_ttl_secs)
            || self.refresh_token_ttl_secs > MAX_REFRESH_TTL_SECS
        {
            return Err(invalid(
                "refresh_token_ttl_secs",
                format!("must be longer than the access-token lifetime and at most {MAX_REFRESH_TTL_SECS}"),
            ));
        }
        if self.refresh_reuse_grace_secs > MAX_GRACE_SECS {
            return Err(invalid(
                "refresh_reuse_grace_secs",
                format!("must be at most {MAX_GRACE_SECS}"),
            ));
        }
        if !(1..=MAX_ROTATION_DAYS).contains(&self.key_rotation_days) {
            return Err(invalid(
                "key_rotation_days",
                format!("must be between 1 and {MAX_ROTATION_DAYS}"),
            ));
        }
        Ok(())
    }

    /// Lifetime of an access token, in seconds (as the token response states it).
    pub(crate) fn access_ttl_secs(&self) -> u32 {
        self.access_token_ttl_secs
    }

    /// Lifetime of an access token.
    pub(crate) fn access_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.access_token_ttl_secs))
    }

    /// Lifetime of a refresh token.
    pub(crate) fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// The reuse grace window (zero: strict).
    pub(crate) fn reuse_grace(&self) -> Duration {
        Duration::from_secs(self.refresh_reuse_grace_secs)
    }

    /// How long a generated key signs.
    pub(crate) fn rotation(&self) -> Duration {
        Duration::from_secs(u64::from(self.key_rotation_days) * 86_400)
    }

    /// The failed-login throttle's settings.
    pub(crate) fn login_throttle(&self) -> &crate::throttle::LoginThrottleSettings {
        &self.login_throttle
    }

    /// The configured private key (PEM), when there is one.
    pub(crate) fn signing_private_key(&self) -> Option<&str> {
        let pem = self.signing_private_key.expose_secret().trim();
        (!pem.is_empty()).then_some(pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> AuthSettings {
        AuthSettings {
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 604_800,
            refresh_reuse_grace_secs: 0,
            key_rotation_days: 30,
            signing_private_key: SecretString::from(String::new()),
            login_throttle: crate::throttle::LoginThrottleSettings::default(),
        }
    }

    #[test]
    fn the_defaults_are_accepted() {
        assert!(defaults().check().is_ok());
        assert_eq!(defaults().signing_private_key(), None);
    }

    #[test]
    fn a_refresh_lifetime_not_longer_than_the_access_lifetime_is_rejected() {
        let settings = AuthSettings {
            refresh_token_ttl_secs: 900,
            ..defaults()
        };
        match settings.check() {
            Err(AuthError::Settings { key, .. }) => assert_eq!(key, "auth.refresh_token_ttl_secs"),
            other => panic!("expected a settings error, got {other:?}"),
        }
    }

    #[test]
    fn a_zero_rotation_period_is_rejected() {
        let settings = AuthSettings {
            key_rotation_days: 0,
            ..defaults()
        };
        assert!(matches!(settings.check(), Err(AuthError::Settings { .. })));
    }
}
