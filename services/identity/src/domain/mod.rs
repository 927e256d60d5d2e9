//! Values parsed once at the edge: an [`Email`], a [`Password`] that meets the policy, a
//! [`DisplayName`]. Code past the edge takes these types, so it cannot forget a check.
//!
//! Each parser fails with a [`FieldProblem`]: a stable code and a message, without the field name,
//! which the caller adds (`password` at registration, `new_password` at a reset).

mod display_name;
mod email;
mod password;

pub use display_name::DisplayName;
pub use email::Email;
pub use password::Password;

/// Why one value was rejected: a stable machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// E.g. `invalid_email`, `too_short`, `common_password`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldProblem {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
