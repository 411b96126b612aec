//! Error pages: a response made from an [`Error`](crate::error::Error) (a handler error, a 404,
//! a 405, a panic's 500) is rendered as JSON or HTML when the client's `Accept` prefers one of
//! them, or left as plain text; its cause is logged with the request id. Responses that did not
//! come from an `Error` pass through untouched.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::Method;

use super::{Hook, RequestId};
use crate::error::ErrorInfo;
use crate::response::{escape_html, APPLICATION_JSON, TEXT_HTML};
use crate::service::{Body, Request, Response};

/// The error-page layer.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages {
    _private: (),
}

impl ErrorPages {
    pub fn new() -> Self {
        ErrorPages::default()
    }
}

/// The formats an error page can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Html,
    Text,
}

/// Picks the format from an `Accept` value (RFC 9110 §12.5.1): the highest q-value wins among
/// `application/json` (or `*/*+json`), `text/html` and `text/plain`; a format named exactly
/// beats one reached through a wildcard at the same q; `*/*` alone (curl's default) is text.
pub fn negotiate(accept: Option<&[u8]>) -> ErrorFormat {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return ErrorFormat::Text;
    };
    // (q in thousandths, exact match) per format.
    let mut best = [(0u16, false); 3];
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .next()
            .map_or(1000, parse_q);
        let targets: &[(usize, bool)] = match range.as_str() {
            "application/json" => &[(0, true)],
            r if r.starts_with("application/") && r.ends_with("+json") => &[(0, true)],
            "text/html" => &[(1, true)],
            "text/plain" => &[(2, true)],
            "application/*" => &[(0, false)],
            "text/*" => &[(1, false), (2, false)],
            "*/*" => &[(0, false), (1, false), (2, false)],
            _ => &[],
        };
        for &(i, exact) in targets {
            if (q, exact) > best[i] {
                best[i] = (q, exact);
            }
        }
    }
    let [json, html, text] = best;
    let top = json.max(html).max(text);
    if top.0 == 0 || !top.1 && text.0 == top.0 {
        ErrorFormat::Text
    } else if json == top {
        ErrorFormat::Json
    } else if html == top {
        ErrorFormat::Html
    } else {
        ErrorFormat::Text
    }
}

/// A q-value ("0.8") in thousandths; malformed values count as 0 (RFC 9110 §12.4.2 grammar).
fn parse_q(q: &str) -> u16 {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().unwrap_or(0);
    match int {
        "0" => thousandths,
        "1" if thousandths == 0 => 1000,
        _ => 0,
    }
}

/// What an error page needs of its request.
pub struct ErrorPageCarry {
    format: ErrorFormat,
    request_id: Option<RequestId>,
    method: Method,
}

impl Hook for ErrorPages {
    type Carry = ErrorPageCarry;

    fn before(&self, req: &mut Request) -> Result<ErrorPageCarry, Response> {
        Ok(ErrorPageCarry {
            format: negotiate(req.headers().get("accept")),
            request_id: req.request_id().cloned(),
            method: req.method().clone(),
        })
    }

    fn after(&self, carry: ErrorPageCarry, res: &mut Response) {
        let Some(info) = res.extensions().get::<ErrorInfo>() else {
            return;
        };
        let status = res.status();
        let id = carry.request_id.as_ref().map(|id| id.as_str());
        if let Some(cause) = &info.cause {
            if !info.panicked {
                // Panics were logged where they were caught.
                tracing::error!(request_id = id, method = %carry.method, status = status.as_u16(), cause = %cause, "request failed");
            }
        }
        let (body, content_type): (String, &HeaderValue) = match carry.format {
            ErrorFormat::Text => return,
            ErrorFormat::Json => {
                let json = serde_json::json!({
                    "error": { "status": status.as_u16(), "message": info.message },
                    "request_id": id,
                });
                (json.to_string(), &APPLICATION_JSON)
            }
            ErrorFormat::Html => {
                let reason = status.canonical_reason().unwrap_or("Error");
                let mut html = String::with_capacity(256);
                html.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
                html.push_str(status.as_str());
                html.push(' ');
                html.push_str(reason);
                html.push_str("</title></head>\n<body><h1>");
                html.push_str(status.as_str());
                html.push(' ');
                html.push_str(reason);
                html.push_str("</h1>\n<p>");
                escape_html(&info.message, &mut html);
                html.push_str("</p>\n");
                if let Some(id) = id {
                    html.push_str("<p><small>request id ");
                    escape_html(id, &mut html);
                    html.push_str("</small></p>\n");
                }
                html.push_str("</body></html>\n");
                (html, &TEXT_HTML)
            }
        };
        *res.body_mut() = Body::from(body);
        res.headers_mut().insert(CONTENT_TYPE, content_type.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values_and_specificity() {
        use ErrorFormat::*;
        let cases: &[(Option<&str>, ErrorFormat)] = &[
            (None, Text),
            (Some("*/*"), Text),
            (Some("application/json"), Json),
            (Some("application/problem+json"), Json),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Html,
            ),
            (Some("application/json;q=0.5, text/html;q=0.9"), Html),
            (Some("text/html;q=0.1, application/json"), Json),
            (Some("text/plain, application/json;q=0.9"), Text),
            (Some("application/json;q=0"), Text),
            (Some("image/png"), Text),
            (Some("text/*"), Text),
            (Some("application/*"), Json),
            (Some("application/json;q=1.5"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept.map(str::as_bytes)), *want, "{accept:?}");
        }
    }

    #[test]
    fn q_values_parse_per_the_grammar() {
        assert_eq!(parse_q("1"), 1000);
        assert_eq!(parse_q("1.000"), 1000);
        assert_eq!(parse_q("0.8"), 800);
        assert_eq!(parse_q("0.125"), 125);
        assert_eq!(parse_q("0.1234"), 0);
        assert_eq!(parse_q("2"), 0);
        assert_eq!(parse_q("abc"), 0);
    }

    #[test]
    fn html_is_escaped() {
        let mut out = String::new();
        escape_html("<script>\"x\" & 'y'</script>", &mut out);
        assert_eq!(
            out,
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
