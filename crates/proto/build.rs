//! Compiles the service protos under the workspace's `proto/` with a pure-Rust protobuf compiler
//! (no system `protoc`).

const PROTOS: [&str; 4] = [
    "keel/identity/v1/identity.proto",
    "keel/auth/v1/auth.proto",
    "keel/authz/v1/authz.proto",
    "keel/audit/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto");
    let descriptors = protox::compile(PROTOS, ["../../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
