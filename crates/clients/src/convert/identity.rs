//! Identity messages ↔ domain types.

use keel_proto::identity::v1 as pb;

use super::{malformed, required, time, uuid};
use crate::wire::timestamp;
use crate::{CredentialsVerdict, ServiceError, User};

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email,
            display_name: user.display_name,
            email_verified: user.email_verified,
            created_at: Some(timestamp(user.created_at)),
            updated_at: Some(timestamp(user.updated_at)),
        }
    }
}

impl TryFrom<pb::User> for User {
    type Error = ServiceError;
    fn try_from(user: pb::User) -> Result<Self, Self::Error> {
        Ok(Self {
            id: uuid("user.id", &user.id)?,
            email: user.email,
            display_name: user.display_name,
            email_verified: user.email_verified,
            created_at: time("user.created_at", user.created_at.as_ref())?,
            updated_at: time("user.updated_at", user.updated_at.as_ref())?,
        })
    }
}

impl From<CredentialsVerdict> for pb::VerifyCredentialsResponse {
    fn from(verdict: CredentialsVerdict) -> Self {
        let (verdict, user) = match verdict {
            CredentialsVerdict::Valid(user) => (pb::CredentialsVerdict::Valid, Some(user.into())),
            CredentialsVerdict::Invalid => (pb::CredentialsVerdict::Invalid, None),
            CredentialsVerdict::EmailNotVerified(user) => {
                (pb::CredentialsVerdict::EmailNotVerified, Some(user.into()))
            }
        };
        Self {
            verdict: verdict.into(),
            user,
        }
    }
}

impl TryFrom<pb::VerifyCredentialsResponse> for CredentialsVerdict {
    type Error = ServiceError;
    fn try_from(response: pb::VerifyCredentialsResponse) -> Result<Self, Self::Error> {
        let verdict = pb::CredentialsVerdict::try_from(response.verdict)
            .map_err(|_| malformed("verdict", "is not a known verdict"))?;
        let user = || -> Result<User, ServiceError> { required("user", response.user.clone())?.try_into() };
        // No wildcard arm: a new verdict must be placed here.
        match verdict {
            pb::CredentialsVerdict::Valid => Ok(Self::Valid(user()?)),
            pb::CredentialsVerdict::Invalid => Ok(Self::Invalid),
            pb::CredentialsVerdict::EmailNotVerified => Ok(Self::EmailNotVerified(user()?)),
            pb::CredentialsVerdict::Unspecified => Err(malformed("verdict", "is unspecified")),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::convert::error_text;

    fn user() -> User {
        User {
            id: uuid::Uuid::now_v7(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            email_verified: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn users_round_trip() -> Result<(), ServiceError> {
        let user = user();
        assert_eq!(User::try_from(pb::User::from(user.clone()))?, user);
        Ok(())
    }

    #[test]
    fn every_verdict_round_trips() -> Result<(), ServiceError> {
        for verdict in [
            CredentialsVerdict::Valid(user()),
            CredentialsVerdict::Invalid,
            CredentialsVerdict::EmailNotVerified(user()),
        ] {
            let message = pb::VerifyCredentialsResponse::from(verdict.clone());
            assert_eq!(CredentialsVerdict::try_from(message)?, verdict);
        }
        Ok(())
    }

    #[test]
    fn malformed_users_are_internal_errors_naming_the_field() {
        let mut message = pb::User::from(user());
        message.id = "42".into();
        assert_eq!(
            error_text(User::try_from(message)),
            "malformed message: `user.id` is not a UUID"
        );
        let mut message = pb::User::from(user());
        message.created_at = None;
        assert_eq!(
            error_text(User::try_from(message)),
            "malformed message: `user.created_at` is missing"
        );
        let valid_without_user = pb::VerifyCredentialsResponse {
            verdict: pb::CredentialsVerdict::Valid.into(),
            user: None,
        };
        let unspecified = pb::VerifyCredentialsResponse::default();
        assert_eq!(
            error_text(CredentialsVerdict::try_from(valid_without_user)),
            "malformed message: `user` is missing"
        );
        assert_eq!(
            error_text(CredentialsVerdict::try_from(unspecified)),
            "malformed message: `verdict` is unspecified"
        );
    }
}
