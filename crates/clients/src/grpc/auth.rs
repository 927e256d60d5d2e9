//! [`AuthClient`] over gRPC.

use std::sync::Arc;

use async_trait::async_trait;
use keel_config::GrpcConfig;
use keel_proto::auth::v1 as pb;
use keel_proto::auth::v1::auth_service_client::AuthServiceClient as Client;
use keel_registry::ServiceRegistry;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::caller::{Caller, Retry};
use super::{CallPolicy, all};
use crate::{AuthClient, Origin, ServiceError, Session, TokenInfo, TokenPair};

/// The auth service over gRPC, found in the registry as `auth`.
#[derive(Debug)]
pub struct GrpcAuthClient {
    caller: Caller,
}

impl GrpcAuthClient {
    /// A client of the `auth` instances in `registry`.
    pub fn new(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig, policy: CallPolicy) -> Self {
        Self {
            caller: Caller::new("auth", registry, grpc, policy),
        }
    }
}

fn client_info(origin: &Origin) -> Option<pb::ClientInfo> {
    Some(origin.into())
}

#[async_trait]
impl AuthClient for GrpcAuthClient {
    async fn login(
        &self,
        email: &str,
        password: &SecretString,
        origin: &Origin,
    ) -> Result<TokenPair, ServiceError> {
        let request = pb::LoginRequest {
            email: email.to_owned(),
            password: password.expose_secret().to_owned(),
            client: client_info(origin),
        };
        // Never retried: each login starts a session.
        let pair = self
            .caller
            .call("Login", Retry::Never, request, |channel, request| async move {
                Client::new(channel).login(request).await
            })
            .await?;
        pair.try_into()
    }

    async fn refresh(
        &self,
        refresh_token: &SecretString,
        origin: &Origin,
    ) -> Result<TokenPair, ServiceError> {
        let request = pb::RefreshTokenRequest {
            refresh_token: refresh_token.expose_secret().to_owned(),
            client: client_info(origin),
        };
        // Never retried: presenting a rotated token twice revokes its family.
        let pair = self
            .caller
            .call(
                "RefreshToken",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).refresh_token(request).await },
            )
            .await?;
        pair.try_into()
    }

    async fn logout(&self, refresh_token: &SecretString, origin: &Origin) -> Result<(), ServiceError> {
        let request = pb::LogoutRequest {
            refresh_token: refresh_token.expose_secret().to_owned(),
            client: client_info(origin),
        };
        self.caller
            .call("Logout", Retry::Never, request, |channel, request| async move {
                Client::new(channel).logout(request).await
            })
            .await?;
        Ok(())
    }

    async fn validate_token(&self, access_token: &SecretString) -> Result<TokenInfo, ServiceError> {
        let request = pb::ValidateTokenRequest {
            access_token: access_token.expose_secret().to_owned(),
        };
        let info = self
            .caller
            .call(
                "ValidateToken",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).validate_token(request).await },
            )
            .await?;
        info.try_into()
    }

    async fn jwks(&self) -> Result<String, ServiceError> {
        let response = self
            .caller
            .call(
                "Jwks",
                Retry::Idempotent,
                pb::JwksRequest {},
                |channel, request| async move { Client::new(channel).jwks(request).await },
            )
            .await?;
        Ok(response.jwks_json)
    }

    async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<Session>, ServiceError> {
        let request = pb::ListSessionsRequest {
            user_id: user_id.to_string(),
        };
        let response = self
            .caller
            .call(
                "ListSessions",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).list_sessions(request).await },
            )
            .await?;
        all(response.sessions)
    }

    async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        let request = pb::RevokeSessionRequest {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            client: client_info(origin),
        };
        self.caller
            .call(
                "RevokeSession",
                Retry::Never,
                request,
                |channel, request| async move { Client::new(channel).revoke_session(request).await },
            )
            .await?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError> {
        let request = pb::RevokeUserSessionsRequest {
            user_id: user_id.to_string(),
            client: client_info(origin),
        };
        let response = self
            .caller
            .call(
                "RevokeUserSessions",
                // Ending every session twice ends them once: safe to retry, and a password change
                // should not fail on one lost packet.
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).revoke_user_sessions(request).await },
            )
            .await?;
        Ok(response.revoked)
    }
}
