//! Test doubles of the peer services authz talks to: an identity service that knows a set of
//! users, and an audit service that records what the outbox relay delivers. Only the methods
//! authz calls answer; the others say they are not part of these tests.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use keel_clients::{
    AuditClient, AuditQuery, AuditRecord, ChainReport, CredentialsVerdict, IdentityClient, NewUser, Origin,
    Page, PageRequest, ServiceError, StoredAuditRecord, User, UserChanges,
};
use keel_config::SecretString;
use uuid::Uuid;

fn not_used(what: &str) -> ServiceError {
    ServiceError::Unavailable(format!("{what} is not used by authz"))
}

/// An identity service that knows the users added to it.
#[derive(Default)]
pub(crate) struct KnownUsers {
    users: Mutex<HashSet<Uuid>>,
}

impl KnownUsers {
    /// Makes `id` a known user.
    pub(crate) fn add(&self, id: Uuid) {
        self.users.lock().expect("lock").insert(id);
    }
}

#[async_trait]
impl IdentityClient for KnownUsers {
    async fn create_user(&self, _user: NewUser, _origin: &Origin) -> Result<User, ServiceError> {
        Err(not_used("create_user"))
    }
    async fn get_user(&self, id: Uuid) -> Result<User, ServiceError> {
        if !self.users.lock().expect("lock").contains(&id) {
            return Err(ServiceError::NotFound(format!("user {id} not found")));
        }
        Ok(User {
            id,
            email: format!("{id}@example.test"),
            display_name: String::new(),
            email_verified: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
    }
    async fn get_user_by_email(&self, _email: &str) -> Result<User, ServiceError> {
        Err(not_used("get_user_by_email"))
    }
    async fn list_users(&self, _page: PageRequest) -> Result<Page<User>, ServiceError> {
        Err(not_used("list_users"))
    }
    async fn update_user(
        &self,
        _id: Uuid,
        _changes: UserChanges,
        _origin: &Origin,
    ) -> Result<User, ServiceError> {
        Err(not_used("update_user"))
    }
    async fn delete_user(&self, _id: Uuid, _origin: &Origin) -> Result<(), ServiceError> {
        Err(not_used("delete_user"))
    }
    async fn verify_credentials(
        &self,
        _email: &str,
        _password: &SecretString,
    ) -> Result<CredentialsVerdict, ServiceError> {
        Err(not_used("verify_credentials"))
    }
    async fn verify_email(&self, _token: &SecretString, _origin: &Origin) -> Result<(), ServiceError> {
        Err(not_used("verify_email"))
    }
    async fn request_password_reset(&self, _email: &str, _origin: &Origin) -> Result<(), ServiceError> {
        Err(not_used("request_password_reset"))
    }
    async fn reset_password(
        &self,
        _token: &SecretString,
        _new_password: &SecretString,
        _origin: &Origin,
    ) -> Result<(), ServiceError> {
        Err(not_used("reset_password"))
    }
    async fn change_password(
        &self,
        _user_id: Uuid,
        _current: &SecretString,
        _new: &SecretString,
        _origin: &Origin,
    ) -> Result<(), ServiceError> {
        Err(not_used("change_password"))
    }
}

/// An audit service that keeps every record delivered to it.
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
        let mut stored = self.records.lock().expect("lock");
        let mut added = 0;
        for record in records {
            if stored.iter().all(|r| r.id != record.id) {
                stored.push(record.clone());
                added += 1;
            }
        }
        Ok(added)
    }
    async fn query(&self, _query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        Err(not_used("query"))
    }
    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        Err(not_used("verify_chain"))
    }
}
