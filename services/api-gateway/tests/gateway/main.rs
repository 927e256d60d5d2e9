//! The gateway end to end: real upstream servers on loopback ports, registered in a real static
//! registry, behind the gateway served by the keel-http stack, driven by a real HTTP client.

mod balancing;
mod buffering;
mod config;
mod cors;
mod doubles;
mod edge;
mod failures;
mod fast_path;
mod headers;
mod limits;
mod modules;
mod pooling;
mod rate_limit;
mod reload;
mod resilience;
mod routing;
mod streaming;
mod support;
mod upload;
mod websocket;
