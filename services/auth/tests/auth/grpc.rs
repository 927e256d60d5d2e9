//! The gRPC face over a real listener: the same behaviour as REST, errors as status codes.

use keel_proto::auth::v1 as pb;
use keel_proto::auth::v1::auth_service_client::AuthServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Store, TestApp, claims};

/// Serves the app's gRPC service on a free port; returns a client.
async fn serve(app: &TestApp) -> anyhow::Result<AuthServiceClient<Channel>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let service = app.service.grpc_service();
    let shutdown = app.kernel.shutdown_token();
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    });
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(AuthServiceClient::new(channel))
}

fn login(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.to_owned(),
        password: password.to_owned(),
        client: Some(pb::ClientInfo {
            ip: "203.0.113.7".to_owned(),
            user_agent: "grpc-test".to_owned(),
            actor_id: String::new(),
        }),
    }
}

#[tokio::test]
async fn grpc_login_validate_list_and_revoke_behave_as_rest() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    let user_id = app.peers.identity.add("ada@example.com", "pw", true);
    let mut client = serve(&app).await?;

    let pair = client.login(login("ada@example.com", "pw")).await?.into_inner();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    let validated = client
        .validate_token(pb::ValidateTokenRequest {
            access_token: pair.access_token.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(validated.user_id, user_id.to_string());
    assert_eq!(validated.session_id, claims(&pair.access_token)?.sid);

    let sessions = client
        .list_sessions(pb::ListSessionsRequest {
            user_id: user_id.to_string(),
        })
        .await?
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].ip, "203.0.113.7");
    assert_eq!(sessions[0].user_agent, "grpc-test");

    let revoked = client
        .revoke_user_sessions(pb::RevokeUserSessionsRequest {
            user_id: user_id.to_string(),
            client: None,
        })
        .await?
        .into_inner();
    assert_eq!(revoked.revoked, 1);
    let again = client
        .revoke_user_sessions(pb::RevokeUserSessionsRequest {
            user_id: user_id.to_string(),
            client: None,
        })
        .await?
        .into_inner();
    assert_eq!(again.revoked, 0, "idempotent");
    let refreshed = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: pair.refresh_token,
            client: None,
        })
        .await;
    assert_eq!(refreshed.map(|_| ()).unwrap_err().code(), Code::Unauthenticated);
    app.kernel.shutdown();
    Ok(())
}

#[tokio::test]
async fn grpc_errors_carry_their_status_codes() -> anyhow::Result<()> {
    let store = Store::sqlite()?;
    let app = TestApp::spawn(&store, &[]).await?;
    app.peers.identity.add("ada@example.com", "pw", true);
    let mut client = serve(&app).await?;

    let wrong = client.login(login("ada@example.com", "nope")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), "invalid e-mail or password");
    let not_a_uuid = client
        .list_sessions(pb::ListSessionsRequest {
            user_id: "me".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_a_uuid.code(), Code::InvalidArgument);
    let forged = client
        .validate_token(pb::ValidateTokenRequest {
            access_token: "e30.e30.e30".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    let jwks = client.jwks(pb::JwksRequest {}).await?.into_inner().jwks_json;
    let jwks: serde_json::Value = serde_json::from_str(&jwks)?;
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    app.kernel.shutdown();
    Ok(())
}
