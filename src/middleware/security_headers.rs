//! Security response headers: `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`,
//! `Strict-Transport-Security` (on TLS connections only), and optionally
//! `Content-Security-Policy` and `Cross-Origin-Opener-Policy`.
//!
//! A header the handler already set is left alone: the handler knows better (a page that must
//! be framed, a route with its own policy). Every value is built and checked when the layer is
//! built; a request costs one map lookup-or-insert per header.

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

use super::Hook;
use crate::service::{Request, Response};

/// `X-Frame-Options` (RFC 7034): who may put responses in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameOptions {
    /// Nobody (`DENY`).
    #[default]
    Deny,
    /// Pages of the same origin (`SAMEORIGIN`).
    SameOrigin,
    /// No header.
    Off,
}

impl FromStr for FrameOptions {
    type Err = ParseKeywordError;
    /// `deny`, `sameorigin` or `off` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "deny" => Ok(FrameOptions::Deny),
            "sameorigin" => Ok(FrameOptions::SameOrigin),
            "off" => Ok(FrameOptions::Off),
            _ => Err(ParseKeywordError::new(s, "deny, sameorigin, off")),
        }
    }
}

/// `Referrer-Policy` values (W3C Referrer Policy §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReferrerPolicy {
    NoReferrer,
    NoReferrerWhenDowngrade,
    SameOrigin,
    Origin,
    StrictOrigin,
    OriginWhenCrossOrigin,
    /// The browsers' own default since 2020, sent explicitly for older ones.
    #[default]
    StrictOriginWhenCrossOrigin,
    UnsafeUrl,
}

impl ReferrerPolicy {
    const ALL: [ReferrerPolicy; 8] = [
        ReferrerPolicy::NoReferrer,
        ReferrerPolicy::NoReferrerWhenDowngrade,
        ReferrerPolicy::SameOrigin,
        ReferrerPolicy::Origin,
        ReferrerPolicy::StrictOrigin,
        ReferrerPolicy::OriginWhenCrossOrigin,
        ReferrerPolicy::StrictOriginWhenCrossOrigin,
        ReferrerPolicy::UnsafeUrl,
    ];

    /// The token as sent in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerPolicy::NoReferrer => "no-referrer",
            ReferrerPolicy::NoReferrerWhenDowngrade => "no-referrer-when-downgrade",
            ReferrerPolicy::SameOrigin => "same-origin",
            ReferrerPolicy::Origin => "origin",
            ReferrerPolicy::StrictOrigin => "strict-origin",
            ReferrerPolicy::OriginWhenCrossOrigin => "origin-when-cross-origin",
            ReferrerPolicy::StrictOriginWhenCrossOrigin => "strict-origin-when-cross-origin",
            ReferrerPolicy::UnsafeUrl => "unsafe-url",
        }
    }
}

impl FromStr for ReferrerPolicy {
    type Err = ParseKeywordError;
    /// The header token (`no-referrer`, `strict-origin-when-cross-origin`, ...), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReferrerPolicy::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ParseKeywordError::new(
                    s,
                    "no-referrer, no-referrer-when-downgrade, same-origin, origin, \
                     strict-origin, origin-when-cross-origin, strict-origin-when-cross-origin, \
                     unsafe-url",
                )
            })
    }
}

/// `Cross-Origin-Opener-Policy` values (HTML, "Cross-origin opener policies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossOriginOpenerPolicy {
    UnsafeNone,
    SameOriginAllowPopups,
    SameOrigin,
    NoopenerAllowPopups,
}

impl CrossOriginOpenerPolicy {
    const ALL: [CrossOriginOpenerPolicy; 4] = [
        CrossOriginOpenerPolicy::UnsafeNone,
        CrossOriginOpenerPolicy::SameOriginAllowPopups,
        CrossOriginOpenerPolicy::SameOrigin,
        CrossOriginOpenerPolicy::NoopenerAllowPopups,
    ];

    /// The token as sent in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            CrossOriginOpenerPolicy::UnsafeNone => "unsafe-none",
            CrossOriginOpenerPolicy::SameOriginAllowPopups => "same-origin-allow-popups",
            CrossOriginOpenerPolicy::SameOrigin => "same-origin",
            CrossOriginOpenerPolicy::NoopenerAllowPopups => "noopener-allow-popups",
        }
    }
}

impl FromStr for CrossOriginOpenerPolicy {
    type Err = ParseKeywordError;
    /// The header token (`same-origin`, ...), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CrossOriginOpenerPolicy::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ParseKeywordError::new(
                    s,
                    "unsafe-none, same-origin-allow-popups, same-origin, noopener-allow-popups",
                )
            })
    }
}

/// A keyword that is not one of the expected ones (for command-line parsing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of: {expected}")]
pub struct ParseKeywordError {
    given: String,
    expected: &'static str,
}

