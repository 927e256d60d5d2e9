//! Seeding: the system roles and the first administrator (plan story 2.6).
//!
//! Idempotent: run at every development start and by `platformctl seed`, it creates what is
//! missing and changes nothing that exists (an existing administrator keeps their password).

use keel_authz::AuthzService;
use keel_clients::{CredentialsVerdict, IdentityClient as _, NewUser};
use keel_config::{AdminSeed, Config};
use keel_identity::IdentityService;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};

/// Administrator e-mail used in development when `KEEL_ADMIN_EMAIL` is unset.
pub const DEVELOPMENT_ADMIN_EMAIL: &str = "admin@keel.local";
/// The role the administrator receives.
const ADMIN_ROLE: &str = "admin";
/// Length of a generated development password (alphanumeric: ~190 bits).
const GENERATED_PASSWORD_LENGTH: usize = 32;

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The roles could not be seeded.
    #[error("seeding roles: {0}")]
    Roles(#[from] keel_authz::AuthzError),
    /// The administrator could not be created or looked up.
    #[error("seeding the administrator: {0}")]
    Admin(#[from] keel_identity::IdentityError),
    /// Checking an existing account's roles or password failed.
    #[error("checking the existing administrator account: {0}")]
    Check(#[from] keel_clients::ServiceError),
    /// Outside development an administrator needs both variables.
    #[error(
        "KEEL_ADMIN_EMAIL is set but KEEL_ADMIN_PASSWORD is not; refusing to invent a password outside development"
    )]
    MissingPassword,
}

/// What happened to the administrator.
#[derive(Debug)]
pub enum AdminOutcome {
    /// Created now; `generated_password` is set when it was generated (development only) and must
    /// be shown to the operator once.
    Created {
        /// The administrator's e-mail.
        email: String,
        /// The generated password, when none was configured.
        generated_password: Option<SecretString>,
    },
    /// Existed already; their password is unchanged. The admin role is (re)assigned.
    Existing {
        /// The administrator's e-mail.
        email: String,
    },
    /// No administrator configured (outside development without `KEEL_ADMIN_EMAIL`).
    NotConfigured,
    /// An account with the administrator's e-mail exists, does not hold the admin role, and the
    /// configured password does not open it (someone else registered the address first): it is
    /// left alone, and nobody is made administrator.
    Refused {
        /// The administrator's e-mail.
        email: String,
    },
}

/// What seeding did.
#[derive(Debug)]
pub struct SeedOutcome {
    /// Roles created (names).
    pub roles: keel_authz::SeedReport,
    /// The administrator.
    pub admin: AdminOutcome,
}

/// Seeds roles, then the administrator from `KEEL_ADMIN_EMAIL`/`KEEL_ADMIN_PASSWORD`.
pub async fn seed(
    identity: &IdentityService,
    authz: &AuthzService,
    config: &Config,
) -> Result<SeedOutcome, SeedError> {
    let roles = authz.seed_roles().await?;
    let admin = match admin_credentials(config.admin_seed(), config.is_development())? {
        None => AdminOutcome::NotConfigured,
        Some((email, password, generated)) => {
            let new = NewUser {
                email: email.clone(),
                password: password.clone(),
                display_name: Some("Administrator".to_owned()),
            };
            let (user, created) = identity.seed_user(new).await?;
            if created {
                authz.assign_roles_by_name(user.id, &[ADMIN_ROLE]).await?;
                AdminOutcome::Created {
                    email,
                    generated_password: generated,
                }
            } else if holds_admin(authz, user.id).await? {
                AdminOutcome::Existing { email }
            } else if generated.is_none() && password_matches(identity, &email, &password).await? {
                // The operator proved they own the account: its password is the configured one.
                authz.assign_roles_by_name(user.id, &[ADMIN_ROLE]).await?;
                AdminOutcome::Existing { email }
            } else {
                // Someone registered the administrator's address first: never hand them admin.
                AdminOutcome::Refused { email }
            }
        }
    };
    Ok(SeedOutcome { roles, admin })
}

async fn holds_admin(authz: &AuthzService, user_id: uuid::Uuid) -> Result<bool, SeedError> {
    let roles = authz.local_client().user_roles(user_id).await?;
    Ok(roles.iter().any(|role| role.name == ADMIN_ROLE))
}

async fn password_matches(
    identity: &IdentityService,
    email: &str,
    password: &SecretString,
) -> Result<bool, SeedError> {
    let verdict = identity.client().verify_credentials(email, password).await?;
    Ok(matches!(
        verdict,
        CredentialsVerdict::Valid(_) | CredentialsVerdict::EmailNotVerified(_)
    ))
}

type Credentials = (String, SecretString, Option<SecretString>);

fn admin_credentials(admin: &AdminSeed, development: bool) -> Result<Option<Credentials>, SeedError> {
    let email = match (&admin.email, development) {
        (Some(email), _) => email.clone(),
        (None, true) => DEVELOPMENT_ADMIN_EMAIL.to_owned(),
        (None, false) => return Ok(None),
    };
    match (&admin.password, development) {
        (Some(password), _) => Ok(Some((email, password.clone(), None))),
        (None, true) => {
            let generated =
                SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LENGTH));
            Ok(Some((email, generated.clone(), Some(generated))))
        }
        (None, false) => Err(SeedError::MissingPassword),
    }
}

/// Tells the operator what seeding did, showing a generated password once (on standard error,
/// never in the logs).
pub fn report(outcome: &SeedOutcome) {
    tracing::info!(roles = ?outcome.roles, "roles seeded");
    match &outcome.admin {
        AdminOutcome::Created {
            email,
            generated_password: Some(password),
        } => {
            tracing::warn!(%email, "administrator created with a generated password (shown once on standard error)");
            eprintln!(
                "\n  Keel administrator created: {email}\n  password (shown once): {}\n  Set KEEL_ADMIN_PASSWORD to choose it.\n",
                password.expose_secret()
            );
        }
        AdminOutcome::Created {
            email,
            generated_password: None,
        } => {
            tracing::info!(%email, "administrator created");
        }
        AdminOutcome::Existing { email } => tracing::info!(%email, "administrator already present"),
        AdminOutcome::Refused { email } => tracing::error!(
            %email,
            "an account with the administrator's e-mail exists but is not an administrator and the configured \
             password does not match it; it was NOT made administrator (set KEEL_ADMIN_PASSWORD to its password, \
             or choose another KEEL_ADMIN_EMAIL)"
        ),
        AdminOutcome::NotConfigured => {
            tracing::warn!("no administrator seeded: set KEEL_ADMIN_EMAIL and KEEL_ADMIN_PASSWORD")
        }
    }
}
