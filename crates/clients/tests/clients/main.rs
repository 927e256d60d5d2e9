//! Integration tests of keel-clients: the gRPC clients against real tonic servers on loopback
//! ports, found through a real `StaticRegistry`; the servers are small in-memory doubles of the
//! peer services (see `fakes`).

mod audit;
mod auth;
mod authz;
mod balancing;
mod cache;
mod fakes;
mod identity;
mod resilience;
mod support;