impl ParseKeywordError {
    fn new(given: &str, expected: &'static str) -> Self {
        ParseKeywordError {
            given: given.to_owned(),
            expected,
        }
    }
}

/// `Strict-Transport-Security` (RFC 6797 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    /// `max-age`, in whole seconds (0 tells browsers to forget the host, RFC 6797 §6.1.1).
    /// Default: one year (31536000 s).
    pub max_age: Duration,
    /// `includeSubDomains`: also every subdomain. Default: false (it would break any subdomain
    /// still served over plain HTTP, which this server cannot know about).
    pub include_subdomains: bool,
    /// `preload`: consent to the browsers' preload lists (hstspreload.org), which require
    /// `includeSubDomains` and a max-age of at least a year. Default: false.
    pub preload: bool,
}

/// The max-age hstspreload.org requires, and the default: one year.
const ONE_YEAR: Duration = Duration::from_secs(31_536_000);

impl Default for Hsts {
    fn default() -> Self {
        Hsts {
            max_age: ONE_YEAR,
            include_subdomains: false,
            preload: false,
        }
    }
}

/// Configuration of the [`SecurityHeaders`] layer.
#[derive(Debug, Clone)]
pub struct SecurityHeadersConfig {
    /// `X-Content-Type-Options: nosniff` (Fetch, "should response to request be blocked due to
    /// nosniff"): no MIME sniffing of scripts and styles. Default: true.
    pub nosniff: bool,
    /// Default: `DENY`.
    pub frame_options: FrameOptions,
    /// Default: `strict-origin-when-cross-origin`; `None`: no header.
    pub referrer_policy: Option<ReferrerPolicy>,
    /// Sent on TLS connections only. Default: one year, without subdomains or preload; `None`:
    /// never.
    pub hsts: Option<Hsts>,
    /// `Content-Security-Policy`, as written (`default-src 'self'`). Default: none (a policy is
    /// specific to the site).
    pub content_security_policy: Option<String>,
    /// Default: none.
    pub cross_origin_opener_policy: Option<CrossOriginOpenerPolicy>,
}

impl Default for SecurityHeadersConfig {
    fn default() -> Self {
        SecurityHeadersConfig {
            nosniff: true,
            frame_options: FrameOptions::default(),
            referrer_policy: Some(ReferrerPolicy::default()),
            hsts: Some(Hsts::default()),
            content_security_policy: None,
            cross_origin_opener_policy: None,
        }
    }
}

/// A [`SecurityHeadersConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityHeadersError {
    #[error(
        "the Content-Security-Policy is not a valid header value \
         (control characters or line breaks?): {0:?}"
    )]
    InvalidContentSecurityPolicy(String),
    #[error("the Content-Security-Policy is empty")]
    EmptyContentSecurityPolicy,
    #[error(
        "HSTS preload requires includeSubDomains and a max-age of at least 31536000 s \
         (hstspreload.org)"
    )]
    HstsPreloadRequirements,
}

