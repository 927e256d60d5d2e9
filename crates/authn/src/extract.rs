//! The `Principal` as an axum extractor: who is calling, from `Authorization: Bearer <token>`.
//!
//! Why this module exists: handlers should receive an authenticated [`Principal`] or never run.
//! Rejections are [`AuthnError`] responses (401 problem+json with `WWW-Authenticate`, 503 when the
//! signing keys cannot be had); the precise reason is logged at debug level, never sent.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use http::{HeaderMap, header};

use crate::{AuthnError, Principal, TokenVerifier};

/// `Principal` is an extractor when the router state provides an `Arc<TokenVerifier>`. A
/// principal already authenticated by [`crate::require_permission`] is reused, not re-verified.
impl<S> FromRequestParts<S> for Principal
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthnError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let principal = authenticate(&verifier, &parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// `Option<Principal>` for routes where authentication is optional: no `Authorization` header is
/// `None`, but a token that is present and invalid is still a 401.
impl<S> OptionalFromRequestParts<S> for Principal
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthnError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <Principal as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Verifies the request's bearer token, records the user in the request's telemetry context and
/// logs why a request was refused.
pub(crate) async fn authenticate(
    verifier: &TokenVerifier,
    headers: &HeaderMap,
) -> Result<Principal, AuthnError> {
    let outcome = match bearer_token(headers) {
        Ok(token) => verifier.verify(token).await,
        Err(error) => Err(error),
    };
    note_authentication(outcome)
}

/// What every place that authenticates a request does with the outcome: a verified caller is
/// recorded in the request's telemetry context (logs, spans, audit records); a refusal is logged,
/// at warning level when no signing keys could be had (an outage, not a bad client). Returns the
/// outcome unchanged.
pub fn note_authentication<P: std::borrow::Borrow<Principal>>(
    outcome: Result<P, AuthnError>,
) -> Result<P, AuthnError> {
    match &outcome {
        Ok(principal) => {
            if let Some(context) = keel_telemetry::context::current() {
                // Not `to_string`: the formatting machinery costs more than the id itself.
                let user_id = principal.borrow().user_id;
                context.set_user_id(
                    user_id
                        .hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer())
                        .to_owned(),
                );
            }
        }
        Err(AuthnError::KeysUnavailable) => {
            tracing::warn!("request refused: no signing keys to verify its token");
        }
        Err(error) => tracing::debug!(reason = %error, "access token rejected"),
    }
    outcome
}

/// The token of the one `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthnError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthnError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthnError::NotBearer);
    }
    let value = value.to_str().map_err(|_| AuthnError::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthnError::NotBearer);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_case() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])).ok(),
            Some("abc.def.ghi")
        );
        assert_eq!(bearer_token(&headers(&["bearer  abc"])).ok(), Some("abc"));
    }

    #[test]
    fn other_schemes_empty_tokens_and_duplicates_are_refused() {
        for bad in [
            &["Basic dXNlcjpwdw=="][..],
            &["Bearer "],
            &["Bearer"],
            &["Bearer a", "Bearer b"],
        ] {
            assert!(
                matches!(bearer_token(&headers(bad)), Err(AuthnError::NotBearer)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            bearer_token(&HeaderMap::new()),
            Err(AuthnError::MissingToken)
        ));
    }
}
