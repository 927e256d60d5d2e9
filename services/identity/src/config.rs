//! The `identity` configuration section (see `config/default.yaml` for every key and default).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Whether anyone may register through `POST /api/v1/users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone may register.
    Open,
    /// Self-registration answers 403; users are created internally (gRPC `CreateUser`).
    Closed,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashSettings {
    /// Memory per hash, KiB (OWASP minimum 19456).
    pub memory_kib: u32,
    /// Passes over the memory (OWASP minimum 2 at 19 MiB).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
}

/// The `identity` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// `open` or `closed` self-registration.
    pub registration: Registration,
    /// Refuse login (`EMAIL_NOT_VERIFIED`) until the address is verified.
    pub require_verified_email: bool,
    /// Base URL of the web front end; links in e-mails point below it.
    pub public_url: String,
    /// Lifetime of an e-mail verification token, seconds.
    pub verification_token_ttl_secs: u64,
    /// Lifetime of a password reset token, seconds.
    pub reset_token_ttl_secs: u64,
    /// Directory the development notifier writes `.eml` files into.
    pub outbox_dir: PathBuf,
    /// The `From` of the service's e-mails, e.g. `Keel <no-reply@example.com>`.
    pub mail_from: String,
    /// argon2id costs.
    pub password_hash: PasswordHashSettings,
    /// Most password-reset requests per e-mail address, e.g. `"3/hour"` (whether or not the
    /// account exists); more answer 429. Counted where `ratelimit.backend` says.
    #[serde(default = "default_reset_requests_per_address")]
    pub reset_requests_per_address: keel_ratelimit::Quota,
    /// Growing delays after wrong current passwords on `PUT /api/v1/users/me/password`, per user:
    /// a stolen session must not turn into unlimited guesses at the password (and from there the
    /// account). Counted where `ratelimit.backend` says.
    #[serde(default = "default_password_change_throttle")]
    pub password_change_throttle: keel_ratelimit::BackoffSettings,
}

/// Five wrong current passwords free, then 1 s doubling to 60 s, forgotten after 15 minutes: the
/// login throttle's per-account schedule.
fn default_password_change_throttle() -> keel_ratelimit::BackoffSettings {
    keel_ratelimit::BackoffSettings {
        free_failures: 5,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
        forget_after_secs: 900,
    }
}

/// Three reset e-mails an hour per address: enough for a user who lost one, too few to flood a
/// mailbox.
fn default_reset_requests_per_address() -> keel_ratelimit::Quota {
    keel_ratelimit::Quota::new(3, std::time::Duration::from_secs(3_600)).expect("3 per hour is a valid quota")
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity.{key}: {reason}")]
pub struct InvalidSetting {
    /// The key under `identity`.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl IdentitySettings {
    /// Checks what the types cannot: URL form, non-zero lifetimes, a parseable `From`.
    /// (The argon2 parameters are checked when the hasher is built.)
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, reason: &str| InvalidSetting {
            key,
            reason: reason.to_owned(),
        };
        let url = self.public_url.trim();
        let form = url.starts_with("http://") || url.starts_with("https://");
        if !form || !url.is_ascii() || url.contains(['?', '#', ' ']) {
            return Err(invalid(
                "public_url",
                "must be an ASCII http:// or https:// URL without query or fragment",
            ));
        }
        if self.verification_token_ttl_secs == 0 {
            return Err(invalid("verification_token_ttl_secs", "must be positive"));
        }
        if self.reset_token_ttl_secs == 0 {
            return Err(invalid("reset_token_ttl_secs", "must be positive"));
        }
        if self.outbox_dir.as_os_str().is_empty() {
            return Err(invalid("outbox_dir", "must name a directory"));
        }
        if let Err(error) = self
            .password_change_throttle
            .policy("identity.password_change_throttle")
        {
            return Err(invalid("password_change_throttle", &error.to_string()));
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail_from",
                "must be an address like `Keel <no-reply@example.com>`",
            ));
        }
        Ok(())
    }

    /// `public_url` without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        self.public_url.trim().trim_end_matches('/')
    }

    /// Lifetime of a verification token.
    pub(crate) fn verification_ttl(&self) -> Duration {
        Duration::from_secs(self.verification_token_ttl_secs)
    }

    /// Lifetime of a reset token.
    pub(crate) fn reset_ttl(&self) -> Duration {
        Duration::from_secs(self.reset_token_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> IdentitySettings {
        IdentitySettings {
            registration: Registration::Open,
            require_verified_email: false,
            public_url: "http://127.0.0.1:8080/".to_owned(),
            verification_token_ttl_secs: 86_400,
            reset_token_ttl_secs: 1_800,
            outbox_dir: PathBuf::from("data/outbox"),
            mail_from: "Keel <no-reply@keel.invalid>".to_owned(),
            password_hash: PasswordHashSettings {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1,
            },
            reset_requests_per_address: default_reset_requests_per_address(),
            password_change_throttle: default_password_change_throttle(),
        }
    }

    #[test]
    fn the_defaults_are_valid_and_the_base_url_has_no_trailing_slash() {
        let settings = settings();
        assert_eq!(settings.validate(), Ok(()));
        assert_eq!(settings.base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn unusable_settings_name_their_key() {
        let mut bad = settings();
        bad.public_url = "ftp://x".to_owned();
        assert_eq!(bad.validate().expect_err("url").key, "public_url");
        let mut bad = settings();
        bad.reset_token_ttl_secs = 0;
        assert_eq!(bad.validate().expect_err("ttl").key, "reset_token_ttl_secs");
        let mut bad = settings();
        bad.mail_from = "not an address".to_owned();
        assert_eq!(bad.validate().expect_err("from").key, "mail_from");
        let mut bad = settings();
        bad.password_change_throttle.base_delay_ms = 0;
        assert_eq!(
            bad.validate().expect_err("throttle").key,
            "password_change_throttle"
        );
    }
}
