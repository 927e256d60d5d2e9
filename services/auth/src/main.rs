//! `auth-service`: the auth service as its own process (distributed mode). Configuration, ports
//! and peers as for every service: see `keel_service::run_standalone`.

use std::process::ExitCode;

use keel_auth::{AuthDeps, AuthService};
use keel_service::HostedService;

fn main() -> ExitCode {
    keel_service::run_standalone(
        "auth",
        Box::new(|kernel, shared| {
            Box::pin(async move {
                let service =
                    AuthService::build(&kernel, AuthDeps::new(shared.clients, shared.events)).await?;
                service.start_background(&kernel);
                let grpc = service.grpc_service();
                Ok(HostedService {
                    name: "auth".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    rest: service.router(),
                    grpc: Box::new(move |router| router.add_service(grpc)),
                })
            })
        }),
    )
}
