//! The gRPC API, chiefly `VerifyCredentials` as auth's login uses it, and re-hashing on login.

use std::time::{Duration, Instant};

use keel_clients::wire::from_status;
use keel_clients::{CredentialsVerdict, IdentityClient as _, ServiceError};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::identity_service_client::IdentityServiceClient;
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::support::{Backend, GOOD_PASSWORD, TestApp, on_both_backends, token_in};

on_both_backends!(
    verify_credentials_tells_valid_from_invalid_and_hides_unknown_accounts,
    verify_credentials_refuses_unverified_addresses_when_configured,
    grpc_errors_carry_their_codes_and_field_violations,
    a_login_on_weaker_hash_parameters_re_hashes_the_password,
    the_account_methods_work_over_grpc_as_over_rest,
);

/// Serves the app's gRPC service on a free port; returns a client and the server's stop signal.
async fn grpc(app: &TestApp) -> (IdentityServiceClient<Channel>, CancellationToken) {
    let config = keel_testkit::test_config(&[]);
    let server = keel_grpc::GrpcServer::bind("127.0.0.1:0".parse().expect("addr"), &config.kernel().grpc)
        .await
        .expect("bind");
    let address = server.local_addr();
    let stop = CancellationToken::new();
    let service = app.service.grpc_service();
    tokio::spawn(server.serve(
        move |r| r.add_service(service),
        stop.clone(),
        Duration::from_secs(1),
    ));
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    (IdentityServiceClient::new(channel), stop)
}

fn credentials(email: &str, password: &str) -> pb::VerifyCredentialsRequest {
    pb::VerifyCredentialsRequest {
        email: email.to_owned(),
        password: password.to_owned(),
    }
}

async fn verify_credentials_tells_valid_from_invalid_and_hides_unknown_accounts(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let id = app.register("ada@example.com").await;
    let (mut client, stop) = grpc(&app).await;

    let valid = client
        .verify_credentials(credentials("ADA@example.com", GOOD_PASSWORD))
        .await
        .expect("call");
    let valid = valid.into_inner();
    assert_eq!(valid.verdict(), pb::CredentialsVerdict::Valid);
    assert_eq!(valid.user.as_ref().map(|u| u.id.clone()), Some(id.to_string()));

    for (email, password) in [
        ("ada@example.com", "wrong-password-entirely"),
        ("nobody@example.com", GOOD_PASSWORD),
        ("not an address", GOOD_PASSWORD),
    ] {
        let answer = client
            .verify_credentials(credentials(email, password))
            .await
            .expect("call")
            .into_inner();
        assert_eq!(answer.verdict(), pb::CredentialsVerdict::Invalid, "{email}");
        assert!(answer.user.is_none());
    }
    stop.cancel();
    app.finish().await;
}

async fn verify_credentials_refuses_unverified_addresses_when_configured(backend: Backend) {
    let strict = [("KEEL_IDENTITY__REQUIRE_VERIFIED_EMAIL", "true")];
    let Some(app) = TestApp::start_with(backend, &strict).await else {
        return;
    };
    app.register("new@example.com").await;
    let (mut client, stop) = grpc(&app).await;
    let before = client
        .verify_credentials(credentials("new@example.com", GOOD_PASSWORD))
        .await
        .expect("call");
    assert_eq!(
        before.get_ref().verdict(),
        pb::CredentialsVerdict::EmailNotVerified
    );
    assert!(before.get_ref().user.is_some());
    let wrong = client
        .verify_credentials(credentials("new@example.com", "wrong-password-x"))
        .await
        .expect("call");
    assert_eq!(
        wrong.get_ref().verdict(),
        pb::CredentialsVerdict::Invalid,
        "no hint without the password"
    );

    let token = token_in(&app.mails()[0], "verify-email");
    let verified = client
        .verify_email(pb::VerifyEmailRequest { token, origin: None })
        .await;
    assert!(verified.is_ok());
    let after = client
        .verify_credentials(credentials("new@example.com", GOOD_PASSWORD))
        .await
        .expect("call");
    assert_eq!(after.get_ref().verdict(), pb::CredentialsVerdict::Valid);
    stop.cancel();
    app.finish().await;
}

