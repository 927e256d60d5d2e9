//! What the remote backends (etcd, Consul, Kubernetes) share: the background tasks a registry
//! owns, the per-service watch channels fed by those tasks, the HTTP client and the retry pace.
//!
//! Why here: each backend speaks its own API, but all of them follow a service the same way (list
//! once so the watcher starts with the current set, then follow changes, re-listing after any
//! failure) and must stop every task when the registry is dropped, so that an abandoned registry
//! leaves nothing running and its watchers learn it is gone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::{InstanceWatch, Instances, RegistryError, ServiceInstance};

/// The background tasks of one registry: aborted, all of them, when it is dropped.
#[derive(Default)]
pub(crate) struct Tasks {
    set: Mutex<JoinSet<()>>,
}

impl Tasks {
    /// Runs `task` until it ends, is aborted through the returned handle, or the registry goes.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; every caller is an `async` method of a registry.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> AbortHandle {
        let mut set = lock(&self.set);
        // Forget the tasks that ended, so a long-lived registry does not accumulate them.
        while set.try_join_next().is_some() {}
        set.spawn(task)
    }
}

/// The services a registry follows: one channel and one follower task each, for the life of the
/// registry. A gateway or client watches a handful of services, so followers are not stopped when
/// their last receiver goes; a later `watch` of the same service reuses the channel.
pub(crate) struct Watches {
    channels: Mutex<HashMap<String, watch::Sender<Instances>>>,
    tasks: Tasks,
}

impl Watches {
    pub(crate) fn new() -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            tasks: Tasks::default(),
        }
    }

    /// A receiver of `service`'s channel, when it is already followed.
    pub(crate) fn subscribe(&self, service: &str) -> Option<InstanceWatch> {
        lock(&self.channels).get(service).map(watch::Sender::subscribe)
    }

    /// Starts following `service`: a channel holding `initial`, fed by `follow` from then on.
    /// When another caller started it meanwhile, theirs is used and `follow` never runs.
    pub(crate) fn start<F, Fut>(
        &self,
        service: &str,
        initial: Vec<ServiceInstance>,
        follow: F,
    ) -> InstanceWatch
    where
        F: FnOnce(watch::Sender<Instances>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut channels = lock(&self.channels);
        if let Some(existing) = channels.get(service) {
            return existing.subscribe();
        }
        let sender = watch::Sender::new(sorted(initial));
        let receiver = sender.subscribe();
        channels.insert(service.to_owned(), sender.clone());
        drop(channels);
        self.tasks.spawn(follow(sender));
        receiver
    }
}

/// The instances in the order every backend shows them: by id.
fn sorted(mut instances: Vec<ServiceInstance>) -> Instances {
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    instances.into()
}

/// Tells watchers the new set, if it differs from what they last saw.
pub(crate) fn publish(sender: &watch::Sender<Instances>, instances: Vec<ServiceInstance>) {
    let next = sorted(instances);
    sender.send_if_modified(|current| {
        let changed = **current != *next;
        if changed {
            *current = next;
        }
        changed
    });
}

/// `instances` by id, for `discover`.
pub(crate) fn in_order(instances: Vec<ServiceInstance>) -> Vec<ServiceInstance> {
    sorted(instances).to_vec()
}

/// The pause before retrying a failed backend call: 250 ms, doubling up to 10 s, back to the start
/// after a success. No jitter: each process follows few services, so retries do not stampede.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The pause to take now; the following one is longer.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The HTTP client of a remote backend: connections bounded by `connect_timeout`, TCP keep-alive
/// so a watch stream on a dead host fails within about half a minute instead of hanging. No
/// overall timeout: each call sets its own, since watch streams stay open.
pub(crate) fn http_client(
    backend: &'static str,
    connect_timeout: Duration,
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, RegistryError> {
    let builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_keepalive(Duration::from_secs(15))
        .tcp_keepalive_interval(Duration::from_secs(5))
        .tcp_keepalive_retries(3u32);
    configure(builder)
        .build()
        .map_err(|e| unavailable(backend, format!("cannot build its HTTP client: {}", chain(&e))))
}

/// [`RegistryError::Unavailable`] for `backend`.
pub(crate) fn unavailable(backend: &'static str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Unavailable {
        backend,
        reason: reason.into(),
    }
}

/// An error and its causes on one line (reqwest's top-level message alone says little).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A map, even if a thread panicked while holding it: every change leaves it consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Shared so that a backend's `Debug` can say which services it follows.
pub(crate) fn followed(watches: &Watches) -> Vec<String> {
    let mut names: Vec<_> = lock(&watches.channels).keys().cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> ServiceInstance {
        ServiceInstance::new("audit", id, "127.0.0.1").with_port("http", 8084)
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_starts_over_after_a_reset() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn watchers_are_told_only_of_real_changes_and_see_instances_by_id() {
        let watches = Watches::new();
        let (feed, fed) = tokio::sync::oneshot::channel();
        let watch = watches.start("audit", vec![instance("b"), instance("a")], |sender| async move {
            let _ = feed.send(sender);
            std::future::pending::<()>().await;
        });
        let ids = |w: &InstanceWatch| w.borrow().iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&watch), ["a", "b"]);
        let sender = fed.await.expect("the follower runs");
        publish(&sender, vec![instance("a"), instance("b")]);
        assert!(!watch.has_changed().expect("open"), "same set, no news");
        publish(&sender, vec![instance("c")]);
        assert!(watch.has_changed().expect("open"));
        assert_eq!(ids(&watch), ["c"]);
    }

    #[tokio::test]
    async fn a_second_watch_of_a_followed_service_shares_its_channel() {
        let watches = Watches::new();
        let first = watches.start("audit", vec![instance("a")], |_| std::future::pending());
        let second = watches.start("audit", Vec::new(), |_| async { panic!("never started twice") });
        assert_eq!(second.borrow().len(), 1);
        assert!(watches.subscribe("audit").is_some());
        assert!(watches.subscribe("identity").is_none());
        drop(first);
    }

    #[tokio::test]
    async fn dropping_the_watches_stops_the_followers_and_closes_the_channels() {
        let watches = Watches::new();
        let mut watch = watches.start("audit", Vec::new(), |_| std::future::pending());
        drop(watches);
        assert!(watch.changed().await.is_err(), "the registry is gone");
    }
}
