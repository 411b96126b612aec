//! Whether an HTTP/1.1 request asks to go on as cleartext HTTP/2 (`Upgrade: h2c`, RFC 7540 §3.2)
//! in a form this server takes up. Pure checks over a parsed [`RequestHead`]; the switch itself
//! (the 101 response, the hand-over to HTTP/2) belongs to the connection loop, and turning the
//! request into HTTP/2's stream 1 to `crate::serve::h2c_upgrade`.
//!
//! RFC 9113 §3.1 deprecates this upgrade, but `curl --http2 http://…` and `nghttp -u` still use
//! it. A server may always ignore `Upgrade` (RFC 9110 §7.8) and answer over HTTP/1.1, which is
//! what happens to every request that fails a check here.

use super::headers::trim_ows;
use super::{RequestHead, TargetForm, Version};

/// Whether `head` asks for `h2c` in a form we take up: HTTP/1.1 (RFC 9110 §7.8: an `Upgrade` in
/// an HTTP/1.0 request must be ignored), persistent, without a body, with a target HTTP/2 carries
/// as it is in `:path` (origin-form, or `*` for OPTIONS, RFC 9113 §8.3.1),
/// `Upgrade` listing `h2c`, `Connection` listing `Upgrade` and `HTTP2-Settings`, and exactly one
/// well-formed `HTTP2-Settings` field (RFC 7540 §3.2.1: a server must not upgrade without one,
/// or with more than one).
///
/// Bodies are excluded because their bytes would have to reach HTTP/2 as DATA frames on stream 1
/// before any frame of the client's, within flow-control windows nobody has agreed on yet, after
/// the whole body was read over HTTP/1.1; serving such a request over HTTP/1.1 is simpler and
/// allowed; a client that wants to upgrade before sending a body can ask with `OPTIONS *` first
/// (RFC 7540 §3.2; what `nghttp -u` does). The other target forms (absolute-form for proxies,
/// CONNECT's authority-form) would need rewriting into other pseudo-header fields; they are served
/// over HTTP/1.1 too.
pub fn wants_h2c(head: &RequestHead) -> bool {
    head.connection_upgrade
        && head.version == Version::Http11
        && head.keep_alive
        && !head.framing.has_body()
        && matches!(
            head.target.form(),
            TargetForm::Origin | TargetForm::Asterisk
        )
        && lists(head.headers.get_all("upgrade"), b"h2c")
        && lists(head.headers.get_all("connection"), b"http2-settings")
        && single_settings(head)
}

/// Whether any of `values` (comma-separated lists, RFC 9110 §5.6.1) has the element `token`,
/// ASCII case-insensitive (connection options and protocol names both are, RFC 9110 §7.6.1 and
/// §7.8).
fn lists<'a>(values: impl Iterator<Item = &'a [u8]>, token: &[u8]) -> bool {
    values
        .flat_map(|value| value.split(|&b| b == b','))
        .any(|element| trim_ows(element).eq_ignore_ascii_case(token))
}

/// Exactly one `HTTP2-Settings` field, holding a SETTINGS payload in base64url.
fn single_settings(head: &RequestHead) -> bool {
    let mut values = head.headers.get_all("http2-settings");
    match (values.next(), values.next()) {
        (Some(value), None) => is_settings_payload(value),
        _ => false,
    }
}

