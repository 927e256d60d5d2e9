//! Parsing of the names authz stores: permission names and role names.
//!
//! Why this module exists: a name is checked once, where it enters (REST body, gRPC request, module
//! manifest), and from then on the engine handles values that are known to be well formed ("parse,
//! don't validate"). Each rejection is a [`FieldViolation`] naming the field it came from, so a bad
//! entry in a list answers `permissions[1]`, not just "invalid".

use keel_clients::FieldViolation;

/// Longest role name, in bytes.
const MAX_ROLE_NAME_LEN: usize = 64;
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// A well-formed permission name: `module.resource.action`, optionally with further qualifying
/// segments (`blog.post.update.own`). Each segment starts with a lowercase ASCII letter and goes on
/// with lowercase letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PermissionName(String);

impl PermissionName {
    /// Parses `raw`, reporting a violation at `field` when it is malformed.
    pub(crate) fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        use keel_module::PermissionNameError;
        if raw.is_empty() {
            return Err(violation(field, "required", "a permission name is required"));
        }
        // The platform's one rule (`keel_module`), worded here for API clients.
        let message = match keel_module::check_permission_name(raw) {
            Ok(()) => return Ok(Self(raw.to_owned())),
            Err(PermissionNameError::TooLong) => "a permission name is at most 128 characters long",
            Err(PermissionNameError::TooFewSegments) => {
                "a permission name has the form module.resource.action, e.g. platform.user.read"
            }
            Err(_) => {
                "each segment of a permission name starts with a lowercase letter and has only \
                 lowercase letters, digits and _"
            }
        };
        Err(violation(field, "invalid_format", message))
    }

    /// The module that owns the permission: its first segment.
    pub(crate) fn module(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// A well-formed role name, normalised to lowercase so that names are unique regardless of case:
/// 1 to 64 characters, a letter first, then letters, digits, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RoleName(String);

impl RoleName {
    /// Parses `raw` (surrounding whitespace ignored), reporting a violation at `field`.
    pub(crate) fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        let name = raw.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(violation(field, "required", "a role name is required"));
        }
        if name.len() > MAX_ROLE_NAME_LEN {
            return Err(violation(
                field,
                "too_long",
                "a role name is at most 64 characters long",
            ));
        }
        let mut bytes = name.bytes();
        let first_is_letter = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_allowed =
            bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !first_is_letter || !rest_allowed {
            return Err(violation(
                field,
                "invalid_format",
                "a role name starts with a letter and has only letters, digits, _ and -",
            ));
        }
        Ok(Self(name))
    }

    /// The normalised name.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised name, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Checks a description's length (trimmed), reporting a violation at `field`.
