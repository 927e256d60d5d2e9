//! One call to a peer service: instance choice, deadline, breaker, retries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keel_balancer::Pick;
use keel_config::GrpcConfig;
use keel_registry::ServiceRegistry;
use rand::Rng;
use tokio::time::Instant;
use tonic::Status;

use super::CallPolicy;
use super::breaker::Breaker;
use super::pool::{Conn, Pool};
use crate::ServiceError;
use crate::wire::from_status;

/// Whether a method may be sent again after it failed as unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating it has the effect of doing it once (a read, or a write keyed by the caller).
    Idempotent,
    /// Repeating it could do it twice (a login, a token rotation, a deletion): sent once.
    Never,
}

/// Calls one peer service.
#[derive(Debug)]
pub(crate) struct Caller {
    service: &'static str,
    pool: Pool,
    breaker: Breaker,
    policy: CallPolicy,
}

/// How an attempt ended when it did not succeed.
struct Failure {
    error: ServiceError,
    /// No answer from the peer (counts towards opening the circuit).
    transport: bool,
    /// What the transport said, for the log only (it may name addresses).
    cause: Option<String>,
}

impl Caller {
    /// A caller of `service`, found in `registry`.
    pub(crate) fn new(
        service: &'static str,
        registry: Arc<dyn ServiceRegistry>,
        grpc: &GrpcConfig,
        policy: CallPolicy,
    ) -> Self {
        Self {
            service,
            pool: Pool::new(service, registry, grpc),
            breaker: Breaker::new(service, policy.breaker_threshold, policy.breaker_cool_down),
            policy,
        }
    }

    /// Sends `message` with `send` (which calls the generated client's method) to a healthy
    /// instance, within the policy's deadline; retries `Retry::Idempotent` methods that failed as
    /// unavailable, with backoff, on another pick (an unreachable instance is ejected, so the
    /// retry goes elsewhere when there is elsewhere).
    pub(crate) async fn call<M, R, F, Fut>(
        &self,
        method: &'static str,
        retry: Retry,
        message: M,
        send: F,
    ) -> Result<R, ServiceError>
    where
        M: Clone,
        F: Fn(Conn, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let deadline = Instant::now() + self.policy.deadline;
        let mut attempt = 1;
        loop {
            self.breaker.admit()?;
            // Discovery counts against the deadline too: a registry that does not answer must not
            // hang the caller.
            let left = deadline.saturating_duration_since(Instant::now());
            let pick = match tokio::time::timeout(left, self.pool.pick()).await {
                Ok(picked) => picked?,
                Err(_) => {
                    return Err(ServiceError::DeadlineExceeded(format!(
                        "{}: no instance found within the deadline",
                        self.service
                    )));
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let channel = pick.payload().clone();
            let failure = match self.attempt(channel, remaining, message.clone(), &send).await {
                Ok(answer) => {
                    pick.succeeded();
                    self.breaker.record_answer();
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            // Ends the instance's in-flight claim before any pause.
            self.record(pick, method, attempt, &failure);
            let retryable = retry == Retry::Idempotent
                && attempt < self.policy.max_attempts
                && matches!(failure.error, ServiceError::Unavailable(_));
            let pause = self.policy.backoff(attempt);
            if !retryable || Instant::now() + pause >= deadline {
                return Err(failure.error);
            }
            metrics::counter!("keel_client_retries_total", "service" => self.service, "method" => method)
                .increment(1);
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Tells the breaker and the balancer how an attempt on `pick`'s instance failed, and logs a
    /// transport failure. Only an unreachable instance counts against it in the balancer: a
    /// deadline may just mean a slow call, and an error answer means the instance is up.
    fn record(&self, pick: Pick<Conn>, method: &'static str, attempt: u32, failure: &Failure) {
        if !failure.transport {
            pick.succeeded();
            self.breaker.record_answer();
            return;
        }
        let cause = failure.cause.as_deref().unwrap_or("deadline");
        tracing::warn!(service = self.service, method, attempt, error = %failure.error, cause, "call failed");
        self.breaker.record_failure();
        if failure.cause.is_some() {
            pick.failed();
        }
    }

    async fn attempt<M, R, F, Fut>(
        &self,
        channel: Conn,
        remaining: Duration,
        message: M,
        send: &F,
    ) -> Result<R, Failure>
    where
        F: Fn(Conn, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        if remaining.is_zero() {
            return Err(self.timed_out());
        }
        let mut request = tonic::Request::new(message);
        request.set_timeout(remaining);
        match tokio::time::timeout(remaining, send(channel, request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.classify(&status)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The failure of a call the deadline ended.
    fn timed_out(&self) -> Failure {
        Failure {
            error: ServiceError::DeadlineExceeded(format!(
                "{}: no answer within {} ms",
                self.service,
                self.policy.deadline.as_millis()
            )),
            transport: true,
            cause: None,
        }
    }

    /// A status made by the client's transport (it has a source error: no connection, connection
    /// lost, the deadline enforced by the channel) is a transport failure, reported to the caller
    /// without addresses or causes (those go to the log); a status the peer sent is its answer,
    /// passed on as it is.
    fn classify(&self, status: &Status) -> Failure {
        match std::error::Error::source(status) {
            Some(_) if status.code() == tonic::Code::Cancelled => self.timed_out(),
            Some(cause) => Failure {
                error: ServiceError::Unavailable(format!("{}: unreachable", self.service)),
                transport: true,
                cause: Some(format!("{status}: {cause}")),
            },
            None => Failure {
                error: from_status(status),
                transport: false,
                cause: None,
            },
        }
    }
}

impl CallPolicy {
    /// The pause before attempt `attempt + 1`: exponential from `backoff_base`, capped at
    /// `backoff_max`, with "equal jitter" (half fixed, half random) so callers that failed together
    /// do not retry together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exponential.min(self.backoff_max);
        let half = capped / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_is_capped() {
        let policy = CallPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            ..CallPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let second = policy.backoff(2);
            assert!((100..=200).contains(&second.as_millis()), "{second:?}");
            let late = policy.backoff(30);
            assert!((150..=300).contains(&late.as_millis()), "{late:?}");
        }
    }
}
