//! Integration tests of keel-authn: token verification against generated Ed25519 keys, the JWKS
//! cache, and the axum extractor and permission layer through a real router.

mod http;
mod keys;
mod rotation;
mod settings;
mod support;
mod verify;
