//! Test doubles of the peer services (auth, authz, audit, identity) and a clock tests move.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_clients::{
    AuditClient, AuditQuery, AuditRecord, AuthClient, AuthzClient, ChainReport, CredentialsVerdict,
    IdentityClient, NewRole, NewUser, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError, Session, StoredAuditRecord, TokenInfo, TokenPair, User, UserChanges,
};
use secrecy::SecretString;
use uuid::Uuid;

fn unused() -> ServiceError {
    ServiceError::Internal("not used by the identity tests".to_owned())
}

/// An auth service that records `revoke_user_sessions` calls and can be made to fail them.
pub(crate) struct RecordingAuth {
    revoked: Mutex<Vec<(Uuid, Origin)>>,
    /// Calls answered before every further one fails (`usize::MAX`: none fails).
    successes_left: AtomicUsize,
}

impl Default for RecordingAuth {
    fn default() -> Self {
        Self {
            revoked: Mutex::default(),
            successes_left: AtomicUsize::new(usize::MAX),
        }
    }
}

impl RecordingAuth {
    /// Every `revoke_user_sessions` call so far: (user, origin).
    pub(crate) fn revocations(&self) -> Vec<(Uuid, Origin)> {
        self.revoked.lock().expect("lock").clone()
    }

    /// Makes `revoke_user_sessions` answer UNAVAILABLE (and record nothing).
    pub(crate) fn fail(&self, failing: bool) {
        let left = if failing { 0 } else { usize::MAX };
        self.successes_left.store(left, Ordering::SeqCst);
    }

    /// Lets `calls` more `revoke_user_sessions` calls succeed, then fails every later one.
    pub(crate) fn fail_after(&self, calls: usize) {
        self.successes_left.store(calls, Ordering::SeqCst);
    }
}

#[async_trait]
impl AuthClient for RecordingAuth {
    async fn login(&self, _: &str, _: &SecretString, _: &Origin) -> Result<TokenPair, ServiceError> {
        Err(unused())
    }
    async fn refresh(&self, _: &SecretString, _: &Origin) -> Result<TokenPair, ServiceError> {
        Err(unused())
    }
    async fn logout(&self, _: &SecretString, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn validate_token(&self, _: &SecretString) -> Result<TokenInfo, ServiceError> {
        Err(unused())
    }
    async fn jwks(&self) -> Result<String, ServiceError> {
        Err(unused())
    }
    async fn list_sessions(&self, _: Uuid) -> Result<Vec<Session>, ServiceError> {
        Err(unused())
    }
    async fn revoke_session(&self, _: Uuid, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn revoke_user_sessions(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError> {
        let answered =
            self.successes_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                    0 => None,
                    usize::MAX => Some(usize::MAX),
                    left => Some(left - 1),
                });
        if answered.is_err() {
            return Err(ServiceError::Unavailable("auth: circuit open".to_owned()));
        }
        self.revoked.lock().expect("lock").push((user_id, origin.clone()));
        Ok(1)
    }
}

/// An authz service that grants exactly the (user, permission) pairs it was given.
#[derive(Default)]
pub(crate) struct StaticAuthz {
    grants: Mutex<HashSet<(Uuid, String)>>,
    /// Users whose roles `revoke_all_roles` took (in call order).
    released: Mutex<Vec<Uuid>>,
    /// Users `revoke_all_roles` refuses as the last administrator.
    last_admins: Mutex<HashSet<Uuid>>,
}

impl StaticAuthz {
    /// Makes `revoke_all_roles` refuse `user` as the last holder of the admin role.
    pub(crate) fn make_last_admin(&self, user: Uuid) {
        self.last_admins.lock().expect("lock").insert(user);
    }

    /// The users whose roles were taken so far.
    pub(crate) fn released(&self) -> Vec<Uuid> {
        self.released.lock().expect("lock").clone()
    }

