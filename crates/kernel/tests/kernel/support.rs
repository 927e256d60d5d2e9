//! Shared set-up: the test kit's configuration and log capture, and an HTTP client.

pub(crate) use keel_testkit::{capture_logs, test_config as config};

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}
