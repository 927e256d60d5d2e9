//! Authentication and permission checks at the edge, before any upstream sees a request.
//!
//! Why a module of its own: the gateway is where an invalid token should stop (an upstream never
//! spends work on it), and where the verified caller is turned into the identity headers the
//! services receive. Tokens are verified locally by `keel_authn`'s [`TokenVerifier`] (keys cached,
//! refreshed on an unknown `kid`, no network call per request), each distinct token once (see the
//! `token_cache` module); permissions are asked of the authz client, which in production wiring
//! answers from the permission cache. Every refusal is the response `keel_authn` gives a service's
//! own handlers: 401 problem+json with `WWW-Authenticate`, 403 naming the permission, 503 when keys
//! or authz are unavailable.

use std::sync::Arc;

use http::{HeaderMap, header};
use keel_authn::{AuthnError, Principal, TokenVerifier, bearer_token, note_authentication};
use keel_clients::AuthzClient;

use crate::policy::Access;
use crate::token_cache::{self, TokenCache};

/// Default number of verified tokens remembered (`gateway.token_cache_entries`).
const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

/// What the gateway authenticates with: the access-token verifier (with the auth service's JWKS)
/// and the authz client for routes that require a permission, plus the cache of verified tokens.
///
/// [`crate::Gateway::new`] sizes the cache from `gateway.token_cache_entries`.
pub struct EdgeAuth {
    verifier: Arc<TokenVerifier>,
    authz: Arc<dyn AuthzClient>,
    tokens: TokenCache,
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth")
            .field("verifier", &self.verifier)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl EdgeAuth {
    /// Authentication with `verifier` (in production over `keel_authn::AuthServiceJwks`) and
    /// permission checks with `authz` (in production the cached client), remembering up to 10,000
    /// verified tokens.
    pub fn new(verifier: Arc<TokenVerifier>, authz: Arc<dyn AuthzClient>) -> Self {
        Self {
            verifier,
            authz,
            tokens: TokenCache::new(DEFAULT_TOKEN_CACHE_ENTRIES),
        }
    }

    /// Remembers up to `entries` verified tokens instead (0: verify every request).
    #[must_use]
    pub fn with_token_cache(mut self, entries: usize) -> Self {
        self.tokens = TokenCache::new(entries);
        self
    }

    /// Verifies `token` (the compact JWT) as the gateway does: from the cache when this token was
    /// verified before and has not expired, else with the verifier, remembering a success.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthnError> {
        let digest = token_cache::digest(token);
        let now = chrono::Utc::now().timestamp();
        if let Some(principal) = self.tokens.get(&digest, now) {
            return Ok(principal);
        }
        let principal = Arc::new(self.verifier.verify(token).await?);
        self.tokens.insert(digest, Arc::clone(&principal), now);
        Ok(principal)
    }

    /// Applies `access` to a request with `headers`: the verified caller (`None` for an anonymous
    /// request a route lets through), or why the request is refused.
    pub(crate) async fn admit(
        &self,
        access: &Access,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, AuthnError> {
        let principal = match access {
            Access::Public => return Ok(None),
            Access::Optional if !headers.contains_key(header::AUTHORIZATION) => return Ok(None),
            Access::Optional | Access::Required | Access::Permission(_) => self.authenticate(headers).await?,
        };
        if let Access::Permission(permission) = access {
            self.check_permission(&principal, permission).await?;
        }
        Ok(Some(principal))
    }

    /// Verifies the request's bearer token and records the user in the request's telemetry
    /// context, as `keel_authn` does for a service.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthnError> {
        let outcome = match bearer_token(headers) {
            Ok(token) => self.verify(token).await,
            Err(error) => Err(error),
        };
        note_authentication(outcome)
    }

    /// `Ok` when `principal` holds `permission`.
    async fn check_permission(&self, principal: &Principal, permission: &str) -> Result<(), AuthnError> {
        match self.authz.has_permission(principal.user_id, permission).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::debug!(user_id = %principal.user_id, permission, "permission denied at the gateway");
                Err(AuthnError::Forbidden(permission.to_owned()))
            }
            Err(error) => {
                tracing::warn!(%error, permission, "permission check failed at the gateway");
                Err(AuthnError::Authz(error))
            }
        }
    }
}

/// An authentication decision at the edge: the `outcome` label of `keel_gateway_auth_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// A public route: nothing checked.
    Public,
    /// No token, on a route that does not require one.
    Anonymous,
    /// A valid token, on a route that asks for no permission.
    Authenticated,
    /// A valid token whose user holds the route's permission.
    Allowed,
    /// No token where one is required.
    Missing,
    /// A token that does not verify.
    Invalid,
    /// A valid token whose user lacks the route's permission.
    Denied,
    /// The keys or the permission check could not be had.
    Unavailable,
}

impl AuthOutcome {
    /// Every outcome, in the order of [`AuthOutcome::index`].
    pub(crate) const ALL: [Self; 8] = [
        Self::Public,
        Self::Anonymous,
        Self::Authenticated,
        Self::Allowed,
        Self::Missing,
        Self::Invalid,
        Self::Denied,
        Self::Unavailable,
    ];

    /// Its position in [`AuthOutcome::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Anonymous => "anonymous",
            Self::Authenticated => "authenticated",
            Self::Allowed => "allowed",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Denied => "denied",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The decision for a request with `access` and this result.
pub(crate) fn outcome(access: &Access, result: &Result<Option<Arc<Principal>>, AuthnError>) -> AuthOutcome {
    match (access, result) {
        (Access::Public, Ok(_)) => AuthOutcome::Public,
        (_, Ok(None)) => AuthOutcome::Anonymous,
        (Access::Permission(_), Ok(Some(_))) => AuthOutcome::Allowed,
        (_, Ok(Some(_))) => AuthOutcome::Authenticated,
        (_, Err(AuthnError::MissingToken)) => AuthOutcome::Missing,
        (_, Err(AuthnError::Forbidden(_))) => AuthOutcome::Denied,
        (_, Err(AuthnError::KeysUnavailable | AuthnError::JwksFetch(_) | AuthnError::Authz(_))) => {
            AuthOutcome::Unavailable
        }
        (_, Err(_)) => AuthOutcome::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn outcomes_name_what_happened() {
        let permission = Access::Permission("platform.audit.read".into());
        assert_eq!(outcome(&Access::Public, &Ok(None)).label(), "public");
        assert_eq!(outcome(&Access::Optional, &Ok(None)).label(), "anonymous");
        assert_eq!(
            outcome(&Access::Required, &Err(AuthnError::MissingToken)).label(),
            "missing"
        );
        assert_eq!(
            outcome(&Access::Required, &Err(AuthnError::Expired)).label(),
            "invalid"
        );
        assert_eq!(
            outcome(&permission, &Err(AuthnError::Forbidden("p".into()))).label(),
            "denied"
        );
        assert_eq!(
            outcome(&permission, &Err(AuthnError::KeysUnavailable)).label(),
            "unavailable"
        );
        for (index, outcome) in AuthOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), index, "{outcome:?}");
        }
    }
}
