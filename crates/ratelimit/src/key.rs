//! Keys that do not reveal what they count.
//!
//! Why it exists: some budgets are kept per e-mail address (failed logins, reset requests), and
//! their keys end up in a shared Redis, in memory dumps and in debug logs. Every user of such a
//! key hashes it the same way here, so the same address always maps to the same counter.

use sha2::{Digest as _, Sha256};

/// The counter key of `subject` (e.g. a normalised e-mail address): its SHA-256 as 64 lowercase
/// hex digits. Normalise the subject first (case, spaces); this function does not.
pub fn opaque_key(subject: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(subject.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut key, byte| {
            let _ = write!(key, "{byte:02x}");
            key
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_sha256_hex_of_the_subject_and_hides_it() {
        let key = opaque_key("ann@example.com");
        assert_eq!(key.len(), 64);
        assert!(
            key.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(!key.contains("ann"));
        assert_eq!(key, opaque_key("ann@example.com"));
        assert_ne!(key, opaque_key("bob@example.com"));
        assert_eq!(
            opaque_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
