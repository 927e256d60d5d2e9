//! The name a user shows to others.

use super::FieldProblem;

/// Most characters in a display name.
const MAX_CHARS: usize = 100;

/// A display name: trimmed, at most 100 characters, no control characters. May be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses `raw`.
    pub fn parse(raw: &str) -> Result<Self, FieldProblem> {
        let name = raw.trim();
        if name.chars().count() > MAX_CHARS {
            return Err(FieldProblem::new(
                "too_long",
                format!("a display name has at most {MAX_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldProblem::new(
                "invalid_characters",
                "a display name must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the name out.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_may_be_empty() {
        assert_eq!(DisplayName::parse("  Ada  ").expect("ok").as_str(), "Ada");
        assert_eq!(DisplayName::parse("").expect("ok").as_str(), "");
    }

    #[test]
    fn long_names_and_control_characters_are_refused() {
        assert_eq!(
            DisplayName::parse(&"x".repeat(101)).expect_err("long").code,
            "too_long"
        );
        assert!(DisplayName::parse(&"ü".repeat(100)).is_ok());
        assert_eq!(
            DisplayName::parse("Ada\u{0}Lovelace").expect_err("nul").code,
            "invalid_characters"
        );
    }
}
