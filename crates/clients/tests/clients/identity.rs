//! `GrpcIdentityClient` against a served identity fake: every method, and errors as the server meant
//! them.

use keel_clients::{
    CredentialsVerdict, FieldViolation, GrpcIdentityClient, IdentityClient, NewUser, Origin, PageRequest,
    ServiceError, UserChanges,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::fakes::identity::FakeIdentity;
use crate::support::{Running, grpc_config, lock, policy, register, registry, serve};

async fn start() -> anyhow::Result<(FakeIdentity, GrpcIdentityClient, Running)> {
    let fake = FakeIdentity::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "identity", running.port).await?;
    Ok((
        fake,
        GrpcIdentityClient::new(shared, &grpc_config(), policy()),
        running,
    ))
}

fn new_user(email: &str, password: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password: SecretString::from(password),
        display_name: Some("Ada".into()),
    }
}

fn admin() -> Origin {
    Origin {
        actor_id: Some(Uuid::now_v7()),
        ip: Some("198.51.100.4".into()),
        user_agent: Some("keel-tests".into()),
    }
}

#[tokio::test]
async fn field_violations_reach_the_caller_with_field_code_and_message() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let error = client
        .create_user(new_user("not-an-address", "short"), &admin())
        .await;
    let expected = ServiceError::InvalidArgument {
        message: "the registration was rejected".into(),
        violations: vec![
            FieldViolation {
                field: "email".into(),
                code: "invalid_email".into(),
                message: "is not an e-mail address".into(),
            },
            FieldViolation {
                field: "password".into(),
                code: "too_short".into(),
                message: "needs at least 8 characters".into(),
            },
        ],
    };
    assert_eq!(error, Err(expected));
    assert!(lock(&fake.state).users.is_empty());
    Ok(())
}

#[tokio::test]
async fn conflicts_and_missing_users_keep_their_meaning() -> anyhow::Result<()> {
    let (_fake, client, _running) = start().await?;
    client
        .create_user(new_user("ada@example.com", "correct horse"), &admin())
        .await?;
    let again = client
        .create_user(new_user("ada@example.com", "correct horse"), &admin())
        .await;
    assert_eq!(
        again,
        Err(ServiceError::AlreadyExists("the e-mail is taken".into()))
    );
    let missing = client.get_user(Uuid::now_v7()).await;
    assert_eq!(missing, Err(ServiceError::NotFound("no such user".into())));
    Ok(())
}

#[tokio::test]
async fn user_methods_reach_their_rpcs_and_carry_the_origin() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let origin = admin();
    let created = client
        .create_user(new_user("ada@example.com", "correct horse"), &origin)
        .await?;
    assert_eq!(lock(&fake.state).last_origin.as_ref(), Some(&origin));
    let other = client
        .create_user(new_user("bob@example.com", "battery staple"), &origin)
        .await?;
    assert_eq!(client.get_user(created.id).await?, created);
    assert_eq!(client.get_user_by_email("ADA@example.com").await?, created);

    let first = client
        .list_users(PageRequest {
            limit: Some(1),
            cursor: None,
        })
        .await?;
    assert_eq!(first.items, std::slice::from_ref(&created));
    let second = client
        .list_users(PageRequest {
            limit: Some(1),
            cursor: first.next_cursor,
        })
        .await?;
    assert_eq!((second.items, second.next_cursor), (vec![other.clone()], None));

    let changes = UserChanges {
        display_name: Some("Countess".into()),
    };
    let updated = client.update_user(created.id, changes, &origin).await?;
    assert_eq!(
        (updated.id, updated.display_name.as_str()),
        (created.id, "Countess")
    );

    client.delete_user(other.id, &Origin::default()).await?;
    assert_eq!(lock(&fake.state).last_origin, Some(Origin::default()));
    let gone = client.get_user(other.id).await;
    assert_eq!(gone, Err(ServiceError::NotFound("no such user".into())));
    Ok(())
}

#[tokio::test]
async fn credential_methods_reach_their_rpcs() -> anyhow::Result<()> {
    let (fake, client, _running) = start().await?;
    let origin = admin();
    let created = client
        .create_user(new_user("ada@example.com", "correct horse"), &origin)
        .await?;
    let password = SecretString::from("correct horse");
    let verdict = client.verify_credentials("ada@example.com", &password).await?;
    assert!(matches!(verdict, CredentialsVerdict::EmailNotVerified(user) if user.id == created.id));
    let token = SecretString::from(created.id.to_string());
    client.verify_email(&token, &origin).await?;
    let verdict = client.verify_credentials("ada@example.com", &password).await?;
    assert!(matches!(verdict, CredentialsVerdict::Valid(user) if user.email_verified));
    let wrong = client
        .verify_credentials("ada@example.com", &SecretString::from("nope"))
        .await?;
    assert_eq!(wrong, CredentialsVerdict::Invalid);

    client.request_password_reset("ada@example.com", &origin).await?;
    assert_eq!(lock(&fake.state).resets, ["ada@example.com"]);
    let first = SecretString::from("new password 1");
    client.reset_password(&token, &first, &origin).await?;
    client
        .change_password(created.id, &first, &SecretString::from("new password 2"), &origin)
        .await?;
    let refused = client
        .change_password(created.id, &first, &password, &origin)
        .await;
    assert_eq!(
        refused,
        Err(ServiceError::Unauthenticated("wrong password".into()))
    );
    let verdict = client
        .verify_credentials("ada@example.com", &SecretString::from("new password 2"))
        .await?;
    assert!(matches!(verdict, CredentialsVerdict::Valid(_)));
    Ok(())
}