/// RFC 7540 §3.2.1: `token68` in the base64url alphabet (RFC 4648 §5) with the padding left out,
/// decoding to a SETTINGS payload: six bytes per setting (RFC 9113 §6.5.1). Six bytes are eight
/// characters exactly, so a well-formed value has a multiple of eight characters and never
/// padding or leftover bits; no need to decode it to know. The values themselves are not used:
/// the client's SETTINGS frame, which must follow the connection preface anyway (RFC 9113 §3.4),
/// carries the same settings to the HTTP/2 server.
fn is_settings_payload(value: &[u8]) -> bool {
    value.len().is_multiple_of(8)
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{HeadParser, Headers, Limits, Status};
    use bytes::BytesMut;

    /// What curl 8 sends with `--http2` to an http:// URL.
    const CURL: &str =
        "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\n\
        Accept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
        HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";

    fn head(input: &str) -> RequestHead {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::from(input);
        match parser.parse(&mut buf, &mut Headers::default()) {
            Ok(Status::Complete(head)) => head,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    /// The curl request with `from` replaced by `to`.
    fn curl_with(from: &str, to: &str) -> RequestHead {
        assert!(CURL.contains(from), "{from:?}");
        head(&CURL.replacen(from, to, 1))
    }

    #[test]
    fn curl_upgrade_request_qualifies() {
        assert!(wants_h2c(&head(CURL)));
    }

    #[test]
    fn upgrade_token_is_case_insensitive_and_may_be_one_of_a_list() {
        assert!(wants_h2c(&curl_with(
            "Upgrade: h2c",
            "upgrade: websocket, H2C"
        )));
        assert!(wants_h2c(&curl_with(
            "Upgrade: h2c",
            "Upgrade: websocket\r\nUpgrade: h2c"
        )));
        assert!(!wants_h2c(&curl_with("Upgrade: h2c", "Upgrade: h2")));
        assert!(!wants_h2c(&curl_with("Upgrade: h2c", "Upgrade: h2c/1")));
        assert!(!wants_h2c(&curl_with("Upgrade: h2c\r\n", "")));
    }

    #[test]
    fn connection_must_list_upgrade_and_http2_settings() {
        assert!(wants_h2c(&curl_with(
            "Connection: Upgrade, HTTP2-Settings",
            "Connection: http2-settings\r\nConnection: upgrade"
        )));
        assert!(!wants_h2c(&curl_with(
            "Connection: Upgrade, HTTP2-Settings",
            "Connection: Upgrade"
        )));
        assert!(!wants_h2c(&curl_with(
            "Connection: Upgrade, HTTP2-Settings",
            "Connection: HTTP2-Settings"
        )));
    }

    #[test]
    fn exactly_one_http2_settings_field_is_required() {
        let settings = "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n";
        assert!(!wants_h2c(&curl_with(settings, "")));
        assert!(!wants_h2c(&curl_with(
            settings,
            &format!("{settings}{settings}")
        )));
        // An empty payload is a SETTINGS frame without settings: allowed.
        assert!(wants_h2c(&curl_with(settings, "HTTP2-Settings: \r\n")));
    }

    #[test]
    fn http2_settings_must_be_unpadded_base64url_of_whole_settings() {
        assert!(is_settings_payload(b"AAMAAABkAAQAoAAAAAIAAAAA"));
        assert!(is_settings_payload(b"-_-_-_-_"));
        assert!(is_settings_payload(b""));
        // Standard base64's alphabet, padding, a length that is not whole settings.
        assert!(!is_settings_payload(b"AAMA+/Bk"));
        assert!(!is_settings_payload(b"AAMAAA=="));
        assert!(!is_settings_payload(b"AAMAAABkAAQ"));
        assert!(!is_settings_payload(b"AAMAAAB k"));
    }

    #[test]
    fn requests_with_a_body_are_not_upgraded() {
        let get = CURL.replacen("Accept: */*\r\n", "Content-Length: 5\r\n", 1);
        assert!(!wants_h2c(&head(&get)));
        let get = CURL.replacen("Accept: */*\r\n", "Transfer-Encoding: chunked\r\n", 1);
        assert!(!wants_h2c(&head(&get)));
        // No body bytes to carry.
        let get = CURL.replacen("Accept: */*\r\n", "Content-Length: 0\r\n", 1);
        assert!(wants_h2c(&head(&get)));
    }

    #[test]
    fn options_asterisk_qualifies() {
        assert!(wants_h2c(&curl_with("GET /plaintext", "OPTIONS *")));
    }

    #[test]
    fn http10_close_and_other_target_forms_are_not_upgraded() {
        assert!(!wants_h2c(&curl_with("HTTP/1.1", "HTTP/1.0")));
        assert!(!wants_h2c(&curl_with(
            "Connection: Upgrade, HTTP2-Settings",
            "Connection: Upgrade, HTTP2-Settings, close"
        )));
        assert!(!wants_h2c(&curl_with(
            "GET /plaintext",
            "GET http://127.0.0.1:8080/plaintext"
        )));
        assert!(!wants_h2c(&curl_with(
            "GET /plaintext",
            "CONNECT 127.0.0.1:8080"
        )));
    }
}
