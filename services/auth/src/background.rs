//! Work the auth service does on its own: ending the sessions of users who were deleted or changed
//! their password (from events), removing expired sessions and keys, and verifying access tokens
//! against its own keys without a network call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keel_authn::{AuthnError, JwksSource};
use keel_clients::Origin;
use keel_events::{Event, Subscription, topics};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::engine::{Engine, RevokeReason};
use crate::keys::KeyRing;

/// How often expired sessions and old keys are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Attempts to end a user's sessions after an event before giving up (the in-process bus does not
/// redeliver; identity also calls `RevokeUserSessions` directly).
const EVENT_ATTEMPTS: u32 = 3;
/// Pause between those attempts.
const EVENT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The JWKS of this service's own key store, for its in-process [`keel_authn::TokenVerifier`].
pub(crate) struct LocalJwks(pub(crate) Arc<KeyRing>);

#[async_trait]
impl JwksSource for LocalJwks {
    async fn fetch(&self) -> Result<String, AuthnError> {
        self.0
            .jwks_json()
            .await
            .map_err(|error| AuthnError::JwksFetch(error.to_string()))
    }
}

/// Ends the sessions of users named by `platform.user.deleted` and
/// `platform.user.password_changed` until `shutdown`. Every live session goes, also one started
/// after the change if the event comes late (the user logs in again): a cut-off at the event's
/// time would spare a login that checked the old password just before the change was committed.
pub(crate) async fn follow_user_events(
    engine: Arc<Engine>,
    mut events: Subscription,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.next() => event,
        };
        let Some(event) = event else {
            tracing::warn!("the event bus closed; no longer following user events");
            return Ok(());
        };
        let reason = match event.topic.as_str() {
            topics::USER_DELETED => RevokeReason::UserDeleted,
            topics::USER_PASSWORD_CHANGED => RevokeReason::PasswordChanged,
            _ => continue,
        };
        on_user_event(&engine, &event, reason).await;
    }
}

async fn on_user_event(engine: &Engine, event: &Event, reason: RevokeReason) {
    let Some(user_id) = event
        .payload
        .get("user_id")
        .and_then(|v| v.as_str())
        .and_then(|v| Uuid::parse_str(v).ok())
    else {
        tracing::warn!(event_id = %event.id, topic = %event.topic, "user event without a usable user_id; ignored");
        return;
    };
    for attempt in 1..=EVENT_ATTEMPTS {
        match engine
            .revoke_user_sessions(user_id, reason, &Origin::default())
            .await
        {
            Ok(count) => {
                tracing::info!(%user_id, topic = %event.topic, sessions = count, "ended the user's sessions");
                return;
            }
            Err(error) if attempt < EVENT_ATTEMPTS => {
                tracing::warn!(%user_id, %error, attempt, "ending the user's sessions failed; retrying");
                tokio::time::sleep(EVENT_RETRY_DELAY).await;
            }
            Err(error) => {
                tracing::error!(%user_id, %error, topic = %event.topic, "ending the user's sessions failed");
            }
        }
    }
}

/// Deletes expired sessions and old keys every [`PRUNE_INTERVAL`] until `shutdown`.
pub(crate) async fn prune_periodically(
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        match engine.prune().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(sessions = count, "deleted expired sessions"),
            Err(error) => tracing::warn!(%error, "deleting expired sessions failed"),
        }
    }
}
