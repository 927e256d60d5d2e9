//! One-time tokens for e-mail verification and password reset.
//!
//! A token is 32 random bytes (256 bits, from the thread-local CSPRNG seeded by the OS), handed to
//! the user base64url-encoded inside a link. The database keeps only its SHA-256: someone who
//! reads the table cannot use the tokens in it. A plain (unsalted, fast) hash is enough because
//! the input is random and long; there is nothing to brute-force.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// What a token is for; stored in `tokens.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Proves the user reads the mailbox of their address.
    Verify,
    /// Lets the user set a new password.
    Reset,
}

impl TokenKind {
    /// The value stored in the `kind` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

/// A freshly generated token: the text for the link, and the hash for the database.
pub(crate) struct NewToken {
    /// The token as the user receives it.
    pub(crate) text: SecretString,
    /// Its SHA-256, lower-case hex.
    pub(crate) hash: String,
}

/// Makes a new random token.
pub(crate) fn generate() -> NewToken {
    let bytes: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&text);
    NewToken {
        text: SecretString::from(text),
        hash,
    }
}

/// The stored form of a token the user presents.
pub(crate) fn hash_presented(token: &SecretString) -> String {
    hash(token.expose_secret().trim())
}

fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_unique() {
        let a = generate();
        let b = generate();
        assert_eq!(a.text.expose_secret().len(), 43);
        assert!(
            a.text
                .expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a.text.expose_secret(), b.text.expose_secret());
    }

    #[test]
    fn the_stored_hash_is_the_sha256_hex_of_the_token() {
        let token = generate();
        assert_eq!(hash_presented(&token.text), token.hash);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
