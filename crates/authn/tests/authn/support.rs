//! Test doubles of the verifier's and the guard's peers: a JWKS source that counts, fails or
//! stalls on demand, and an authz client that grants from a list or is down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keel_authn::{AuthnError, JwksSource, JwtSettings, TokenVerifier};
use keel_clients::{
    AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError,
};
use uuid::Uuid;

/// A JWKS source whose document can change, which can fail or be slow, and which counts fetches.
pub(crate) struct TestJwks {
    document: Mutex<String>,
    failing: AtomicBool,
    delay: Mutex<Duration>,
    fetches: AtomicUsize,
}

impl TestJwks {
    pub(crate) fn new(document: String) -> Arc<Self> {
        Arc::new(Self {
            document: Mutex::new(document),
            failing: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            fetches: AtomicUsize::new(0),
        })
    }

    /// Publishes another document.
    pub(crate) fn publish(&self, document: String) {
        *self.document.lock().expect("an unpoisoned lock") = document;
    }

    /// Makes every fetch fail (or succeed again).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes every fetch take this long.
    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().expect("an unpoisoned lock") = delay;
    }

    /// Fetches so far.
    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A verifier over this source with the default settings.
    pub(crate) fn verifier(self: &Arc<Self>) -> TokenVerifier {
        TokenVerifier::new(Arc::clone(self) as Arc<dyn JwksSource>, JwtSettings::default())
    }
}

#[async_trait]
impl JwksSource for TestJwks {
    async fn fetch(&self) -> Result<String, AuthnError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().expect("an unpoisoned lock");
        tokio::time::sleep(delay).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuthnError::JwksFetch("auth: connection refused".to_owned()));
        }
        Ok(self.document.lock().expect("an unpoisoned lock").clone())
    }
}

/// An authz client granting the listed (user, permission) pairs, or unavailable.
#[derive(Default)]
pub(crate) struct TestAuthz {
    grants: Mutex<HashSet<(Uuid, String)>>,
    down: AtomicBool,
    checks: AtomicUsize,
}

impl TestAuthz {
    pub(crate) fn grant(&self, user_id: Uuid, permission: &str) {
        self.grants
            .lock()
            .expect("an unpoisoned lock")
            .insert((user_id, permission.to_owned()));
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Permission checks asked so far.
    pub(crate) fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

fn not_in_double() -> ServiceError {
    ServiceError::Internal("not offered by this test double".to_owned())
}

#[async_trait]
impl AuthzClient for TestAuthz {
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable(
                "authz: circuit open (10.0.0.7:50051)".to_owned(),
            ));
        }
        Ok(self
            .grants
            .lock()
            .expect("an unpoisoned lock")
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
