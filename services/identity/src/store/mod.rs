//! The identity store: the `users` and `tokens` tables and the queries the flows need.
//!
//! Every function takes any connection (`&DatabaseConnection` or a transaction), so the flows
//! decide what runs atomically. Writes that must not race are single conditional statements
//! (a token is consumed by `UPDATE … WHERE used_at IS NULL AND expires_at > now`), so two
//! concurrent attempts cannot both succeed on any backend.

pub(crate) mod entities;
pub(crate) mod migration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, DbErr, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Set,
};
use uuid::Uuid;

pub(crate) use entities::{token, user};

use crate::tokens::TokenKind;

/// A user row to insert.
pub(crate) struct NewUserRow {
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) display_name: String,
    pub(crate) now: DateTime<Utc>,
}

/// Inserts a user with a fresh UUIDv7, not yet verified. A taken e-mail fails with the
/// database's unique violation (see [`is_unique_violation`]).
pub(crate) async fn insert_user<C: ConnectionTrait>(conn: &C, row: NewUserRow) -> Result<user::Model, DbErr> {
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(row.email),
        password_hash: Set(row.password_hash),
        display_name: Set(row.display_name),
        email_verified: Set(false),
        created_at: Set(row.now),
        updated_at: Set(row.now),
    }
    .insert(conn)
    .await
}

/// Whether `error` is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// One user by id.
pub(crate) async fn find_user<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).one(conn).await
}

/// One user by (normalised) e-mail.
pub(crate) async fn find_user_by_email<C: ConnectionTrait>(
    conn: &C,
    email: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(conn)
        .await
}

/// Up to `limit` users with an id after `after`, oldest first (UUIDv7 order is creation order).
pub(crate) async fn list_users<C: ConnectionTrait>(
    conn: &C,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<user::Model>, DbErr> {
    let mut query = user::Entity::find().order_by_asc(user::Column::Id).limit(limit);
    if let Some(after) = after {
        query = query.filter(user::Column::Id.gt(after));
    }
    query.all(conn).await
}

/// Sets the display name; `false` when no such user.
pub(crate) async fn set_display_name<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::DisplayName, Expr::value(display_name))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Replaces the password hash if it is still `current`; `false` when it changed meanwhile (or
/// the user is gone).
pub(crate) async fn replace_password_hash<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    current: &str,
    new: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PasswordHash.eq(current))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Sets the password hash whatever it was; `false` when no such user.
pub(crate) async fn set_password_hash<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    new: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks the user's address verified.
pub(crate) async fn mark_verified<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerified, Expr::value(true))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes the user and their tokens; `false` when no such user.
pub(crate) async fn delete_user<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<bool, DbErr> {
    token::Entity::delete_many()
        .filter(token::Column::UserId.eq(id))
        .exec(conn)
        .await?;
    let result = user::Entity::delete_by_id(id).exec(conn).await?;
    Ok(result.rows_affected == 1)
}

/// Stores a token (by hash) for `user_id`.
pub(crate) async fn insert_token<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    kind: TokenKind,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        kind: Set(kind.as_str().to_owned()),
        token_hash: Set(token_hash.to_owned()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The token of `kind` with this hash, used or not, expired or not.
pub(crate) async fn find_token<C: ConnectionTrait>(
    conn: &C,
    kind: TokenKind,
    token_hash: &str,
) -> Result<Option<token::Model>, DbErr> {
    token::Entity::find()
        .filter(token::Column::TokenHash.eq(token_hash))
        .filter(token::Column::Kind.eq(kind.as_str()))
        .one(conn)
        .await
}

/// Consumes the token in one conditional statement: it succeeds (`true`) only while the token
/// is unused and unexpired, so of two concurrent uses exactly one wins.
pub(crate) async fn consume_token<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = token::Entity::update_many()
        .col_expr(token::Column::UsedAt, Expr::value(now))
        .filter(token::Column::Id.eq(id))
        .filter(token::Column::UsedAt.is_null())
        .filter(token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks every still-usable token of `kind` of the user used (e.g. older reset links once the
/// password has been reset).
pub(crate) async fn retire_tokens<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    kind: TokenKind,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    token::Entity::update_many()
        .col_expr(token::Column::UsedAt, Expr::value(now))
        .filter(token::Column::UserId.eq(user_id))
        .filter(token::Column::Kind.eq(kind.as_str()))
        .filter(token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes tokens that expired before `before`; returns how many.
pub(crate) async fn purge_expired_tokens<C: ConnectionTrait>(
    conn: &C,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = token::Entity::delete_many()
        .filter(token::Column::ExpiresAt.lt(before))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}
