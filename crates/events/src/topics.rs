//! Names of the core platform's events, so producers and consumers cannot disagree on spelling.
//!
//! A topic is dot-separated segments of lowercase letters, digits, `_` and `-`:
//! `<service or module>.<resource>.<past-tense verb>`. Modules name theirs after themselves
//! (`blog.post.created`). Payloads are JSON objects; the shape of each is given below.

/// A user registered or was created by an admin. Payload `{"user_id", "email"}`.
pub const USER_CREATED: &str = "platform.user.created";
/// A user's profile changed. Payload `{"user_id", "email"}`.
pub const USER_UPDATED: &str = "platform.user.updated";
/// A user was deleted. Payload `{"user_id", "email"}`.
pub const USER_DELETED: &str = "platform.user.deleted";
/// A user's password was changed or reset. Payload `{"user_id"}`.
pub const USER_PASSWORD_CHANGED: &str = "platform.user.password_changed";
/// A role was given to a user. Payload `{"user_id", "role_id", "role_name"}`.
pub const ROLE_ASSIGNED: &str = "platform.role.assigned";
/// A role was taken from a user. Payload `{"user_id", "role_id", "role_name"}`.
pub const ROLE_REVOKED: &str = "platform.role.revoked";
/// A role was created. Payload `{"role_id", "role_name"}`.
pub const ROLE_CREATED: &str = "platform.role.created";
/// A role was renamed or re-described. Payload `{"role_id", "role_name"}`.
pub const ROLE_UPDATED: &str = "platform.role.updated";
/// A role was deleted. Payload `{"role_id", "role_name"}`.
pub const ROLE_DELETED: &str = "platform.role.deleted";
/// Permissions were added to a role. Payload `{"role_id", "role_name", "permissions": [...]}`.
pub const PERMISSION_GRANTED: &str = "platform.permission.granted";
/// Permissions were removed from a role. Payload `{"role_id", "role_name", "permissions": [...]}`.
pub const PERMISSION_REVOKED: &str = "platform.permission.revoked";

/// Every `platform.user.*` event.
pub const ALL_USER: &str = "platform.user.*";
/// Every `platform.role.*` event.
pub const ALL_ROLE: &str = "platform.role.*";
/// Every `platform.permission.*` event.
pub const ALL_PERMISSION: &str = "platform.permission.*";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_topic_is_well_formed() {
        for topic in [
            USER_CREATED,
            USER_UPDATED,
            USER_DELETED,
            USER_PASSWORD_CHANGED,
            ROLE_ASSIGNED,
            ROLE_REVOKED,
            ROLE_CREATED,
            ROLE_UPDATED,
            ROLE_DELETED,
            PERMISSION_GRANTED,
            PERMISSION_REVOKED,
        ] {
            assert!(crate::event::validate_topic(topic).is_ok(), "{topic}");
        }
    }
}
