//! Open-loop and closed-loop load drivers.
//!
//! Open loop: requests start on a fixed schedule whatever the latency, and each latency is
//! measured from the moment the request was *due*, so a stall shows up in the percentiles instead
//! of silently lowering the offered rate (coordinated omission). Closed loop: a fixed number of
//! workers each send the next request when the previous one answered; its throughput at
//! saturation is the figure to read, not its latency.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::Samples;

/// Offers `rate` calls per second for `duration`.
pub(crate) async fn open_loop<F, Fut>(rate: f64, duration: Duration, call: F) -> (Samples, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round() as u32;
    let start = Instant::now();
    let mut running = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i;
        tokio::time::sleep_until(due.into()).await;
        let call = Arc::clone(&call);
        running.push(tokio::spawn(async move {
            let outcome = call().await;
            (due.elapsed(), outcome)
        }));
    }
    let mut samples = Samples::default();
    for task in running {
        match task.await {
            Ok((latency, Ok(()))) => samples.record(latency),
            Ok((_, Err(why))) => samples.fail(why),
            Err(join) => samples.fail(join.to_string()),
        }
    }
    (samples, start.elapsed())
}

/// Runs `workers` loops of `call` for `duration`; `make` builds each worker's call (its own state).
pub(crate) async fn closed_loop<M, F, Fut>(workers: usize, duration: Duration, make: M) -> (Samples, Duration)
where
    M: Fn(usize) -> F,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut running = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mut call = make(worker);
        running.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < deadline {
                let began = Instant::now();
                match call().await {
                    Ok(()) => samples.record(began.elapsed()),
                    Err(why) => samples.fail(why),
                }
            }
            samples
        }));
    }
    let mut samples = Samples::default();
    for task in running {
        match task.await {
            Ok(worker) => samples.merge(worker),
            Err(join) => samples.fail(join.to_string()),
        }
    }
    (samples, start.elapsed())
}
