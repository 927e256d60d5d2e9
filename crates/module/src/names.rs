//! The shapes of the names a manifest uses: module names and permission names.
//!
//! Why a module of its own: the manifest's checks and the set's checks both need them, and the
//! authz service and the gateway check permission names with [`check_permission_name`] too, so
//! every part of the platform accepts the same names: a permission is `module.resource.action`,
//! each segment a lowercase identifier, at most 128 bytes.

/// Longest module name, in bytes.
const MAX_MODULE_NAME_LEN: usize = 64;
/// Longest permission name, in bytes.
const MAX_PERMISSION_LEN: usize = 128;

/// Whether `text` is a lowercase identifier: a lowercase ASCII letter, then lowercase letters,
/// digits and `_`.
pub(crate) fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// What is wrong with `name` as a module name, if anything.
pub(crate) fn module_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is required".to_owned());
    }
    if name.len() > MAX_MODULE_NAME_LEN || !is_identifier(name) {
        return Some(format!(
            "`{name}` must be 1 to {MAX_MODULE_NAME_LEN} characters: a lowercase letter, then \
             lowercase letters, digits and _"
        ));
    }
    None
}

/// Why a name is not a permission name; the message reads after the name (`` `audit` must have
/// the form … ``).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionNameError {
    /// Longer than 128 bytes.
    #[error("is longer than 128 bytes")]
    TooLong,
    /// Fewer than three dot-separated segments.
    #[error("must have the form module.resource.action, e.g. platform.audit.read")]
    TooFewSegments,
    /// A segment that is not a lowercase identifier.
    #[error(
        "has a segment that does not start with a lowercase letter or has characters other than \
         lowercase letters, digits and _"
    )]
    BadSegment,
}

/// Checks a permission name: `module.resource.action`, optionally with more segments, each a
/// lowercase letter then lowercase letters, digits and `_`, at most 128 bytes. The one rule for
/// every place a permission name enters: the authz service's API, module manifests and the
/// gateway's routes.
pub fn check_permission_name(name: &str) -> Result<(), PermissionNameError> {
    if name.len() > MAX_PERMISSION_LEN {
        return Err(PermissionNameError::TooLong);
    }
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 3 {
        return Err(PermissionNameError::TooFewSegments);
    }
    match segments.iter().all(|segment| is_identifier(segment)) {
        true => Ok(()),
        false => Err(PermissionNameError::BadSegment),
    }
}

/// What is wrong with `name` as a permission name, if anything.
pub(crate) fn permission_problem(name: &str) -> Option<String> {
    check_permission_name(name)
        .err()
        .map(|reason| format!("`{name}` {reason}"))
}

/// The module a well-formed permission belongs to: its first segment.
pub(crate) fn permission_module(name: &str) -> &str {
    name.split('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_lowercase_and_start_with_a_letter() {
        assert!(is_identifier("blog"));
        assert!(is_identifier("blog_2"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("2blog"));
        assert!(!is_identifier("Blog"));
        assert!(!is_identifier("blog-posts"));
    }

    #[test]
    fn permissions_need_three_identifier_segments() {
        assert_eq!(permission_problem("blog.post.create"), None);
        assert_eq!(permission_problem("blog.post.update.own"), None);
        assert!(permission_problem("blog.post").is_some());
        assert!(permission_problem("blog..create").is_some());
        assert!(permission_problem("Blog.post.create").is_some());
        assert!(permission_problem(&format!("blog.post.{}", "a".repeat(130))).is_some());
        assert_eq!(permission_module("blog.post.create"), "blog");
    }
}
