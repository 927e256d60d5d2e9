//! `authz-service`: the authz service as its own process (distributed mode). Configuration, ports
//! and peers as for every service: see `keel_service::run_standalone`.

use std::process::ExitCode;

use keel_authz::{AuthzDeps, AuthzService};
use keel_service::HostedService;

fn main() -> ExitCode {
    keel_service::run_standalone(
        "authz",
        Box::new(|kernel, shared| {
            Box::pin(async move {
                let deps = AuthzDeps {
                    clients: shared.clients,
                    events: shared.events,
                    verifier: shared.verifier,
                };
                let service = AuthzService::build(&kernel, deps).await?;
                service.start_background(&kernel);
                let grpc = service.grpc_service();
                Ok(HostedService {
                    name: "authz".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    rest: service.router(),
                    grpc: Box::new(move |router| router.add_service(grpc)),
                })
            })
        }),
    )
}
