//! The registry as a caller sees it: each backend built from configuration, registered into,
//! discovered and watched.
//!
//! The static backend needs nothing; the etcd backend runs against a real etcd (`ETCD_URL`); no
//! Consul or Kubernetes server can run here, so those backends run against stubs: small servers in
//! this binary that answer with responses recorded from the documented APIs (`tests/fixtures/`).

mod consul;
mod etcd;
mod kubernetes;
mod static_backend;
mod stub;
mod support;
