//! `audit-service`: the audit service as its own process (distributed mode). Configuration, ports
//! and peers as for every service: see `keel_service::run_standalone`.

use std::process::ExitCode;

use keel_audit::{AuditDeps, AuditService};
use keel_service::HostedService;

fn main() -> ExitCode {
    keel_service::run_standalone(
        "audit",
        Box::new(|kernel, shared| {
            Box::pin(async move {
                let deps = AuditDeps {
                    clients: shared.clients,
                    verifier: shared.verifier,
                };
                let service = AuditService::build(&kernel, deps).await?;
                service.start_background(&kernel);
                let grpc = service.grpc_service();
                Ok(HostedService {
                    name: "audit".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    rest: service.router(),
                    grpc: Box::new(move |router| router.add_service(grpc)),
                })
            })
        }),
    )
}
