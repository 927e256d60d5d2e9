//! The one error type of configuration loading: it always says which key and which layer.

use std::path::PathBuf;

/// Why configuration could not be loaded. Each variant's message names the key and its source, so
/// an operator can fix the setting without reading code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file that must exist could not be read.
    #[error("cannot read configuration file {path}: {reason}")]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// A file or value has the wrong shape or type for its key.
    #[error("invalid configuration for key `{key}` (from {source_name}): {message}")]
    Invalid {
        /// Dotted key path, e.g. `http.port`.
        key: String,
        /// Where the value came from: a file path or an environment variable name.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// `KEEL_ENV` names an environment whose file does not exist or that is not a plain name.
    #[error(
        "KEEL_ENV={0:?} does not name an environment (expected e.g. development or production with a matching config/<name>.yaml)"
    )]
    UnknownEnvironment(String),
}
