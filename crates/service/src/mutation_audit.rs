//! The audit record of every authenticated mutating request that its handler did not audit.
//!
//! Why this module exists: the audit log must show every change an authenticated caller asked
//! for, not only the changes a handler remembered to record. Handlers of the core services record
//! what they did, in the transaction that did it, with a precise action (`authz.role.created`);
//! that is the rule. This middleware is the net under it: after a `POST`, `PUT`, `PATCH` or
//! `DELETE` whose caller authenticated (the `Principal` extractor put the user into the request
//! context) and whose work enqueued no audit record (the outbox marks the request when it does),
//! it writes a generic record — action `<service>.request.completed`, the path as its target, the
//! method, route template and status in its metadata — into the service's outbox, where the
//! relay delivers it like any other. So a denied attempt (403), a rejected one (422) or a route a
//! module forgot to audit still leaves a trace, and nothing is recorded twice.
//!
//! A server error (5xx) is recorded by the net even when the handler had queued its own record:
//! the request is marked audited when the record is queued, not when its transaction commits, and
//! a 5xx usually means that transaction rolled back and took the record with it. When it did
//! commit after all (the failure came later), the attempt carries two records with different
//! actions, which is better than none.
//!
//! The record is written after the response is produced, outside the handler's transaction: when
//! the outbox write fails the request has already happened, so the failure is logged and counted
//! (`keel_audit_enqueue_failures_total`), never turned into an error for the caller.

use axum::Router;
use axum::extract::{FromRequestParts as _, MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use chrono::{SubsecRound as _, Utc};
use http::Method;
use keel_clients::{AuditRecord, ClientOrigin};
use keel_events::{Outbox, RelayWaker};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

/// Where a service writes the records of unaudited mutations: its own store's outbox.
#[derive(Clone)]
pub struct MutationAuditor {
    db: DatabaseConnection,
    source: &'static str,
    relay: RelayWaker,
}

impl std::fmt::Debug for MutationAuditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutationAuditor")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MutationAuditor {
    /// Records go into the outbox of `db` as produced by `source` (the service name, which
    /// starts their action), and `relay` is woken to deliver them at once.
    pub fn new(db: DatabaseConnection, source: &'static str, relay: RelayWaker) -> Self {
        Self { db, source, relay }
    }
}

/// `router` with every authenticated mutating request that no handler audited recorded through
/// `auditor` (see the module documentation). Apply it to a service's REST routes before the
/// middleware stack, which provides the request context it reads.
pub fn audit_unaudited_mutations(router: Router, auditor: MutationAuditor) -> Router {
    router.layer(from_fn_with_state(auditor, audit_if_unaudited))
}

async fn audit_if_unaudited(
    State(auditor): State<MutationAuditor>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if !is_mutation(&method) {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let (mut parts, body) = request.into_parts();
    let Ok(ClientOrigin(origin)) = ClientOrigin::from_request_parts(&mut parts, &()).await;
    let response = next.run(Request::from_parts(parts, body)).await;

    let Some(context) = keel_telemetry::context::current() else {
        return response;
    };
    let actor = context.user_id().and_then(|id| Uuid::parse_str(id).ok());
    let Some(actor) = actor else {
        return response;
    };
    if !needs_net_record(context.is_audited(), response.status()) {
        return response;
    }
    let record = AuditRecord {
        id: Uuid::now_v7(),
        action: format!("{}.request.completed", auditor.source),
        actor_id: Some(actor),
        target_type: Some("path".to_owned()),
        target_id: Some(path),
        request_id: Some(context.request_id().to_owned()),
        ip: origin.ip,
        user_agent: origin.user_agent,
        occurred_at: Utc::now().trunc_subsecs(6),
        metadata: serde_json::json!({
            "method": method.as_str(),
            "route": route,
            "status": response.status().as_u16(),
        }),
        source: auditor.source.to_owned(),
        tenant_id: None,
    };
    match Outbox::enqueue_audit(&auditor.db, &record).await {
        Ok(()) => auditor.relay.wake(),
        Err(error) => {
            metrics::counter!("keel_audit_enqueue_failures_total", "source" => auditor.source).increment(1);
            tracing::error!(%error, action = %record.action, "could not record an unaudited mutation");
        }
    }
    response
}

/// Whether the net records a mutation that ended with `status`: when no handler queued a record,
/// and after a server error whatever was queued (it most likely rolled back).
fn needs_net_record(audited: bool, status: http::StatusCode) -> bool {
    !audited || status.is_server_error()
}

/// Whether requests with `method` change something.
fn is_mutation(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_record_is_trusted_unless_the_request_failed_on_the_server() {
        use http::StatusCode;
        assert!(!needs_net_record(true, StatusCode::OK));
        assert!(!needs_net_record(true, StatusCode::UNPROCESSABLE_ENTITY));
        assert!(needs_net_record(true, StatusCode::INTERNAL_SERVER_ERROR));
        assert!(needs_net_record(true, StatusCode::SERVICE_UNAVAILABLE));
        assert!(needs_net_record(false, StatusCode::OK));
        assert!(needs_net_record(false, StatusCode::FORBIDDEN));
    }

    #[test]
    fn only_changing_methods_are_mutations() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_mutation(&method), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!is_mutation(&method), "{method}");
        }
    }
}
