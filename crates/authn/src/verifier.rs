//! Local verification of access tokens against a cached JWKS.
//!
//! Why this module exists: every request to every service carries an access token, so verifying
//! one must cost a signature check and nothing more: no network call, no key parsing. The parsed
//! keys are cached; the network is touched only when a token names a key we do not know (a key
//! rotation), at most once per `min_refresh_interval` and by one task at a time (single flight:
//! concurrent misses wait for the same fetch), and when the cached set is older than
//! `max_key_age` (so a key withdrawn from the JWKS stops being trusted).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::DateTime;
use jsonwebtoken::errors::ErrorKind;
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;
use uuid::Uuid;

use crate::jwks::{ACCEPTED_ALGORITHMS, KeySet, VerifyingKey};
use crate::{AccessClaims, AuthnError, JwksSource, JwtSettings, Principal};

/// Longest token considered; longer input is rejected before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default for [`TokenVerifier::with_min_refresh_interval`].
const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Default for [`TokenVerifier::with_max_key_age`].
const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(15 * 60);
/// While no key at all is known, fetches are retried this often at most (requests are answered
/// 503 meanwhile, so a quick recovery matters more than sparing the auth service).
const EMPTY_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Verifies Keel access tokens locally against the auth service's published keys.
///
/// Share one per process (`Arc<TokenVerifier>`); it is the state behind the [`Principal`]
/// extractor and the [`crate::require_permission`] layer.
pub struct TokenVerifier {
    source: Arc<dyn JwksSource>,
    settings: JwtSettings,
    keys: RwLock<Arc<KeySet>>,
    refresh: Mutex<RefreshState>,
    min_refresh_interval: Duration,
    max_key_age: Duration,
}

/// Bookkeeping of fetches, guarded by the single-flight lock.
struct RefreshState {
    /// The last fetch, whatever caused it.
    last_fetch: Option<Instant>,
    /// The last fetch caused by an unknown `kid`.
    last_miss_fetch: Option<Instant>,
}

/// Why a fetch is considered; each cause has its own rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// No key is known at all (first use, or every fetch so far failed).
    NoKeys,
    /// A token names a `kid` the cached set lacks.
    UnknownKid,
    /// The cached set is older than `max_key_age`.
    Stale,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("max_key_age", &self.max_key_age)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier of tokens issued per `settings`, with keys from `source`. Nothing is fetched until
    /// the first token arrives.
    pub fn new(source: Arc<dyn JwksSource>, settings: JwtSettings) -> Self {
        Self {
            source,
            settings,
            keys: RwLock::new(Arc::new(KeySet::empty())),
            refresh: Mutex::new(RefreshState {
                last_fetch: None,
                last_miss_fetch: None,
            }),
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            max_key_age: DEFAULT_MAX_KEY_AGE,
        }
    }

    /// The least time between two fetches caused by unknown `kid`s (default 10 s), so a flood of
    /// tokens with made-up key ids cannot turn into a flood of JWKS requests.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// How long a fetched key set is trusted before it is fetched again (default 15 min): the
    /// longest a key withdrawn from the JWKS keeps verifying tokens here.
    pub fn with_max_key_age(mut self, max_age: Duration) -> Self {
        self.max_key_age = max_age;
        self
    }

    /// The settings tokens are checked against.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Verifies `token` (the compact JWT, without `Bearer `) and returns who it speaks for.
    ///
    /// Fails with [`AuthnError::KeysUnavailable`] when no signing key is known and none can be
    /// fetched; with another variant when the token is not valid.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthnError> {
        let kid = inspect_header(token)?;
        let keys = self.keys_for(&kid).await?;
        let key = keys.get(&kid).ok_or(AuthnError::UnknownKey(kid))?;
        let claims = decode_claims(token, key)?;
        principal(claims)
    }

    /// A key set holding `kid` if one can be had, refetching when `kid` is unknown or the cached
    /// set is old.
    async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, AuthnError> {
        let current = self.current();
        if current.get(kid).is_some() {
            if current.is_older_than(self.max_key_age)
                && let Ok(state) = self.refresh.try_lock()
            {
                // One request refreshes an old set; the others keep using it meanwhile.
                return Ok(self.refresh_locked(state, &current, Trigger::Stale).await);
            }
            return Ok(current);
        }
        let trigger = if current.is_empty() {
            Trigger::NoKeys
        } else {
            Trigger::UnknownKid
        };
        let state = self.refresh.lock().await;
        let keys = self.refresh_locked(state, &current, trigger).await;
        if keys.is_empty() {
            return Err(AuthnError::KeysUnavailable);
        }
        Ok(keys)
    }

    /// The cached key set.
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fetches the JWKS unless another task replaced `seen` while we waited for the lock (single
    /// flight), or the last fetch for this `trigger` was too recent; returns the key set to use. A
    /// failed fetch keeps the old keys.
    async fn refresh_locked(
        &self,
        mut state: MutexGuard<'_, RefreshState>,
        seen: &Arc<KeySet>,
        trigger: Trigger,
    ) -> Arc<KeySet> {
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return current;
        }
        let (last, interval) = match trigger {
            Trigger::NoKeys => (
                state.last_fetch,
                EMPTY_RETRY_INTERVAL.min(self.min_refresh_interval),
            ),
            Trigger::UnknownKid => (state.last_miss_fetch, self.min_refresh_interval),
            Trigger::Stale => (state.last_fetch, self.min_refresh_interval),
        };
        if last.is_some_and(|at| at.elapsed() < interval) {
            return current;
        }
        let now = Instant::now();
        state.last_fetch = Some(now);
        if trigger == Trigger::UnknownKid {
            state.last_miss_fetch = Some(now);
        }
        let fetched = match self.source.fetch().await {
            Ok(document) => KeySet::parse(&document, &self.settings),
            Err(error) => Err(error),
        };
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
                tracing::debug!(?trigger, "signing keys refreshed");
                keys
            }
            Err(error) => {
                tracing::warn!(?trigger, %error, "could not refresh the signing keys; keeping the cached ones");
                current
            }
        }
    }
}

