//! A capture sees its own thread's logs even when another thread, with no subscriber, reached the
//! callsite first. Alone in its test binary on purpose: the failure it guards against needs exactly
//! one capture to exist in the process.

use keel_config::LogFormat;
use keel_testkit::capture_logs;

fn log_at_a_shared_callsite() {
    tracing::info!("reached the shared callsite");
}

#[test]
fn a_callsite_first_reached_on_another_thread_still_reaches_this_threads_capture() {
    let captured = capture_logs(LogFormat::Compact);
    // The other thread has no subscriber of its own and is the first to reach the callsite.
    let other = std::thread::spawn(log_at_a_shared_callsite).join();
    assert!(other.is_ok(), "the other thread ran");
    log_at_a_shared_callsite();
    let contents = captured.logs.contents();
    assert!(
        contents.contains("reached the shared callsite"),
        "the capture missed its own thread's event: {contents:?}"
    );
}
