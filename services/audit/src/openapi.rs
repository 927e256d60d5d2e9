//! The audit service's OpenAPI document, served at `/api/v1/audit/openapi.json` (CONVENTIONS).
//!
//! Why this module exists: clients and the gateway need a machine-readable description of the
//! REST API, and one written by hand drifts from the code. [`ApiDoc`] is generated from the
//! handlers' `#[utoipa::path]` annotations (in `crate::rest`) and the `ToSchema` derives of the
//! types they answer with; `crate::rest::router` serves it through `keel_http::openapi_router`,
//! which adds the `bearer` security scheme and the `Problem` error schema.

use keel_clients::{AuditRecord, Page, StoredAuditRecord};

/// The audit service's OpenAPI document: every route of `crate::rest::router`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel audit",
        description = "The append-only, hash-chained audit log of Keel: reading it over REST \
            (recording is gRPC only, through the producers' outboxes)."
    ),
    paths(crate::rest::list),
    components(schemas(Page<StoredAuditRecord>, StoredAuditRecord, AuditRecord)),
    tags((name = "audit", description = "The audit log (permission `platform.audit.read`)."))
)]
pub(crate) struct ApiDoc;
