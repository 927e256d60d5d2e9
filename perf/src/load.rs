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
///
/// The schedule is kept by a dedicated OS thread sleeping with the kernel's timer (tens of
/// microseconds of slack) rather than tokio's timer wheel, whose 1 ms resolution would add up to a
/// millisecond to every latency measured from the due time and hide sub-millisecond paths.
pub(crate) async fn open_loop<F, Fut>(rate: f64, duration: Duration, call: F) -> (Samples, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round() as u32;
    let runtime = tokio::runtime::Handle::current();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval * i;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                // This is the pacing thread's own OS thread, not a tokio worker: blocking it is the point.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(wait);
            }
            let call = Arc::clone(&call);
            let task = runtime.spawn(async move {
                let outcome = call().await;
                (due.elapsed(), outcome)
            });
            if sender.send(task).is_err() {
                return;
            }
        }
    });
    let mut samples = Samples::default();
    while let Some(task) = receiver.recv().await {
        match task.await {
            Ok((latency, Ok(()))) => samples.record(latency),
            Ok((_, Err(why))) => samples.fail(why),
            Err(join) => samples.fail(join.to_string()),
        }
    }
    if pacer.join().is_err() {
        samples.fail("the pacing thread panicked".to_owned());
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
