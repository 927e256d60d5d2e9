//! What can go wrong when building or using a registry.

/// Errors of every registry backend.
///
/// Not `#[non_exhaustive]`: a caller maps these exhaustively (configuration errors stop start-up,
/// `Unavailable` becomes 503 at the edge), so a new variant should break its build.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An address in `registry.services` cannot be parsed. Names the service, the entry's position
    /// and its text.
    #[error("registry.services.{service}[{index}]: invalid instance address `{entry}`: {reason}")]
    InvalidAddress {
        /// The service the entry is listed under.
        service: String,
        /// The entry's position in the service's list, from 0.
        index: usize,
        /// The entry as written.
        entry: String,
        /// What is wrong and what is expected instead.
        reason: String,
    },
    /// Two entries in `registry.services` give a service the same instance.
    #[error("registry.services.{service}: instance `{id}` is listed more than once")]
    DuplicateInstance {
        /// The service the entries are listed under.
        service: String,
        /// The instance id both entries derive.
        id: String,
    },
    /// The backend's settings cannot work (a URL that does not parse, in-cluster credentials
    /// missing outside a cluster). Names the key and what is wrong.
    #[error("{key}: {reason}")]
    InvalidConfig {
        /// The configuration key at fault, e.g. `registry.etcd.endpoints`.
        key: String,
        /// What is wrong and what is expected instead.
        reason: String,
    },
    /// A registration was refused because the instance is incomplete or malformed.
    #[error("cannot register instance `{id}` of service `{service}`: {reason}")]
    InvalidInstance {
        /// The instance's service, as given.
        service: String,
        /// The instance's id, as given.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend could not be reached or answered with an error. Never produced by the static
    /// backend, which lives in the process; remote backends (etcd, Consul, Kubernetes) return it so
    /// a caller can retry or answer 503.
    #[error("service registry `{backend}` is unavailable: {reason}")]
    Unavailable {
        /// The backend's name, as [`crate::ServiceRegistry::name`] gives it.
        backend: &'static str,
        /// What failed, for operators (no secrets).
        reason: String,
    },
}
