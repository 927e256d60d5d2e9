//! Masking secrets in configuration before it is shown to anyone.

use serde_json::Value;

/// Shown instead of a secret.
const MASK: &str = "<redacted>";

/// Key fragments whose values are secrets wherever they appear.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "private_key",
    "api_key",
    "credential",
];

/// Masks, in place, every string value whose key names a secret, and the password inside any URL's user
/// information (`postgres://user:pw@host` → `postgres://user:<redacted>@host`).
pub fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lowered = key.to_ascii_lowercase();
                if SECRET_KEY_PARTS.iter().any(|part| lowered.contains(part)) && inner.is_string() {
                    *inner = Value::String(MASK.to_owned());
                } else {
                    redact_value(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
            if let Some(masked) = mask_query_secrets(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@rest` → `scheme://user:<redacted>@rest`; `None` when there is none.
fn mask_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    if userinfo.contains('/') {
        return None;
    }
    let (user, _password) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{MASK}@{host}"))
}

/// `...?user=a&password=x&sslmode=...` → `...?user=a&password=<redacted>&sslmode=...`, for any query
/// parameter whose name names a secret; `None` when there is none.
fn mask_query_secrets(text: &str) -> Option<String> {
    let (base, query) = text.split_once('?')?;
    let mut changed = false;
    let parameters: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if SECRET_KEY_PARTS
                    .iter()
                    .any(|part| name.to_ascii_lowercase().contains(part)) =>
            {
                changed = true;
                format!("{name}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    changed.then(|| format!("{base}?{}", parameters.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_by_key_and_in_urls() {
        let mut value = json!({
            "database": {"url": "postgres://keel:hunter2@db:5432/keel", "schema_prefix": "keel_"},
            "auth": {"signing_secret": "abc", "token_ttl_secs": 900},
            "smtp": {"password": null}
        });
        redact_value(&mut value);
        assert_eq!(
            value["database"]["url"],
            "postgres://keel:<redacted>@db:5432/keel"
        );
        assert_eq!(value["database"]["schema_prefix"], "keel_");
        assert_eq!(value["auth"]["signing_secret"], MASK);
        assert_eq!(
            value["auth"]["token_ttl_secs"], 900,
            "numbers are settings, not secrets"
        );
        assert!(
            value["smtp"]["password"].is_null(),
            "an unset secret stays visibly unset"
        );
    }

    #[test]
    fn secrets_in_url_query_parameters_are_masked() {
        let mut value = json!({"url": "postgres://keel@db/keel?password=hunter2&sslmode=require"});
        redact_value(&mut value);
        assert_eq!(
            value["url"],
            "postgres://keel@db/keel?password=<redacted>&sslmode=require"
        );
    }

    #[test]
    fn urls_without_password_are_left_alone() {
        assert_eq!(mask_url_password("postgres://keel@db/keel"), None);
        assert_eq!(mask_url_password("sqlite:data"), None);
    }
}
