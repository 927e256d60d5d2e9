//! E-mail addresses as the service stores and compares them.

use super::FieldProblem;

/// Longest address accepted (RFC 5321's path limit less the angle brackets).
const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A syntactically sane e-mail address, trimmed and lower-cased, so two spellings of one address
/// are one value (and the database's unique index sees them as one).
///
/// Accepted: `local@domain` where the local part is 1–64 characters of RFC 5322 `atext` and
/// non-adjacent dots, and the domain is two or more dot-separated labels of ASCII letters, digits
/// and inner hyphens (internationalised domains in their `xn--` form). Quoted local parts,
/// comments and IP-literal domains are refused: no real sign-up needs them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses `raw` (surrounding white space is ignored, letters are lower-cased).
    pub fn parse(raw: &str) -> Result<Self, FieldProblem> {
        let address = raw.trim().to_lowercase();
        if address.is_empty() {
            return Err(invalid("the e-mail address is empty"));
        }
        if address.chars().count() > MAX_LEN {
            return Err(FieldProblem::new(
                "too_long",
                format!("an e-mail address has at most {MAX_LEN} characters"),
            ));
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(invalid("an e-mail address needs an @"));
        };
        check_local(local)?;
        check_domain(domain)?;
        Ok(Self(address))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid(message: &str) -> FieldProblem {
    FieldProblem::new("invalid_email", message)
}

fn check_local(local: &str) -> Result<(), FieldProblem> {
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(invalid("the part before the @ must have 1 to 64 characters"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid("the part before the @ has a misplaced dot"));
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(atext) {
        return Err(invalid(
            "the part before the @ has a character that is not allowed",
        ));
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), FieldProblem> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid("the domain needs at least one dot"));
    }
    for label in &labels {
        let sane = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !sane {
            return Err(invalid("the domain is not a valid host name"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid("the domain is not a valid host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.ORG \n").expect("valid");
        assert_eq!(email.as_str(), "ada.lovelace@example.org");
        assert_eq!(email.local_part(), "ada.lovelace");
    }

    #[test]
    fn common_valid_forms_are_accepted() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "o'hara@example.ie",
            "user_1@xn--bcher-kva.example",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_invalid_email() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "user@",
            "user@localhost",
            "user@@example.com",
            ".user@example.com",
            "us..er@example.com",
            "user.@example.com",
            "us er@example.com",
            "user@exa mple.com",
            "user@-example.com",
            "user@example-.com",
            "user@example..com",
            "user@127.0.0.1",
            "\"quoted\"@example.com",
            "jöns@example.com",
            "user@exämple.com",
        ] {
            let problem = Email::parse(bad).expect_err(bad);
            assert_eq!(problem.code, "invalid_email", "{bad}");
        }
    }

    #[test]
    fn addresses_longer_than_254_characters_are_too_long() {
        let long = format!("{}@{}.example.com", "a".repeat(64), "b".repeat(63));
        assert!(Email::parse(&long).is_ok());
        let domain = vec!["c".repeat(60); 4].join(".");
        let too_long = format!("{}@{domain}.com", "a".repeat(10));
        assert!(too_long.len() > MAX_LEN);
        assert_eq!(Email::parse(&too_long).expect_err("too long").code, "too_long");
    }

    #[test]
    fn local_parts_longer_than_64_characters_are_refused() {
        let address = format!("{}@example.com", "a".repeat(65));
        assert_eq!(
            Email::parse(&address).expect_err("long local").code,
            "invalid_email"
        );
    }
}
