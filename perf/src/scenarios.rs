//! The scenarios: each builds its calls, runs a load driver and returns its figures as JSON.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use keel_proto::audit::v1::{AuditRecord, RecordRequest, audit_service_client::AuditServiceClient};
use keel_proto::authz::v1::{HasPermissionRequest, authz_service_client::AuthzServiceClient};
use serde_json::{Value, json};

use crate::load::{closed_loop, open_loop};

/// Where the platform's public HTTP entry is and whom to log in as.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HttpTarget {
    /// Base URL of the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// E-mail of an existing user.
    #[arg(long)]
    email: String,
    /// Their password.
    #[arg(long)]
    password: String,
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")
}

async fn login(client: &reqwest::Client, target: &HttpTarget) -> Result<Value, String> {
    let response = client
        .post(format!("{}/api/v1/auth/login", target.base))
        .json(&json!({"email": target.email, "password": target.password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

async fn channel(endpoint: String) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(endpoint)?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

fn to_json(report: crate::stats::Report) -> anyhow::Result<Value> {
    serde_json::to_value(report).context("report")
}

/// Open-loop logins.
pub(crate) async fn login_open(target: &HttpTarget, rate: f64, duration: Duration) -> anyhow::Result<Value> {
    let client = http_client()?;
    login(&client, target)
        .await
        .map_err(anyhow::Error::msg)
        .context("warm-up login")?;
    let target = target.clone();
    let (samples, elapsed) = open_loop(rate, duration, move || {
        let (client, target) = (client.clone(), target.clone());
        async move { login(&client, &target).await.map(drop) }
    })
    .await;
    let mut report = to_json(samples.report("login-open", elapsed))?;
    report["offered_per_sec"] = json!(rate);
    Ok(report)
}

/// Closed-loop logins.
pub(crate) async fn login_closed(
    target: &HttpTarget,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Value> {
    let client = http_client()?;
    let (samples, elapsed) = closed_loop(concurrency, duration, |_| {
        let (client, target) = (client.clone(), target.clone());
        move || {
            let (client, target) = (client.clone(), target.clone());
            async move { login(&client, &target).await.map(drop) }
        }
    })
    .await;
    let mut report = to_json(samples.report("login-closed", elapsed))?;
    report["concurrency"] = json!(concurrency);
    Ok(report)
}

/// Refresh-token rotation, one session per client.
pub(crate) async fn refresh(
    target: &HttpTarget,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Value> {
    let client = http_client()?;
    let mut tokens = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let pair = login(&client, target)
            .await
            .map_err(anyhow::Error::msg)
            .context("login")?;
        let token = pair["refresh_token"]
            .as_str()
            .context("refresh_token in login answer")?;
        tokens.push(Arc::new(Mutex::new(token.to_owned())));
    }
    let base = target.base.clone();
    let (samples, elapsed) = closed_loop(concurrency, duration, |worker| {
        let (client, base, current) = (client.clone(), base.clone(), Arc::clone(&tokens[worker]));
        move || {
            let (client, base, current) = (client.clone(), base.clone(), Arc::clone(&current));
            async move {
                let token = current.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let response = client
                    .post(format!("{base}/api/v1/auth/refresh"))
                    .json(&json!({"refresh_token": token}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body: Value = response.json().await.map_err(|e| e.to_string())?;
                let next = body["refresh_token"]
                    .as_str()
                    .ok_or_else(|| format!("{status}: {body}"))?;
                *current.lock().unwrap_or_else(PoisonError::into_inner) = next.to_owned();
                Ok(())
            }
        }
    })
    .await;
    let mut report = to_json(samples.report("refresh", elapsed))?;
    report["concurrency"] = json!(concurrency);
    Ok(report)
}

/// One argon2id hash's time, and the login throughput bound of this machine's cores.
///
/// The bound uses the faster of the two ways to hash: with working memory allocated once and
/// reused, as identity does, rather than allocated and zeroed per hash (also reported, as
/// `hash_ms_median_fresh_memory`). A faster hash raises the bound, so the login goal gets harder,
/// not easier.
pub(crate) fn argon2(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    samples: u32,
) -> anyhow::Result<Value> {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(memory_kib, iterations, parallelism, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let fresh = median_seconds(samples, || {
        hasher
            .hash_password(PASSWORD)
            .map(drop)
            .map_err(|e| anyhow::anyhow!("hash: {e}"))
    })?;
    let mut memory = Vec::new();
    let reused = median_seconds(samples, || hash_reusing(&hasher, &mut memory))?;
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let parallel = parallel_hashes_per_sec(&hasher, cores, Duration::from_secs(5));
    Ok(json!({
        "scenario": "argon2",
        "memory_kib": memory_kib, "iterations": iterations, "parallelism": parallelism,
        "hash_ms_median": reused * 1000.0,
        "hash_ms_median_fresh_memory": fresh * 1000.0,
        "cores": cores,
        "login_bound_per_sec": cores as f64 / reused,
        "parallel_hashes_per_sec": parallel,
    }))
}

const PASSWORD: &[u8] = b"correct horse battery staple";

/// The median time of `samples` runs of `work`.
fn median_seconds(samples: u32, mut work: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples.max(1) as usize);
    for _ in 0..samples.max(1) {
        let began = Instant::now();
        work()?;
        times.push(began.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// One hash into `memory`, grown on first use and reused after (what identity's hasher does).
fn hash_reusing(hasher: &argon2::Argon2<'_>, memory: &mut Vec<argon2::Block>) -> anyhow::Result<()> {
    let blocks = hasher.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut output = [0_u8; 32];
    hasher
        .hash_password_into_with_memory(PASSWORD, b"sixteen byte salt", &mut output, &mut memory[..blocks])
        .map_err(|e| anyhow::anyhow!("hash: {e}"))
}

/// Hashes per second with one hashing thread per core and nothing else running: what the machine
/// can really hash when every core hashes at once (memory bandwidth is shared). Each thread reuses
/// its working memory, as identity's hashing threads do.
fn parallel_hashes_per_sec(hasher: &argon2::Argon2<'_>, threads: usize, duration: Duration) -> f64 {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut memory = Vec::new();
                    let mut done = 0;
                    while Instant::now() < deadline {
                        if hash_reusing(hasher, &mut memory).is_ok() {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap_or(0)).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// Open-loop permission checks over gRPC.
pub(crate) async fn has_permission(
    grpc: String,
    user_id: String,
    permission: String,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Value> {
    let client = AuthzServiceClient::new(channel(grpc).await.context("connect to authz")?);
    let request = HasPermissionRequest {
        user_id,
        permission,
        resource: String::new(),
    };
    client
        .clone()
        .has_permission(request.clone())
        .await
        .context("warm-up check")?;
    let (samples, elapsed) = open_loop(rate, duration, move || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            let answer = client.has_permission(request).await.map_err(|s| s.to_string())?;
            if answer.into_inner().allowed {
                Ok(())
            } else {
                Err("denied".to_owned())
            }
        }
    })
    .await;
    let mut report = to_json(samples.report("has-permission", elapsed))?;
    report["offered_per_sec"] = json!(rate);
    Ok(report)
}

/// Closed-loop audit Record calls with batches.
pub(crate) async fn audit_record(
    grpc: String,
    batch: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Value> {
    let client = AuditServiceClient::new(channel(grpc).await.context("connect to audit")?);
    let (samples, elapsed) = closed_loop(concurrency, duration, |_| {
        let client = client.clone();
        move || {
            let mut client = client.clone();
            let records = (0..batch).map(|_| perf_record()).collect();
            async move {
                client
                    .record(RecordRequest { records })
                    .await
                    .map_err(|s| s.to_string())?;
                Ok(())
            }
        }
    })
    .await;
    let mut report = to_json(samples.report("audit-record", elapsed))?;
    let calls = report["throughput_per_sec"].as_f64().unwrap_or(0.0);
    report["batch"] = json!(batch);
    report["records_per_sec"] = json!(calls * batch as f64);
    Ok(report)
}

fn perf_record() -> AuditRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        action: "perf.record.created".to_owned(),
        actor_id: String::new(),
        target_type: "perf".to_owned(),
        target_id: "load".to_owned(),
        request_id: String::new(),
        ip: "127.0.0.1".to_owned(),
        user_agent: "keel-perf".to_owned(),
        occurred_at: Some(keel_proto::prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
        }),
        metadata_json: "{}".to_owned(),
        source: "perf".to_owned(),
        tenant_id: String::new(),
    }
}
