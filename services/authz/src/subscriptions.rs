//! What authz does when others' events arrive.
//!
//! Why this module exists: authz reacts to two kinds of events.
//!
//! - `platform.user.created` → the new user receives `authz.default_roles` (default `[user]`);
//!   `platform.user.deleted` → the user's assignments are removed. Both are idempotent (delivery is
//!   at least once): assigning held roles or removing absent ones changes nothing. Each handler
//!   runs under the event's request id, so the resulting events and audit records carry the id of
//!   the request that registered or deleted the user. A default role that does not exist (roles
//!   not seeded yet) is skipped with a warning.
//! - `platform.role.*` and `platform.permission.*` → this instance's permission cache drops what
//!   may be stale, so a change made through another authz instance applies here too (this
//!   instance's own writes already invalidated on commit).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use keel_clients::Origin;
use keel_events::{Event, EventBus, EventError, Subscription, topics};
use keel_kernel::KernelHandle;
use keel_telemetry::context::{self, RequestContext};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AuthzError;
use crate::engine::{Authz, KeepAdmin};

/// Attempts at handling one user event before it is given up (logged as an error).
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each further one.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The subscriptions taken at build, so nothing published after it is missed.
pub(crate) struct Subscriptions {
    users: Subscription,
    roles: Subscription,
    permissions: Subscription,
}

/// Subscribes to the user, role and permission events.
pub(crate) async fn subscribe(bus: &dyn EventBus) -> Result<Subscriptions, EventError> {
    Ok(Subscriptions {
        users: bus.subscribe(topics::ALL_USER).await?,
        roles: bus.subscribe(topics::ALL_ROLE).await?,
        permissions: bus.subscribe(topics::ALL_PERMISSION).await?,
    })
}

/// Spawns the handlers on the kernel; they stop with it.
pub(crate) fn spawn(
    kernel: &KernelHandle,
    subscriptions: Subscriptions,
    engine: Arc<Authz>,
    default_roles: Vec<String>,
) {
    let Subscriptions {
        users,
        roles,
        permissions,
    } = subscriptions;
    let shutdown = kernel.shutdown_token();
    let user_engine = engine.clone();
    kernel.spawn(
        "authz-user-events",
        consume(users, shutdown.clone(), move |event| {
            let engine = user_engine.clone();
            let default_roles = default_roles.clone();
            async move { on_user_event(&engine, &default_roles, &event).await }
        }),
    );
    for (name, subscription) in [
        ("authz-role-events", roles),
        ("authz-permission-events", permissions),
    ] {
        let engine = engine.clone();
        kernel.spawn(
            name,
            consume(subscription, shutdown.clone(), move |event| {
                invalidate(&engine, &event);
                std::future::ready(())
            }),
        );
    }
}

/// Feeds each event to `handle` until the subscription ends or `shutdown` is cancelled. Never
/// fails: a handler deals with its own errors, so one bad event cannot stop the others.
async fn consume<F, Fut>(
    mut subscription: Subscription,
    shutdown: CancellationToken,
    handle: F,
) -> Result<(), Infallible>
where
    F: Fn(Event) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = subscription.next() => match next {
                Some(event) => handle(event).await,
                None => return Ok(()),
            },
        }
    }
}

/// Handles one `platform.user.*` event, retrying transient failures.
async fn on_user_event(engine: &Authz, default_roles: &[String], event: &Event) {
    let Some(user_id) = user_of(event) else {
        if matches!(event.topic.as_str(), topics::USER_CREATED | topics::USER_DELETED) {
            tracing::warn!(event_id = %event.id, topic = %event.topic, "user event without a valid user_id; ignored");
        }
        return;
    };
    let request_id = event.request_id.clone().unwrap_or_else(|| event.id.to_string());
    let mut delay = RETRY_DELAY;
    for attempt in 1..=ATTEMPTS {
        let outcome = context::scope(RequestContext::new(&request_id), async {
            match event.topic.as_str() {
                topics::USER_CREATED => assign_defaults(engine, user_id, default_roles).await,
                topics::USER_DELETED => {
                    engine
                        // The user is gone: their assignments go even if they held the admin role.
                        .revoke_all_roles(user_id, &Origin::default(), KeepAdmin::No)
                        .await
                        .map(|removed| {
                            tracing::info!(%user_id, removed, "deleted user's role assignments removed");
                        })
                }
                _ => Ok(()),
            }
        })
        .await;
        match outcome {
            Ok(()) => return,
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(%error, %user_id, topic = %event.topic, attempt, "user event handling failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(error) => {
                tracing::error!(%error, %user_id, topic = %event.topic, event_id = %event.id, "user event handling failed; giving up");
            }
        }
    }
}

async fn assign_defaults(engine: &Authz, user_id: Uuid, default_roles: &[String]) -> Result<(), AuthzError> {
    if default_roles.is_empty() {
        return Ok(());
    }
    let missing = engine
        .assign_existing_roles(user_id, default_roles, &Origin::default())
        .await?;
    if !missing.is_empty() {
        tracing::warn!(%user_id, ?missing, "default roles do not exist (seed the roles); not assigned");
    }
    Ok(())
}

/// Drops the cached permissions a role or permission event may have made stale.
fn invalidate(engine: &Authz, event: &Event) {
    match (event.topic.as_str(), user_of(event)) {
        (topics::ROLE_ASSIGNED | topics::ROLE_REVOKED, Some(user_id)) => engine.invalidate_user(user_id),
        // A rename or a new role changes nobody's permissions.
        (topics::ROLE_CREATED | topics::ROLE_UPDATED, _) => {}
        _ => engine.invalidate_all(),
    }
}

/// The `user_id` of an event's payload.
fn user_of(event: &Event) -> Option<Uuid> {
    event
        .payload
        .get("user_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|text| Uuid::parse_str(text).ok())
}
