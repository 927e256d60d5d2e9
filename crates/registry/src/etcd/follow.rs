//! Following one service in etcd: a watch on its prefix from the revision after the initial read,
//! applied to the set the watchers see; after any failure (etcd or the network gone, the watch
//! cancelled because the revision was compacted) the service is read again and a new watch starts
//! after that read, so no change is lost and none is applied twice.

use std::collections::BTreeMap;

use tokio::sync::watch;

use super::api::EtcdApi;
use super::decode;
use super::wire::{EventKind, WatchLine};
use crate::remote::{Backoff, publish};
use crate::{Instances, ServiceInstance};

/// The task feeding one service's watch channel.
pub(super) struct Follower {
    pub(super) api: EtcdApi,
    pub(super) service: String,
    /// `<prefix><service>/`.
    pub(super) prefix: Vec<u8>,
}

impl Follower {
    /// Runs until the registry is dropped (which aborts it). `state` is the service's instances by
    /// key as read at `revision`.
    pub(super) async fn run(
        self,
        sender: watch::Sender<Instances>,
        mut state: BTreeMap<Vec<u8>, ServiceInstance>,
        mut revision: i64,
    ) {
        let service = &self.service;
        let mut backoff = Backoff::new();
        loop {
            let reason = self.follow(&sender, &mut state, revision, &mut backoff).await;
            tracing::warn!(%service, %reason, "etcd watch interrupted; reading the service again");
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                match self.api.range_prefix(&self.prefix).await {
                    Ok((kvs, read_at)) => {
                        state = super::decode_all(service, kvs);
                        publish(&sender, state.values().cloned().collect());
                        revision = read_at;
                        break;
                    }
                    Err(error) => tracing::warn!(%service, %error, "cannot read the service from etcd"),
                }
            }
        }
    }

    /// Applies the changes after `revision` until the watch fails; returns why it did.
    async fn follow(
        &self,
        sender: &watch::Sender<Instances>,
        state: &mut BTreeMap<Vec<u8>, ServiceInstance>,
        revision: i64,
        backoff: &mut Backoff,
    ) -> String {
        let mut lines = match self.api.watch_prefix(&self.prefix, revision + 1).await {
            Ok(lines) => lines,
            Err(error) => return error.to_string(),
        };
        loop {
            let line = match lines.next::<WatchLine>().await {
                Ok(Some(line)) => line,
                Ok(None) => return "etcd closed the watch stream".to_owned(),
                Err(reason) => return reason,
            };
            if let Some(error) = line.error {
                return format!("etcd ended the watch: {error}");
            }
            let Some(result) = line.result else { continue };
            if result.canceled {
                return format!(
                    "etcd cancelled the watch ({}; compacted at revision {})",
                    result.cancel_reason, result.compact_revision
                );
            }
            if result.created {
                backoff.reset();
            }
            if result.events.is_empty() {
                continue;
            }
            for event in result.events {
                let Ok(kv) = event.kv.decode() else {
                    tracing::warn!(service = %self.service, "etcd watch event with a malformed key skipped");
                    continue;
                };
                let instance = match event.kind {
                    EventKind::Put => decode(&self.service, &kv.value),
                    EventKind::Delete => None,
                };
                match instance {
                    Some(instance) => state.insert(kv.key, instance),
                    None => state.remove(&kv.key),
                };
            }
            publish(sender, state.values().cloned().collect());
        }
    }
}
