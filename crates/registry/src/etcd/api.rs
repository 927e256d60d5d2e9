//! The few etcd v3 calls the backend makes, through etcd's JSON gRPC gateway.
//!
//! Why the gateway and not the `etcd-client` crate: etcd-client 0.21 does use tonic 0.14 like the
//! workspace, but its build script compiles etcd's `.proto` files with `prost-build`, which needs a
//! system `protoc`; the workspace compiles its own protos with `protox` precisely so that no build
//! needs one. The gateway is a documented etcd API ("gRPC gateway": the gRPC services as JSON over
//! HTTP, int64 as strings, keys and values base64), served under `/v3/` by every etcd since 3.4
//! (3.4 also keeps the older `/v3beta/`, which 3.5 dropped; checked against Debian bookworm's
//! etcd 3.4.23, which answers both). We need six unary calls and one stream, over `reqwest`, which
//! the workspace already has.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::wire::{KeepAliveAnswer, KeyValue, LeaseAnswer, RangeAnswer, RawKeyValue};
use crate::json_lines::JsonLines;
use crate::remote::{chain, unavailable};
use crate::{RegistryError, remote};

const BACKEND: &str = "etcd";

/// A client of one etcd cluster: requests go to the member that answered last, and to the next one
/// when it cannot be reached.
#[derive(Clone)]
pub(super) struct EtcdApi {
    client: reqwest::Client,
    endpoints: Arc<[reqwest::Url]>,
    preferred: Arc<AtomicUsize>,
    timeout: Duration,
}

/// A granted lease.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) id: i64,
    pub(super) ttl: Duration,
}

impl EtcdApi {
    /// A client of the members at `endpoints`; `timeout` bounds each unary call.
    pub(super) fn new(endpoints: &[String], timeout: Duration) -> Result<Self, RegistryError> {
        let endpoints = endpoints
            .iter()
            .map(|e| {
                reqwest::Url::parse(e).map_err(|error| RegistryError::InvalidConfig {
                    key: "registry.etcd.endpoints".to_owned(),
                    reason: format!("`{e}` is not a URL: {error}"),
                })
            })
            .collect::<Result<Arc<[_]>, _>>()?;
        if endpoints.is_empty() {
            return Err(RegistryError::InvalidConfig {
                key: "registry.etcd.endpoints".to_owned(),
                reason: "lists no endpoint".to_owned(),
            });
        }
        Ok(Self {
            client: remote::http_client(BACKEND, timeout, |builder| builder)?,
            endpoints,
            preferred: Arc::new(AtomicUsize::new(0)),
            timeout,
        })
    }

