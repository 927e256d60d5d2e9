//! Service names → store names (SQLite file stem, PostgreSQL schema suffix).

use crate::DbError;

/// PostgreSQL truncates identifiers longer than this (`NAMEDATALEN - 1`); we refuse them instead,
/// so two long names can never silently end up in the same schema.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The name under which `service` stores its data: the service name with `-` turned into `_`,
/// so `api-gateway` and a module `blog` give `api_gateway` and `blog`.
///
/// A service name starts with a lowercase ASCII letter and holds only lowercase ASCII letters,
/// digits, `_` and `-`. This makes it safe as a file name on every platform and as an unquoted
/// PostgreSQL identifier.
pub(crate) fn store_name(service: &str) -> Result<String, DbError> {
    let invalid = |reason| {
        Err(DbError::InvalidServiceName {
            name: service.to_owned(),
            reason,
        })
    };
    let Some(first) = service.chars().next() else {
        return invalid("must not be empty");
    };
    if !first.is_ascii_lowercase() {
        return invalid("must start with a lowercase ASCII letter");
    }
    if !service
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return invalid("may hold only lowercase ASCII letters, digits, `_` and `-`");
    }
    if service.len() > MAX_IDENTIFIER_BYTES {
        return invalid("must be at most 63 characters long");
    }
    Ok(service.replace('-', "_"))
}

/// The PostgreSQL schema of a store: `prefix` + `store`, checked to be a plain lowercase
/// identifier that PostgreSQL will neither truncate nor reserve.
pub(crate) fn schema_name(prefix: &str, store: &str, service: &str) -> Result<String, DbError> {
    let schema = format!("{prefix}{store}");
    let invalid = |reason: &str| {
        Err(DbError::InvalidConfig {
            service: service.to_owned(),
            reason: format!("schema name {schema:?} {reason}"),
        })
    };
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return invalid("has a prefix with characters other than lowercase letters, digits and `_`");
    }
    if schema.starts_with(|c: char| c.is_ascii_digit()) {
        return invalid("starts with a digit");
    }
    if schema.starts_with("pg_") {
        return invalid("starts with `pg_`, which PostgreSQL reserves");
    }
    if schema.len() > MAX_IDENTIFIER_BYTES {
        return invalid("is longer than 63 bytes");
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_in_service_names_become_underscores() {
        assert_eq!(store_name("api-gateway").ok().as_deref(), Some("api_gateway"));
        assert_eq!(store_name("identity").ok().as_deref(), Some("identity"));
        assert_eq!(store_name("blog_2").ok().as_deref(), Some("blog_2"));
    }

    #[test]
    fn names_that_could_escape_a_file_or_schema_are_rejected() {
        for name in [
            "",
            "Identity",
            "../etc",
            "a/b",
            "a b",
            "a\"b",
            "1st",
            "_x",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(store_name(name), Err(DbError::InvalidServiceName { .. })),
                "{name:?} should be rejected"
            );
        }
    }

    #[test]
    fn schema_names_are_prefixed_and_checked() {
        assert_eq!(
            schema_name("keel_", "identity", "identity").ok().as_deref(),
            Some("keel_identity")
        );
        assert_eq!(
            schema_name("", "identity", "identity").ok().as_deref(),
            Some("identity")
        );
        assert!(schema_name("pg_", "identity", "identity").is_err());
        assert!(schema_name("1_", "identity", "identity").is_err());
        assert!(schema_name("Keel_", "identity", "identity").is_err());
        assert!(schema_name("k\"; drop", "identity", "identity").is_err());
        assert!(schema_name(&"k".repeat(60), "identity", "identity").is_err());
    }
}
