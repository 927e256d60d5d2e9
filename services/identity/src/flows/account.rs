//! Accounts: registration, reading, listing, profile changes, deletion.

use base64::Engine as _;
use keel_clients::{NewUser, Origin, Page, PageRequest, User, UserChanges};
use keel_events::topics;
use sea_orm::TransactionTrait as _;
use secrecy::ExposeSecret as _;
use serde_json::json;
use uuid::Uuid;

use super::{Identity, actions, actor_or_self};
use crate::IdentityError;
use crate::domain::{DisplayName, Email, FieldProblem, Password};
use crate::notifier::verification_message;
use crate::store::{self, NewUserRow};
use crate::tokens::{self, TokenKind};

/// Page size when the caller names none.
const DEFAULT_LIMIT: u32 = 20;
/// Largest page.
const MAX_LIMIT: u32 = 100;

/// A registration whose values passed the policies.
struct ValidRegistration {
    email: Email,
    password: Password,
    display_name: DisplayName,
}

impl Identity {
    /// Registers a user: one transaction holds the user, the verification token, the audit
    /// record and the `platform.user.created` event; the verification e-mail goes out after
    /// commit. A taken address (the database's unique index decides) is `EmailTaken`.
    pub(crate) async fn create_user(&self, new: NewUser, origin: &Origin) -> Result<User, IdentityError> {
        let valid = validate_registration(&new)?;
        let password_hash = self.hasher.hash(valid.password.secret()).await?;
        let token = tokens::generate();
        let now = self.now();
        let ttl = self.settings.verification_ttl();
        let expires_at = super::expiry(now, ttl);
        let txn = self.db.begin().await?;
        let row = NewUserRow {
            email: valid.email.as_str().to_owned(),
            password_hash,
            display_name: valid.display_name.into_string(),
            now,
        };
        let user = match store::insert_user(&txn, row).await {
            Ok(user) => user,
            Err(error) if store::is_unique_violation(&error) => return Err(IdentityError::EmailTaken),
            Err(error) => return Err(error.into()),
        };
        store::insert_token(&txn, user.id, TokenKind::Verify, &token.hash, expires_at, now).await?;
        let record = self.audit(
            actions::REGISTERED,
            actor_or_self(origin, user.id),
            user.id,
            origin,
            json!({ "email": user.email }),
        );
        self.enqueue(&txn, &record, topics::USER_CREATED, user.id, Some(&user.email))
            .await?;
        txn.commit().await?;
        self.waker.wake();
        let link = self.link("verify-email", token.text.expose_secret());
        self.send(&verification_message(&valid.email, &link, ttl)).await;
        Ok(user.into())
    }

    /// Creates a user whose address counts as verified, without e-mail, for seeding the
    /// administrator; an existing user with that address is returned unchanged (`false`), so
    /// seeding is idempotent and never resets a password.
    pub(crate) async fn seed_user(&self, new: NewUser) -> Result<(User, bool), IdentityError> {
        let valid = validate_registration(&new)?;
        if let Some(existing) = store::find_user_by_email(&self.db, valid.email.as_str()).await? {
            return Ok((existing.into(), false));
        }
        let password_hash = self.hasher.hash(valid.password.secret()).await?;
        let now = self.now();
        let txn = self.db.begin().await?;
        let row = NewUserRow {
            email: valid.email.as_str().to_owned(),
            password_hash,
            display_name: valid.display_name.into_string(),
            now,
        };
        let user = match store::insert_user(&txn, row).await {
            Ok(user) => user,
            Err(error) if store::is_unique_violation(&error) => {
                drop(txn);
                let existing = store::find_user_by_email(&self.db, valid.email.as_str()).await?;
                return existing
                    .map(|user| (user.into(), false))
                    .ok_or(IdentityError::EmailTaken);
            }
            Err(error) => return Err(error.into()),
        };
        store::mark_verified(&txn, user.id, now).await?;
        let origin = Origin::default();
        let record = self.audit(
            actions::REGISTERED,
            None,
            user.id,
            &origin,
            json!({ "email": user.email, "seeded": true }),
        );
        self.enqueue(&txn, &record, topics::USER_CREATED, user.id, Some(&user.email))
            .await?;
        let user = store::find_user(&txn, user.id)
            .await?
            .ok_or(IdentityError::EmailTaken)?;
        txn.commit().await?;
        self.waker.wake();
        Ok((user.into(), true))
    }

    /// One user.
    pub(crate) async fn get_user(&self, id: Uuid) -> Result<User, IdentityError> {
        store::find_user(&self.db, id)
            .await?
            .map(User::from)
            .ok_or(IdentityError::UserNotFound)
    }

