//! Components start in order and stop in reverse; a failed start unwinds what had started.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keel_kernel::{Component, ComponentError, Kernel, KernelError, KernelHandle};
use tokio_util::sync::CancellationToken;

use crate::support::config;

struct Recorder {
    name: &'static str,
    fail_start: bool,
    journal: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Component for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    async fn start(&self, kernel: &KernelHandle) -> Result<(), ComponentError> {
        self.journal
            .lock()
            .expect("lock")
            .push(format!("start {}", self.name));
        if self.fail_start {
            return Err(ComponentError::new("cannot bind"));
        }
        let token = kernel.shutdown_token();
        let journal = self.journal.clone();
        let name = self.name;
        kernel.spawn(name, async move {
            token.cancelled().await;
            journal.lock().expect("lock").push(format!("task {name} ended"));
            Ok::<(), String>(())
        });
        Ok(())
    }
    async fn stop(&self) -> Result<(), ComponentError> {
        self.journal
            .lock()
            .expect("lock")
            .push(format!("stop {}", self.name));
        Ok(())
    }
}

fn recorder(name: &'static str, fail_start: bool, journal: &Arc<Mutex<Vec<String>>>) -> Arc<dyn Component> {
    Arc::new(Recorder {
        name,
        fail_start,
        journal: journal.clone(),
    })
}

#[tokio::test]
async fn components_start_in_order_and_stop_in_reverse_on_shutdown() {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let token = CancellationToken::new();
    let kernel = Kernel::builder(config(&[]))
        .without_global_telemetry()
        .with_shutdown_token(token.clone())
        .build()
        .expect("kernel");
    let components = vec![recorder("db", false, &journal), recorder("http", false, &journal)];
    let run = tokio::spawn(kernel.run(components));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    token.cancel();
    run.await.expect("task").expect("clean run");
    let journal = journal.lock().expect("lock").clone();
    assert_eq!(&journal[..2], ["start db", "start http"]);
    let stop_http = journal
        .iter()
        .position(|e| e == "stop http")
        .expect("http stopped");
    let stop_db = journal.iter().position(|e| e == "stop db").expect("db stopped");
    assert!(stop_http < stop_db, "reverse order: {journal:?}");
    assert!(journal.contains(&"task db ended".to_owned()) && journal.contains(&"task http ended".to_owned()));
}

#[tokio::test]
async fn a_failed_start_stops_what_had_started_and_reports_the_component() {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let kernel = Kernel::builder(config(&[]))
        .without_global_telemetry()
        .build()
        .expect("kernel");
    let components = vec![
        recorder("db", false, &journal),
        recorder("http", true, &journal),
        recorder("never", false, &journal),
    ];
    let error = kernel.run(components).await.unwrap_err();
    assert!(
        matches!(error, KernelError::Start { ref name, .. } if name == "http"),
        "{error}"
    );
    let journal = journal.lock().expect("lock").clone();
    assert!(!journal.contains(&"start never".to_owned()));
    assert!(journal.contains(&"stop db".to_owned()));
    assert!(
        !journal.contains(&"stop http".to_owned()),
        "a component that did not start is not stopped"
    );
}

#[tokio::test]
async fn a_failing_background_task_stops_the_process_with_its_error() {
    let kernel = Kernel::builder(config(&[]))
        .without_global_telemetry()
        .build()
        .expect("kernel");
    kernel
        .handle()
        .spawn("doomed", async { Err::<(), _>("lost the listener") });
    // Without the failing task nothing would end this run.
    let error = kernel.run(Vec::new()).await.unwrap_err();
    assert!(
        matches!(error, KernelError::Task { ref name, ref reason } if name == "doomed" && reason == "lost the listener"),
        "{error}"
    );
}
