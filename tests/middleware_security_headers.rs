//! The security-headers layer served by the real runtime: headers on every response (404s
//! included), HSTS never over plain HTTP, a handler's own header kept, CSP when configured.
//! (HSTS on TLS is a unit test: there is no TLS listener yet.) Clients: reqwest, and raw sockets
//! read with httparse.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::app::AppServer;
use common::{client, RawResponse, ResponseReader};
use http::header::HeaderValue;
use percore::middleware::{
    CrossOriginOpenerPolicy, FrameOptions, SecurityHeaders, SecurityHeadersConfig,
};
use percore::{App, Ctx, Request, Response};

/// `/` (plain), `/embeddable` (sets its own `X-Frame-Options: SAMEORIGIN` and CSP), behind the
/// layer built from `config`.
fn server(config: SecurityHeadersConfig) -> AppServer {
    AppServer::start(1, move |_shard: &percore::ShardHandle| {
        routes().layer(SecurityHeaders::new(&config).expect("valid security-headers config"))
    })
}

/// The same routes with the headers as the app's default fields instead of a layer.
fn app_wide_server(config: SecurityHeadersConfig) -> AppServer {
    AppServer::start(1, move |_shard: &percore::ShardHandle| {
        let security = SecurityHeaders::new(&config).expect("valid security-headers config");
        routes().default_fields(security.always(), security.tls_only())
    })
}

fn routes() -> App {
    App::new()
        .get("/", |_req: Request, _cx: Ctx<()>| async { "home" })
        .get("/embeddable", |_req: Request, _cx: Ctx<()>| async {
            let mut res: Response = percore::service::response("widget");
            let headers = res.headers_mut();
            headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
            headers.insert(
                "content-security-policy",
                HeaderValue::from_static("frame-ancestors https://partner.example"),
            );
            res
        })
}

/// `GET /embeddable` over a raw socket, read as sent (repeated fields stay visible).
fn get_embeddable(server: &AppServer) -> RawResponse {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /embeddable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    ResponseReader::new().read(&mut stream, false).unwrap()
}

/// Every value of the field `name`, in order.
fn field_values<'r>(res: &'r RawResponse, name: &str) -> Vec<&'r str> {
    res.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn header(res: &reqwest::blocking::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn default_headers_are_on_every_response() {
    let server = server(SecurityHeadersConfig::default());
    for (path, status) in [("/", 200), ("/missing", 404)] {
        let res = client().get(server.url(path)).send().unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(
            header(&res, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&res, "x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            header(&res, "referrer-policy").as_deref(),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
        assert_eq!(
            header(&res, "content-security-policy"),
            None,
            "off by default"
        );
        assert_eq!(
            header(&res, "cross-origin-opener-policy"),
            None,
            "off by default"
        );
    }
}

#[test]
fn hsts_is_absent_on_plain_http() {
    let server = server(SecurityHeadersConfig::default());
    let res = client().get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "strict-transport-security"), None);
    // Whatever the request claims about the scheme it came over.
    let res = client()
        .get(server.url("/"))
        .header("x-forwarded-proto", "https")
        .send()
        .unwrap();
    assert_eq!(header(&res, "strict-transport-security"), None);
}

#[test]
fn headers_set_by_the_handler_are_kept() {
    let server = server(SecurityHeadersConfig {
        content_security_policy: Some("default-src 'self'".to_owned()),
        ..SecurityHeadersConfig::default()
    });
    let res = get_embeddable(&server);
    assert_eq!(res.status, 200);
    let values = |name: &str| field_values(&res, name);
    assert_eq!(values("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(
        values("content-security-policy"),
        ["frame-ancestors https://partner.example"]
    );
    assert_eq!(
        values("x-content-type-options"),
        ["nosniff"],
        "the others still apply"
    );
}

#[test]
fn csp_and_coop_are_sent_when_configured() {
    let server = server(SecurityHeadersConfig {
        content_security_policy: Some("default-src 'self'; img-src https:".to_owned()),
        cross_origin_opener_policy: Some(CrossOriginOpenerPolicy::SameOrigin),
        frame_options: FrameOptions::SameOrigin,
        ..SecurityHeadersConfig::default()
    });
    let res = client().get(server.url("/")).send().unwrap();
    assert_eq!(
        header(&res, "content-security-policy").as_deref(),
        Some("default-src 'self'; img-src https:")
    );
    assert_eq!(
        header(&res, "cross-origin-opener-policy").as_deref(),
        Some("same-origin")
    );
    assert_eq!(
        header(&res, "x-frame-options").as_deref(),
        Some("SAMEORIGIN")
    );
}

#[test]
fn disabled_headers_are_not_sent() {
    let server = server(SecurityHeadersConfig {
        nosniff: false,
        frame_options: FrameOptions::Off,
        referrer_policy: None,
        hsts: None,
        ..SecurityHeadersConfig::default()
    });
    let res = client().get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200);
    for name in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert_eq!(header(&res, name), None, "{name}");
    }
}

/// `App::default_fields` (how `percore serve` sends them) behaves as the layer does over
/// HTTP/1.1: on every answer, never HSTS over plain HTTP, a handler's own value kept and sent
/// once. (The protocol matrix checks the binary's over TLS and HTTP/2.)
#[test]
fn app_wide_default_fields_behave_as_the_layer() {
    let server = app_wide_server(SecurityHeadersConfig {
        cross_origin_opener_policy: Some(CrossOriginOpenerPolicy::SameOrigin),
        ..SecurityHeadersConfig::default()
    });
    for (path, status) in [("/", 200), ("/missing", 404)] {
        let res = client().get(server.url(path)).send().unwrap();
        assert_eq!(res.status(), status);
        for (name, want) in [
            ("x-content-type-options", Some("nosniff")),
            ("x-frame-options", Some("DENY")),
            ("referrer-policy", Some("strict-origin-when-cross-origin")),
            ("cross-origin-opener-policy", Some("same-origin")),
            ("strict-transport-security", None),
            ("content-security-policy", None),
        ] {
            assert_eq!(header(&res, name).as_deref(), want, "{path} {name}");
        }
    }
    let res = get_embeddable(&server);
    let values = |name: &str| field_values(&res, name);
    assert_eq!(values("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(values("x-content-type-options"), ["nosniff"]);
}