    /// One user by e-mail, case-insensitively.
    pub(crate) async fn get_user_by_email(&self, email: &str) -> Result<User, IdentityError> {
        let email = Email::parse(email).map_err(|p| IdentityError::field("email", p))?;
        store::find_user_by_email(&self.db, email.as_str())
            .await?
            .map(User::from)
            .ok_or(IdentityError::UserNotFound)
    }

    /// A page of users, oldest first. The cursor is the last id of the previous page, opaque to
    /// callers (base64url).
    pub(crate) async fn list_users(&self, page: PageRequest) -> Result<Page<User>, IdentityError> {
        let limit = match page.limit {
            None => DEFAULT_LIMIT,
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            Some(_) => {
                return Err(IdentityError::field(
                    "limit",
                    FieldProblem::new("out_of_range", format!("limit must be between 1 and {MAX_LIMIT}")),
                ));
            }
        };
        let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
        let mut rows = store::list_users(&self.db, after, u64::from(limit) + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_cursor(last.id)),
            _ => None,
        };
        Ok(Page {
            items: rows.into_iter().map(User::from).collect(),
            next_cursor,
        })
    }

    /// Changes profile fields; without any change it returns the user as is (and records nothing).
    pub(crate) async fn update_user(
        &self,
        id: Uuid,
        changes: UserChanges,
        origin: &Origin,
    ) -> Result<User, IdentityError> {
        let display_name = changes
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|p| IdentityError::field("display_name", p))?;
        let Some(display_name) = display_name else {
            return self.get_user(id).await;
        };
        let now = self.now();
        let txn = self.db.begin().await?;
        if !store::set_display_name(&txn, id, display_name.as_str(), now).await? {
            return Err(IdentityError::UserNotFound);
        }
        let user = store::find_user(&txn, id)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        let record = self.audit(
            actions::UPDATED,
            origin.actor_id,
            id,
            origin,
            json!({ "fields": ["display_name"] }),
        );
        self.enqueue(&txn, &record, topics::USER_UPDATED, id, Some(&user.email))
            .await?;
        txn.commit().await?;
        self.waker.wake();
        Ok(user.into())
    }

    /// Deletes a user: authz takes their roles first (refused for the last administrator: 409,
    /// nothing changed), then their sessions end (nothing is deleted if either fails), then the
    /// row, their tokens, the audit record and `platform.user.deleted` go in one transaction, and
    /// the sessions are ended again (a login that checked the password meanwhile keeps none). A
    /// failure after the roles went leaves the user without roles; deleting again finishes it.
    pub(crate) async fn delete_user(&self, id: Uuid, origin: &Origin) -> Result<(), IdentityError> {
        let user = store::find_user(&self.db, id)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        self.release_roles(id, origin).await?;
        self.revoke_sessions(id, origin).await?;
        let txn = self.db.begin().await?;
        if !store::delete_user(&txn, id).await? {
            return Err(IdentityError::UserNotFound);
        }
        let record = self.audit(
            actions::DELETED,
            origin.actor_id,
            id,
            origin,
            json!({ "email": user.email }),
        );
        self.enqueue(&txn, &record, topics::USER_DELETED, id, Some(&user.email))
            .await?;
        txn.commit().await?;
        self.waker.wake();
        self.revoke_sessions_after_commit(id, origin).await;
        Ok(())
    }
}

/// Parses every field of a registration, reporting all rejected fields at once.
fn validate_registration(new: &NewUser) -> Result<ValidRegistration, IdentityError> {
    let mut violations = Vec::new();
    let mut reject = |field: &str, problem: FieldProblem| {
        violations.push(keel_clients::FieldViolation {
            field: field.to_owned(),
            code: problem.code.to_owned(),
            message: problem.message,
        });
    };
    let email = Email::parse(&new.email).map_err(|p| reject("email", p)).ok();
    let password = Password::parse(&new.password, email.as_ref())
        .map_err(|p| reject("password", p))
        .ok();
    let display_name = DisplayName::parse(new.display_name.as_deref().unwrap_or(""))
        .map_err(|p| reject("display_name", p))
        .ok();
    match (email, password, display_name) {
        (Some(email), Some(password), Some(display_name)) => Ok(ValidRegistration {
            email,
            password,
            display_name,
        }),
        _ => Err(IdentityError::Invalid(violations)),
    }
}

fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<Uuid, IdentityError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| {
            IdentityError::field(
                "cursor",
                FieldProblem::new("invalid_cursor", "the cursor is not one this service returned"),
            )
        })
}
