//! Seeding (plan story 2.6): roles and the administrator, idempotently.

use std::sync::Arc;

use keel_events::InProcessBus;
use keel_kernel::Kernel;
use keel_platform::seed::{AdminOutcome, seed};
use keel_platform::{CoreService, CoreServices};
use keel_service::SharedRuntime;
use keel_testkit::test_config;

async fn stores(vars: &[(&str, &str)]) -> (keel_config::Config, CoreServices, Kernel, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("data directory");
    let url = format!("sqlite:{}", data.path().display());
    let outbox = data.path().join("outbox").display().to_string();
    let mut all = vec![
        ("KEEL_DATABASE__URL", url.as_str()),
        ("KEEL_IDENTITY__OUTBOX_DIR", outbox.as_str()),
    ];
    all.extend_from_slice(vars);
    let config = test_config(&all);
    let kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .build()
        .expect("kernel");
    let handle = kernel.handle();
    let shared = SharedRuntime::new(&handle, Arc::new(InProcessBus::new(64))).expect("runtime");
    let core = CoreServices::build_stores(&handle, &shared, &[CoreService::Authz, CoreService::Identity])
        .await
        .expect("stores");
    (config, core, kernel, data)
}

#[tokio::test]
async fn seeding_twice_creates_roles_and_the_admin_once_and_keeps_the_admin_password() {
    let (config, core, _kernel, _data) = stores(&[
        ("KEEL_ADMIN_EMAIL", "Root@Example.com"),
        ("KEEL_ADMIN_PASSWORD", "the first admin passphrase"),
    ])
    .await;
    let (identity, authz) = (
        core.identity.as_ref().expect("identity"),
        core.authz.as_ref().expect("authz"),
    );

    let first = seed(identity, authz, &config).await.expect("first seed");
    assert!(
        matches!(
            first.admin,
            AdminOutcome::Created {
                generated_password: None,
                ..
            }
        ),
        "{first:?}"
    );
    for role in ["admin", "user", "guest"] {
        assert!(
            first.roles.created_roles.iter().any(|r| r == role),
            "{:?}",
            first.roles
        );
    }

    let second = seed(identity, authz, &config).await.expect("second seed");
    assert!(
        matches!(second.admin, AdminOutcome::Existing { .. }),
        "{second:?}"
    );
    assert!(second.roles.is_unchanged(), "{:?}", second.roles);

    let admin = identity.client();
    let user = keel_clients::IdentityClient::get_user_by_email(&admin, "root@example.com")
        .await
        .expect("admin");
    assert!(
        user.email_verified,
        "the seeded administrator can log in even when verification is required"
    );
    let roles = authz.local_client().user_roles(user.id).await.expect("roles");
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["admin"]
    );
    let permissions = authz
        .local_client()
        .user_permissions(user.id)
        .await
        .expect("permissions");
    assert!(
        permissions.iter().any(|p| p == "platform.role.manage"),
        "{permissions:?}"
    );
    let verdict = keel_clients::IdentityClient::verify_credentials(
        &admin,
        "root@example.com",
        &secrecy::SecretString::from("the first admin passphrase".to_owned()),
    )
    .await
    .expect("verdict");
    assert!(matches!(verdict, keel_clients::CredentialsVerdict::Valid(_)));
}

#[tokio::test]
async fn development_without_a_password_generates_one_and_production_without_an_admin_seeds_none() {
    let (config, core, _kernel, _data) = stores(&[]).await;
    let (identity, authz) = (
        core.identity.as_ref().expect("identity"),
        core.authz.as_ref().expect("authz"),
    );
    let outcome = seed(identity, authz, &config).await.expect("seed");
    match outcome.admin {
        AdminOutcome::Created {
            email,
            generated_password: Some(_),
        } => {
            assert_eq!(email, keel_platform::seed::DEVELOPMENT_ADMIN_EMAIL);
        }
        other => panic!("expected a generated password, got {other:?}"),
    }

    let (config, core, _kernel, _data) =
        stores(&[("KEEL_ENV", "production"), ("KEEL_HTTP__HOST", "127.0.0.1")]).await;
    let (identity, authz) = (
        core.identity.as_ref().expect("identity"),
        core.authz.as_ref().expect("authz"),
    );
    let outcome = seed(identity, authz, &config).await.expect("seed");
    assert!(
        matches!(outcome.admin, AdminOutcome::NotConfigured),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_account_registered_first_with_the_admin_address_is_never_made_administrator() {
    let (config, core, _kernel, _data) = stores(&[
        ("KEEL_ADMIN_EMAIL", "boss@example.com"),
        ("KEEL_ADMIN_PASSWORD", "the operator's passphrase"),
    ])
    .await;
    let (identity, authz) = (
        core.identity.as_ref().expect("identity"),
        core.authz.as_ref().expect("authz"),
    );
    let squatter = keel_clients::NewUser {
        email: "boss@example.com".into(),
        password: secrecy::SecretString::from("the squatter's passphrase".to_owned()),
        display_name: None,
    };
    let user = keel_clients::IdentityClient::create_user(
        &identity.client(),
        squatter,
        &keel_clients::Origin::default(),
    )
    .await
    .expect("registered first");

    let outcome = seed(identity, authz, &config).await.expect("seed");
    assert!(
        matches!(outcome.admin, AdminOutcome::Refused { .. }),
        "{outcome:?}"
    );
    assert!(
        authz
            .local_client()
            .user_roles(user.id)
            .await
            .expect("roles")
            .iter()
            .all(|r| r.name != "admin")
    );
}
