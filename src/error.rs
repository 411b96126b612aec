//! [`Error`]: what a handler returns when it cannot answer normally.
//!
//! An error is a status and a message meant for the client. A cause (any `std::error::Error`) may
//! ride along for the logs; it is never shown to the client. `?` on any error type gives a 500
//! with that error as the cause. The response carries an [`ErrorInfo`] extension so the errors
//! middleware can render it as JSON or HTML by `Accept` and log the cause with the request id;
//! without that middleware the body is the message as plain text.

use std::borrow::Cow;
use std::fmt;

use http::header::CONTENT_TYPE;
use http::StatusCode;

use crate::response::{IntoResponse, TEXT_PLAIN};
use crate::service::{response, Response};

/// A handler error: the status to answer with and a message for the client.
pub struct Error {
    status: StatusCode,
    message: Cow<'static, str>,
    cause: Option<Box<dyn std::error::Error + 'static>>,
}

/// Attached to every response made from an [`Error`], for the errors middleware.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// The message meant for the client.
    pub message: Cow<'static, str>,
    /// The underlying error, for the log only.
    pub cause: Option<String>,
    /// The handler panicked (the cause is the panic message).
    pub panicked: bool,
}

impl Error {
    /// An error with this status and client-facing message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            status,
            message: message.into(),
            cause: None,
        }
    }

    /// Keeps `cause` for the log (it is not sent to the client).
    pub fn with_cause(mut self, cause: impl std::error::Error + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::CONFLICT, message)
    }
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    /// A 500 whose cause goes to the log; the client sees only "Internal Server Error".
    pub fn internal(cause: impl std::error::Error + 'static) -> Self {
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").with_cause(cause)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref()
    }

    /// The 500 for a request whose handler panicked with `panic` (its message, if it had one).
    pub(crate) fn panic_response(panic: String) -> Response {
        let mut res =
            Error::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        if let Some(info) = res.extensions_mut().get_mut::<ErrorInfo>() {
            info.cause = Some(panic);
            info.panicked = true;
        }
        res
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("status", &self.status)
            .field("message", &self.message)
            .field("cause", &self.cause.as_ref().map(|c| c.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

/// `?` on any error gives a 500 with that error as the cause. (`Error` itself deliberately does
/// not implement `std::error::Error`, so this impl does not overlap `From<Error> for Error`.)
impl<E: std::error::Error + 'static> From<E> for Error {
    fn from(cause: E) -> Self {
        Error::internal(cause)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.message.len() + 1);
        body.push_str(&self.message);
        body.push('\n');
        let mut res = response(body);
        *res.status_mut() = self.status;
        res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN.clone());
        res.extensions_mut().insert(ErrorInfo {
            message: self.message,
            cause: self.cause.map(|c| c.to_string()),
            panicked: false,
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_on_a_foreign_error_is_a_500_that_hides_the_cause() {
        fn parse(s: &str) -> Result<u32, Error> {
            Ok(s.parse::<u32>()?)
        }
        let err = parse("x").unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.message(), "Internal Server Error");
        let res = err.into_response();
        let info = res.extensions().get::<ErrorInfo>().unwrap();
        assert!(info.cause.as_deref().unwrap().contains("invalid digit"));
    }

    #[test]
    fn error_response_carries_status_and_message() {
        let res = Error::not_found("no such user").into_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        match res.body() {
            crate::service::Body::Full(b) => assert_eq!(&b[..], b"no such user\n"),
            other => panic!("unexpected body {other:?}"),
        }
    }
}
