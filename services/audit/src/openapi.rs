//! The audit service's OpenAPI document, served at `/api/v1/audit/openapi.json` (CONVENTIONS).
//!
//! Why this module exists: clients and the gateway need a machine-readable description of the
//! REST API, and one written by hand drifts from the code. [`ApiDoc`] is generated from the
//! handlers' `#[utoipa::path]` annotations (in `crate::rest`) and the `ToSchema` derives of the
//! types they answer with; `crate::rest::router` serves it through `keel_http::openapi_router`,
//! which adds the `bearer` security scheme and the `Problem` error schema.

use keel_clients::{AuditRecord, StoredAuditRecord};

/// One page of `GET /api/v1/audit-logs`, newest first.
// The handler answers with `keel_clients::Page<StoredAuditRecord>`; this type only names that
// JSON shape in the document (`Page` itself carries no schema). The integration test
// `openapi_document_describes_every_route` checks it against a real answer. (A plain comment,
// not a doc comment: utoipa would publish it as the schema's description.)
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the JSON of Page<StoredAuditRecord>; never built"
)]
pub(crate) struct AuditLogPage {
    /// The records of this page, highest `sequence` first.
    items: Vec<StoredAuditRecord>,
    /// The cursor of the next page (pass it as `cursor`); null on the last page.
    next_cursor: Option<String>,
}

/// The audit service's OpenAPI document: every route of `crate::rest::router`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel audit",
        description = "The append-only, hash-chained audit log of Keel: reading it over REST \
            (recording is gRPC only, through the producers' outboxes)."
    ),
    paths(crate::rest::list),
    components(schemas(AuditLogPage, StoredAuditRecord, AuditRecord)),
    tags((name = "audit", description = "The audit log (permission `platform.audit.read`)."))
)]
pub(crate) struct ApiDoc;
