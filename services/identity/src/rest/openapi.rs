//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `/api/v1/identity/openapi.json` (CONVENTIONS).
//!
//! Why a module of its own: the document lists every operation of [`super::router`] in one place,
//! so a route added there without being added here is easy to spot (and the integration test
//! `openapi` compares the two).

use keel_clients::{Page, User};
use keel_http::{FieldError, Problem};
use utoipa::OpenApi;

use super::{account, public};

/// The identity service's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keel identity",
        description = "Users, credentials, e-mail verification and password reset (DESIGN §9). \
            Errors are `application/problem+json` (RFC 9457) with field errors in `errors[]`; \
            authenticated routes take `Authorization: Bearer <access token>`.",
    ),
    paths(
        public::register,
        public::verify_email,
        public::request_reset,
        public::confirm_reset,
        account::list,
        account::me,
        account::update_me,
        account::change_password,
        account::get,
        account::update,
        account::delete,
    ),
    components(schemas(
        User,
        Page<User>,
        Problem,
        FieldError,
        public::RegisterBody,
        public::VerifyEmailBody,
        public::ResetRequestBody,
        public::ResetConfirmBody,
        account::ProfileBody,
        account::ChangePasswordBody,
    )),
    tags((name = "identity", description = "Users of the platform and the proofs of who they are")),
)]
pub(crate) struct ApiDoc;

/// The document, built from the annotations.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
