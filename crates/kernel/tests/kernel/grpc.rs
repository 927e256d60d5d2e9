//! The gRPC foundation: deadlines are enforced, in-flight calls drain on shutdown, the standard
//! health service answers.

use std::net::SocketAddr;
use std::time::Duration;

use keel_grpc::GrpcServer;
use keel_testkit::echo::echo_client::EchoClient;
use keel_testkit::echo::echo_server::{Echo, EchoServer};
use keel_testkit::echo::{EchoReply, EchoRequest};
use tokio_util::sync::CancellationToken;

use crate::support::config;

/// Answers after sleeping for the number of milliseconds in the message.
struct Sleepy;

#[tonic::async_trait]
impl Echo for Sleepy {
    async fn echo(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let message = request.into_inner().message;
        let millis: u64 = message
            .parse()
            .map_err(|_| tonic::Status::invalid_argument("not a number"))?;
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(tonic::Response::new(EchoReply {
            message,
            ..EchoReply::default()
        }))
    }
}

async fn start(
    vars: &[(&str, &str)],
    client_deadline_ms: Option<u64>,
    shutdown: &CancellationToken,
) -> (
    EchoClient<keel_grpc::ClientService<tonic::transport::Channel>>,
    tokio::task::JoinHandle<Result<(), keel_grpc::GrpcError>>,
) {
    let config = config(vars);
    let grpc = GrpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &config.kernel().grpc)
        .await
        .expect("bind");
    let address = grpc.local_addr();
    let served = tokio::spawn(grpc.serve(
        |r| r.add_service(EchoServer::new(Sleepy)),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    let mut client_config = config.kernel().grpc.clone();
    if let Some(deadline) = client_deadline_ms {
        client_config.default_deadline_ms = deadline;
    }
    let channel = keel_grpc::connect_lazy(&format!("http://{address}"), &client_config).expect("channel");
    (EchoClient::new(channel), served)
}

#[tokio::test]
async fn a_call_without_its_own_deadline_gets_the_default_one() {
    let shutdown = CancellationToken::new();
    let (mut client, _served) = start(&[("KEEL_GRPC__DEFAULT_DEADLINE_MS", "100")], None, &shutdown).await;
    let call = client.echo(EchoRequest {
        message: "30000".into(),
    });
    // The guard only keeps a broken deadline from hanging the suite; the deadline itself is 100 ms.
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the deadline ended the call");
    let status = outcome.unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let quick = client
        .echo(EchoRequest { message: "1".into() })
        .await
        .expect("a fast call succeeds");
    assert_eq!(quick.into_inner().message, "1");
    shutdown.cancel();
}

#[tokio::test]
async fn the_server_caps_deadlines_whatever_the_client_asks() {
    let shutdown = CancellationToken::new();
    let vars = [
        ("KEEL_GRPC__DEFAULT_DEADLINE_MS", "100"),
        ("KEEL_GRPC__MAX_DEADLINE_MS", "200"),
    ];
    // The client asks for a minute; the server allows 200 ms.
    let (mut client, _served) = start(&vars, Some(60_000), &shutdown).await;
    let call = client.echo(EchoRequest {
        message: "30000".into(),
    });
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the server's cap ended the call");
    assert!(outcome.is_err());
    shutdown.cancel();
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_call() {
    let shutdown = CancellationToken::new();
    let (mut client, served) = start(&[], None, &shutdown).await;
    let in_flight = tokio::spawn(async move {
        client
            .echo(EchoRequest {
                message: "400".into(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    let reply = in_flight
        .await
        .expect("task")
        .expect("the in-flight call completes");
    assert_eq!(reply.into_inner().message, "400");
    served.await.expect("task").expect("the server stops cleanly");
}
