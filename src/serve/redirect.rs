//! The service of plain listeners when `--redirect-https` is on: every request gets a 308 to the
//! same path and query over HTTPS (RFC 9110 §15.4.9: 308 keeps the method and body).

use http::{header, HeaderValue, StatusCode};

use crate::service::{Request, Response, Service};

pub(crate) struct RedirectToHttps {
    /// The port of the first TLS listener; left out of the URL when it is 443.
    pub(crate) https_port: u16,
}

impl Service for RedirectToHttps {
    async fn call(&self, req: Request) -> Response {
        match self.location(&req) {
            Some(location) => {
                let mut res = Response::new(crate::service::Body::Empty);
                *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
                res.headers_mut().insert(header::LOCATION, location);
                res
            }
            None => {
                let mut res = Response::new(crate::service::Body::Empty);
                *res.status_mut() = StatusCode::BAD_REQUEST;
                res
            }
        }
    }
}

impl RedirectToHttps {
    /// `https://HOST[:PORT]/path?query`, with the host from `Host` (its port replaced), or `None`
    /// when there is no usable host (then a redirect could only guess).
    fn location(&self, req: &Request) -> Option<HeaderValue> {
        let host = req
            .target()
            .authority()
            .or_else(|| req.headers().get_str("host"))?;
        let host = strip_port(host)?;
        let target = req.target();
        let mut url = String::with_capacity(16 + host.len() + target.raw().len());
        url.push_str("https://");
        url.push_str(host);
        if self.https_port != 443 {
            url.push(':');
            url.push_str(itoa::Buffer::new().format(self.https_port));
        }
        match target.raw_path() {
            path if path.starts_with('/') => url.push_str(path),
            _ => url.push('/'),
        }
        if let Some(query) = target.query() {
            url.push('?');
            url.push_str(query);
        }
        HeaderValue::from_str(&url).ok()
    }
}

/// The host of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), or `None` if it is
/// empty or holds characters a host cannot have (it goes into a `Location`).
fn strip_port(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_stripped_and_junk_refused() {
        assert_eq!(strip_port("example.com:8080"), Some("example.com"));
        assert_eq!(strip_port("example.com"), Some("example.com"));
        assert_eq!(strip_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(strip_port("evil.com/x"), None);
        assert_eq!(strip_port(""), None);
        assert_eq!(strip_port("a@b"), None);
    }
}
