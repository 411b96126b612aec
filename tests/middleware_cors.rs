//! The CORS layer served by the real runtime: preflights answered (or refused) by the layer,
//! actual responses decorated for allowed origins only, `Vary`, credentials, and requests
//! without `Origin` left alone. Clients: reqwest, and raw sockets read with httparse.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::app::AppServer;
use common::{client, RawResponse, ResponseReader};
use http::header::{HeaderName, HeaderValue};
use http::Method;
use percore::middleware::{AllowedHeaders, AllowedOrigins, Cors, CorsConfig};
use percore::{App, Ctx, Request, Response};

const APP_ORIGIN: &str = "https://app.example";

/// Allows `https://app.example` to use GET/PUT/DELETE with `content-type` and `x-token`, and to
/// read `x-total`.
fn listed() -> CorsConfig {
    CorsConfig {
        allowed_origins: AllowedOrigins::List(vec![APP_ORIGIN.to_owned()]),
        allowed_methods: vec![Method::GET, Method::PUT, Method::DELETE],
        allowed_headers: AllowedHeaders::List(vec![
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-token"),
        ]),
        exposed_headers: vec![HeaderName::from_static("x-total")],
        ..CorsConfig::default()
    }
}

/// `/items` (GET, PUT; an OPTIONS handler that answers 418, so reaching it shows), `/vary` (sets
/// `Vary: accept-encoding`), behind the CORS layer built from `config`.
fn server(config: CorsConfig) -> AppServer {
    AppServer::start(1, move |_shard: &percore::ShardHandle| {
        App::new()
            .get("/items", |_req: Request, _cx: Ctx<()>| async { "items" })
            .put("/items", |_req: Request, _cx: Ctx<()>| async { "stored" })
            .options("/items", |_req: Request, _cx: Ctx<()>| async {
                http::StatusCode::IM_A_TEAPOT
            })
            .get("/vary", |_req: Request, _cx: Ctx<()>| async {
                let mut res: Response = percore::service::response("negotiated");
                res.headers_mut()
                    .insert("vary", HeaderValue::from_static("accept-encoding"));
                res
            })
            .layer(Cors::new(config.clone()).expect("valid CORS config"))
    })
}

fn preflight(
    server: &AppServer,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> reqwest::blocking::Response {
    let mut req = client()
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        req = req.header("access-control-request-headers", headers);
    }
    req.send().unwrap()
}

fn get(server: &AppServer, path: &str, origin: Option<&str>) -> reqwest::blocking::Response {
    let mut req = client().get(server.url(path));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().unwrap()
}

