//! What a Keel module declares about itself, read from its `module.yaml` and checked before
//! anything runs.
//!
//! Why this crate exists: a module's manifest (DESIGN §5) is read by more than one process. The
//! module host mounts the module's routes and registers its permissions; the gateway routes the
//! same paths to the host and checks the same permissions at the edge; `platformctl modules
//! validate` reports on it. Each reading the YAML its own way would let them disagree about what a
//! module serves, so the format, its rules and the resolution of a set of modules (duplicates,
//! missing or incompatible dependencies, cycles, start order) live here once.
//!
//! A manifest looks like this (the reference module's):
//!
//! ```yaml
//! name: blog
//! version: 0.1.0
//! dependencies:
//!   - core >= 0.1.0
//! permissions:
//!   - blog.post.create
//!   - blog.post.read
//! routes:
//!   - method: POST
//!     path: /api/v1/blog/posts
//!     permission: blog.post.create
//!   - method: GET
//!     path: /api/v1/blog/posts/:id
//!     permission: blog.post.read
//! ```
//!
//! The rules a manifest must keep are on [`Manifest`]; [`ModuleSet::resolve`] checks a set of
//! manifests against each other.

mod manifest;
mod names;
mod resolve;

pub use manifest::{Dependency, Manifest, ManifestError, Method, PathSegment, RoutePath, RouteSpec};
pub use names::{PermissionNameError, check_permission_name};
pub use resolve::{CORE_MODULE, ModuleSet, ResolveError};
/// Versions and version requirements, as manifests write them.
pub use semver::{Version, VersionReq};
