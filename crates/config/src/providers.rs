//! figment providers for our layers: YAML files (through the maintained `serde_norway`, not the
//! deprecated `serde_yaml` that figment's own `yaml` feature uses) and `KEEL_` variables, with the
//! `_FILE` secret indirection.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Prefix of every configuration variable.
pub(crate) const ENV_PREFIX: &str = "KEEL_";
/// Separator between key levels in a variable name.
const LEVEL_SEPARATOR: &str = "__";
/// Suffix that turns a variable into a path to a file holding the value.
const FILE_SUFFIX: &str = "_FILE";

/// Variables with the prefix that are not configuration keys but select how configuration loads, or
/// belong to seeding. They are never reported as unknown.
pub(crate) const META_VARIABLES: &[&str] = &[
    "KEEL_ENV",
    "KEEL_CONFIG_DIR",
    "KEEL_ADMIN_EMAIL",
    "KEEL_ADMIN_PASSWORD",
    "KEEL_REQUIRE_SERVERS",
    "KEEL_SERVICE_WAIT_SECS",
];

/// A YAML file whose top level is a map of sections.
pub(crate) struct YamlFile {
    path: PathBuf,
}

impl YamlFile {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Provider for YamlFile {
    fn metadata(&self) -> Metadata {
        Metadata::named("YAML file").source(self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| Error::from(format!("cannot read {}: {e}", self.path.display())))?;
        if text.trim().is_empty() {
            return Ok(Profile::Default.collect(Dict::new()));
        }
        let dict: Dict = serde_norway::from_str(&text)
            .map_err(|e| Error::from(format!("{} is not valid YAML: {e}", self.path.display())))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// The `KEEL_SECTION__KEY=value` layer, from an explicit list of variables so tests can inject it.
pub(crate) struct EnvOverlay {
    vars: Vec<(String, String)>,
}

impl EnvOverlay {
    pub(crate) fn new(vars: &[(String, String)]) -> Self {
        let vars = vars
            .iter()
            .filter(|(name, _)| is_config_variable(name) && !name.ends_with(FILE_SUFFIX))
            .cloned()
            .collect();
        Self { vars }
    }
}

impl Provider for EnvOverlay {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_, keys| variable_name(keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (name, raw) in &self.vars {
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            merge_into(&mut dict, &key_of(name), value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The `KEEL_SECTION__KEY_FILE=/path` layer: the value is the file's content, trailing newline
/// removed. Always a string (secrets are strings), so a password of digits stays a password.
pub(crate) struct SecretFiles {
    vars: Vec<(String, String)>,
}

impl SecretFiles {
    pub(crate) fn new(vars: &[(String, String)]) -> Self {
        let vars = vars
            .iter()
            .filter(|(name, _)| is_config_variable(name) && name.ends_with(FILE_SUFFIX))
            .cloned()
            .collect();
        Self { vars }
    }
}

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named("secret file (KEEL_*_FILE)")
            .interpolater(|_, keys| format!("{}{FILE_SUFFIX}", variable_name(keys)))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (name, path) in &self.vars {
            let content = std::fs::read_to_string(path)
                .map_err(|e| Error::from(format!("{name}: cannot read secret file {path}: {e}")))?;
            let value = content.trim_end_matches(['\n', '\r']).to_owned();
            let stem = &name[..name.len() - FILE_SUFFIX.len()];
            merge_into(&mut dict, &key_of(stem), Value::from(value));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// True for `KEEL_` variables that carry configuration (not the meta variables).
pub(crate) fn is_config_variable(name: &str) -> bool {
    name.starts_with(ENV_PREFIX) && !META_VARIABLES.contains(&name)
}

/// `KEEL_HTTP__REQUEST_TIMEOUT_MS` → `http.request_timeout_ms`.
pub(crate) fn key_of(variable: &str) -> String {
    variable[ENV_PREFIX.len()..]
        .split(LEVEL_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// `["http", "port"]` → `KEEL_HTTP__PORT`.
fn variable_name(keys: &[&str]) -> String {
    format!("{ENV_PREFIX}{}", keys.join(LEVEL_SEPARATOR).to_ascii_uppercase())
}

/// Inserts `value` at the dotted `key` of `dict`, creating the intermediate maps.
fn merge_into(dict: &mut Dict, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut current = dict;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::from(Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::from(Dict::new());
        }
        match entry {
            Value::Dict(_, inner) => current = inner,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_map_to_dotted_keys_and_back() {
        assert_eq!(key_of("KEEL_HTTP__REQUEST_TIMEOUT_MS"), "http.request_timeout_ms");
        assert_eq!(
            variable_name(&["http", "request_timeout_ms"]),
            "KEEL_HTTP__REQUEST_TIMEOUT_MS"
        );
    }

    #[test]
    fn meta_variables_are_not_configuration() {
        assert!(!is_config_variable("KEEL_ENV"));
        assert!(is_config_variable("KEEL_HTTP__PORT"));
        assert!(!is_config_variable("HOME"));
    }
}
