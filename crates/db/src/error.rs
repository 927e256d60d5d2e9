//! The crate's error type, and the redaction that keeps the database password out of it.
//!
//! Driver errors are turned into text here, once, with every form of the password the URL holds
//! replaced by `***`. The original driver error is not kept as a `source`: a caller printing the
//! whole chain (`{:#}` with anyhow) would otherwise print it unredacted.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a database could not be set up or used.
///
/// Every message names the service and never contains the password of the database URL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The service name cannot name a schema or a file.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database settings for the service are unusable (URL form, schema name, pool sizes).
    #[error("invalid database settings for service {service}: {reason}")]
    InvalidConfig {
        /// The service whose settings these are.
        service: String,
        /// What is wrong.
        reason: String,
    },
    /// The SQLite directory could not be created.
    #[error("cannot create the database directory {} for service {service}: {reason}", path.display())]
    Storage {
        /// The service.
        service: String,
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The database could not be reached, or refused the connection or the schema setup.
    #[error("cannot connect to the database of service {service}: {reason}")]
    Connect {
        /// The service.
        service: String,
        /// The driver's reason, password removed.
        reason: String,
    },
    /// A migration failed; the migrations before it stay applied.
    #[error("migrations failed for service {service}: {reason}")]
    Migration {
        /// The service.
        service: String,
        /// The driver's reason, password removed.
        reason: String,
    },
}

/// Replaces the secrets of one database URL in any text derived from errors.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// Collects the password of `url`, from its user-info part and from a `password=` query
    /// parameter, both as written and percent-decoded.
    pub(crate) fn for_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        if let Some((userinfo, _)) = head.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            secrets.push(password.to_owned());
        }
        for pair in query.split('&') {
            if let Some(("password", value)) = pair.split_once('=') {
                secrets.push(value.to_owned());
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        secrets.sort();
        secrets.dedup();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            secrets: secrets.into(),
        }
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn clean(&self, text: impl Display) -> String {
        let mut text = text.to_string();
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_in_the_user_info_is_replaced_as_written_and_decoded() {
        let redactor = Redactor::for_url("postgres://keel:p%40ss%2Fw0rd@db:5432/keel");
        let cleaned = redactor.clean("bad: postgres://keel:p%40ss%2Fw0rd@db and p@ss/w0rd");
        assert_eq!(cleaned, "bad: postgres://keel:***@db and ***");
    }

    #[test]
    fn a_password_query_parameter_is_replaced() {
        let redactor = Redactor::for_url("postgres://db/keel?sslmode=require&password=hunter22");
        assert_eq!(redactor.clean("password=hunter22 failed"), "password=*** failed");
    }

    #[test]
    fn urls_without_a_password_change_nothing() {
        let redactor = Redactor::for_url("postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(redactor.clean("connection refused"), "connection refused");
        assert_eq!(Redactor::for_url("sqlite:data").clean("x"), "x");
    }
}
