//! The authz store: entities, migrations and reads.
//!
//! Why this module exists: everything that knows table and column names lives here; the engine
//! above it speaks in roles and permissions.

pub(crate) mod entities;
pub(crate) mod migration;
pub(crate) mod queries;