/// Checks the header without trusting it: size, shape, accepted algorithm, no unknown critical
/// extension, a `kid`. Returns the `kid`.
fn inspect_header(token: &str) -> Result<String, AuthnError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthnError::Malformed(format!(
            "longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|error| AuthnError::Malformed(format!("header: {error}")))?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(AuthnError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
    }
    if header.crit.is_some() {
        return Err(AuthnError::Malformed(
            "critical header extensions are not understood".to_owned(),
        ));
    }
    match header.kid {
        Some(kid) if !kid.is_empty() => Ok(kid),
        _ => Err(AuthnError::MissingKeyId),
    }
}

/// Verifies the signature with `key` and checks the registered claims.
fn decode_claims(token: &str, key: &VerifyingKey) -> Result<AccessClaims, AuthnError> {
    jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &key.validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => AuthnError::BadSignature,
            ErrorKind::ExpiredSignature => AuthnError::Expired,
            ErrorKind::ImmatureSignature => AuthnError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthnError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthnError::WrongAudience,
            ErrorKind::InvalidAlgorithm => AuthnError::UnsupportedAlgorithm(format!(
                "token does not match the key's algorithm {:?}",
                key.algorithm
            )),
            _ => AuthnError::Malformed(error.to_string()),
        })
}

/// The principal of verified claims; `sub` and `sid` must be UUIDs.
fn principal(claims: AccessClaims) -> Result<Principal, AuthnError> {
    let uuid = |claim: &'static str, value: &str| {
        Uuid::parse_str(value).map_err(|error| AuthnError::InvalidClaim {
            claim,
            reason: error.to_string(),
        })
    };
    Ok(Principal {
        user_id: uuid("sub", &claims.sub)?,
        session_id: uuid("sid", &claims.sid)?,
        expires_at: DateTime::from_timestamp(claims.exp, 0).ok_or(AuthnError::InvalidClaim {
            claim: "exp",
            reason: "out of range".to_owned(),
        })?,
        token_id: claims.jti,
    })
}
