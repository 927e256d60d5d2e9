//! Password hashing with argon2id, off the async runtime.
//!
//! One hash at OWASP's minimum costs ~14 ms of one core and 19 MiB of memory. Run on a runtime
//! worker, a burst of logins would stall every other request; run on unbounded blocking threads,
//! a burst would claim memory without limit. So every hash and verification runs on the blocking
//! pool behind a semaphore with one permit per core: excess work waits (asynchronously) for a
//! permit, and memory stays bounded by cores × `memory_kib`.

use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::PasswordHashSettings;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The configured cost parameters are not valid argon2 parameters.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed (should not happen with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A stored hash is not a PHC string this service can read.
    #[error("a stored password hash cannot be read: {0}")]
    Stored(String),
    /// The blocking task died or the pool was closed.
    #[error("the hashing task did not complete: {0}")]
    Task(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The password matches.
    pub(crate) matches: bool,
    /// It matches, but the stored hash is weaker than the configured parameters (or another
    /// algorithm): hash the password again and store that.
    pub(crate) needs_rehash: bool,
}

/// Hashes and verifies passwords on a bounded pool. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the configured parameters: verifying an unknown
    /// account's password against it costs what a wrong password costs.
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .field("permits", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with `settings`, allowing as many hashes at once as the machine has cores.
    pub(crate) async fn new(settings: &PasswordHashSettings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy: Arc::from(""),
        };
        let random: [u8; 32] = rand::random();
        let filler = SecretString::from(base64_of(&random));
        hasher.dummy = Arc::from(hasher.hash(&filler).await?);
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password`, with a fresh salt.
    pub(crate) async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let argon = self.argon();
        let password = password.clone();
        self.run("hash", move || {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Hash(e.to_string()))
        })
        .await
    }

    /// Checks `password` against `stored`; with `None` (no such account) it checks against a
    /// dummy hash, which takes as long, and reports no match.
    pub(crate) async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy.clone(), Arc::from);
        let password = password.clone();
        let wanted = self.params.clone();
        self.run("verify", move || {
            let hash = PasswordHash::new(&stored).map_err(|e| HashError::Stored(e.to_string()))?;
            // The hash's own parameters are used to verify, whatever is configured now.
            let matches = Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &hash)
                .is_ok();
            let matches = matches && known;
            Ok(Verified {
                matches,
                needs_rehash: matches && weaker_than(&hash, &wanted),
            })
        })
        .await
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Runs `work` on the blocking pool once a permit is free, and records its duration.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Task(e.to_string()))?;
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = work();
            drop(permit);
            outcome
        })
        .await
        .map_err(|e| HashError::Task(e.to_string()))?;
        metrics::histogram!("keel_identity_password_hash_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        outcome
    }
}

/// Whether `hash` is not argon2id v19 or any of its costs is below `wanted`'s.
fn weaker_than(hash: &PasswordHash, wanted: &Params) -> bool {
    if hash.algorithm != argon2::ARGON2ID_IDENT || hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(hash) {
        Ok(have) => {
            have.m_cost() < wanted.m_cost()
                || have.t_cost() < wanted.t_cost()
                || have.p_cost() < wanted.p_cost()
        }
        Err(_) => true,
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_kib: u32, iterations: u32) -> PasswordHashSettings {
        PasswordHashSettings {
            memory_kib,
            iterations,
            parallelism: 1,
        }
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(&settings(256, 1)).await.expect("hasher");
        let hash = hasher.hash(&secret("tr0ub4dor&3")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{hash}");
        let right = hasher
            .verify(&secret("tr0ub4dor&3"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            right,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(&secret("tr0ub4dor&4"), Some(&hash))
            .await
            .expect("verify");
        assert!(!wrong.matches);
    }

    #[tokio::test]
    async fn an_unknown_account_never_matches() {
        let hasher = PasswordHasher::new(&settings(256, 1)).await.expect("hasher");
        let outcome = hasher
            .verify(&secret("anything at all"), None)
            .await
            .expect("verify");
        assert!(!outcome.matches);
    }

    #[tokio::test]
    async fn hashes_with_lower_costs_need_a_rehash_after_a_match() {
        let weak = PasswordHasher::new(&settings(256, 1)).await.expect("weak");
        let strong = PasswordHasher::new(&settings(512, 2)).await.expect("strong");
        let hash = weak.hash(&secret("a fine passphrase")).await.expect("hash");
        let outcome = strong
            .verify(&secret("a fine passphrase"), Some(&hash))
            .await
            .expect("verify");
        assert_eq!(
            outcome,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        let stronger = strong.hash(&secret("a fine passphrase")).await.expect("hash");
        let outcome = weak
            .verify(&secret("a fine passphrase"), Some(&stronger))
            .await
            .expect("verify");
        assert_eq!(
            outcome,
            Verified {
                matches: true,
                needs_rehash: false
            },
            "higher costs are kept"
        );
    }

    #[tokio::test]
    async fn invalid_parameters_are_refused() {
        let error = PasswordHasher::new(&settings(4, 1))
            .await
            .expect_err("too little memory");
        assert!(matches!(error, HashError::Params(_)));
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = PasswordHasher::new(&settings(256, 1)).await.expect("hasher");
        let error = hasher
            .verify(&secret("whatever it is"), Some("not-a-phc-string"))
            .await;
        assert!(matches!(error, Err(HashError::Stored(_))));
    }
}
