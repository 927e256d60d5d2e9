//! Generated gRPC messages, clients and servers of Keel's core services.
//!
//! Why this crate exists: the `.proto` files under the workspace's `proto/` are the contract between
//! services; compiling them once here gives every service and every client the same types. Nothing
//! but generated code lives here: conversions to domain types belong to the crates that own the
//! domain (`keel-clients` for callers, each service for its server).

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// `keel.identity.v1`: users, credentials, e-mail verification, password reset.
pub mod identity {
    /// Version 1 of the identity API.
    pub mod v1 {
        tonic::include_proto!("keel.identity.v1");
    }
}

/// `keel.auth.v1`: login, refresh-token families, signing keys.
pub mod auth {
    /// Version 1 of the auth API.
    pub mod v1 {
        tonic::include_proto!("keel.auth.v1");
    }
}

/// `keel.authz.v1`: permissions, roles, assignments, checks.
pub mod authz {
    /// Version 1 of the authz API.
    pub mod v1 {
        tonic::include_proto!("keel.authz.v1");
    }
}

/// `keel.audit.v1`: the append-only audit log.
pub mod audit {
    /// Version 1 of the audit API.
    pub mod v1 {
        tonic::include_proto!("keel.audit.v1");
    }
}

/// Well-known protobuf types used in the messages (timestamps).
pub use prost_types;
