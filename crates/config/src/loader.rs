//! Merging the layers into one [`Config`], and turning any failure into a [`ConfigError`] that
//! names the key and its source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::error::Kind;
use figment::{Figment, Metadata, Profile, Source};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::model::KernelConfig;
use crate::providers::{EnvOverlay, SecretFiles, YamlFile, is_config_variable, key_of};
use crate::redact::redact_value;

/// Environment used when `KEEL_ENV` is unset.
const DEFAULT_ENVIRONMENT: &str = "development";

/// Builds a [`Config`] from a configuration directory and a set of environment variables.
///
/// Production code uses [`ConfigLoader::from_process`]; tests pass their own directory and variables,
/// so they never touch the process environment.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl ConfigLoader {
    /// Reads `KEEL_CONFIG_DIR` (default `config`) and every variable of this process.
    pub fn from_process() -> Self {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let dir = vars
            .iter()
            .find(|(k, _)| k == "KEEL_CONFIG_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("config"));
        Self { dir, vars }
    }

    /// A loader over `dir` with no environment variables.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            vars: Vec::new(),
        }
    }

    /// Replaces the environment variables the loader sees.
    pub fn with_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.vars = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// Sets one variable, replacing an earlier value.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.vars.retain(|(k, _)| *k != name);
        self.vars.push((name, value.into()));
        self
    }

    /// Merges the layers, extracts and validates the kernel settings.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let environment = self.environment()?;
        let default_file = self.dir.join("default.yaml");
        let env_file = self.dir.join(format!("{environment}.yaml"));
        for file in [&default_file, &env_file] {
            if let Err(e) = std::fs::metadata(file) {
                return Err(ConfigError::FileUnreadable {
                    path: file.clone(),
                    reason: e.to_string(),
                });
            }
        }
        let defaults = Figment::new().merge(YamlFile::new(&default_file));
        let figment = defaults
            .clone()
            .merge(YamlFile::new(&env_file))
            .merge(EnvOverlay::new(&self.vars))
            .merge(SecretFiles::new(&self.vars));

        let kernel: KernelConfig = figment.extract().map_err(|e| invalid(&figment, e))?;
        if let Some(violation) = kernel.violations().into_iter().next() {
            return Err(ConfigError::Invalid {
                source_name: source_of(&figment, violation.key),
                key: violation.key.to_owned(),
                message: violation.message,
            });
        }
        let mut warnings = self.unknown_variables(&defaults);
        warnings.extend(unknown_sections(&defaults, &env_file));
        Ok(Config {
            environment,
            figment,
            kernel: Arc::new(kernel),
            warnings,
            admin: AdminSeed {
                email: self.var("KEEL_ADMIN_EMAIL").map(str::to_owned),
                password: self
                    .var("KEEL_ADMIN_PASSWORD")
                    .map(|p| SecretString::from(p.to_owned())),
            },
        })
    }

    /// A variable's value, `None` when unset or blank.
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    fn environment(&self) -> Result<String, ConfigError> {
        let name = self
            .vars
            .iter()
            .find(|(k, _)| k == "KEEL_ENV")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned());
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !plain || name == "default" {
            return Err(ConfigError::UnknownEnvironment(name));
        }
        Ok(name)
    }

    /// `KEEL_` variables whose key `default.yaml` does not define: almost always a typo.
    fn unknown_variables(&self, defaults: &Figment) -> Vec<String> {
        self.vars
            .iter()
            .filter(|(name, _)| is_config_variable(name))
            .filter_map(|(name, _)| {
                let key = key_of(name.strip_suffix("_FILE").unwrap_or(name));
                (!is_known_key(defaults, &key)).then(|| {
                    format!("{name} sets `{key}`, which config/default.yaml does not define (a typo?); it is ignored")
                })
            })
            .collect()
    }
}