static COOP: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// The security-headers layer. Build it with [`SecurityHeaders::new`] on each shard (it is not
/// `Clone` on purpose: a value built from a `String` is reference-counted, and sharing one
/// between shards would make every request touch a cache line another core writes).
#[derive(Debug)]
pub struct SecurityHeaders {
    /// Headers for every response, in a fixed order.
    always: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, for TLS connections.
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// Checks `config` and precomputes every header value.
    pub fn new(config: &SecurityHeadersConfig) -> Result<SecurityHeaders, SecurityHeadersError> {
        let mut always = Vec::with_capacity(5);
        if config.nosniff {
            always.push((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
        }
        match config.frame_options {
            FrameOptions::Deny => always.push((X_FRAME_OPTIONS, HeaderValue::from_static("DENY"))),
            FrameOptions::SameOrigin => {
                always.push((X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN")))
            }
            FrameOptions::Off => {}
        }
        if let Some(policy) = config.referrer_policy {
            always.push((REFERRER_POLICY, HeaderValue::from_static(policy.as_str())));
        }
        if let Some(policy) = config.cross_origin_opener_policy {
            always.push((COOP.clone(), HeaderValue::from_static(policy.as_str())));
        }
        if let Some(csp) = &config.content_security_policy {
            if csp.trim().is_empty() {
                return Err(SecurityHeadersError::EmptyContentSecurityPolicy);
            }
            let value = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(csp.as_bytes()))
                .map_err(|_| SecurityHeadersError::InvalidContentSecurityPolicy(csp.clone()))?;
            always.push((CONTENT_SECURITY_POLICY, value));
        }
        let hsts = config.hsts.map(hsts_value).transpose()?;
        Ok(SecurityHeaders { always, hsts })
    }

    /// The fields for every response, to give [`App::default_fields`](crate::App::default_fields)
    /// (app-wide, written as responses go out) instead of running this as a layer.
    pub fn always(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.always.iter().cloned()
    }

    /// The fields for TLS connections only: `Strict-Transport-Security`, when configured.
    pub fn tls_only(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.hsts
            .iter()
            .map(|hsts| (STRICT_TRANSPORT_SECURITY, hsts.clone()))
    }

    fn apply(&self, headers: &mut HeaderMap, tls: bool) {
        for (name, value) in &self.always {
            insert_if_absent(headers, name, value);
        }
        // RFC 6797 §7.2: an HSTS host must not send the header over plain HTTP (it is ignored
        // there, §8.1, and would only advertise a policy an attacker can strip).
        if tls {
            if let Some(hsts) = &self.hsts {
                insert_if_absent(headers, &STRICT_TRANSPORT_SECURITY, hsts);
            }
        }
    }
}

/// One hash of `name`: the handler's value wins.
fn insert_if_absent(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    headers.entry(name).or_insert_with(|| value.clone());
}

/// The `Strict-Transport-Security` value (RFC 6797 §6.1).
fn hsts_value(hsts: Hsts) -> Result<HeaderValue, SecurityHeadersError> {
    if hsts.preload && (!hsts.include_subdomains || hsts.max_age < ONE_YEAR) {
        return Err(SecurityHeadersError::HstsPreloadRequirements);
    }
    let mut value = format!("max-age={}", hsts.max_age.as_secs());
    if hsts.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if hsts.preload {
        value.push_str("; preload");
    }
    Ok(HeaderValue::from_maybe_shared(Bytes::from(value))
        .expect("digits and fixed ASCII words are a valid header value"))
}

impl Hook for SecurityHeaders {
    /// Whether the request came over TLS.
    type Carry = bool;

    fn before(&self, req: &mut Request) -> Result<bool, Response> {
        Ok(req.tls)
    }

    fn after(&self, tls: bool, res: &mut Response) {
        self.apply(res.headers_mut(), tls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers, Next};
    use crate::service::response;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use std::rc::Rc;

    /// Answers 200 with the given headers already set.
    #[derive(Default)]
    struct Handler(Vec<(&'static str, &'static str)>);
    impl Endpoint for Handler {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            let mut res = response("ok");
            for (name, value) in &self.0 {
                res.headers_mut().insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            Box::pin(async move { res })
        }
    }

    fn run_with(config: SecurityHeadersConfig, handler: Handler, tls: bool) -> Response {
        let layer = SecurityHeaders::new(&config).expect("valid config");
        let layers: Layers = Rc::from(vec![Rc::new(layer) as Rc<dyn DynMiddleware>]);
        let mut req = request("GET / HTTP/1.1\r\n\r\n");
        req.tls = tls;
        block_on(Next::new(&layers, &handler).run(req))
    }

    fn run(config: SecurityHeadersConfig) -> Response {
        run_with(config, Handler::default(), false)
    }

    fn header<'r>(res: &'r Response, name: &str) -> Option<&'r str> {
        res.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn sets_nosniff_by_default() {
        let res = run(SecurityHeadersConfig::default());
        assert_eq!(header(&res, "x-content-type-options"), Some("nosniff"));
        let off = SecurityHeadersConfig {
            nosniff: false,
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(header(&run(off), "x-content-type-options"), None);
    }

    #[test]
    fn frame_options_default_to_deny_and_are_configurable() {
        assert_eq!(
            header(&run(SecurityHeadersConfig::default()), "x-frame-options"),
            Some("DENY")
        );
        for (option, want) in [
            (FrameOptions::SameOrigin, Some("SAMEORIGIN")),
            (FrameOptions::Off, None),
        ] {
            let config = SecurityHeadersConfig {
                frame_options: option,
                ..SecurityHeadersConfig::default()
            };
            assert_eq!(header(&run(config), "x-frame-options"), want);
        }
    }

    #[test]
    fn referrer_policy_defaults_to_strict_origin_when_cross_origin() {
        let res = run(SecurityHeadersConfig::default());
        assert_eq!(
            header(&res, "referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        let config = SecurityHeadersConfig {
            referrer_policy: Some(ReferrerPolicy::NoReferrer),
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(header(&run(config), "referrer-policy"), Some("no-referrer"));
        let config = SecurityHeadersConfig {
            referrer_policy: None,
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(header(&run(config), "referrer-policy"), None);
    }

    #[test]
    fn hsts_is_sent_on_tls_connections() {
        let res = run_with(SecurityHeadersConfig::default(), Handler::default(), true);
        assert_eq!(
            header(&res, "strict-transport-security"),
            Some("max-age=31536000")
        );
    }

    #[test]
    fn hsts_is_never_sent_on_plain_http() {
        let res = run_with(SecurityHeadersConfig::default(), Handler::default(), false);
        assert_eq!(header(&res, "strict-transport-security"), None);
    }

    #[test]
    fn hsts_directives_follow_the_config() {
        let config = SecurityHeadersConfig {
            hsts: Some(Hsts {
                max_age: Duration::from_secs(63_072_000),
                include_subdomains: true,
                preload: true,
            }),
            ..SecurityHeadersConfig::default()
        };
        let res = run_with(config, Handler::default(), true);
        assert_eq!(
            header(&res, "strict-transport-security"),
            Some("max-age=63072000; includeSubDomains; preload")
        );
        let off = SecurityHeadersConfig {
            hsts: None,
            ..SecurityHeadersConfig::default()
        };
        let res = run_with(off, Handler::default(), true);
        assert_eq!(header(&res, "strict-transport-security"), None);
    }

    #[test]
    fn hsts_preload_without_its_requirements_is_a_construction_error() {
        for hsts in [
            Hsts {
                preload: true,
                ..Hsts::default()
            },
            Hsts {
                preload: true,
                include_subdomains: true,
                max_age: Duration::from_secs(86_400),
            },
        ] {
            let config = SecurityHeadersConfig {
                hsts: Some(hsts),
                ..SecurityHeadersConfig::default()
            };
            assert_eq!(
                SecurityHeaders::new(&config).err(),
                Some(SecurityHeadersError::HstsPreloadRequirements)
            );
        }
    }

    #[test]
    fn csp_is_off_by_default() {
        assert_eq!(
            header(
                &run(SecurityHeadersConfig::default()),
                "content-security-policy"
            ),
            None
        );
    }

    #[test]
    fn csp_is_sent_when_configured() {
        let config = SecurityHeadersConfig {
            content_security_policy: Some("default-src 'self'; img-src *".to_owned()),
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(
            header(&run(config), "content-security-policy"),
            Some("default-src 'self'; img-src *")
        );
    }

    #[test]
    fn invalid_csp_is_a_construction_error() {
        for bad in ["default-src 'self'\r\nSet-Cookie: a=b", "a\0b", "x\u{7f}"] {
            let config = SecurityHeadersConfig {
                content_security_policy: Some(bad.to_owned()),
                ..SecurityHeadersConfig::default()
            };
            assert!(
                matches!(
                    SecurityHeaders::new(&config),
                    Err(SecurityHeadersError::InvalidContentSecurityPolicy(_))
                ),
                "{bad:?}"
            );
        }
        let empty = SecurityHeadersConfig {
            content_security_policy: Some("  ".to_owned()),
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(
            SecurityHeaders::new(&empty).err(),
            Some(SecurityHeadersError::EmptyContentSecurityPolicy)
        );
    }

    #[test]
    fn coop_is_sent_when_configured() {
        assert_eq!(
            header(
                &run(SecurityHeadersConfig::default()),
                "cross-origin-opener-policy"
            ),
            None
        );
        let config = SecurityHeadersConfig {
            cross_origin_opener_policy: Some(CrossOriginOpenerPolicy::SameOrigin),
            ..SecurityHeadersConfig::default()
        };
        assert_eq!(
            header(&run(config), "cross-origin-opener-policy"),
            Some("same-origin")
        );
    }

    #[test]
    fn headers_set_by_the_handler_are_kept() {
        let config = SecurityHeadersConfig {
            content_security_policy: Some("default-src 'none'".to_owned()),
            ..SecurityHeadersConfig::default()
        };
        let handler = Handler(vec![
            ("x-frame-options", "SAMEORIGIN"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", "frame-ancestors *"),
            ("strict-transport-security", "max-age=60"),
        ]);
        let res = run_with(config, handler, true);
        assert_eq!(header(&res, "x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(header(&res, "referrer-policy"), Some("no-referrer"));
        assert_eq!(
            header(&res, "content-security-policy"),
            Some("frame-ancestors *")
        );
        assert_eq!(
            header(&res, "strict-transport-security"),
            Some("max-age=60")
        );
        assert_eq!(res.headers().get_all("x-frame-options").iter().count(), 1);
        assert_eq!(header(&res, "x-content-type-options"), Some("nosniff"));
    }

    #[test]
    fn keywords_parse_from_their_header_tokens() {
        assert_eq!("SameOrigin".parse(), Ok(FrameOptions::SameOrigin));
        assert_eq!("off".parse(), Ok(FrameOptions::Off));
        assert!("allow-from x".parse::<FrameOptions>().is_err());
        for policy in ReferrerPolicy::ALL {
            assert_eq!(policy.as_str().parse(), Ok(policy));
        }
        assert!("never".parse::<ReferrerPolicy>().is_err());
        for policy in CrossOriginOpenerPolicy::ALL {
            assert_eq!(policy.as_str().parse(), Ok(policy));
        }
        assert!("same-site".parse::<CrossOriginOpenerPolicy>().is_err());
    }
}
