//! One chosen instance, held for the length of one request or call.
//!
//! Why a guard: power of two choices compares requests in flight, so the count must go down when a
//! request ends however it ends (answer, error, timeout, a dropped future). Tying it to a value's
//! `Drop` makes that automatic; the same value carries the outcome back for passive health.

use std::fmt;
use std::sync::Arc;

use crate::balancer::Shared;
use crate::member::{LazyNow, Member};

/// Metric counting ejections, by `service`.
pub(crate) const EJECTIONS: &str = "keel_balancer_ejections_total";

/// An instance chosen by [`Balancer::pick`](crate::Balancer::pick): where to send the request,
/// and a claim on the instance's in-flight count that is released when this value is dropped.
///
/// Keep it until the request is done (for a streamed response, until the stream ends if the
/// caller can), then report how the instance behaved with [`Pick::failed`] or
/// [`Pick::succeeded`], once. Dropping it without a report is neutral: use that for outcomes that
/// say nothing about the instance (a timeout of a slow request, a cancelled call, a refusal the
/// instance chose to answer with).
#[must_use = "the instance is counted as busy until the pick is dropped"]
pub struct Pick<T = ()> {
    member: Arc<Member<T>>,
    shared: Arc<Shared>,
}

impl<T> Pick<T> {
    /// Claims `member` for pick number `sequence`.
    pub(crate) fn new(member: Arc<Member<T>>, shared: Arc<Shared>, sequence: u64) -> Self {
        member.health.begin(sequence);
        Self { member, shared }
    }

    /// The instance's `host:port` on the balancer's port, e.g. `127.0.0.1:9081` or `[::1]:9081`.
    pub fn endpoint(&self) -> &str {
        &self.member.endpoint
    }

    /// The instance's id in the registry.
    pub fn instance_id(&self) -> &str {
        &self.member.id
    }

    /// What the balancer's connect function made for this instance (a channel, say); `()` for a
    /// balancer built with [`BalancerBuilder::build`](crate::BalancerBuilder::build).
    pub fn payload(&self) -> &T {
        &self.member.payload
    }

    /// The instance answered: its consecutive failures and ejection doubling start over.
    pub fn succeeded(&self) {
        self.member.health.record_success();
    }

    /// The instance could not be reached (refused or reset connection): one more consecutive
    /// failure. Reaching the configured count ejects the instance for the ejection time, which is
    /// counted in `keel_balancer_ejections_total{service}` and logged.
    pub fn failed(&self) {
        let now = LazyNow::new(self.shared.epoch).get();
        let Some(time) = self.member.health.record_failure(&self.shared.ejection, now) else {
            return;
        };
        metrics::counter!(EJECTIONS, "service" => self.shared.service.to_string()).increment(1);
        tracing::warn!(
            service = %self.shared.service,
            instance = %self.member.id,
            endpoint = %self.member.endpoint,
            ejected_ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
            "instance ejected after consecutive failures"
        );
    }
}

impl<T> Drop for Pick<T> {
    fn drop(&mut self) {
        self.member.health.end();
    }
}

impl<T> fmt::Debug for Pick<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("service", &self.shared.service)
            .field("instance_id", &self.member.id)
            .field("endpoint", &self.member.endpoint)
            .finish_non_exhaustive()
    }
}
