//! What a process is made of: components the kernel starts in order and stops in reverse.

use async_trait::async_trait;

use crate::KernelHandle;

/// Why a component could not start or stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error from anything displayable.
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// A part of a process with a lifecycle: an HTTP server, a gRPC server, a consumer, a scheduler.
///
/// `start` should do the fallible set-up (bind, connect, migrate) and hand long-running work to
/// [`KernelHandle::spawn`], returning promptly; that work must end when
/// [`KernelHandle::shutdown_token`] is cancelled. `stop` runs after the token is cancelled, in
/// reverse start order, for anything that must be released explicitly (deregistration, flushing).
#[async_trait]
pub trait Component: Send + Sync {
    /// Name used in logs.
    fn name(&self) -> &str;

    /// Starts the component.
    async fn start(&self, kernel: &KernelHandle) -> Result<(), ComponentError>;

    /// Releases what the component holds; the default does nothing.
    async fn stop(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
