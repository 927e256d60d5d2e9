//! Integration tests of the kernel and the foundations composed: one test binary, several modules.

mod grpc;
mod lifecycle;
mod metrics;
mod readiness;
mod secrets;
mod support;
mod trace_propagation;