/// Top-level sections of the environment file that default.yaml does not define (a typo such as
/// `htpp:` would otherwise load silently, since services read their own sections by name).
fn unknown_sections(defaults: &Figment, env_file: &Path) -> Vec<String> {
    let Ok(overlay) = Figment::new()
        .merge(YamlFile::new(env_file))
        .extract::<figment::value::Dict>()
    else {
        return Vec::new();
    };
    overlay
        .keys()
        .filter(|section| !defaults.contains(section))
        .map(|section| {
            format!(
                "{} defines section `{section}`, which config/default.yaml does not (a typo?); it is ignored",
                env_file.display()
            )
        })
        .collect()
}

/// A key is known when default.yaml has it, or when its nearest defined ancestor is an open map
/// (an empty map in default.yaml, such as `database.services`, whose entries are free).
fn is_known_key(defaults: &Figment, key: &str) -> bool {
    if defaults.contains(key) {
        return true;
    }
    let mut prefix = key;
    while let Some((parent, _)) = prefix.rsplit_once('.') {
        if let Ok(value) = defaults.find_value(parent) {
            return value.as_dict().is_some_and(|d| d.is_empty());
        }
        prefix = parent;
    }
    false
}

/// The effective configuration of a process: the merged layers plus the validated kernel settings.
#[derive(Debug, Clone)]
pub struct Config {
    environment: String,
    figment: Figment,
    kernel: Arc<KernelConfig>,
    warnings: Vec<String>,
    admin: AdminSeed,
}

/// The first administrator's credentials, from `KEEL_ADMIN_EMAIL` and `KEEL_ADMIN_PASSWORD`. They
/// are read for seeding only and are not configuration keys, so they never appear in
/// [`Config::redacted`].
#[derive(Debug, Clone, Default)]
pub struct AdminSeed {
    /// `KEEL_ADMIN_EMAIL`.
    pub email: Option<String>,
    /// `KEEL_ADMIN_PASSWORD`.
    pub password: Option<SecretString>,
}

impl Config {
    /// The environment name (`KEEL_ENV`), e.g. `development`.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Whether this is the development environment (the default), where conveniences such as
    /// seeding with a generated administrator password are allowed.
    pub fn is_development(&self) -> bool {
        self.environment == "development"
    }

    /// Whether this is the production environment.
    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    /// The administrator to seed, as the environment gives it.
    pub fn admin_seed(&self) -> &AdminSeed {
        &self.admin
    }

    /// The kernel's typed settings.
    pub fn kernel(&self) -> &KernelConfig {
        &self.kernel
    }

    /// Extracts one section (e.g. `identity`) into its typed struct; errors name the key and source.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.figment
            .extract_inner(key)
            .map_err(|e| invalid(&self.figment, e))
    }

    /// Problems worth a warning that do not stop start-up (unknown `KEEL_` variables). They are
    /// returned rather than logged because logging is configured from this very configuration.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The whole effective configuration as JSON with every secret masked, for `platform config`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = self
            .figment
            .extract::<serde_json::Value>()
            .unwrap_or(serde_json::Value::Null);
        redact_value(&mut value);
        value
    }
}

/// Turns a figment error into ours, with the key and its source.
fn invalid(figment: &Figment, error: figment::Error) -> ConfigError {
    let key = error.path.join(".");
    let source_name = match &error.metadata {
        Some(metadata) if error.path.is_empty() => metadata.name.to_string(),
        Some(metadata) => describe_source(metadata, &error.path),
        None if !key.is_empty() => source_of(figment, &key),
        None => "configuration".to_owned(),
    };
    let message = match &error.kind {
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    let key = if key.is_empty() { "<root>".to_owned() } else { key };
    ConfigError::Invalid {
        key,
        source_name,
        message,
    }
}

/// Where the value of `key` came from, for messages about values that parsed but are invalid.
fn source_of(figment: &Figment, key: &str) -> String {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    figment
        .find_metadata(key)
        .map(|metadata| describe_source(metadata, &path))
        .unwrap_or_else(|| "configuration".to_owned())
}

fn describe_source(metadata: &Metadata, path: &[String]) -> String {
    match &metadata.source {
        Some(Source::File(file)) => file.display().to_string(),
        _ => {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            format!(
                "{} {}",
                metadata.name,
                metadata.interpolate(&Profile::Default, &keys)
            )
        }
    }
}
