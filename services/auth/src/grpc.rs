//! The gRPC face of the auth service (`keel.auth.v1.AuthService`), for the gateway and peers.
//!
//! Each method parses its request (ids must be UUIDs: `INVALID_ARGUMENT` naming the field), calls
//! the [`Engine`], and maps errors once through `keel_clients::wire`.

use std::sync::Arc;

use keel_clients::{Origin, ServiceError};
use keel_proto::auth::v1 as pb;
use keel_proto::auth::v1::auth_service_server::AuthService;
use secrecy::SecretString;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::engine::{Engine, RevokeReason};

/// The tonic service over the engine.
#[derive(Clone)]
pub struct GrpcAuth {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for GrpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAuth").finish_non_exhaustive()
    }
}

impl GrpcAuth {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

fn status(error: ServiceError) -> Status {
    keel_clients::wire::to_status(error)
}

fn origin(client: &Option<pb::ClientInfo>) -> Result<Origin, Status> {
    keel_clients::wire::origin_from_client_info(client).map_err(status)
}

fn parse_uuid(field: &str, text: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text)
        .map_err(|_| status(ServiceError::invalid_field(field, "invalid_uuid", "not a UUID")))
}

#[tonic::async_trait]
impl AuthService for GrpcAuth {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.client)?;
        let password = SecretString::from(request.password);
        let pair = self.engine.login(&request.email, &password, &origin).await?;
        Ok(Response::new(pair.into()))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.client)?;
        let token = SecretString::from(request.refresh_token);
        let pair = self.engine.refresh(&token, &origin).await?;
        Ok(Response::new(pair.into()))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let request = request.into_inner();
        let origin = origin(&request.client)?;
        let token = SecretString::from(request.refresh_token);
        // The caller's authenticated user, when it passed one, must own the session.
        self.engine.logout(&token, origin.actor_id, &origin).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        let token = SecretString::from(request.into_inner().access_token);
        let info = self.engine.validate_token(&token).await?;
        Ok(Response::new(info.into()))
    }

    async fn jwks(&self, _request: Request<pb::JwksRequest>) -> Result<Response<pb::JwksResponse>, Status> {
        let jwks_json = self.engine.jwks_json().await?;
        Ok(Response::new(pb::JwksResponse { jwks_json }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let user_id = parse_uuid("user_id", &request.into_inner().user_id)?;
        let sessions = self.engine.list_sessions(user_id).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(Into::into).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let request = request.into_inner();
        let user_id = parse_uuid("user_id", &request.user_id)?;
        let session_id = parse_uuid("session_id", &request.session_id)?;
        let origin = origin(&request.client)?;
        let reason = if origin.actor_id == Some(user_id) {
            RevokeReason::ByUser
        } else {
            RevokeReason::ByService
        };
        self.engine
            .revoke_session(user_id, session_id, reason, &origin)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        let request = request.into_inner();
        let user_id = parse_uuid("user_id", &request.user_id)?;
        let origin = origin(&request.client)?;
        let revoked = self
            .engine
            .revoke_user_sessions(user_id, RevokeReason::ByService, &origin)
            .await?;
        Ok(Response::new(pb::RevokeUserSessionsResponse { revoked }))
    }
}