async fn grpc_errors_carry_their_codes_and_field_violations(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let (mut client, stop) = grpc(&app).await;
    let create = |email: &str, password: &str| pb::CreateUserRequest {
        email: email.to_owned(),
        password: password.to_owned(),
        display_name: None,
        origin: None,
    };
    let created = client
        .create_user(create("Grpc@Example.com", GOOD_PASSWORD))
        .await
        .expect("create");
    assert_eq!(created.get_ref().email, "grpc@example.com");

    let duplicate = client
        .create_user(create("grpc@example.com", GOOD_PASSWORD))
        .await
        .expect_err("dup");
    assert_eq!(duplicate.code(), tonic::Code::AlreadyExists);
    let weak = client
        .create_user(create("weak@example.com", "password"))
        .await
        .expect_err("weak");
    assert_eq!(weak.code(), tonic::Code::InvalidArgument);
    match from_status(&weak) {
        ServiceError::InvalidArgument { violations, .. } => {
            assert_eq!(
                (violations[0].field.as_str(), violations[0].code.as_str()),
                ("password", "common_password")
            );
        }
        other => panic!("expected field violations, got {other:?}"),
    }
    let missing = client
        .get_user(pb::GetUserRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let malformed = client
        .get_user(pb::GetUserRequest { id: "nope".into() })
        .await
        .expect_err("bad id");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert_token_and_reset_codes(&mut client).await;
    stop.cancel();
    app.finish().await;
}

async fn a_login_on_weaker_hash_parameters_re_hashes_the_password(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    app.register("old@example.com").await;
    assert!(
        app.password_hash("old@example.com")
            .await
            .contains("$m=64,t=1,p=1$")
    );
    let stronger = app
        .sibling(&[
            ("KEEL_IDENTITY__PASSWORD_HASH__MEMORY_KIB", "256"),
            ("KEEL_IDENTITY__PASSWORD_HASH__ITERATIONS", "2"),
        ])
        .await;
    let password = SecretString::from(GOOD_PASSWORD.to_owned());
    let wrong = stronger
        .client()
        .verify_credentials(
            "old@example.com",
            &SecretString::from("nope-nope-nope".to_owned()),
        )
        .await;
    assert_eq!(wrong, Ok(CredentialsVerdict::Invalid));
    assert!(
        app.password_hash("old@example.com")
            .await
            .contains("$m=64,t=1,p=1$"),
        "no re-hash without a match"
    );
    let verdict = stronger
        .client()
        .verify_credentials("old@example.com", &password)
        .await
        .expect("verify");
    assert!(matches!(verdict, CredentialsVerdict::Valid(_)));
    assert!(
        app.password_hash("old@example.com")
            .await
            .contains("$m=256,t=2,p=1$")
    );
    let again = app
        .service
        .client()
        .verify_credentials("old@example.com", &password)
        .await
        .expect("verify");
    assert!(
        matches!(again, CredentialsVerdict::Valid(_)),
        "the new hash verifies"
    );
    app.finish().await;
}

/// An unknown address is checked against a dummy hash: it costs about what a wrong password
/// costs (measured with hashing expensive enough to dominate the lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_address_costs_about_as_much_as_a_wrong_password() {
    let costly = [
        ("KEEL_IDENTITY__PASSWORD_HASH__MEMORY_KIB", "4096"),
        ("KEEL_IDENTITY__PASSWORD_HASH__ITERATIONS", "2"),
    ];
    let Some(app) = TestApp::start_with(Backend::Sqlite, &costly).await else {
        return;
    };
    let reply = app
        .post(
            "/api/v1/users",
            json!({"email": "timed@example.com", "password": GOOD_PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, http::StatusCode::CREATED);
    let client = app.service.client();
    let wrong = SecretString::from("a-wrong-password-1".to_owned());
    // Alternating samples, compared by their medians: other tests share the two cores, so load
    // drifts while this runs; alternation exposes both kinds to the same drift.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        for (email, samples) in [
            ("timed@example.com", &mut known),
            ("nobody@example.com", &mut unknown),
        ] {
            let started = Instant::now();
            let verdict = client.verify_credentials(email, &wrong).await.expect("verify");
            assert_eq!(verdict, CredentialsVerdict::Invalid);
            samples.push(started.elapsed());
        }
    }
    known.sort();
    unknown.sort();
    let ratio = unknown[3].as_secs_f64() / known[3].as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "median wrong password {:?}, unknown address {:?}",
        known[3],
        unknown[3]
    );
    app.finish().await;
}

/// An unknown token is INVALID_ARGUMENT; a reset request for an unknown address is OK.
async fn assert_token_and_reset_codes(client: &mut IdentityServiceClient<Channel>) {
    let bad_token = client
        .verify_email(pb::VerifyEmailRequest {
            token: "x".repeat(43),
            origin: None,
        })
        .await
        .expect_err("bad token");
    assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);
    let reset = client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "nobody@example.com".into(),
            origin: None,
        })
        .await;
    assert!(reset.is_ok(), "answers OK for an unknown address");
}