pub(crate) fn description(raw: &str, field: &str) -> Result<String, FieldViolation> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(violation(
            field,
            "too_long",
            "a description is at most 500 characters long",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Parses every entry of a list of permission names found at `field` (`field[i]` per entry),
/// dropping repeats; returns each distinct name with the index it first appeared at, in request
/// order, or every violation found.
pub(crate) fn permission_list(
    raw: &[String],
    field: &str,
) -> Result<Vec<(usize, PermissionName)>, Vec<FieldViolation>> {
    let mut names: Vec<(usize, PermissionName)> = Vec::with_capacity(raw.len());
    let mut violations = Vec::new();
    for (index, entry) in raw.iter().enumerate() {
        match PermissionName::parse(entry, &format!("{field}[{index}]")) {
            Ok(name) if !names.iter().any(|(_, seen)| *seen == name) => names.push((index, name)),
            Ok(_) => {}
            Err(v) => violations.push(v),
        }
    }
    if violations.is_empty() {
        Ok(names)
    } else {
        Err(violations)
    }
}

/// A field violation.
pub(crate) fn violation(field: &str, code: &str, message: &str) -> FieldViolation {
    FieldViolation {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_have_at_least_three_lowercase_segments() {
        for good in ["platform.user.read", "blog.post.update.own", "a1.b_2.c"] {
            assert!(PermissionName::parse(good, "p").is_ok(), "{good}");
        }
        for bad in [
            "",
            "platform.user",
            "Platform.user.read",
            "platform..read",
            "platform.user.read.",
            "1a.b.c",
            "a.b.c-d",
        ] {
            assert!(PermissionName::parse(bad, "p").is_err(), "{bad}");
        }
        assert!(PermissionName::parse(&format!("a.b.{}", "c".repeat(130)), "p").is_err());
    }

    #[test]
    fn each_malformed_permission_name_gets_its_code_and_message_at_its_field() {
        let cases = [
            ("", "required", "a permission name is required"),
            (
                "platform.user",
                "invalid_format",
                "a permission name has the form module.resource.action, e.g. platform.user.read",
            ),
            (
                "platform.User.read",
                "invalid_format",
                "each segment of a permission name starts with a lowercase letter and has only \
                 lowercase letters, digits and _",
            ),
            (
                "plätform.user.read",
                "invalid_format",
                "each segment of a permission name starts with a lowercase letter and has only \
                 lowercase letters, digits and _",
            ),
        ];
        for (raw, code, message) in cases {
            match PermissionName::parse(raw, "permissions[2]") {
                Ok(_) => panic!("{raw:?} was accepted"),
                Err(violation) => {
                    assert_eq!(violation.field, "permissions[2]", "{raw:?}");
                    assert_eq!(
                        (violation.code.as_str(), violation.message.as_str()),
                        (code, message),
                        "{raw:?}"
                    );
                }
            }
        }
        let long = format!("a.b.{}", "c".repeat(125)); // 129 bytes
        match PermissionName::parse(&long, "p") {
            Ok(_) => panic!("a 129-byte name was accepted"),
            Err(violation) => assert_eq!(
                (violation.code.as_str(), violation.message.as_str()),
                (
                    "invalid_format",
                    "a permission name is at most 128 characters long"
                )
            ),
        }
        // 128 bytes is the limit, not past it.
        assert!(PermissionName::parse(&format!("a.b.{}", "c".repeat(124)), "p").is_ok());
    }

    #[test]
    fn a_permission_belongs_to_the_module_of_its_first_segment() {
        let name = PermissionName::parse("blog.post.create", "p").expect("well formed");
        assert_eq!(name.module(), "blog");
    }

    #[test]
    fn role_names_are_lowercased_and_checked() {
        assert_eq!(
            RoleName::parse("  Editor ", "name").map(RoleName::into_string),
            Ok("editor".to_owned())
        );
        assert_eq!(RoleName::parse("", "name").unwrap_err().code, "required");
        assert_eq!(
            RoleName::parse("9lives", "name").unwrap_err().code,
            "invalid_format"
        );
        assert_eq!(RoleName::parse("a b", "name").unwrap_err().code, "invalid_format");
        assert_eq!(
            RoleName::parse(&"a".repeat(65), "name").unwrap_err().code,
            "too_long"
        );
    }

    #[test]
    fn a_bad_entry_of_a_permission_list_is_reported_by_index_and_repeats_are_dropped() {
        let raw = vec![
            "platform.user.read".to_owned(),
            "nope".to_owned(),
            "platform.user.read".to_owned(),
        ];
        let violations = permission_list(&raw, "permissions").unwrap_err();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "permissions[1]");
        let raw = vec!["platform.user.read".to_owned(), "platform.user.read".to_owned()];
        assert_eq!(permission_list(&raw, "permissions").map(|v| v.len()), Ok(1));
    }

    #[test]
    fn long_descriptions_are_rejected() {
        assert!(description(&"x".repeat(500), "description").is_ok());
        assert_eq!(
            description(&"x".repeat(501), "description").unwrap_err().field,
            "description"
        );
    }
}
