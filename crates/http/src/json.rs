//! A JSON body extractor whose every rejection is a [`Problem`] naming the offending field.
//!
//! axum's own `Json` answers with plain text; ours answers 415 for a wrong media type, 400 for
//! malformed JSON, 413 for an oversized body, and 422 with the field path for a body that parses
//! but does not fit the type (wrong type, missing field, unknown field when the type denies them).

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::objects_only::ObjectsOnly;
use crate::problem::{FieldError, Problem};

/// JSON request body (extractor) or response body (responder).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(Problem::unsupported_media_type("application/json"));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                )
                .with_detail("the request body exceeds the limit")
            } else {
                Problem::bad_request("the request body could not be read")
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Parses `bytes` as `T`, mapping failures to problems with field paths. A struct, at any depth,
/// must be a JSON object (see [`ObjectsOnly`]).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let deserializer = ObjectsOnly(&mut serde_json::Deserializer::from_slice(bytes));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let code = code_of(&message);
                Problem::validation(vec![FieldError::new(
                    field_of(&path, code, &message),
                    code,
                    strip_position(&message),
                )])
            }
            serde_json::error::Category::Eof
            | serde_json::error::Category::Syntax
            | serde_json::error::Category::Io => Problem::bad_request(format!(
                "the body is not valid JSON: {}",
                strip_position(&inner.to_string())
            )),
        }
    })
}

/// A stable code for a serde data error message.
fn code_of(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "unknown_field"
    } else if message.starts_with("missing field") {
        "required"
    } else if message.starts_with("invalid type") {
        "invalid_type"
    } else if message.starts_with("unknown variant") {
        "invalid_choice"
    } else {
        "invalid_value"
    }
}

/// The path of the field a data error is about. serde reports a missing field at the path of the
/// object that lacks it (`.` for the body itself) and names the field only in its message
/// (``missing field `email` ``), so the name is appended; every other error, an unknown field
/// included, is at the path of its own value.
fn field_of(path: &str, code: &str, message: &str) -> String {
    let named = match code {
        "required" => message.split('`').nth(1),
        "unknown_field" if path == "." => message.split('`').nth(1),
        _ => None,
    };
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => String::new(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (own, None) => own.to_owned(),
    }
}

/// serde_json appends " at line 1 column 9"; the client knows its own body, the field path is enough.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|media| {
            let media = media.trim().to_ascii_lowercase();
            media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Register {
        email: String,
        profile: Profile,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Profile {
        age: u8,
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let problem = parse::<Register>(br#"{"email":"a@b.c","profile":{"age":"old"}}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "profile.age");
        assert_eq!(problem.errors[0].code, "invalid_type");
    }

    #[test]
    fn an_unknown_field_is_rejected_by_name_and_path() {
        let problem =
            parse::<Register>(br#"{"email":"a@b.c","profile":{"age":3},"role":"admin"}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].code, "unknown_field");
        assert_eq!(problem.errors[0].field, "role");
        assert!(problem.errors[0].message.contains("role"));
        let nested = parse::<Register>(br#"{"email":"a@b.c","profile":{"age":3,"admin":true}}"#).unwrap_err();
        assert_eq!(
            (nested.errors[0].field.as_str(), nested.errors[0].code.as_str()),
            ("profile.admin", "unknown_field")
        );
    }

    #[test]
    fn a_missing_field_is_required_by_name_and_path() {
        let problem = parse::<Register>(br#"{"profile":{"age":3}}"#).unwrap_err();
        assert_eq!(
            (problem.errors[0].field.as_str(), problem.errors[0].code.as_str()),
            ("email", "required")
        );
        let nested = parse::<Register>(br#"{"email":"a@b.c","profile":{}}"#).unwrap_err();
        assert_eq!(
            (nested.errors[0].field.as_str(), nested.errors[0].code.as_str()),
            ("profile.age", "required")
        );
        let listed = parse::<Vec<Profile>>(br#"[{"age": 3}, {}]"#).unwrap_err();
        assert_eq!(listed.errors[0].field, "[1].age");
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Shape {
        Dot,
        Circle(f64),
        Square { side: u8 },
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Patch {
        name: Option<String>,
        description: Option<String>,
    }

    #[test]
    fn a_struct_is_read_only_from_an_object_never_from_an_array() {
        for body in [&b"[null, null]"[..], b"[]", b"[\"a@b.c\", {\"age\": 3}]"] {
            let problem = parse::<Patch>(body).map(|_| ()).unwrap_err();
            assert_eq!(problem.status, 422, "{}", String::from_utf8_lossy(body));
            assert_eq!(problem.errors[0].field, "");
            assert_eq!(problem.errors[0].code, "invalid_type");
            assert!(
                problem.errors[0].message.contains("sequence"),
                "{:?}",
                problem.errors
            );
        }
        assert!(parse::<Register>(br#"["a@b.c", {"age": 3}]"#).is_err());
        // At any depth, with the field path.
        let nested = parse::<Register>(br#"{"email": "a@b.c", "profile": [3]}"#)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(nested.status, 422);
        assert_eq!(nested.errors[0].field, "profile");
        assert_eq!(nested.errors[0].code, "invalid_type");
        let listed = parse::<Vec<Profile>>(br#"[{"age": 3}, [4]]"#)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(listed.errors[0].field, "[1]");
        let optional = parse::<Option<Profile>>(b"[5]").map(|_| ()).unwrap_err();
        assert_eq!(optional.errors[0].code, "invalid_type");
        let variant = parse::<Shape>(br#"{"Square": [2]}"#).map(|_| ()).unwrap_err();
        assert_eq!(variant.errors[0].code, "invalid_type");
        let patch = parse::<Patch>(br#"{"name": "editor"}"#).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(patch.name.as_deref(), Some("editor"));
        // Everything that is not a struct reads as before.
        assert_eq!(parse::<Vec<u8>>(b"[1, 2]").unwrap_or_default(), vec![1, 2]);
        assert_eq!(parse::<Option<u8>>(b"null").unwrap_or(Some(0)), None);
        assert_eq!(
            parse::<(u8, String)>(br#"[1, "a"]"#).ok(),
            Some((1, "a".to_owned()))
        );
        let register = parse::<Register>(br#"{"email": "a@b.c", "profile": {"age": 3}}"#);
        assert_eq!(register.map(|r| r.profile.age).ok(), Some(3));
        let shapes = parse::<Vec<Shape>>(br#"["Dot", {"Circle": 1.5}, {"Square": {"side": 2}}]"#);
        assert_eq!(
            shapes.ok(),
            Some(vec![Shape::Dot, Shape::Circle(1.5), Shape::Square { side: 2 }])
        );
        let with_map = parse::<std::collections::BTreeMap<String, Profile>>(br#"{"x": {"age": 1}}"#);
        assert_eq!(with_map.map(|m| m.len()).ok(), Some(1));
    }

    #[test]
    fn malformed_json_is_400() {
        assert_eq!(parse::<Register>(b"{\"email\":").unwrap_err().status, 400);
    }

    #[test]
    fn json_media_types_are_recognised() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        assert!(!is_json(&headers));
    }
}
