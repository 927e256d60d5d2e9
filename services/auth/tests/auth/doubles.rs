//! Test doubles of the peer services auth talks to (identity, authz, audit), and a movable clock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_auth::Clock;
use keel_clients::{
    AuditClient, AuditQuery, AuditRecord, AuthClient, AuthzClient, ChainReport, CredentialsVerdict,
    IdentityClient, NewRole, NewUser, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError, Session, StoredAuditRecord, TokenInfo, TokenPair, User, UserChanges,
};
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

fn not_in_double() -> ServiceError {
    ServiceError::Internal("not offered by this test double".to_owned())
}

/// A user the identity double knows.
struct Account {
    user: User,
    password: String,
}

/// Identity: a few accounts with passwords; can be switched down, and can hold a verification
/// until the test lets it answer.
#[derive(Default)]
pub(crate) struct TestIdentity {
    accounts: Mutex<HashMap<String, Account>>,
    down: AtomicBool,
    hold: Mutex<Option<Hold>>,
}

/// A held verification: `entered` is sent when it starts, it answers once `release` is.
struct Hold {
    entered: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

impl TestIdentity {
    /// Adds an account and returns its user id.
    pub(crate) fn add(&self, email: &str, password: &str, verified: bool) -> Uuid {
        let now = Utc::now();
        let user = User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            display_name: String::new(),
            email_verified: verified,
            created_at: now,
            updated_at: now,
        };
        let id = user.id;
        let account = Account {
            user,
            password: password.to_owned(),
        };
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(email.to_owned(), account);
        id
    }

    /// Holds the next credential verification: the first receiver hears when it has started,
    /// and it answers (from the accounts as they are then) when the sender is used or dropped.
    pub(crate) fn hold_next_verification(
        &self,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (entered, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release) = tokio::sync::oneshot::channel();
        *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hold { entered, release });
        (entered_rx, release_tx)
    }

    /// Makes every call fail as if the service were unreachable.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl IdentityClient for TestIdentity {
    async fn verify_credentials(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable(
                "identity: circuit open (10.0.0.9:50051)".to_owned(),
            ));
        }
        let held = self.hold.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(Hold { entered, release }) = held {
            let _ = entered.send(());
            let _ = release.await;
        }
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(match accounts.get(email) {
            Some(account) if account.password == password.expose_secret() => {
                if account.user.email_verified {
                    CredentialsVerdict::Valid(account.user.clone())
                } else {
                    CredentialsVerdict::EmailNotVerified(account.user.clone())
                }
            }
            _ => CredentialsVerdict::Invalid,
        })
    }
    async fn create_user(&self, _: NewUser, _: &Origin) -> Result<User, ServiceError> {
        Err(not_in_double())
    }
    async fn get_user(&self, _: Uuid) -> Result<User, ServiceError> {
        Err(not_in_double())
    }
    async fn get_user_by_email(&self, _: &str) -> Result<User, ServiceError> {
        Err(not_in_double())
    }
    async fn list_users(&self, _: PageRequest) -> Result<Page<User>, ServiceError> {
        Err(not_in_double())
    }
    async fn update_user(&self, _: Uuid, _: UserChanges, _: &Origin) -> Result<User, ServiceError> {
        Err(not_in_double())
    }
    async fn delete_user(&self, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn verify_email(&self, _: &SecretString, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn request_password_reset(&self, _: &str, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn reset_password(
        &self,
        _: &SecretString,
        _: &SecretString,
        _: &Origin,
    ) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn change_password(
        &self,
        _: Uuid,
        _: &SecretString,
        _: &SecretString,
        _: &Origin,
    ) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
}

/// Authz: explicit grants only.
#[derive(Default)]
pub(crate) struct TestAuthz {
    grants: Mutex<HashSet<(Uuid, String)>>,
}

impl TestAuthz {
    /// Grants `permission` to `user_id`.
    pub(crate) fn grant(&self, user_id: Uuid, permission: &str) {
        self.grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((user_id, permission.to_owned()));
    }
}

#[async_trait]
impl AuthzClient for TestAuthz {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        Ok(self
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(user_id, permission.to_owned())))
    }
    async fn user_permissions(&self, _: Uuid) -> Result<Vec<String>, ServiceError> {
        Err(not_in_double())
    }
    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        Err(not_in_double())
    }
    async fn register_permissions(&self, _: Vec<Permission>) -> Result<u32, ServiceError> {
        Err(not_in_double())
    }
    async fn create_role(&self, _: NewRole, _: &Origin) -> Result<Role, ServiceError> {
        Err(not_in_double())
    }
    async fn get_role(&self, _: Uuid) -> Result<Role, ServiceError> {
        Err(not_in_double())
    }
    async fn list_roles(&self, _: Option<String>, _: PageRequest) -> Result<Page<Role>, ServiceError> {
        Err(not_in_double())
    }
    async fn update_role(&self, _: Uuid, _: RoleChanges, _: &Origin) -> Result<Role, ServiceError> {
        Err(not_in_double())
    }
    async fn delete_role(&self, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn grant_permissions(&self, _: Uuid, _: Vec<String>, _: &Origin) -> Result<Role, ServiceError> {
        Err(not_in_double())
    }
    async fn revoke_permission(&self, _: Uuid, _: &str, _: &Origin) -> Result<Role, ServiceError> {
        Err(not_in_double())
    }
    async fn assign_roles(&self, _: Uuid, _: RoleSelector, _: &Origin) -> Result<Vec<Role>, ServiceError> {
        Err(not_in_double())
    }
    async fn revoke_role(&self, _: Uuid, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn revoke_all_roles(&self, _: Uuid, _: &Origin) -> Result<u32, ServiceError> {
        Err(not_in_double())
    }
    async fn user_roles(&self, _: Uuid) -> Result<Vec<Role>, ServiceError> {
        Err(not_in_double())
    }
}

/// Audit: keeps what the outbox relay delivers.
#[derive(Default)]
pub(crate) struct TestAudit {
    pub(crate) records: Mutex<Vec<AuditRecord>>,
}

#[async_trait]
impl AuditClient for TestAudit {
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(records);
        Ok(u32::try_from(records.len()).unwrap_or(u32::MAX))
    }
    async fn query(&self, _: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        Err(not_in_double())
    }
    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        Err(not_in_double())
    }
}

/// Auth itself is not called by the service under test; every method fails.
pub(crate) struct NoAuth;

#[async_trait]
impl AuthClient for NoAuth {
    async fn login(&self, _: &str, _: &SecretString, _: &Origin) -> Result<TokenPair, ServiceError> {
        Err(not_in_double())
    }
    async fn refresh(&self, _: &SecretString, _: &Origin) -> Result<TokenPair, ServiceError> {
        Err(not_in_double())
    }
    async fn logout(&self, _: &SecretString, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn validate_token(&self, _: &SecretString) -> Result<TokenInfo, ServiceError> {
        Err(not_in_double())
    }
    async fn jwks(&self) -> Result<String, ServiceError> {
        Err(not_in_double())
    }
    async fn list_sessions(&self, _: Uuid) -> Result<Vec<Session>, ServiceError> {
        Err(not_in_double())
    }
    async fn revoke_session(&self, _: Uuid, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(not_in_double())
    }
    async fn revoke_user_sessions(&self, _: Uuid, _: &Origin) -> Result<u32, ServiceError> {
        Err(not_in_double())
    }
}

/// The system clock plus an offset the test moves forward.
#[derive(Default)]
pub(crate) struct TestClock {
    offset: Mutex<chrono::Duration>,
}

impl TestClock {
    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
