//! Test doubles of the gateway's authentication peers: Ed25519 signing keys generated per test
//! (with aws-lc-rs, as keel-authn's tests make them), the JWKS and access tokens built from them,
//! and an authz client that grants from a list and counts its checks. Shared with the benchmark
//! through `#[path]`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keel_authn::{AccessClaims, JwtSettings, StaticJwks, TokenVerifier};
use keel_clients::{
    AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError,
};
use keel_gateway::EdgeAuth;
use serde_json::{Value, json};
use uuid::Uuid;

/// An Ed25519 signing key with its `kid`, as the auth service holds one.
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    /// A fresh key pair.
    pub(crate) fn generate(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("key generation");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8 export").as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8,
        }
    }

    /// The JWKS publishing this key alone.
    pub(crate) fn jwks(&self) -> String {
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        });
        json!({ "keys": [jwk] }).to_string()
    }

    /// A token with these claims, signed as the auth service signs (EdDSA, `kid` in the header).
    pub(crate) fn sign(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("signing")
    }

    /// A token for `claims` with `"alg": "none"` and no signature, naming this key.
    pub(crate) fn unsigned(&self, claims: &AccessClaims) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid});
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let claims = serde_json::to_value(claims).expect("claims serialise");
        format!("{}.{}.", encode(&header), encode(&claims))
    }

    /// A verifier trusting this key, with the default settings.
    pub(crate) fn verifier(&self) -> Arc<TokenVerifier> {
        Arc::new(TokenVerifier::new(
            Arc::new(StaticJwks(self.jwks())),
            JwtSettings::default(),
        ))
    }
}

/// Claims the default settings accept: valid from now for five minutes, fresh ids.
pub(crate) fn valid_claims() -> AccessClaims {
    let settings = JwtSettings::default();
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        iss: settings.issuer,
        aud: settings.audience,
        sub: Uuid::now_v7().to_string(),
        jti: Uuid::now_v7().to_string(),
        iat: now,
        nbf: now,
        exp: now + 300,
        sid: Uuid::now_v7().to_string(),
    }
}

/// The gateway's authentication with `key` trusted and `authz` asked.
pub(crate) fn edge_auth(key: &SigningKey, authz: &Arc<TestAuthz>) -> EdgeAuth {
    EdgeAuth::new(key.verifier(), Arc::clone(authz) as Arc<dyn AuthzClient>)
}

/// An authz client granting the listed (user, permission) pairs.
#[derive(Default)]
pub(crate) struct TestAuthz {
    grants: Mutex<HashSet<(Uuid, String)>>,
    checks: AtomicUsize,
}

impl TestAuthz {
    pub(crate) fn grant(&self, user_id: Uuid, permission: &str) {
        self.grants
            .lock()
            .expect("an unpoisoned lock")
            .insert((user_id, permission.to_owned()));
    }

    /// Permission checks asked so far.
    #[allow(dead_code)]
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
