//! `ParseError`: every reason a request is rejected, and the one place each maps to a status code.
//!
//! The variants say what was wrong, not which status to send; `ParseError::status` is the only
//! mapping (model: rustls `From<InvalidMessage> for AlertDescription`). Every rejection is fatal for
//! the connection: the framing of anything that follows can no longer be trusted (RFC 9112 §9.6 on
//! closing after an error), so the connection loop answers with `status()` and closes.

use http::StatusCode;

/// Why a request (head or body) was rejected. Small and `Copy` so that parsers can store it and
/// return it again on every later call (errors stick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    // ---- request line (RFC 9112 §3) ----
    #[error("invalid method token")]
    BadMethod,
    #[error("invalid request-target")]
    BadTarget,
    #[error("invalid percent-encoding in the request-target path")]
    BadPercentEncoding,
    #[error("malformed HTTP version")]
    BadVersion,
    #[error("HTTP version not supported")]
    UnsupportedVersion,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("request line too long")]
    RequestLineTooLong,
    #[error("too many empty lines before the request line")]
    TooManyLeadingEmptyLines,

    // ---- line endings (RFC 9112 §2.2) ----
    #[error("bare LF line ending")]
    BareLineFeed,
    #[error("bare CR")]
    BareCarriageReturn,

    // ---- header fields (RFC 9112 §5, RFC 9110 §5) ----
    #[error("header section too large")]
    HeadersTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("invalid header field name")]
    BadHeaderName,
    #[error("invalid header field value")]
    BadHeaderValue,
    #[error("whitespace between a field name and its colon")]
    WhitespaceBeforeColon,
    #[error("obsolete line folding")]
    ObsFold,

    // ---- Host (RFC 9112 §3.2) ----
    #[error("missing Host header in an HTTP/1.1 request")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid Host header value")]
    BadHost,

    // ---- framing (RFC 9112 §6) ----
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("differing Content-Length values")]
    ConflictingContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("malformed Transfer-Encoding")]
    BadTransferEncoding,
    #[error("transfer coding not implemented")]
    UnsupportedTransferCoding,
    #[error("chunked is not the final transfer coding")]
    ChunkedNotFinal,
    #[error("chunked applied more than once")]
    ChunkedTwice,
    #[error("unsupported expectation")]
    UnsupportedExpectation,

    // ---- chunked body (RFC 9112 §7.1) ----
    #[error("invalid chunk size")]
    BadChunkSize,
    #[error("invalid chunk extension")]
    BadChunkExtension,
    #[error("chunk extensions too long")]
    ChunkExtensionTooLong,
    #[error("missing CRLF after chunk data")]
    BadChunkTerminator,
    #[error("trailer section too large")]
    TrailersTooLarge,

    // ---- body size ----
    #[error("request body too large")]
    BodyTooLarge,
}

impl ParseError {
    /// The status code to answer with. The only place a rejection maps to a status.
    pub fn status(self) -> StatusCode {
        use ParseError::*;
        match self {
            // RFC 9112 §3: a request line longer than the server accepts → 414.
            RequestLineTooLong => StatusCode::URI_TOO_LONG,
            // RFC 6585 §5: header section (or trailer section) over the limit → 431.
            HeadersTooLarge | TooManyHeaders | TrailersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            // RFC 9110 §15.5.14.
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // RFC 9112 §6.1: a transfer coding the server does not understand → 501.
            UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            // RFC 9110 §15.6.6: well-formed but unsupported major/minor version → 505.
            UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            // RFC 9110 §10.1.1: an expectation we cannot meet → 417.
            UnsupportedExpectation => StatusCode::EXPECTATION_FAILED,
            BadMethod
            | BadTarget
            | BadPercentEncoding
            | BadVersion
            | BadRequestLine
            | TooManyLeadingEmptyLines
            | BareLineFeed
            | BareCarriageReturn
            | BadHeaderName
            | BadHeaderValue
            | WhitespaceBeforeColon
            | ObsFold
            | MissingHost
            | DuplicateHost
            | BadHost
            | BadContentLength
            | ConflictingContentLength
            | ContentLengthWithTransferEncoding
            | TransferEncodingOnHttp10
            | BadTransferEncoding
            | ChunkedNotFinal
            | ChunkedTwice
            | BadChunkSize
            | BadChunkExtension
            | ChunkExtensionTooLong
            | BadChunkTerminator => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<ParseError> for StatusCode {
    fn from(e: ParseError) -> StatusCode {
        e.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_414_431_413() {
        assert_eq!(ParseError::RequestLineTooLong.status(), 414);
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);
        assert_eq!(ParseError::TooManyHeaders.status(), 431);
        assert_eq!(ParseError::TrailersTooLarge.status(), 431);
        assert_eq!(ParseError::BodyTooLarge.status(), 413);
    }

    #[test]
    fn unsupported_features_map_to_501_505_417() {
        assert_eq!(ParseError::UnsupportedTransferCoding.status(), 501);
        assert_eq!(ParseError::UnsupportedVersion.status(), 505);
        assert_eq!(ParseError::UnsupportedExpectation.status(), 417);
    }

    #[test]
    fn malformed_requests_map_to_400() {
        for e in [
            ParseError::BadMethod,
            ParseError::ObsFold,
            ParseError::ContentLengthWithTransferEncoding,
            ParseError::BadChunkTerminator,
        ] {
            assert_eq!(StatusCode::from(e), StatusCode::BAD_REQUEST, "{e:?}");
        }
    }
}
