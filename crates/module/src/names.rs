//! The shapes of the names a manifest uses: module names and permission names.
//!
//! Why a module of its own: the manifest's checks and the set's checks both need them, and they
//! must agree with what the authz service accepts (`services/authz/src/names.rs`): a permission is
//! `module.resource.action`, each segment a lowercase identifier, at most 128 bytes.

/// Longest module name, in bytes.
const MAX_MODULE_NAME_LEN: usize = 64;
/// Longest permission name, in bytes (authz's limit).
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

/// Checks a permission name as the authz service parses it: `module.resource.action`,
/// optionally with more segments, each a lowercase letter then lowercase letters, digits and `_`,
/// at most 128 bytes. The reason reads after the name (`` `audit` must have the form … ``).
pub fn check_permission_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_PERMISSION_LEN {
        return Err("is longer than 128 bytes");
    }
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 3 {
        return Err("must have the form module.resource.action, e.g. platform.audit.read");
    }
    match segments.iter().all(|segment| is_identifier(segment)) {
        true => Ok(()),
        false => Err(
            "has a segment that does not start with a lowercase letter or has characters other \
             than lowercase letters, digits and _",
        ),
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
