//! Permission checks for REST routes: a guard for handlers and a route layer.
//!
//! Why this module exists: "authenticated and holding permission X" is the rule of every admin
//! route, and it should read as one line at the route, fail the same way everywhere (403
//! problem+json naming the permission, 503 when authz is down) and hand the handler the
//! [`Principal`] it checked.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use keel_clients::AuthzClient;
use keel_http::Problem;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::authenticate;
use crate::{AuthnError, Principal, TokenVerifier};

/// Checks a principal's permissions with the authz service.
#[derive(Clone)]
pub struct PermissionGuard {
    authz: Arc<dyn AuthzClient>,
}

impl std::fmt::Debug for PermissionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionGuard").finish_non_exhaustive()
    }
}

impl PermissionGuard {
    /// A guard asking `authz` (a cached client in production wiring).
    pub fn new(authz: Arc<dyn AuthzClient>) -> Self {
        Self { authz }
    }

    /// `Ok` when `principal` holds `permission`; else 403 `urn:keel:problem:forbidden` naming the
    /// permission, or 503 when the authz service cannot answer.
    pub async fn require(&self, principal: &Principal, permission: &str) -> Result<(), Problem> {
        self.check(principal, permission).await.map_err(Problem::from)
    }

    /// [`Self::require`] with the error before it becomes a response.
    pub(crate) async fn check(&self, principal: &Principal, permission: &str) -> Result<(), AuthnError> {
        match self.authz.has_permission(principal.user_id, permission).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::debug!(user_id = %principal.user_id, permission, "permission denied");
                Err(AuthnError::Forbidden(permission.to_owned()))
            }
            Err(error) => {
                tracing::warn!(%error, permission, "permission check failed");
                Err(AuthnError::Authz(error))
            }
        }
    }
}

/// A route layer admitting only requests whose bearer token is valid and whose user holds
/// `permission`; the handler finds the [`Principal`] in the request extensions (so the `Principal`
/// extractor returns it without verifying again).
///
/// ```
/// # use std::sync::Arc;
/// # use axum::{Router, routing::post};
/// # use keel_authn::{PermissionGuard, Principal, TokenVerifier, require_permission};
/// async fn create_role(principal: Principal) -> String {
///     principal.user_id.to_string()
/// }
///
/// fn routes(verifier: Arc<TokenVerifier>, guard: PermissionGuard) -> Router {
///     Router::new()
///         .route("/api/v1/roles", post(create_role))
///         .route_layer(require_permission(Arc::clone(&verifier), guard, "platform.role.manage"))
///         .with_state(verifier)
/// }
/// ```
pub fn require_permission(
    verifier: Arc<TokenVerifier>,
    guard: PermissionGuard,
    permission: impl Into<Arc<str>>,
) -> RequirePermissionLayer {
    RequirePermissionLayer {
        rule: Arc::new(Rule {
            verifier,
            guard,
            permission: permission.into(),
        }),
    }
}

/// What a [`RequirePermissionLayer`] enforces.
struct Rule {
    verifier: Arc<TokenVerifier>,
    guard: PermissionGuard,
    permission: Arc<str>,
}

impl Rule {
    /// The principal of a request that may pass (`known` when an earlier layer authenticated it),
    /// or why it may not.
    async fn admit(&self, known: Option<Principal>, headers: &HeaderMap) -> Result<Principal, AuthnError> {
        let principal = match known {
            Some(principal) => principal,
            None => authenticate(&self.verifier, headers).await?,
        };
        self.guard.check(&principal, &self.permission).await?;
        Ok(principal)
    }
}

/// The layer made by [`require_permission`].
#[derive(Clone)]
pub struct RequirePermissionLayer {
    rule: Arc<Rule>,
}

impl std::fmt::Debug for RequirePermissionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermissionLayer")
            .field("permission", &self.rule.permission)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RequirePermissionLayer {
    type Service = RequirePermission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission {
            inner,
            rule: Arc::clone(&self.rule),
        }
    }
}

/// The service made by [`RequirePermissionLayer`].
#[derive(Clone)]
pub struct RequirePermission<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> std::fmt::Debug for RequirePermission<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermission")
            .field("permission", &self.rule.permission)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for RequirePermission<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was driven to readiness serves this request; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rule = Arc::clone(&self.rule);
        Box::pin(async move {
            let known = request.extensions().get::<Principal>().cloned();
            match rule.admit(known, request.headers()).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}
