//! The `authz` configuration section.
//!
//! Why this module exists: the roles a new user receives and how long the in-process permission
//! cache may serve an answer are deployment choices, read once at build and validated there.

use std::time::Duration;

use serde::Deserialize;

use crate::AuthzError;
use crate::names::RoleName;

/// The `authz` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthzSettings {
    /// Roles given to every new user when identity announces `platform.user.created`.
    pub(crate) default_roles: Vec<String>,
    /// How long a user's effective permissions stay cached inside the authz service, in seconds;
    /// 0 turns the cache off. Every write of this instance invalidates it at once, and role or
    /// permission events from other instances do too; the TTL bounds staleness should an event be
    /// lost.
    pub(crate) cache_ttl_secs: u64,
}

impl AuthzSettings {
    /// Reads and validates the `authz` section.
    pub(crate) fn from_config(config: &keel_config::Config) -> Result<Self, AuthzError> {
        let settings: Self = config
            .section("authz")
            .map_err(|e| AuthzError::Config(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), AuthzError> {
        let max_ttl = keel_clients::CachedAuthzClient::MAX_TTL.as_secs();
        if self.cache_ttl_secs > max_ttl {
            return Err(AuthzError::Config(format!(
                "authz.cache_ttl_secs must be at most {max_ttl}, not {}",
                self.cache_ttl_secs
            )));
        }
        for (index, name) in self.default_roles.iter().enumerate() {
            RoleName::parse(name, &format!("authz.default_roles[{index}]"))
                .map_err(|v| AuthzError::Config(format!("{}: {}", v.field, v.message)))?;
        }
        Ok(())
    }

    /// The default roles, normalised.
    pub(crate) fn default_role_names(&self) -> Vec<String> {
        self.default_roles
            .iter()
            .filter_map(|name| RoleName::parse(name, "default_roles").ok())
            .map(RoleName::into_string)
            .collect()
    }

    /// The cache TTL.
    pub(crate) fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_default_role_is_a_configuration_error_naming_the_key() {
        let settings = AuthzSettings {
            default_roles: vec!["user".to_owned(), "not valid".to_owned()],
            cache_ttl_secs: 30,
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("authz.default_roles[1]"), "{error}");
    }

    #[test]
    fn a_cache_ttl_beyond_a_day_is_refused_by_name() {
        for ttl in [86_401, u64::MAX] {
            let settings = AuthzSettings {
                default_roles: vec!["user".to_owned()],
                cache_ttl_secs: ttl,
            };
            let error = settings.validate().map(|()| "accepted").unwrap_err();
            assert!(error.to_string().contains("authz.cache_ttl_secs"), "{error}");
        }
        let day = AuthzSettings {
            default_roles: vec!["user".to_owned()],
            cache_ttl_secs: 86_400,
        };
        assert!(day.validate().is_ok());
    }

    #[test]
    fn default_roles_are_normalised() {
        let settings = AuthzSettings {
            default_roles: vec!["User".to_owned()],
            cache_ttl_secs: 0,
        };
        assert_eq!(settings.default_role_names(), vec!["user".to_owned()]);
    }
}
