//! Typed views of a request: JSON bodies and query strings, with the status each failure earns.
//!
//! JSON (RFC 8259): a body whose `Content-Type` is not `application/json` or `application/*+json`
//! is 415; bytes that are not JSON (or stop early) are 400; JSON of the wrong shape (a missing
//! field, a string where a number goes) is 422, as is a value that fails [`Validate`]. A query
//! string that does not fit the struct is 400.

use std::borrow::Cow;

use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Checks a deserialised value beyond its shape (ranges, lengths, formats). `Err` is the message
/// the client gets with a 422.
pub trait Validate {
    fn validate(&self) -> Result<(), Cow<'static, str>>;
}

/// Whether a `Content-Type` value names JSON: `application/json` or `application/<x>+json`,
/// parameters (`; charset=utf-8`) allowed, case-insensitive (RFC 9110 §8.3.1).
pub fn is_json_content_type(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.as_bytes()[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Parses `body` as JSON into `T`, given the request's `Content-Type`.
pub fn json<T: DeserializeOwned>(content_type: Option<&[u8]>, body: &[u8]) -> Result<T, Error> {
    if !content_type.is_some_and(is_json_content_type) {
        return Err(Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a request body with Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => Error::unprocessable(format!("invalid request body: {err}")),
            Category::Syntax | Category::Eof | Category::Io => {
                Error::bad_request(format!("malformed JSON: {err}"))
            }
        }
    })
}

/// As [`json`], then [`Validate::validate`] (a failure is 422 with its message).
pub fn json_validated<T: DeserializeOwned + Validate>(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<T, Error> {
    let value: T = json(content_type, body)?;
    value.validate().map_err(Error::unprocessable)?;
    Ok(value)
}

/// Deserialises a query string (without the `?`) into `T`.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    serde_urlencoded::from_str(query)
        .map_err(|err| Error::bad_request(format!("invalid query string: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct NewUser {
        name: String,
        age: u8,
    }

    impl Validate for NewUser {
        fn validate(&self) -> Result<(), Cow<'static, str>> {
            if self.name.is_empty() {
                return Err("name must not be empty".into());
            }
            Ok(())
        }
    }

    const JSON: Option<&[u8]> = Some(b"application/json; charset=utf-8");

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type(b"application/json"));
        assert!(is_json_content_type(b"Application/JSON ; charset=utf-8"));
        assert!(is_json_content_type(b"application/problem+json"));
        assert!(!is_json_content_type(b"application/+json"));
        assert!(!is_json_content_type(b"text/json"));
        assert!(!is_json_content_type(b"application/jsonx"));
        assert!(!is_json_content_type(b"\xff"));
    }

    #[test]
    fn wrong_content_type_is_415() {
        let err = json::<NewUser>(Some(b"text/plain"), br#"{"name":"a","age":1}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = json::<NewUser>(None, b"{}").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [&b"{"[..], b"nope", b"", br#"{"name":"a","age":1} x"#] {
            let err = json::<NewUser>(JSON, body).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[test]
    fn wrong_shape_is_422() {
        for body in [
            &br#"{"name":"a"}"#[..],
            br#"{"name":"a","age":"x"}"#,
            br#"{"name":"a","age":300}"#,
        ] {
            let err = json::<NewUser>(JSON, body).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
        }
    }

    #[test]
    fn failed_validation_is_422_with_its_message() {
        let err = json_validated::<NewUser>(JSON, br#"{"name":"","age":3}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.message(), "name must not be empty");
        let ok = json_validated::<NewUser>(JSON, br#"{"name":"b","age":3}"#).unwrap();
        assert_eq!(
            ok,
            NewUser {
                name: "b".into(),
                age: 3
            }
        );
    }

    #[test]
    fn query_into_struct() {
        #[derive(Debug, Deserialize)]
        struct Page {
            page: u32,
            q: Option<String>,
        }
        let p: Page = query("page=2&q=caf%C3%A9+au+lait").unwrap();
        assert_eq!(p.page, 2);
        assert_eq!(p.q.as_deref(), Some("café au lait"));
        assert_eq!(
            query::<Page>("page=x").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