fn header(res: &reqwest::blocking::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn cors_header_names(res: &reqwest::blocking::Response) -> Vec<String> {
    res.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

/// Every `Vary` line's tokens, lowercased, in order.
fn vary_tokens(res: &reqwest::blocking::Response) -> Vec<String> {
    res.headers()
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

/// Sends `request` on a fresh connection and reads one response with httparse.
fn raw(server: &AppServer, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    ResponseReader::new().read(&mut stream, false).unwrap()
}

#[test]
fn preflight_from_an_allowed_origin_is_answered_by_the_layer() {
    let server = server(listed());
    let res = preflight(
        &server,
        "/items",
        APP_ORIGIN,
        "PUT",
        Some("content-type,x-token"),
    );
    assert_eq!(
        res.status(),
        204,
        "the route's OPTIONS handler (418) was not called"
    );
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        header(&res, "access-control-allow-methods").as_deref(),
        Some("GET, PUT, DELETE")
    );
    assert_eq!(
        header(&res, "access-control-allow-headers").as_deref(),
        Some("content-type, x-token")
    );
    assert_eq!(
        header(&res, "access-control-max-age").as_deref(),
        Some("600")
    );
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    assert_eq!(
        vary_tokens(&res),
        [
            "origin",
            "access-control-request-method",
            "access-control-request-headers"
        ]
    );
    assert_eq!(
        header(&res, "content-length"),
        None,
        "RFC 9110 §8.6: none in a 204"
    );

    // A path without any route is answered all the same: preflights never reach the router.
    let res = preflight(&server, "/nowhere", APP_ORIGIN, "DELETE", None);
    assert_eq!(res.status(), 204);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
}

#[test]
fn preflight_from_a_disallowed_origin_gets_no_cors_headers() {
    let server = server(listed());
    for origin in [
        "https://evil.example",
        "https://APP.example",
        "null",
        "http://app.example",
    ] {
        let res = preflight(&server, "/items", origin, "PUT", None);
        assert_eq!(res.status(), 204, "{origin}");
        assert!(cors_header_names(&res).is_empty(), "{origin}: {res:?}");
    }
}

#[test]
fn preflight_for_a_disallowed_method_gets_no_cors_headers() {
    let server = server(listed());
    for method in ["PATCH", "put", "CONNECT"] {
        let res = preflight(&server, "/items", APP_ORIGIN, method, None);
        assert_eq!(res.status(), 204, "{method}");
        assert!(cors_header_names(&res).is_empty(), "{method}: {res:?}");
    }
    // Safelisted methods need no listing (the browser never checks them).
    let res = preflight(&server, "/items", APP_ORIGIN, "POST", Some("x-token"));
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
}

#[test]
fn preflight_for_a_disallowed_header_gets_no_cors_headers() {
    let server = server(listed());
    let res = preflight(
        &server,
        "/items",
        APP_ORIGIN,
        "PUT",
        Some("x-token, authorization"),
    );
    assert_eq!(res.status(), 204);
    assert!(cors_header_names(&res).is_empty(), "{res:?}");
    // Several Access-Control-Request-Headers lines are one list: each element is checked.
    let res = raw(
        &server,
        b"OPTIONS /items HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\
          Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-token\r\n\
          Access-Control-Request-Headers: x-secret\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(res.status, 204);
    assert!(
        res.header("access-control-allow-origin").is_none(),
        "{res:?}"
    );
}

#[test]
fn mirrored_headers_are_echoed_back() {
    let server = server(CorsConfig {
        allowed_headers: AllowedHeaders::Mirror,
        ..listed()
    });
    let res = preflight(
        &server,
        "/items",
        APP_ORIGIN,
        "PUT",
        Some("authorization, x-anything"),
    );
    assert_eq!(
        header(&res, "access-control-allow-headers").as_deref(),
        Some("authorization, x-anything")
    );
}

#[test]
fn actual_request_from_an_allowed_origin_gets_allow_origin_and_exposed_headers() {
    let server = server(listed());
    let res = get(&server, "/items", Some(APP_ORIGIN));
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        header(&res, "access-control-expose-headers").as_deref(),
        Some("x-total")
    );
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    assert_eq!(
        header(&res, "access-control-allow-methods"),
        None,
        "preflight only"
    );
    assert_eq!(vary_tokens(&res), ["origin"]);
    assert_eq!(res.text().unwrap(), "items");
}

#[test]
fn actual_request_from_a_disallowed_origin_is_served_without_cors_headers() {
    let server = server(listed());
    let res = get(&server, "/items", Some("https://evil.example"));
    assert_eq!(
        res.status(),
        200,
        "CORS does not refuse requests; the browser refuses reads"
    );
    assert!(cors_header_names(&res).is_empty(), "{res:?}");
    assert_eq!(vary_tokens(&res), ["origin"]);
    assert_eq!(res.text().unwrap(), "items");
}

#[test]
fn options_with_origin_but_no_request_method_reaches_the_route() {
    let server = server(listed());
    let res = client()
        .request(reqwest::Method::OPTIONS, server.url("/items"))
        .header("origin", APP_ORIGIN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 418);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
}

#[test]
fn credentials_echo_the_origin_instead_of_a_wildcard() {
    let server = server(CorsConfig {
        allowed_origins: AllowedOrigins::Any,
        allow_credentials: true,
        ..listed()
    });
    let res = get(&server, "/items", Some("https://anyone.example"));
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("https://anyone.example")
    );
    assert_eq!(
        header(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(vary_tokens(&res), ["origin"]);
    let res = preflight(&server, "/items", "https://anyone.example", "PUT", None);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("https://anyone.example")
    );
    assert_eq!(
        header(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let res = get(&server, "/items", Some("null"));
    assert!(
        cors_header_names(&res).is_empty(),
        "null is echoed only when listed"
    );
}

#[test]
fn any_origin_without_credentials_is_a_wildcard_without_vary() {
    let server = server(CorsConfig {
        allowed_origins: AllowedOrigins::Any,
        ..listed()
    });
    let res = get(&server, "/items", Some("https://anyone.example"));
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(vary_tokens(&res).is_empty());
}

#[test]
fn vary_origin_is_added_beside_the_handlers_vary() {
    let server = server(listed());
    let res = raw(
        &server,
        b"GET /vary HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(res.status, 200);
    let vary: Vec<&str> = res
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(vary, ["accept-encoding", "origin"]);
}

#[test]
fn requests_without_origin_get_no_cors_headers_but_vary_on_origin() {
    let server = server(listed());
    let res = get(&server, "/items", None);
    assert_eq!(res.status(), 200);
    assert!(cors_header_names(&res).is_empty());
    // The answer depends on the origin (a list), so caches must key on it (Fetch).
    assert_eq!(vary_tokens(&res), ["origin"]);
    // An OPTIONS without Origin is the app's business, not a preflight.
    let res = client()
        .request(reqwest::Method::OPTIONS, server.url("/items"))
        .header("access-control-request-method", "PUT")
        .send()
        .unwrap();
    assert_eq!(res.status(), 418);
}

#[test]
fn odd_origins_get_no_cors_headers_and_do_not_break_the_connection() {
    let server = server(listed());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = ResponseReader::new();
    let odd: [&[u8]; 4] = [
        b"Origin: \r\n",
        b"Origin: https://\xffapp.example\r\n",
        b"Origin: https://app.example https://app.example\r\n",
        b"Origin: https://app.example\r\nAccess-Control-Request-Method: \r\n",
    ];
    for (i, line) in odd.iter().enumerate() {
        for method in ["GET", "OPTIONS"] {
            let mut req = format!("{method} /items HTTP/1.1\r\nHost: x\r\n").into_bytes();
            req.extend_from_slice(line);
            req.extend_from_slice(b"\r\n");
            stream.write_all(&req).unwrap();
            let res = reader.read(&mut stream, false).unwrap();
            let allowed = res.header("access-control-allow-origin");
            if i == 3 && method == "GET" {
                // An ordinary GET from the allowed origin.
                assert_eq!(allowed, Some(APP_ORIGIN));
            } else {
                assert_eq!(
                    allowed,
                    None,
                    "{method} {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
    // The connection is still usable.
    stream
        .write_all(b"GET /items HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n")
        .unwrap();
    let res = reader.read(&mut stream, false).unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP_ORIGIN));
}
