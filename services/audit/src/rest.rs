//! The REST face of the audit service: `GET /api/v1/audit-logs` (DESIGN §9).
//!
//! Why this module exists: administrators read the log over HTTP through the gateway. The route
//! requires `platform.audit.read` (401/403 problem+json before anything is read); query parameters
//! are parsed here with a 422 naming each bad parameter, unknown parameters included, so a typo
//! (`actor=`) never silently widens the result. The handler's `#[utoipa::path]` annotation is
//! what the service's OpenAPI document (`crate::openapi`) says about the route.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use keel_authn::{PermissionGuard, TokenVerifier, require_permission};
use keel_clients::{AuditQuery, FieldViolation, Page, ServiceError, StoredAuditRecord};
use keel_http::Problem;
use utoipa::OpenApi as _;
use uuid::Uuid;

use crate::error::violation;
use crate::local::Audit;

/// The permission the audit log's readers need.
pub(crate) const READ_PERMISSION: &str = "platform.audit.read";

/// The service's REST routes, with the permission check applied, and the service's OpenAPI
/// document at `/api/v1/audit/openapi.json` (public).
pub(crate) fn router(audit: Audit, verifier: Arc<TokenVerifier>, guard: PermissionGuard) -> Router {
    Router::new()
        .route("/api/v1/audit-logs", get(list))
        .route_layer(require_permission(verifier, guard, READ_PERMISSION))
        .with_state(audit)
        // Added after the permission layer, so the document needs no token.
        .merge(keel_http::openapi_router(
            crate::SERVICE_NAME,
            crate::openapi::ApiDoc::openapi(),
        ))
}

/// `GET /api/v1/audit-logs?actor_id=&action=&target_id=&request_id=&from=&to=&limit=&cursor=`:
/// `{"items": [...], "next_cursor": "…"|null}`, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit-logs",
    tag = "audit",
    operation_id = "list_audit_logs",
    summary = "List audit records, newest first",
    description = "One page of the audit log (highest `sequence` first), filtered by the given \
        parameters combined with AND. Requires the permission `platform.audit.read`. Every bad, \
        repeated or unknown parameter is a 422 naming it, so a typo never widens the result.",
    params(
        ("actor_id" = Option<Uuid>, Query, description = "Records by this user."),
        ("action" = Option<String>, Query, description = "Records of this action (exact), e.g. `auth.login.succeeded`."),
        ("target_id" = Option<String>, Query, description = "Records about this target (exact)."),
        ("request_id" = Option<String>, Query, description = "Records of this request (exact)."),
        ("from" = Option<DateTime<Utc>>, Query, description = "`occurred_at` at or after this RFC 3339 timestamp."),
        ("to" = Option<DateTime<Utc>>, Query, description = "`occurred_at` before this RFC 3339 timestamp; not before `from`."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100; 20 when absent."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page (opaque).", min_length = 1, pattern = r"^[A-Za-z0-9_-]+$"),
    ),
    responses(
        (status = 200, description = "One page of records, newest first; `next_cursor` is null on the last page.",
            body = Page<StoredAuditRecord>),
        (status = 400, description = "The query string could not be parsed.",
            body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks the permission `platform.audit.read`.",
            body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter was rejected; `errors[]` names each one (`invalid_uuid`, \
            `invalid_datetime`, `invalid_range`, `invalid_integer`, `out_of_range`, `invalid_cursor`, `repeated`, \
            `unknown_parameter`).",
            body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit store, the signing keys or the authorization service are unavailable.",
            body = keel_http::Problem, content_type = "application/problem+json"),
        (status = 504, description = "The authorization service did not answer the permission check in time.",
            body = keel_http::Problem, content_type = "application/problem+json"),
        keel_http::Unauthenticated,
        keel_http::InternalError,
    ),
    security(("bearer" = [])),
)]
async fn list(
    State(audit): State<Audit>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::Json<Page<StoredAuditRecord>>, Problem> {
    let Query(params) = params.map_err(|_| Problem::bad_request("the query string could not be parsed"))?;
    let query = parse_params(params)?;
    Ok(axum::Json(audit.query(query).await?))
}

/// The query the parameters describe; every unreadable, repeated or unknown parameter is a
/// violation named after it.
fn parse_params(params: Vec<(String, String)>) -> Result<AuditQuery, ServiceError> {
    let mut query = AuditQuery::default();
    let mut violations: Vec<FieldViolation> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in params {
        if seen.contains(&name) {
            violations.push(violation(&name, "repeated", "give this parameter at most once"));
            continue;
        }
        seen.push(name.clone());
        let outcome = match name.as_str() {
            "actor_id" => Uuid::parse_str(&value)
                .map(|id| query.actor_id = Some(id))
                .map_err(|_| ("invalid_uuid", "not a UUID")),
            "action" => {
                query.action = Some(value);
                Ok(())
            }
            "target_id" => {
                query.target_id = Some(value);
                Ok(())
            }
            "request_id" => {
                query.request_id = Some(value);
                Ok(())
            }
            "from" => timestamp(&value).map(|t| query.from = Some(t)),
            "to" => timestamp(&value).map(|t| query.to = Some(t)),
            "limit" => value
                .parse::<u32>()
                .map(|limit| query.page.limit = Some(limit))
                .map_err(|_| ("invalid_integer", "not a whole number between 1 and 100")),
            "cursor" => {
                query.page.cursor = Some(value);
                Ok(())
            }
            _ => Err(("unknown_parameter", "this parameter is not supported")),
        };
        if let Err((code, message)) = outcome {
            violations.push(violation(&name, code, message));
        }
    }
    if violations.is_empty() {
        Ok(query)
    } else {
        Err(ServiceError::InvalidArgument {
            message: "the audit query was rejected".to_owned(),
            violations,
        })
    }
}

/// An RFC 3339 timestamp with an offset, e.g. `2026-01-02T03:04:05Z`.
fn timestamp(value: &str) -> Result<DateTime<Utc>, (&'static str, &'static str)> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            (
                "invalid_datetime",
                "not an RFC 3339 timestamp, e.g. 2026-01-02T03:04:05Z",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields(error: ServiceError) -> Vec<(String, String)> {
        match error {
            ServiceError::InvalidArgument { violations, .. } => {
                violations.into_iter().map(|v| (v.field, v.code)).collect()
            }
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn every_filter_is_read() {
        let actor = Uuid::now_v7();
        let query = parse_params(params(&[
            ("actor_id", &actor.to_string()),
            ("action", "auth.login.failed"),
            ("from", "2026-01-01T00:00:00+02:00"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(query.actor_id, Some(actor));
        assert_eq!(query.action.as_deref(), Some("auth.login.failed"));
        assert_eq!(
            query.from.map(|t| t.to_rfc3339()),
            Some("2025-12-31T22:00:00+00:00".to_owned())
        );
        assert_eq!(query.page.limit, Some(5));
    }

    #[test]
    fn bad_repeated_and_unknown_parameters_are_each_named() {
        let found = fields(
            parse_params(params(&[
                ("actor_id", "bob"),
                ("from", "yesterday"),
                ("limit", "-1"),
                ("action", "a.b.c"),
                ("action", "d.e.f"),
                ("actor", "x"),
            ]))
            .unwrap_err(),
        );
        let expected = [
            ("actor_id", "invalid_uuid"),
            ("from", "invalid_datetime"),
            ("limit", "invalid_integer"),
            ("action", "repeated"),
            ("actor", "unknown_parameter"),
        ];
        assert_eq!(
            found,
            expected.map(|(f, c)| (f.to_owned(), c.to_owned())).to_vec()
        );
    }
}
