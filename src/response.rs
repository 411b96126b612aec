//! What a handler may return: anything that implements [`IntoResponse`].
//!
//! Strings are `text/plain; charset=utf-8`, bytes are `application/octet-stream`, [`Json`] and
//! [`Html`] say what they are; `(StatusCode, T)` sets the status, `Result<T, E>` answers with
//! whichever side it holds. Every response starts from a pooled header map
//! ([`crate::service::response`]), so returning a `&'static str` allocates nothing for headers.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::error::Error;
use crate::service::{response, Body, Response};

pub(crate) static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
pub(crate) static TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
pub(crate) static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Turns a handler's return value into a response.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

/// A JSON body: `Json(value)` serialises `value` (a failure to serialise is a 500). Also what
/// [`crate::service::Request::json`] parses into, by the same name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// An HTML body, sent as `text/html; charset=utf-8`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Html<T>(pub T);

fn typed(body: Body, content_type: &HeaderValue) -> Response {
    let mut res = response(body);
    res.headers_mut().insert(CONTENT_TYPE, content_type.clone());
    res
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        response(Body::Empty)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut res = response(Body::Empty);
        *res.status_mut() = self;
        res
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        typed(self.into(), &TEXT_PLAIN)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        typed(self.into(), &TEXT_PLAIN)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        typed(self.into(), &OCTET_STREAM)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        typed(self.into(), &OCTET_STREAM)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        typed(self.into(), &OCTET_STREAM)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(json) => typed(json.into(), &APPLICATION_JSON),
            Err(err) => Error::internal(err).into_response(),
        }
    }
}

impl<T: Into<Body>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        typed(self.0.into(), &TEXT_HTML)
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut res = self.1.into_response();
        *res.status_mut() = self.0;
        res
    }
}

/// `(status, headers, body)`: the headers are added to (and override) the body's own.
impl<T: IntoResponse> IntoResponse for (StatusCode, HeaderMap, T) {
    fn into_response(self) -> Response {
        let mut res = self.2.into_response();
        *res.status_mut() = self.0;
        let mut last = None;
        for (name, value) in self.1 {
            // `HeaderMap`'s iterator yields a name only for the first of repeated values.
            if let Some(name) = name {
                res.headers_mut().insert(name.clone(), value);
                last = Some(name);
            } else if let Some(name) = &last {
                res.headers_mut().append(name.clone(), value);
            }
        }
        res
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// Appends `text` to `out` with the five characters that matter in HTML text and attribute
/// values escaped, for the pages the server writes itself (error pages, directory listings).
pub(crate) fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(res: &Response) -> &[u8] {
        match res.body() {
            Body::Full(b) => b,
            Body::Empty | Body::Chunks(_) => b"",
        }
    }

    #[test]
    fn str_is_utf8_text() {
        let res = "hi".into_response();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], TEXT_PLAIN);
        assert_eq!(body(&res), b"hi");
    }

    #[test]
    fn json_serialises_with_its_content_type() {
        let res = Json(serde_json::json!({"a": 1})).into_response();
        assert_eq!(res.headers()[CONTENT_TYPE], APPLICATION_JSON);
        assert_eq!(body(&res), br#"{"a":1}"#);
    }

    #[test]
    fn status_tuple_sets_the_status_and_keeps_the_body() {
        let res = (StatusCode::CREATED, Html("<p>x</p>")).into_response();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[CONTENT_TYPE], TEXT_HTML);
        assert_eq!(body(&res), b"<p>x</p>");
    }

    #[test]
    fn headers_tuple_adds_repeated_values() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let res = (StatusCode::OK, h, "b").into_response();
        let got: Vec<_> = res.headers().get_all("x-a").iter().collect();
        assert_eq!(got, ["1", "2"]);
    }

    #[test]
    fn result_answers_with_its_error_side() {
        let r: Result<&'static str, Error> = Err(Error::not_found("no such user"));
        let res = r.into_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