    /// POSTs `body` to `path` on the preferred member, then on each other one while they cannot be
    /// reached. An answer that is an error (4xx, 5xx) is returned as it is, not retried elsewhere.
    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, RegistryError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.endpoints.len() {
            let index = (first + step) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            let url = endpoint
                .join(path)
                .map_err(|e| unavailable(BACKEND, e.to_string()))?;
            let mut request = self.client.post(url).json(body);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            match request.send().await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) => failures.push(format!("{endpoint}: {}", chain(&error))),
            }
        }
        Err(unavailable(BACKEND, failures.join("; ")))
    }

    /// A unary call: the answer as `T`, or why there is none.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, RegistryError> {
        let response = self.post(path, &body, Some(self.timeout)).await?;
        let text = read(path, response).await?;
        serde_json::from_str(&text).map_err(|e| unavailable(BACKEND, format!("{path} answered {e}: {text}")))
    }

    /// A lease of `ttl_secs` (etcd may raise it to its minimum).
    pub(super) async fn grant(&self, ttl_secs: u64) -> Result<Lease, RegistryError> {
        let granted: LeaseAnswer = self
            .call("/v3/lease/grant", json!({"TTL": ttl_secs.to_string()}))
            .await?;
        match u64::try_from(granted.ttl) {
            Ok(ttl) if ttl > 0 && granted.id != 0 => Ok(Lease {
                id: granted.id,
                ttl: Duration::from_secs(ttl),
            }),
            _ => Err(unavailable(BACKEND, "granted no lease")),
        }
    }

    /// Renews a lease; `None` when it has already expired (or never existed).
    pub(super) async fn keep_alive(&self, lease: i64) -> Result<Option<Duration>, RegistryError> {
        // A bidirectional stream in gRPC; through the gateway, one request gives one answer.
        let answer: KeepAliveAnswer = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        let Some(result) = answer.result else {
            return Err(unavailable(BACKEND, "keep-alive answered no result"));
        };
        Ok(u64::try_from(result.ttl)
            .ok()
            .filter(|ttl| *ttl > 0)
            .map(Duration::from_secs))
    }

    /// Revokes a lease, deleting the keys under it. An unknown (expired) lease is no error.
    pub(super) async fn revoke(&self, lease: i64) -> Result<(), RegistryError> {
        let path = "/v3/lease/revoke";
        let body = json!({"ID": lease.to_string()});
        let response = self.post(path, &body, Some(self.timeout)).await?;
        // etcd answers 404 ("requested lease not found") for a lease that expired meanwhile.
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        read(path, response).await.map(drop)
    }

    /// Writes `key` = `value` under `lease`.
    pub(super) async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<(), RegistryError> {
        let body =
            json!({"key": BASE64.encode(key), "value": BASE64.encode(value), "lease": lease.to_string()});
        self.call::<serde_json::Value>("/v3/kv/put", body).await.map(drop)
    }

    /// Deletes `key`, if it exists.
    pub(super) async fn delete(&self, key: &[u8]) -> Result<(), RegistryError> {
        self.call::<serde_json::Value>("/v3/kv/deleterange", json!({"key": BASE64.encode(key)}))
            .await
            .map(drop)
    }

    /// Every key starting with `prefix`, and the store's revision they were read at.
    pub(super) async fn range_prefix(&self, prefix: &[u8]) -> Result<(Vec<KeyValue>, i64), RegistryError> {
        let body = json!({"key": BASE64.encode(prefix), "range_end": BASE64.encode(range_end(prefix))});
        let answer: RangeAnswer = self.call("/v3/kv/range", body).await?;
        let kvs = answer
            .kvs
            .into_iter()
            .map(RawKeyValue::decode)
            .collect::<Result<_, _>>()
            .map_err(|e| unavailable(BACKEND, format!("range answered {e}")))?;
        Ok((kvs, answer.header.revision))
    }

    /// Opens a watch of every key starting with `prefix`, from `start_revision` on. The stream
    /// stays open until etcd or the network ends it; no timeout applies to it.
    pub(super) async fn watch_prefix(
        &self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<JsonLines, RegistryError> {
        let body = json!({"create_request": {
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(range_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let response = self.post("/v3/watch", &body, None).await?;
        if !response.status().is_success() {
            return Err(read("/v3/watch", response)
                .await
                .err()
                .unwrap_or_else(|| unavailable(BACKEND, "/v3/watch failed")));
        }
        Ok(JsonLines::new(response))
    }
}

/// The end of the range of keys starting with `prefix`: the prefix with its last byte below 0xff
/// incremented (etcd's "prefix" convention); `\0` (every key) when there is none.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The body of a successful answer; an error answer as [`RegistryError::Unavailable`] with etcd's
/// message.
async fn read(path: &str, response: reqwest::Response) -> Result<String, RegistryError> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| unavailable(BACKEND, format!("{path}: {}", chain(&e))))?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(EtcdFailure::from_answer(path, status, &text).into())
    }
}

/// An error answer of the gateway: `{"error": "...", "message": "...", "code": 5}`.
struct EtcdFailure {
    path: String,
    status: reqwest::StatusCode,
    message: String,
}

impl EtcdFailure {
    fn from_answer(path: &str, status: reqwest::StatusCode, text: &str) -> Self {
        #[derive(Deserialize)]
        struct Answer {
            message: String,
        }
        let message = serde_json::from_str::<Answer>(text)
            .map(|a| a.message)
            .unwrap_or_else(|_| text.chars().take(200).collect());
        Self {
            path: path.to_owned(),
            status,
            message,
        }
    }
}

impl From<EtcdFailure> for RegistryError {
    fn from(failure: EtcdFailure) -> Self {
        unavailable(
            BACKEND,
            format!(
                "{} answered {}: {}",
                failure.path, failure.status, failure.message
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_of_a_prefix_ends_just_after_its_last_key() {
        assert_eq!(range_end(b"/keel/services/audit/"), b"/keel/services/audit0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
    }
}