/// The methods auth's login does not use, through the real gRPC server: finding, listing,
/// updating and deleting users, and changing and resetting passwords.
async fn the_account_methods_work_over_grpc_as_over_rest(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let cy = app.register("cy@example.com").await;
    let (mut client, stop) = grpc(&app).await;
    let admin = pb::RequestOrigin {
        actor_id: ada.to_string(),
        ip: "192.0.2.1".into(),
        user_agent: "grpc-test".into(),
    };

    // Found by address, case-insensitively; an unknown address is NOT_FOUND.
    let found = client
        .get_user_by_email(pb::GetUserByEmailRequest {
            email: "BOB@example.com".into(),
        })
        .await
        .expect("by e-mail")
        .into_inner();
    assert_eq!(found.id, bob.to_string());
    let missing = client
        .get_user_by_email(pb::GetUserByEmailRequest {
            email: "nobody@example.com".into(),
        })
        .await
        .expect_err("unknown address");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // Listed two at a time: every user once, the last page without a cursor.
    let first = client
        .list_users(pb::ListUsersRequest {
            limit: 2,
            cursor: String::new(),
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first.users.len(), 2);
    assert!(!first.next_cursor.is_empty());
    let second = client
        .list_users(pb::ListUsersRequest {
            limit: 2,
            cursor: first.next_cursor.clone(),
        })
        .await
        .expect("second page")
        .into_inner();
    assert!(second.next_cursor.is_empty(), "three users fill two pages");
    let mut listed: Vec<String> = first
        .users
        .iter()
        .chain(&second.users)
        .map(|u| u.id.clone())
        .collect();
    listed.sort();
    let mut registered = vec![ada.to_string(), bob.to_string(), cy.to_string()];
    registered.sort();
    assert_eq!(listed, registered);
    let bad_cursor = client
        .list_users(pb::ListUsersRequest {
            limit: 2,
            cursor: "not-a-cursor".into(),
        })
        .await
        .expect_err("bad cursor");
    assert_eq!(bad_cursor.code(), tonic::Code::InvalidArgument);

    // Updated, and read back so.
    let updated = client
        .update_user(pb::UpdateUserRequest {
            id: cy.to_string(),
            display_name: Some("Cy Young".into()),
            origin: Some(admin.clone()),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.display_name, "Cy Young");
    let read = client
        .get_user(pb::GetUserRequest { id: cy.to_string() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(read.display_name, "Cy Young");
    let unknown = client
        .update_user(pb::UpdateUserRequest {
            id: uuid::Uuid::now_v7().to_string(),
            display_name: Some("Nobody".into()),
            origin: Some(admin.clone()),
        })
        .await
        .expect_err("unknown user");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // A password change needs the current password, and ends the user's sessions.
    let new_password = "cobalt-meadow-91-lantern";
    let wrong = client
        .change_password(pb::ChangePasswordRequest {
            user_id: bob.to_string(),
            current_password: "not-the-password-at-all".into(),
            new_password: new_password.into(),
            origin: None,
        })
        .await
        .expect_err("wrong current password");
    assert_eq!(wrong.code(), tonic::Code::PermissionDenied);
    client
        .change_password(pb::ChangePasswordRequest {
            user_id: bob.to_string(),
            current_password: GOOD_PASSWORD.into(),
            new_password: new_password.into(),
            origin: None,
        })
        .await
        .expect("change");
    assert_eq!(
        verdict(&client, "bob@example.com", new_password).await,
        pb::CredentialsVerdict::Valid
    );
    assert_eq!(
        verdict(&client, "bob@example.com", GOOD_PASSWORD).await,
        pb::CredentialsVerdict::Invalid
    );
    assert!(app.auth.revocations().iter().any(|(user, _)| *user == bob));

    // A reset by the mailed token sets the password once.
    client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "cy@example.com".into(),
            origin: None,
        })
        .await
        .expect("reset request");
    let token = reset_token_mailed(&app).await;
    let reset = |token: String| pb::ResetPasswordRequest {
        token,
        new_password: new_password.into(),
        origin: None,
    };
    client.reset_password(reset(token.clone())).await.expect("reset");
    assert_eq!(
        verdict(&client, "cy@example.com", new_password).await,
        pb::CredentialsVerdict::Valid
    );
    let again = client.reset_password(reset(token)).await.expect_err("used token");
    assert_eq!(again.code(), tonic::Code::InvalidArgument);

    // Deleted: its roles released first, then gone; the last administrator stays.
    client
        .delete_user(pb::DeleteUserRequest {
            id: bob.to_string(),
            origin: Some(admin.clone()),
        })
        .await
        .expect("delete");
    assert!(app.authz.released().contains(&bob));
    let gone = client
        .get_user(pb::GetUserRequest { id: bob.to_string() })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    app.authz.make_last_admin(ada);
    let refused = client
        .delete_user(pb::DeleteUserRequest {
            id: ada.to_string(),
            origin: Some(admin),
        })
        .await
        .expect_err("the last administrator");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        client
            .get_user(pb::GetUserRequest { id: ada.to_string() })
            .await
            .is_ok(),
        "still there"
    );
    stop.cancel();
    app.finish().await;
}

/// The verdict on `email` and `password`.
async fn verdict(
    client: &IdentityServiceClient<Channel>,
    email: &str,
    password: &str,
) -> pb::CredentialsVerdict {
    client
        .clone()
        .verify_credentials(credentials(email, password))
        .await
        .expect("verify")
        .into_inner()
        .verdict()
}

/// The token of the first password-reset mail `app` sent, waiting up to 5 s for it.
async fn reset_token_mailed(app: &TestApp) -> String {
    for _ in 0..100 {
        if let Some(mail) = app.mails().iter().find(|mail| mail.contains("reset-password")) {
            return token_in(mail, "reset-password");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no password-reset mail after 5 s: {:?}", app.mails());
}
