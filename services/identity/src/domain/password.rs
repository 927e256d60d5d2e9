//! The password policy (OWASP ASVS 2.1 / NIST SP 800-63B): a length range and a block list,
//! no composition rules.

use secrecy::{ExposeSecret, SecretString};

use super::{Email, FieldProblem};

/// Fewest characters accepted.
pub(crate) const MIN_CHARS: usize = 8;
/// Most characters accepted: long enough for any passphrase, short enough that hashing cost
/// cannot be driven up by a huge body.
pub(crate) const MAX_CHARS: usize = 128;

/// A new password that meets the policy. Only ever built by [`Password::parse`]; the text stays
/// a secret (redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` as the new password of the account `email`:
    /// - 8 to 128 characters (Unicode scalar values; white space counts and is never trimmed):
    ///   `too_short`, `too_long`;
    /// - not one of the ~100,000 most common passwords, compared as typed and lower-cased:
    ///   `common_password`;
    /// - not the account's e-mail address, nor the part before its `@` (case-insensitively):
    ///   `matches_email` (skipped when the address is not known, e.g. it was itself invalid).
    pub fn parse(raw: &SecretString, email: Option<&Email>) -> Result<Self, FieldProblem> {
        let text = raw.expose_secret();
        let chars = text.chars().count();
        if chars < MIN_CHARS {
            return Err(FieldProblem::new(
                "too_short",
                format!("a password needs at least {MIN_CHARS} characters"),
            ));
        }
        if chars > MAX_CHARS {
            return Err(FieldProblem::new(
                "too_long",
                format!("a password has at most {MAX_CHARS} characters"),
            ));
        }
        let lower = text.to_lowercase();
        if email.is_some_and(|email| lower == email.as_str() || lower == email.local_part()) {
            return Err(FieldProblem::new(
                "matches_email",
                "the password must not be the e-mail address",
            ));
        }
        if passwords::analyzer::is_common_password(text) || passwords::analyzer::is_common_password(&lower) {
            return Err(FieldProblem::new(
                "common_password",
                "this password is among the most common ones; choose another",
            ));
        }
        Ok(Self(raw.clone()))
    }

    /// The password, for hashing.
    pub(crate) fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("grace.hopper@example.com").expect("valid")
    }

    fn parse(text: &str) -> Result<Password, FieldProblem> {
        Password::parse(&SecretString::from(text.to_owned()), Some(&email()))
    }

    #[test]
    fn a_long_uncommon_password_is_accepted() {
        assert!(parse("correct horse battery staple 42").is_ok());
        assert!(parse("Zq8#vLp2!mW").is_ok());
    }

    #[test]
    fn length_is_counted_in_characters_with_bounds_8_and_128() {
        assert_eq!(parse("x7#kQ2m").expect_err("7").code, "too_short");
        assert!(parse("x7#kQ2mz").is_ok());
        assert!(parse("ééééééé9").is_ok(), "8 characters, 15 bytes");
        assert_eq!(parse("ééééééé").expect_err("7 chars").code, "too_short");
        let max = "a1b2".repeat(32);
        assert!(parse(&max).is_ok());
        assert_eq!(parse(&format!("{max}z")).expect_err("129").code, "too_long");
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for common in [
            "password",
            "Password1",
            "PASSWORD123",
            "qwertyuiop",
            "iloveyou1",
            "12345678",
        ] {
            assert_eq!(
                parse(common).expect_err(common).code,
                "common_password",
                "{common}"
            );
        }
    }

    #[test]
    fn the_email_address_or_its_local_part_is_refused() {
        assert_eq!(
            parse("Grace.Hopper@example.com").expect_err("email").code,
            "matches_email"
        );
        assert_eq!(
            parse("grace.hopper").expect_err("local part").code,
            "matches_email"
        );
    }
}
