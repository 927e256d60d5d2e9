//! The signing keys: which one signs now, which ones are published, and their rotation.
//!
//! Why this module exists: every replica must sign with the same key and publish the same set, so
//! the truth lives in the auth store, not in process memory. The rules:
//!
//! - The key with the greatest `generation` is the active one. `generation` is unique, so when two
//!   replicas install a key at the same moment (first start, rotation) one insert fails and that
//!   replica adopts the other's key: there is never more than one active key.
//! - A generated key signs for `auth.key_rotation_days`, then the next replica that needs to sign
//!   installs a new one. The old public key stays published until every token it signed has
//!   expired: its retirement plus the access-token lifetime, the verifiers' leeway and the interval
//!   at which replicas re-read the store ([`RECHECK`]).
//! - A key from `auth.signing_private_key` is installed as the newest generation when its replica
//!   starts (its private half is never stored) and is not rotated automatically. A replica still
//!   signing with a configured key that another replica replaced keeps that key published for as
//!   long as it runs (it re-announces it every [`RECHECK`]), so its tokens stay verifiable.

mod material;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, Condition, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _,
};

pub(crate) use material::{Jwk, Jwks, SigningKey};
use material::{PublicKey, jwks_json};

use crate::AuthError;
use crate::clock::Clock;
use crate::store::{is_unique_violation, signing_key};

/// How often a replica re-reads the active key from the store (to follow another replica's
/// rotation or replacement).
const RECHECK: Duration = Duration::from_secs(60);
/// Installation attempts before giving up when other replicas keep winning.
const MAX_ATTEMPTS: usize = 5;
/// Retired keys stay in the table this long after they left the JWKS, then are deleted.
const PRUNE_AFTER: Duration = Duration::from_secs(86_400);
/// The only algorithm keys are generated for today.
const ALGORITHM: &str = "EdDSA";

/// How long keys sign and stay published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    /// How long a generated key signs.
    pub(crate) rotation: Duration,
    /// The access-token lifetime plus the verifiers' leeway: how long a token signed at retirement
    /// can still be accepted.
    pub(crate) token_lifetime: Duration,
}

