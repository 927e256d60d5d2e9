//! An in-memory auth service with one known user: sessions with readable tokens (`at-<session>`,
//! `rt-<session>-<n>`). `limited@example.com` is always rate limited.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use keel_clients::wire::{origin_from_client_info, to_status};
use keel_clients::{Origin, ServiceError, Session, TokenInfo, TokenPair};
use keel_proto::auth::v1 as pb;
use keel_proto::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::support::{Knobs, lock};

/// The JWKS document the fake serves.
pub(crate) const JWKS: &str = r#"{"keys":[]}"#;

/// One live session and its current refresh token.
struct Live {
    user_id: Uuid,
    session: Session,
    refresh_token: String,
    rotations: u32,
}

/// The fake service.
#[derive(Clone)]
pub(crate) struct FakeAuth {
    /// Call counts and failure injection.
    pub(crate) knobs: Arc<Knobs>,
    /// The origin of the last call that carried one.
    pub(crate) last_origin: Arc<Mutex<Option<Origin>>>,
    user: (Uuid, String, String),
    sessions: Arc<Mutex<Vec<Live>>>,
}

impl FakeAuth {
    /// A fake knowing one user, with this e-mail and password.
    pub(crate) fn new(user_id: Uuid, email: &str, password: &str) -> Self {
        Self {
            knobs: Arc::default(),
            last_origin: Arc::default(),
            user: (user_id, email.to_owned(), password.to_owned()),
            sessions: Arc::default(),
        }
    }

    /// The tonic service to serve.
    pub(crate) fn server(&self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self.clone())
    }

    fn remember(&self, client: &Option<pb::ClientInfo>) -> Result<Origin, Status> {
        let origin = origin_from_client_info(client).map_err(to_status)?;
        *lock(&self.last_origin) = Some(origin.clone());
        Ok(origin)
    }
}

fn pair(live: &Live) -> pb::TokenPair {
    TokenPair {
        access_token: format!("at-{}", live.session.id).into(),
        refresh_token: live.refresh_token.clone().into(),
        expires_in: 900,
    }
    .into()
}

fn unauthenticated() -> Status {
    to_status(ServiceError::Unauthenticated("invalid credentials".into()))
}

#[tonic::async_trait]
impl AuthService for FakeAuth {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::TokenPair>, Status> {
        self.knobs.enter("Login").await?;
        let request = request.into_inner();
        let origin = self.remember(&request.client)?;
        if request.email == "limited@example.com" {
            return Err(to_status(ServiceError::RateLimited {
                message: "too many logins".into(),
                retry_after_secs: Some(30),
            }));
        }
        let (user_id, email, password) = &self.user;
        if request.email != *email || request.password != *password {
            return Err(unauthenticated());
        }
        let now = Utc::now();
        let id = Uuid::now_v7();
        let live = Live {
            user_id: *user_id,
            session: Session {
                id,
                created_at: now,
                last_used_at: now,
                expires_at: now + Duration::days(7),
                ip: origin.ip,
                user_agent: origin.user_agent,
            },
            refresh_token: format!("rt-{id}-0"),
            rotations: 0,
        };
        let answer = pair(&live);
        lock(&self.sessions).push(live);
        Ok(Response::new(answer))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        self.knobs.enter("RefreshToken").await?;
        let request = request.into_inner();
        self.remember(&request.client)?;
        let mut sessions = lock(&self.sessions);
        let live = sessions
            .iter_mut()
            .find(|l| l.refresh_token == request.refresh_token);
        let live = live.ok_or_else(unauthenticated)?;
        live.rotations += 1;
        live.refresh_token = format!("rt-{}-{}", live.session.id, live.rotations);
        live.session.last_used_at = Utc::now();
        Ok(Response::new(pair(live)))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        self.knobs.enter("Logout").await?;
        let request = request.into_inner();
        self.remember(&request.client)?;
        lock(&self.sessions).retain(|l| l.refresh_token != request.refresh_token);
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        self.knobs.enter("ValidateToken").await?;
        let token = request.into_inner().access_token;
        let sessions = lock(&self.sessions);
        let live = sessions.iter().find(|l| format!("at-{}", l.session.id) == token);
        let live = live.ok_or_else(unauthenticated)?;
        let info = TokenInfo {
            user_id: live.user_id,
            token_id: format!("jti-{}", live.session.id),
            session_id: live.session.id,
            expires_at: Utc::now() + Duration::minutes(15),
        };
        Ok(Response::new(info.into()))
    }

    async fn jwks(&self, _request: Request<pb::JwksRequest>) -> Result<Response<pb::JwksResponse>, Status> {
        self.knobs.enter("Jwks").await?;
        Ok(Response::new(pb::JwksResponse {
            jwks_json: JWKS.to_owned(),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        self.knobs.enter("ListSessions").await?;
        let user_id = request.into_inner().user_id;
        let sessions = lock(&self.sessions);
        let mine = sessions.iter().filter(|l| l.user_id.to_string() == user_id);
        let sessions = mine.rev().map(|l| l.session.clone().into()).collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        self.knobs.enter("RevokeSession").await?;
        let request = request.into_inner();
        self.remember(&request.client)?;
        let mut sessions = lock(&self.sessions);
        let before = sessions.len();
        sessions.retain(|l| {
            !(l.user_id.to_string() == request.user_id && l.session.id.to_string() == request.session_id)
        });
        if sessions.len() == before {
            return Err(to_status(ServiceError::NotFound("no such session".into())));
        }
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        self.knobs.enter("RevokeUserSessions").await?;
        let request = request.into_inner();
        self.remember(&request.client)?;
        let mut sessions = lock(&self.sessions);
        let before = sessions.len();
        sessions.retain(|l| l.user_id.to_string() != request.user_id);
        let revoked = u32::try_from(before - sessions.len()).unwrap_or(u32::MAX);
        Ok(Response::new(pb::RevokeUserSessionsResponse { revoked }))
    }
}
