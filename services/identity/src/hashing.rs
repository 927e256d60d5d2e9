//! Password hashing with argon2id, off the async runtime.
//!
//! One hash at OWASP's minimum costs ~14 ms of one core and 19 MiB of memory. Run on a runtime
//! worker, a burst of logins would stall every other request; run on unbounded blocking threads,
//! a burst would claim memory without limit. So every hash and verification runs on the blocking
//! pool behind a semaphore with one permit per core: excess work waits (asynchronously) for a
//! permit, and memory stays bounded by cores × `memory_kib`.
//!
//! The 19 MiB working memory of a hash is allocated once per permit and reused: allocating and
//! zeroing it for every hash (what `argon2`'s convenience methods do) cost about a tenth of a
//! login's CPU in page faults and `memset` (docs/performance.md). The memory holds nothing secret
//! between hashes that the next hash does not overwrite before reading: argon2 fills every block
//! from the password before any block is read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
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
    /// Argon2 working memory, one buffer per permit, reused from hash to hash.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
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
            memory: Arc::new(Mutex::new(Vec::with_capacity(cores))),
            dummy: Arc::from(""),
        };
        let random: [u8; 32] = rand::random();
        let filler = SecretString::from(base64_of(&random));
        hasher.dummy = Arc::from(hasher.hash(&filler).await?);
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password`, with a fresh salt.
    pub(crate) async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run("hash", move |memory| {
            let salt = argon2::password_hash::generate_salt();
            let mut output = [0_u8; Output::MAX_LENGTH];
            let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
            let output = output
                .get_mut(..length)
                .ok_or_else(|| HashError::Params(format!("output length {length}")))?;
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
            compute(&argon, password.expose_secret().as_bytes(), &salt, output, memory)
                .map_err(|e| HashError::Hash(e.to_string()))?;
            let phc = PasswordHash {
                algorithm: argon2::ARGON2ID_IDENT,
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(|e| HashError::Hash(e.to_string()))?,
                salt: Some(Salt::new(&salt).map_err(|e| HashError::Hash(e.to_string()))?),
                hash: Some(Output::new(output).map_err(|e| HashError::Hash(e.to_string()))?),
            };
            Ok(phc.to_string())
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
        self.run("verify", move |memory| {
            let hash = PasswordHash::new(&stored).map_err(|e| HashError::Stored(e.to_string()))?;
            // The hash's own parameters are used to verify, whatever is configured now.
            let matches = matches_stored(&hash, password.expose_secret().as_bytes(), memory)?;
            let matches = matches && known;
            Ok(Verified {
                matches,
                needs_rehash: matches && weaker_than(&hash, &wanted),
            })
        })
        .await
    }

    /// Runs `work` on the blocking pool once a permit is free, with that permit's working
    /// memory, and records its duration.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Task(e.to_string()))?;
        let pool = Arc::clone(&self.memory);
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            // With a permit held there is a free buffer, unless this is one of the first hashes.
            let mut memory = pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .unwrap_or_default();
            let outcome = work(&mut memory);
            pool.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
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

/// Hashes `password` with `salt` into `output`, using (and if need be growing) `memory`.
fn compute(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), argon2::Error> {
    let needed = argon.params().block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    argon.hash_password_into_with_memory(password, salt, output, &mut memory[..needed])
}

/// Whether `password` hashes to `stored` with `stored`'s own algorithm, version and costs.
fn matches_stored(
    stored: &PasswordHash,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> Result<bool, HashError> {
    let unreadable = |e: &dyn std::fmt::Display| HashError::Stored(e.to_string());
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(HashError::Stored("no salt or no hash".to_owned()));
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(|e| unreadable(&e))?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| unreadable(&e))?
        .unwrap_or_default();
    let params = Params::try_from(stored).map_err(|e| unreadable(&e))?;
    let argon = Argon2::new(algorithm, version, params);
    let mut output = [0_u8; Output::MAX_LENGTH];
    let output = output
        .get_mut(..expected.len())
        .ok_or_else(|| HashError::Stored("hash too long".to_owned()))?;
    compute(&argon, password, salt, output, memory).map_err(|e| unreadable(&e))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(output).is_ok_and(|computed| &computed == expected))
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
    async fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&settings(256, 2)).await.expect("hasher");
        let ours = hasher.hash(&secret("correct horse")).await.expect("hash");
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 2, 1, None).expect("params"),
        );
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(reference.verify_password(b"correct horsf", &parsed).is_err());

        let theirs = reference
            .hash_password(b"battery staple")
            .expect("reference hash")
            .to_string();
        let outcome = hasher
            .verify(&secret("battery staple"), Some(&theirs))
            .await
            .expect("verify");
        assert!(outcome.matches);
    }

    #[tokio::test]
    async fn working_memory_is_reused_and_bounded_by_the_permits() {
        let hasher = PasswordHasher::new(&settings(256, 1)).await.expect("hasher");
        let mut hashes = tokio::task::JoinSet::new();
        for i in 0..16 {
            let hasher = hasher.clone();
            hashes.spawn(async move { hasher.hash(&secret(&format!("password number {i}"))).await });
        }
        while let Some(hash) = hashes.join_next().await {
            hash.expect("task").expect("hash");
        }
        let buffers = hasher.memory.lock().expect("pool").len();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert!(
            (1..=cores).contains(&buffers),
            "{buffers} buffers for {cores} permits"
        );
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
