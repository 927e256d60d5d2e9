//! End-to-end tests of the all-in-one platform, over HTTP only, through the gateway on its public
//! port, as a client of DESIGN §9 would use it.

mod audit_restart;
mod edges;
mod journey;
mod seeding;
mod support;
