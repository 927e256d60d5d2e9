//! The wire format's edge: errors, timestamps and request origins between domain and protobuf.
//!
//! Why this module exists: servers answer with a `tonic::Status` and callers must get back the
//! [`ServiceError`] the server meant, field violations and retry delays included. Doing that
//! translation in one place, for both sides, keeps the two from drifting apart. Servers use
//! [`to_status`] on every error they return and the parsing helpers here for the parts of their
//! requests that are shared (timestamps, the caller's origin); the domain ↔ message conversions
//! (`From`/`TryFrom` between e.g. [`crate::User`] and `keel_proto::identity::v1::User`) live next
//! to this module and are in scope wherever both types are.

mod status;

use chrono::{DateTime, Utc};
use keel_proto::{auth, authz, identity};
use prost_types::Timestamp;
use uuid::Uuid;

use crate::{Origin, ServiceError};

pub use status::{from_status, to_status};

/// A protobuf timestamp of `dt`.
pub fn timestamp(dt: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: dt.timestamp(),
        nanos: i32::try_from(dt.timestamp_subsec_nanos()).unwrap_or(i32::MAX),
    }
}

/// The instant `ts` names; `Internal` when it is out of chrono's range. Non-normalised values
/// (negative or overflowing `nanos`) are normalised first, as the protobuf spec allows.
pub fn datetime(ts: &Timestamp) -> Result<DateTime<Utc>, ServiceError> {
    let mut normal = *ts;
    normal.normalize();
    u32::try_from(normal.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(normal.seconds, nanos))
        .ok_or_else(|| ServiceError::Internal(format!("timestamp {}s is out of range", ts.seconds)))
}

/// The origin carried by an identity request; `Origin::default()` when absent.
/// `InvalidArgument` (field `origin.actor_id`) when the actor is not a UUID.
pub fn origin_from_identity(origin: &Option<identity::v1::RequestOrigin>) -> Result<Origin, ServiceError> {
    origin.as_ref().map_or(Ok(Origin::default()), |o| {
        origin_from_parts("origin", &o.actor_id, &o.ip, &o.user_agent)
    })
}

/// The origin carried by an authz request; as [`origin_from_identity`].
pub fn origin_from_authz(origin: &Option<authz::v1::RequestOrigin>) -> Result<Origin, ServiceError> {
    origin.as_ref().map_or(Ok(Origin::default()), |o| {
        origin_from_parts("origin", &o.actor_id, &o.ip, &o.user_agent)
    })
}

/// The origin carried by an auth request's `client`; as [`origin_from_identity`] (the field is
/// `client.actor_id`).
pub fn origin_from_client_info(client: &Option<auth::v1::ClientInfo>) -> Result<Origin, ServiceError> {
    client.as_ref().map_or(Ok(Origin::default()), |c| {
        origin_from_parts("client", &c.actor_id, &c.ip, &c.user_agent)
    })
}

fn origin_from_parts(
    message: &str,
    actor_id: &str,
    ip: &str,
    user_agent: &str,
) -> Result<Origin, ServiceError> {
    let actor_id = match actor_id {
        "" => None,
        text => Some(Uuid::parse_str(text).map_err(|_| {
            ServiceError::invalid_field(
                &format!("{message}.actor_id"),
                "invalid_uuid",
                "the acting user's id is not a UUID",
            )
        })?),
    };
    Ok(Origin {
        actor_id,
        ip: non_empty(ip),
        user_agent: non_empty(user_agent),
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn actor(origin: &Origin) -> String {
    origin.actor_id.map(|id| id.to_string()).unwrap_or_default()
}

impl From<&Origin> for identity::v1::RequestOrigin {
    fn from(origin: &Origin) -> Self {
        Self {
            actor_id: actor(origin),
            ip: origin.ip.clone().unwrap_or_default(),
            user_agent: origin.user_agent.clone().unwrap_or_default(),
        }
    }
}

impl From<&Origin> for authz::v1::RequestOrigin {
    fn from(origin: &Origin) -> Self {
        Self {
            actor_id: actor(origin),
            ip: origin.ip.clone().unwrap_or_default(),
            user_agent: origin.user_agent.clone().unwrap_or_default(),
        }
    }
}

impl From<&Origin> for auth::v1::ClientInfo {
    fn from(origin: &Origin) -> Self {
        Self {
            ip: origin.ip.clone().unwrap_or_default(),
            user_agent: origin.user_agent.clone().unwrap_or_default(),
            actor_id: actor(origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() -> Result<(), ServiceError> {
        let now = Utc::now();
        assert_eq!(datetime(&timestamp(now))?, now);
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(datetime(&timestamp(epoch))?, epoch);
        Ok(())
    }

    #[test]
    fn non_normalised_timestamps_are_accepted_and_absurd_ones_rejected() -> Result<(), ServiceError> {
        let odd = Timestamp {
            seconds: 10,
            nanos: -1,
        };
        assert_eq!(datetime(&odd)?.timestamp_nanos_opt(), Some(9_999_999_999));
        let absurd = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(matches!(datetime(&absurd), Err(ServiceError::Internal(_))));
        Ok(())
    }

    #[test]
    fn origins_round_trip_through_every_proto_shape() -> Result<(), ServiceError> {
        let origin = Origin {
            actor_id: Some(Uuid::now_v7()),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("curl/8".into()),
        };
        let identity = Some(identity::v1::RequestOrigin::from(&origin));
        let authz = Some(authz::v1::RequestOrigin::from(&origin));
        let auth = Some(auth::v1::ClientInfo::from(&origin));
        assert_eq!(origin_from_identity(&identity)?, origin);
        assert_eq!(origin_from_authz(&authz)?, origin);
        assert_eq!(origin_from_client_info(&auth)?, origin);
        let anonymous = Some(identity::v1::RequestOrigin::from(&Origin::default()));
        assert_eq!(origin_from_identity(&anonymous)?, Origin::default());
        assert_eq!(origin_from_identity(&None)?, Origin::default());
        Ok(())
    }

    #[test]
    fn a_malformed_actor_is_an_invalid_argument_naming_the_field() {
        let client = Some(auth::v1::ClientInfo {
            actor_id: "admin".into(),
            ..Default::default()
        });
        let Err(ServiceError::InvalidArgument { violations, .. }) = origin_from_client_info(&client) else {
            panic!("a non-UUID actor was accepted");
        };
        assert_eq!(violations[0].field, "client.actor_id");
        assert_eq!(violations[0].code, "invalid_uuid");
    }
}
