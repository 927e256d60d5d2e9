//! Small in-memory implementations of the four proto services: test doubles of the peers, served
//! by real tonic servers, built with the same `wire` helpers and conversions the real servers use.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod authz;
pub(crate) mod identity;
