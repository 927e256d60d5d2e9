//! What a route demands of its callers before a request is proxied: authentication and a
//! permission.
//!
//! Why a module of its own: the rule "which token checks apply to this path" is configured per
//! route, validated once at start-up (so a typo in a permission is a start-up error naming the
//! route) and then read on every request as one small value, [`Access`].

use serde::Deserialize;

use keel_module::check_permission_name as check_permission;

use crate::config::RouteConfig;

/// How a route treats the `Authorization` header (`gateway.routes[].auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthPolicy {
    /// A valid bearer token is required; without one the answer is 401.
    Required,
    /// A bearer token is verified when present (an invalid one is 401); a request without one
    /// passes as anonymous. The default.
    Optional,
    /// The `Authorization` header is never looked at (login, token refresh, the JWKS): a stale
    /// token a client still sends must not stop it from getting a new one.
    Public,
}

/// The checks one route applies, resolved from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// [`AuthPolicy::Public`].
    Public,
    /// [`AuthPolicy::Optional`].
    Optional,
    /// [`AuthPolicy::Required`] without a permission.
    Required,
    /// A valid token whose user holds this permission.
    Permission(Box<str>),
}

impl Access {
    /// The access `route` configures: a permission implies a required token; no `auth` is
    /// optional.
    pub(crate) fn of(route: &RouteConfig) -> Self {
        match (&route.permission, route.auth) {
            (Some(permission), _) => Self::Permission(permission.as_str().into()),
            (None, Some(AuthPolicy::Required)) => Self::Required,
            (None, Some(AuthPolicy::Public)) => Self::Public,
            (None, Some(AuthPolicy::Optional) | None) => Self::Optional,
        }
    }
}

/// The problems of one route's access and limit settings, each naming its key (`key` is
/// `gateway.routes[3]`).
pub(crate) fn problems(key: &str, route: &RouteConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(permission) = &route.permission {
        if let Err(reason) = check_permission(permission) {
            problems.push(format!("{key}.permission `{permission}` {reason}"));
        }
        if let Some(auth @ (AuthPolicy::Public | AuthPolicy::Optional)) = route.auth {
            let auth = match auth {
                AuthPolicy::Public => "public",
                _ => "optional",
            };
            problems.push(format!(
                "{key}.auth `{auth}` contradicts {key}.permission: a permission requires a token \
                 (leave auth out or make it required)"
            ));
        }
    }
    if route.body_limit_bytes == Some(0) {
        problems.push(format!("{key}.body_limit_bytes must be greater than 0"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_implies_a_required_token_and_no_auth_is_optional() {
        let route = RouteConfig::new("/a", "a");
        assert_eq!(Access::of(&route), Access::Optional);
        assert_eq!(
            Access::of(&route.clone().with_auth(AuthPolicy::Public)),
            Access::Public
        );
        assert_eq!(
            Access::of(&route.clone().with_auth(AuthPolicy::Required)),
            Access::Required
        );
        assert_eq!(
            Access::of(&route.with_permission("platform.audit.read")),
            Access::Permission("platform.audit.read".into())
        );
    }

    #[test]
    fn well_formed_permissions_pass_and_others_are_named() {
        for good in ["platform.audit.read", "blog.post.update.own", "m2.r_1.a"] {
            assert_eq!(check_permission(good), Ok(()), "{good}");
        }
        for bad in [
            "platform.audit",
            "Platform.audit.read",
            "platform..read",
            "a.b.c-d",
            "1a.b.c",
            "",
        ] {
            assert!(check_permission(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contradictions_and_zero_limits_are_reported_with_their_keys() {
        let route = RouteConfig::new("/a", "a")
            .with_auth(AuthPolicy::Public)
            .with_permission("platform.Audit.read")
            .with_body_limit(0);
        let problems = problems("gateway.routes[2]", &route);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("gateway.routes[2].permission `platform.Audit.read`"));
        assert!(problems[1].starts_with("gateway.routes[2].auth `public` contradicts"));
        assert_eq!(
            problems[2],
            "gateway.routes[2].body_limit_bytes must be greater than 0"
        );
        let required = RouteConfig::new("/a", "a")
            .with_auth(AuthPolicy::Required)
            .with_permission("platform.audit.read");
        assert!(super::problems("k", &required).is_empty());
    }
}