    /// Lets `user` use `permission`.
    pub(crate) fn grant(&self, user: Uuid, permission: &str) {
        self.grants
            .lock()
            .expect("lock")
            .insert((user, permission.to_owned()));
    }
}

#[async_trait]
impl AuthzClient for StaticAuthz {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        Ok(self
            .grants
            .lock()
            .expect("lock")
            .contains(&(user_id, permission.to_owned())))
    }
    async fn user_permissions(&self, _: Uuid) -> Result<Vec<String>, ServiceError> {
        Err(unused())
    }
    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        Err(unused())
    }
    async fn register_permissions(&self, _: Vec<Permission>) -> Result<u32, ServiceError> {
        Err(unused())
    }
    async fn create_role(&self, _: NewRole, _: &Origin) -> Result<Role, ServiceError> {
        Err(unused())
    }
    async fn get_role(&self, _: Uuid) -> Result<Role, ServiceError> {
        Err(unused())
    }
    async fn list_roles(&self, _: Option<String>, _: PageRequest) -> Result<Page<Role>, ServiceError> {
        Err(unused())
    }
    async fn update_role(&self, _: Uuid, _: RoleChanges, _: &Origin) -> Result<Role, ServiceError> {
        Err(unused())
    }
    async fn delete_role(&self, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn grant_permissions(&self, _: Uuid, _: Vec<String>, _: &Origin) -> Result<Role, ServiceError> {
        Err(unused())
    }
    async fn revoke_permission(&self, _: Uuid, _: &str, _: &Origin) -> Result<Role, ServiceError> {
        Err(unused())
    }
    async fn assign_roles(&self, _: Uuid, _: RoleSelector, _: &Origin) -> Result<Vec<Role>, ServiceError> {
        Err(unused())
    }
    async fn revoke_role(&self, _: Uuid, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn revoke_all_roles(&self, user_id: Uuid, _: &Origin) -> Result<u32, ServiceError> {
        if self.last_admins.lock().expect("lock").contains(&user_id) {
            return Err(ServiceError::FailedPrecondition(
                "the last holder of the admin role cannot be deleted; give the role to someone else first"
                    .to_owned(),
            ));
        }
        self.released.lock().expect("lock").push(user_id);
        Ok(1)
    }
    async fn user_roles(&self, _: Uuid) -> Result<Vec<Role>, ServiceError> {
        Err(unused())
    }
}

/// An audit service that keeps what the outbox relay delivers.
#[derive(Default)]
pub(crate) struct RecordingAudit {
    records: Mutex<Vec<AuditRecord>>,
}

impl RecordingAudit {
    /// The records received so far.
    pub(crate) fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().expect("lock").clone()
    }
}

#[async_trait]
impl AuditClient for RecordingAudit {
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        self.records.lock().expect("lock").extend_from_slice(records);
        Ok(u32::try_from(records.len()).unwrap_or(u32::MAX))
    }
    async fn query(&self, _: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        Err(unused())
    }
    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        Err(unused())
    }
}

/// The identity client of `ServiceClients`: the service under test never calls itself.
pub(crate) struct NoIdentity;

#[async_trait]
impl IdentityClient for NoIdentity {
    async fn create_user(&self, _: NewUser, _: &Origin) -> Result<User, ServiceError> {
        Err(unused())
    }
    async fn get_user(&self, _: Uuid) -> Result<User, ServiceError> {
        Err(unused())
    }
    async fn get_user_by_email(&self, _: &str) -> Result<User, ServiceError> {
        Err(unused())
    }
    async fn list_users(&self, _: PageRequest) -> Result<Page<User>, ServiceError> {
        Err(unused())
    }
    async fn update_user(&self, _: Uuid, _: UserChanges, _: &Origin) -> Result<User, ServiceError> {
        Err(unused())
    }
    async fn delete_user(&self, _: Uuid, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn verify_credentials(
        &self,
        _: &str,
        _: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError> {
        Err(unused())
    }
    async fn verify_email(&self, _: &SecretString, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn request_password_reset(&self, _: &str, _: &Origin) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn reset_password(
        &self,
        _: &SecretString,
        _: &SecretString,
        _: &Origin,
    ) -> Result<(), ServiceError> {
        Err(unused())
    }
    async fn change_password(
        &self,
        _: Uuid,
        _: &SecretString,
        _: &SecretString,
        _: &Origin,
    ) -> Result<(), ServiceError> {
        Err(unused())
    }
}

/// A clock that stands still until moved.
pub(crate) struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// Starting at the real time.
    pub(crate) fn new() -> Self {
        Self {
            now: Mutex::new(Utc::now()),
        }
    }

    /// Moves the time forward.
    pub(crate) fn advance(&self, by: chrono::TimeDelta) {
        *self.now.lock().expect("lock") += by;
    }
}

impl keel_identity::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("lock")
    }
}