impl KeyPolicy {
    /// How long a key stays published after it stops signing.
    fn publish_after_retire(&self) -> chrono::Duration {
        to_chrono(self.token_lifetime + RECHECK)
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The key this replica signs with, as last read.
#[derive(Clone)]
struct Active {
    key: Arc<SigningKey>,
    retire_after: Option<DateTime<Utc>>,
    checked_at: DateTime<Utc>,
}

impl Active {
    fn usable(&self, now: DateTime<Utc>) -> bool {
        let fresh = now - self.checked_at < to_chrono(RECHECK);
        fresh && self.retire_after.is_none_or(|retire| retire > now)
    }
}

/// The stored key `row` as the active key, when it is a generated key still due to sign.
fn adoptable(row: &signing_key::Model, now: DateTime<Utc>) -> Result<Option<Active>, AuthError> {
    let (Some(private), Some(retire)) = (&row.private_key, row.retire_after) else {
        return Ok(None);
    };
    if retire <= now {
        return Ok(None);
    }
    let key = SigningKey::from_stored(private)?;
    if key.kid() != row.kid {
        return Err(AuthError::KeyMaterial(format!(
            "stored key {} does not match its private key",
            row.kid
        )));
    }
    Ok(Some(Active {
        key: Arc::new(key),
        retire_after: Some(retire),
        checked_at: now,
    }))
}

/// The signing keys of the service, backed by the `signing_keys` table.
pub(crate) struct KeyRing {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    configured: Option<Arc<SigningKey>>,
    active: Mutex<Option<Active>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "configured",
                &self.configured.as_ref().map(|k| k.kid().to_owned()),
            )
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Opens the ring and makes sure an active key exists: installs the configured key, adopts the
    /// stored active key, or generates the first one.
    pub(crate) async fn open(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
        configured: Option<SigningKey>,
    ) -> Result<Self, AuthError> {
        let ring = Self {
            db,
            clock,
            policy,
            configured: configured.map(Arc::new),
            active: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        };
        let active = match &ring.configured {
            Some(key) => ring.install_configured(key.clone()).await?,
            None => ring.settle_generated().await?,
        };
        tracing::info!(kid = active.key.kid(), "signing key ready");
        ring.remember(active);
        Ok(ring)
    }

    /// The key to sign with now (rotating first when the active one is due).
    pub(crate) async fn signing_key(&self) -> Result<Arc<SigningKey>, AuthError> {
        if let Some(key) = self.usable() {
            return Ok(key);
        }
        let _turn = self.refreshing.lock().await;
        if let Some(key) = self.usable() {
            return Ok(key);
        }
        let active = match &self.configured {
            Some(key) => self.announce_configured(key.clone()).await?,
            None => self.settle_generated().await?,
        };
        let key = active.key.clone();
        self.remember(active);
        Ok(key)
    }

    /// The JWKS document: every key whose tokens may still be live, newest first.
    pub(crate) async fn jwks_json(&self) -> Result<String, AuthError> {
        let now = self.clock.now();
        let rows = signing_key::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_key::Column::ExpiresAt.is_null())
                    .add(signing_key::Column::ExpiresAt.gt(now)),
            )
            .order_by_desc(signing_key::Column::Generation)
            .all(&self.db)
            .await?;
        let keys: Vec<PublicKey> = rows
            .into_iter()
            .map(|row| PublicKey {
                kid: row.kid,
                x: row.public_key,
            })
            .collect();
        Ok(jwks_json(&keys))
    }

    /// Deletes keys that left the JWKS more than a day ago. Returns how many.
    pub(crate) async fn prune(&self) -> Result<u64, AuthError> {
        let cutoff = self.clock.now() - to_chrono(PRUNE_AFTER);
        let result = signing_key::Entity::delete_many()
            .filter(signing_key::Column::ExpiresAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    fn usable(&self) -> Option<Arc<SigningKey>> {
        let now = self.clock.now();
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.as_ref().filter(|a| a.usable(now)).map(|a| a.key.clone())
    }

    fn remember(&self, active: Active) {
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) = Some(active);
    }

    async fn newest(&self) -> Result<Option<signing_key::Model>, AuthError> {
        Ok(signing_key::Entity::find()
            .order_by_desc(signing_key::Column::Generation)
            .one(&self.db)
            .await?)
    }

    /// Adopts the stored active key, or installs a new one when there is none, it is due for
    /// rotation, or it is a configured key this replica cannot sign with.
    async fn settle_generated(&self) -> Result<Active, AuthError> {
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let newest = self.newest().await?;
            if let Some(active) = newest
                .as_ref()
                .map(|row| adoptable(row, now))
                .transpose()?
                .flatten()
            {
                return Ok(active);
            }
            let generation = newest.map_or(1, |row| row.generation + 1);
            let key = SigningKey::generate()?;
            let retire = now + to_chrono(self.policy.rotation);
            let row = signing_key::ActiveModel {
                kid: Set(key.kid().to_owned()),
                generation: Set(generation),
                algorithm: Set(ALGORITHM.to_owned()),
                private_key: Set(Some(key.to_stored())),
                public_key: Set(key.public().x.clone()),
                created_at: Set(now),
                retire_after: Set(Some(retire)),
                expires_at: Set(Some(retire + self.policy.publish_after_retire())),
            };
            match signing_key::Entity::insert(row).exec(&self.db).await {
                Ok(_) => {
                    self.supersede_older(generation, now).await?;
                    tracing::info!(kid = key.kid(), generation, "generated a new signing key");
                    return Ok(Active {
                        key: Arc::new(key),
                        retire_after: Some(retire),
                        checked_at: now,
                    });
                }
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AuthError::KeyContention)
    }

    /// Makes the configured key the newest generation (inserting it, or moving it up when an older
    /// generation holds it).
    async fn install_configured(&self, key: Arc<SigningKey>) -> Result<Active, AuthError> {
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let newest = self.newest().await?;
            let active = Active {
                key: key.clone(),
                retire_after: None,
                checked_at: now,
            };
            if newest.as_ref().is_some_and(|row| row.kid == key.kid()) {
                return Ok(active);
            }
            let generation = newest.map_or(1, |row| row.generation + 1);
            let known = signing_key::Entity::find_by_id(key.kid().to_owned())
                .one(&self.db)
                .await?
                .is_some();
            let outcome = if known {
                signing_key::Entity::update_many()
                    .col_expr(signing_key::Column::Generation, Expr::value(generation))
                    .col_expr(
                        signing_key::Column::RetireAfter,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .col_expr(signing_key::Column::ExpiresAt, Expr::value(None::<DateTime<Utc>>))
                    .filter(signing_key::Column::Kid.eq(key.kid()))
                    .exec(&self.db)
                    .await
                    .map(|_| ())
            } else {
                signing_key::Entity::insert(signing_key::ActiveModel {
                    kid: Set(key.kid().to_owned()),
                    generation: Set(generation),
                    algorithm: Set(ALGORITHM.to_owned()),
                    private_key: Set(None),
                    public_key: Set(key.public().x.clone()),
                    created_at: Set(now),
                    retire_after: Set(None),
                    expires_at: Set(None),
                })
                .exec(&self.db)
                .await
                .map(|_| ())
            };
            match outcome {
                Ok(()) => {
                    self.supersede_older(generation, now).await?;
                    tracing::info!(
                        kid = key.kid(),
                        generation,
                        "installed the configured signing key"
                    );
                    return Ok(active);
                }
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AuthError::KeyContention)
    }

    /// Keeps the configured key published while this replica signs with it, even after another
    /// replica replaced it.
    async fn announce_configured(&self, key: Arc<SigningKey>) -> Result<Active, AuthError> {
        let now = self.clock.now();
        let Some(row) = signing_key::Entity::find_by_id(key.kid().to_owned())
            .one(&self.db)
            .await?
        else {
            return self.install_configured(key).await;
        };
        let horizon = now + self.policy.publish_after_retire();
        if row.expires_at.is_some_and(|expires| expires < horizon) {
            tracing::warn!(
                kid = key.kid(),
                "the configured signing key was replaced by another instance; this instance keeps \
                 signing with it (and publishing it) until it is restarted with the new key"
            );
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::ExpiresAt, Expr::value(Some(horizon)))
                .filter(signing_key::Column::Kid.eq(key.kid()))
                .exec(&self.db)
                .await?;
        }
        Ok(Active {
            key,
            retire_after: None,
            checked_at: now,
        })
    }

    /// Retires every key older than `generation` now (unless it already retired) and bounds how
    /// long it stays published.
    async fn supersede_older(&self, generation: i64, now: DateTime<Utc>) -> Result<(), AuthError> {
        let horizon = now + self.policy.publish_after_retire();
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetireAfter, Expr::value(Some(now)))
            .filter(signing_key::Column::Generation.lt(generation))
            .filter(
                Condition::any()
                    .add(signing_key::Column::RetireAfter.is_null())
                    .add(signing_key::Column::RetireAfter.gt(now)),
            )
            .exec(&self.db)
            .await?;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::ExpiresAt, Expr::value(Some(horizon)))
            .filter(signing_key::Column::Generation.lt(generation))
            .filter(
                Condition::any()
                    .add(signing_key::Column::ExpiresAt.is_null())
                    .add(signing_key::Column::ExpiresAt.gt(horizon)),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
