//! Auth messages ↔ domain types.

use keel_proto::auth::v1 as pb;
use secrecy::{ExposeSecret, SecretString};

use super::{non_empty, optional, time, uuid};
use crate::wire::timestamp;
use crate::{ServiceError, Session, TokenInfo, TokenPair};

/// The only token type Keel issues.
const BEARER: &str = "Bearer";

impl From<TokenPair> for pb::TokenPair {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token.expose_secret().to_owned(),
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
            token_type: BEARER.to_owned(),
            expires_in: pair.expires_in,
        }
    }
}

impl TryFrom<pb::TokenPair> for TokenPair {
    type Error = ServiceError;
    fn try_from(pair: pb::TokenPair) -> Result<Self, Self::Error> {
        Ok(Self {
            access_token: SecretString::from(non_empty("access_token", pair.access_token)?),
            refresh_token: SecretString::from(non_empty("refresh_token", pair.refresh_token)?),
            expires_in: pair.expires_in,
        })
    }
}

impl From<Session> for pb::Session {
    fn from(session: Session) -> Self {
        Self {
            id: session.id.to_string(),
            created_at: Some(timestamp(session.created_at)),
            last_used_at: Some(timestamp(session.last_used_at)),
            expires_at: Some(timestamp(session.expires_at)),
            ip: session.ip.unwrap_or_default(),
            user_agent: session.user_agent.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::Session> for Session {
    type Error = ServiceError;
    fn try_from(session: pb::Session) -> Result<Self, Self::Error> {
        Ok(Self {
            id: uuid("session.id", &session.id)?,
            created_at: time("session.created_at", session.created_at.as_ref())?,
            last_used_at: time("session.last_used_at", session.last_used_at.as_ref())?,
            expires_at: time("session.expires_at", session.expires_at.as_ref())?,
            ip: optional(session.ip),
            user_agent: optional(session.user_agent),
        })
    }
}

impl From<TokenInfo> for pb::ValidateTokenResponse {
    fn from(info: TokenInfo) -> Self {
        Self {
            user_id: info.user_id.to_string(),
            token_id: info.token_id,
            session_id: info.session_id.to_string(),
            expires_at: Some(timestamp(info.expires_at)),
        }
    }
}

impl TryFrom<pb::ValidateTokenResponse> for TokenInfo {
    type Error = ServiceError;
    fn try_from(info: pb::ValidateTokenResponse) -> Result<Self, Self::Error> {
        Ok(Self {
            user_id: uuid("user_id", &info.user_id)?,
            token_id: non_empty("token_id", info.token_id)?,
            session_id: uuid("session_id", &info.session_id)?,
            expires_at: time("expires_at", info.expires_at.as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::convert::error_text;

    #[test]
    fn token_pairs_round_trip_as_bearer_tokens() -> Result<(), ServiceError> {
        let pair = TokenPair {
            access_token: "header.claims.signature".into(),
            refresh_token: "opaque".into(),
            expires_in: 900,
        };
        let message = pb::TokenPair::from(pair);
        assert_eq!(message.token_type, "Bearer");
        let back = TokenPair::try_from(message)?;
        assert_eq!(back.access_token.expose_secret(), "header.claims.signature");
        assert_eq!(back.refresh_token.expose_secret(), "opaque");
        assert_eq!(back.expires_in, 900);
        let empty = pb::TokenPair::default();
        assert_eq!(
            error_text(TokenPair::try_from(empty)),
            "malformed message: `access_token` is empty"
        );
        Ok(())
    }

    #[test]
    fn sessions_round_trip_with_and_without_client_details() -> Result<(), ServiceError> {
        let session = Session {
            id: Uuid::now_v7(),
            created_at: Utc::now(),
            last_used_at: Utc::now(),
            expires_at: Utc::now(),
            ip: Some("192.0.2.1".into()),
            user_agent: None,
        };
        assert_eq!(Session::try_from(pb::Session::from(session.clone()))?, session);
        Ok(())
    }

    #[test]
    fn token_info_round_trips() -> Result<(), ServiceError> {
        let info = TokenInfo {
            user_id: Uuid::now_v7(),
            token_id: "jti-1".into(),
            session_id: Uuid::now_v7(),
            expires_at: Utc::now(),
        };
        assert_eq!(
            TokenInfo::try_from(pb::ValidateTokenResponse::from(info.clone()))?,
            info
        );
        Ok(())
    }
}
