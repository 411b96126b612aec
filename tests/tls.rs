//! TLS listeners of the real binary: the development certificate, given certificates, start-up
//! errors, hostile and stalled peers, SIGHUP reload, the HTTPS redirect, HSTS, resumption and
//! ALPN. Clients: reqwest (rustls, verifying) and a raw rustls client (tests/common/tls.rs).

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::files::{pattern, TempDir};
use common::{closed_by_server, eventually, roundtrip, Server, BIN};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tls_common::*;

/// A reqwest client that trusts only `pem` and resolves `localhost` to `addr`.
fn https_client(pem: &[u8], addr: SocketAddr, http1: bool) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM certificate"))
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10));
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().expect("reqwest client")
}

fn count_lines(server: &Server, needle: &str) -> usize {
    server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// Starts the server with the files of `cert` (plus `extra` flags).
fn start_with_cert(dir: &TempDir, cert: &TestCert, shards: &str, extra: &[&str]) -> Server {
    let cert_path = dir.write("cert.pem", &cert.cert_pem);
    let key_path = dir.write("key.pem", &cert.key_pem);
    let mut flags = vec![
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        &cert_path,
        "--key",
        &key_path,
    ];
    flags.extend_from_slice(extra);
    Server::start_with(&["--shards", shards], &flags, |_| {})
}

// ---------------------------------------------------------------- 1. development certificate

#[test]
fn dev_cert_serves_https_h1_and_h2_and_logs_its_fingerprint() {
    let dir = TempDir::new("dev");
    let pem_path = dir.file("dev.pem");
    let server = Server::start(&["--tls-listen", "127.0.0.1:0", "--dev-cert-out", &pem_path]);
    let tls = server.tls_addr();
    let pem = std::fs::read(&pem_path).expect("--dev-cert-out written");

    let h1 = https_client(&pem, tls, true);
    let h2 = https_client(&pem, tls, false);
    for (client, version) in [
        (&h1, reqwest::Version::HTTP_11),
        (&h2, reqwest::Version::HTTP_2),
    ] {
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("https://{host}:{}/plaintext", tls.port());
            let resp = client
                .get(&url)
                .send()
                .unwrap_or_else(|e| panic!("{url}: {e:?}"));
            assert_eq!(resp.status(), 200, "{url}");
            assert_eq!(resp.version(), version, "{url}");
            assert_eq!(resp.text().unwrap(), "Hello, World!");
        }
    }

    let der = CertificateDer::from_pem_slice(&pem).expect("a certificate in the PEM");
    let fp = fingerprint(der.as_ref());
    let log = server.log_text();
    let warning = server
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("WARN") && l.contains("sha256="))
        .cloned()
        .unwrap_or_else(|| panic!("no fingerprint warning; log: {log}"));
    assert!(warning.contains("development only"), "{warning}");
    assert!(
        warning.contains(&format!("sha256={fp}")),
        "want {fp} in {warning}"
    );

    // The served certificate is the one written out.
    let conn = tls_connect(tls, fresh_config(BOTH)).expect("handshake");
    assert_eq!(conn.peer_leaf(), der.as_ref());
}

#[test]
fn dev_cert_out_to_an_unwritable_path_fails_start_up() {
    let dir = TempDir::new("devbad");
    let bad = dir.file("no/such/dir/dev.pem");
    let (code, stderr) = run_serve(&["--tls-listen", "127.0.0.1:0", "--dev-cert-out", &bad]);
    // The certificate is made (and its warning logged) before the write fails: the error is the
    // one `percore:` line.
    assert!(
        code.is_some() && code != Some(0),
        "exit {code:?}; stderr: {stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("percore:"))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(
        errors[0].contains(&bad),
        "want {bad} named; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

// ---------------------------------------------------------------- 2. given certificate and key

fn assert_serves(cert: &TestCert, what: &str) {
    let dir = TempDir::new("given");
    let server = start_with_cert(&dir, cert, "2", &[]);
    let tls = server.tls_addr();
    for (versions, name) in [(TLS13, "TLS 1.3"), (TLS12, "TLS 1.2")] {
        let mut conn = tls_connect(tls, fresh_config(versions))
            .unwrap_or_else(|e| panic!("{what} over {name}: {e}"));
        assert_eq!(
            conn.peer_leaf(),
            cert.der,
            "{what} over {name}: served another cert"
        );
        let res = conn.get("/plaintext").unwrap();
        assert_eq!(res.status, 200, "{what} over {name}");
        assert_eq!(res.body_str(), "Hello, World!");
    }
    // A verifying client that trusts the certificate.
    let client = https_client(cert.cert_pem.as_bytes(), tls, false);
    let url = format!("https://localhost:{}/plaintext", tls.port());
    let resp = client
        .get(&url)
        .send()
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{what}");
}

#[test]
fn given_ec_p256_cert_is_served() {
    assert_serves(&ec_cert("percore ec test"), "EC P-256, PKCS#8 key");
}

#[test]
fn given_rsa_cert_is_served_pkcs8_and_pkcs1() {
    assert_serves(&rsa_cert("percore rsa test", false), "RSA, PKCS#8 key");
    assert_serves(&rsa_cert("percore rsa test", true), "RSA, PKCS#1 key");
}

// ---------------------------------------------------------------- 3. start-up failures

/// Runs `percore serve` (ephemeral plain listener, one shard) with `extra`; kills it after 20 s.
fn run_serve(extra: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--shards",
            "1",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn percore");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap();
            panic!("percore {extra:?} still running after 20 s; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

fn assert_start_failure(code: Option<i32>, stderr: &str, names: &str) {
    assert!(code.is_some(), "killed by a signal; stderr: {stderr}");
    assert_ne!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one line; stderr: {stderr}");
    assert!(
        lines[0].contains(names),
        "want {names} named; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "stderr: {stderr}"
    );
}

#[test]
fn bad_cert_or_key_files_fail_start_up_with_one_line_naming_the_file() {
    let dir = TempDir::new("bad");
    let good = ec_cert("good");
    let other = ec_cert("other");
    let cert = dir.write("cert.pem", &good.cert_pem);
    let key = dir.write("key.pem", &good.key_pem);
    let missing = dir.file("missing.pem");
    let directory = dir.path().to_str().unwrap().to_owned();
    let text = dir.write("text.pem", "this is not a certificate\n");
    let binary = dir.write(
        "binary.pem",
        (0..=255u8).cycle().take(2000).collect::<Vec<u8>>(),
    );
    let der = dir.write("der.pem", &good.der);
    let bad_base64 = dir.write(
        "badb64.pem",
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    );
    let empty = dir.write("empty.pem", "");
    let bad_key_body = dir.write(
        "badkey.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n",
    );
    let other_key = dir.write("other-key.pem", &other.key_pem);

    // (cert, key, the file the message must name, what)
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (&missing, &key, &missing, "missing cert file"),
        (
            &directory,
            &key,
            &directory,
            "cert path is a directory (unreadable)",
        ),
        (&text, &key, &text, "cert file of plain text"),
        (&binary, &key, &binary, "cert file of binary garbage"),
        (&der, &key, &der, "cert file in DER, not PEM"),
        (&bad_base64, &key, &bad_base64, "cert PEM with a bad body"),
        (&empty, &key, &empty, "empty cert file"),
        (&cert, &missing, &missing, "missing key file"),
        (&cert, &cert, &cert, "key file holding only a certificate"),
        (&cert, &empty, &empty, "empty key file"),
        (&cert, &text, &text, "key file of plain text"),
        (
            &cert,
            &bad_key_body,
            &bad_key_body,
            "key PEM that is no key",
        ),
        (&cert, &other_key, &other_key, "key of another certificate"),
    ];
    for (cert_path, key_path, named, what) in cases {
        let (code, stderr) = run_serve(&[
            "--tls-listen",
            "127.0.0.1:0",
            "--cert",
            cert_path,
            "--key",
            key_path,
        ]);
        eprintln!("{what}: {}", stderr.trim());
        assert_start_failure(code, &stderr, named);
        // The message says which of the two files is at fault.
        let role = if what.contains("cert file") || what.starts_with("cert ") {
            "certificate file"
        } else {
            "key file"
        };
        assert!(
            stderr.contains(&format!("{role} {named}")),
            "{what}: want '{role} {named}' in {stderr}"
        );
        if what == "key of another certificate" {
            assert!(
                stderr.contains(&cert),
                "mismatch names the cert too: {stderr}"
            );
        }
    }
}

// ---------------------------------------------------------------- 4. garbage on the TLS port

#[test]
fn garbage_on_the_tls_port_closes_only_that_connection() {
    let dir = TempDir::new("garbage");
    let cert = ec_cert("garbage");
    let server = start_with_cert(&dir, &cert, "2", &[]);
    let tls = server.tls_addr();

    // A keep-alive HTTPS connection open across the garbage.
    let mut kept = tls_connect(tls, fresh_config(BOTH)).expect("handshake");
    assert_eq!(kept.get("/plaintext").unwrap().status, 200);

    let mut handshake_header = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    handshake_header.extend(pattern(0x40, 7));
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", pattern(1024, 0x9E37_79B9_7F4A_7C15)),
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("handshake record of garbage", handshake_header),
    ];
    for (what, bytes) in inputs {
        let mut s = TcpStream::connect(tls).unwrap();
        s.write_all(&bytes).unwrap();
        assert!(closed_by_server(&mut s), "{what}: connection left open");

        let mut fresh = tls_connect(tls, fresh_config(BOTH))
            .unwrap_or_else(|e| panic!("handshake after {what}: {e}"));
        let res = fresh.get("/plaintext").unwrap();
        assert_eq!(res.status, 200, "after {what}");
        assert_eq!(res.body_str(), "Hello, World!");
        let res = kept.get("/plaintext").unwrap();
        assert_eq!(res.status, 200, "kept connection after {what}");
    }
}

// ---------------------------------------------------------------- 5. stalled handshake

#[test]
fn stalled_handshake_is_closed_by_the_header_timeout() {
    let dir = TempDir::new("stall");
    let cert = ec_cert("stall");
    let server = start_with_cert(&dir, &cert, "2", &["--header-timeout", "1"]);
    let tls = server.tls_addr();
    let hello = client_hello_bytes();
    assert!(hello.len() > 10 && hello[0] == 0x16, "a ClientHello record");

    let mut nothing = TcpStream::connect(tls).unwrap();
    let started_nothing = Instant::now();
    let mut half = TcpStream::connect(tls).unwrap();
    let started_half = Instant::now();
    half.write_all(&hello[..hello.len() / 2]).unwrap();

    for (what, stream, started) in [
        ("nothing sent", &mut nothing, started_nothing),
        ("half a ClientHello", &mut half, started_half),
    ] {
        assert!(closed_by_server(stream), "{what}: still open after 5 s");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500),
            "{what}: closed after only {took:?}"
        );
        assert!(
            took <= Duration::from_millis(3500),
            "{what}: closed after {took:?}"
        );
    }

    // A prompt client is unaffected.
    let mut ok = tls_connect(tls, fresh_config(BOTH)).expect("handshake");
    assert_eq!(ok.get("/plaintext").unwrap().status, 200);
}

// ---------------------------------------------------------------- 6. SIGHUP reload

#[test]
fn sighup_reloads_the_certificate_for_new_handshakes_only() {
    let dir = TempDir::new("reload");
    let a = ec_cert("cert A");
    let b = ec_cert("cert B");
    let server = start_with_cert(&dir, &a, "2", &[]);
    let tls = server.tls_addr();

    let mut old = tls_connect(tls, fresh_config(BOTH)).expect("handshake");
    assert_eq!(old.peer_leaf(), a.der, "cert A before the reload");
    assert_eq!(old.get("/plaintext").unwrap().status, 200);

    dir.write("cert.pem", &b.cert_pem);
    dir.write("key.pem", &b.key_pem);
    server.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || count_lines(
            &server,
            "certificate reloaded"
        ) == 1),
        "no reload line; log: {}",
        server.log_text()
    );

    // Handshakes on either shard get B: several connections.
    for _ in 0..6 {
        let mut new = tls_connect(tls, fresh_config(BOTH)).expect("handshake after reload");
        assert_eq!(new.peer_leaf(), b.der, "cert B after the reload");
        assert_eq!(new.get("/plaintext").unwrap().status, 200);
    }
    // The connection opened before keeps working.
    let res = old
        .get("/plaintext")
        .expect("old connection after the reload");
    assert_eq!(res.status, 200);
    assert_eq!(res.body_str(), "Hello, World!");

    // A broken key: an error line, and the previous certificate (B) stays.
    let key_path = dir.write(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    server.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || {
            server
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("ERROR") && l.contains("SIGHUP") && l.contains(&key_path))
        }),
        "no error line naming {key_path}; log: {}",
        server.log_text()
    );
    assert_eq!(
        count_lines(&server, "certificate reloaded"),
        1,
        "{}",
        server.log_text()
    );
    for _ in 0..4 {
        let mut new = tls_connect(tls, fresh_config(BOTH)).expect("handshake after failed reload");
        assert_eq!(
            new.peer_leaf(),
            b.der,
            "cert B kept after the failed reload"
        );
        assert_eq!(new.get("/plaintext").unwrap().status, 200);
    }
    assert_eq!(old.get("/plaintext").unwrap().status, 200);
}

#[test]
fn sighup_with_a_mismatched_key_keeps_the_previous_certificate() {
    let dir = TempDir::new("reload-mismatch");
    let a = ec_cert("cert A");
    let b = ec_cert("cert B");
    let server = start_with_cert(&dir, &a, "2", &[]);
    let tls = server.tls_addr();
    // B's certificate with A's key still in key.pem.
    dir.write("cert.pem", &b.cert_pem);
    server.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || count_lines(
            &server,
            "keeping the previous"
        ) == 1),
        "no error line; log: {}",
        server.log_text()
    );
    for _ in 0..4 {
        let conn = tls_connect(tls, fresh_config(BOTH)).expect("handshake");
        assert_eq!(conn.peer_leaf(), a.der, "cert A kept");
    }
}

// ---------------------------------------------------------------- 7. --redirect-https

#[test]
fn redirect_https_sends_308_to_the_tls_port() {
    let server = Server::start(&["--tls-listen", "127.0.0.1:0", "--redirect-https"]);
    let port = server.tls_addr().port();

    let res = roundtrip(
        &server,
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    );
    assert_eq!(res.status, 308);
    assert_eq!(
        res.header("location"),
        Some(format!("https://example.com:{port}/a/b?x=1").as_str())
    );

    let res = roundtrip(
        &server,
        b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(res.status, 308, "method kept: 308 for POST too");
    assert_eq!(
        res.header("location"),
        Some(format!("https://example.com:{port}/form").as_str())
    );

    for request in [
        &b"GET /a HTTP/1.1\r\n\r\n"[..],
        &b"GET /a HTTP/1.0\r\n\r\n"[..],
    ] {
        let res = roundtrip(&server, request);
        assert_eq!(res.status, 400, "{}", String::from_utf8_lossy(request));
        assert_eq!(res.header("location"), None);
    }

    // The TLS listener itself serves the app.
    let mut conn = tls_connect(server.tls_addr(), fresh_config(BOTH)).expect("handshake");
    assert_eq!(conn.get("/plaintext").unwrap().status, 200);
}

// ---------------------------------------------------------------- 8. HSTS

#[test]
fn hsts_on_https_responses_only() {
    let dir = TempDir::new("hsts");
    let pem_path = dir.file("dev.pem");
    let server = Server::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--dev-cert-out",
        &pem_path,
        "--hsts-max-age",
        "600",
    ]);
    let tls = server.tls_addr();
    let pem = std::fs::read(&pem_path).unwrap();
    for http1 in [true, false] {
        let resp = https_client(&pem, tls, http1)
            .get(format!("https://localhost:{}/plaintext", tls.port()))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=600"),
            "{:?}",
            resp.version()
        );
    }
    let plain = roundtrip(
        &server,
        b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("strict-transport-security"), None);
}

// ---------------------------------------------------------------- 9. resumption

/// Connects `rounds` times with one client config (one session store); each connection makes a
/// request (so TLS 1.3 tickets are read). Every connection after the first must resume.
fn assert_resumes(tls: SocketAddr, config: Arc<rustls::ClientConfig>, rounds: usize, what: &str) {
    let mut first = tls_connect(tls, config.clone()).expect("first handshake");
    assert!(!first.resumed(), "{what}: first connection cannot resume");
    assert_eq!(first.get("/plaintext").unwrap().status, 200);
    drop(first);
    for i in 1..rounds {
        let mut conn = tls_connect(tls, config.clone()).expect("handshake");
        assert!(
            conn.resumed(),
            "{what}: connection {i} was a {:?} handshake",
            conn.tls.conn.handshake_kind()
        );
        assert_eq!(conn.get("/plaintext").unwrap().status, 200, "{what}");
    }
}

fn session_id_only(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut config = client_config(versions, &[b"http/1.1"]);
    config.resumption = rustls::client::Resumption::in_memory_sessions(64)
        .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    Arc::new(config)
}

#[test]
fn sessions_resume_on_one_shard() {
    let dir = TempDir::new("resume1");
    let server = start_with_cert(&dir, &ec_cert("resume"), "1", &[]);
    let tls = server.tls_addr();
    let tickets = |v| Arc::new(client_config(v, &[b"http/1.1"]));
    assert_resumes(tls, tickets(TLS13), 4, "TLS 1.3 ticket");
    assert_resumes(tls, tickets(TLS12), 4, "TLS 1.2 ticket");
    assert_resumes(tls, session_id_only(TLS12), 4, "TLS 1.2 session ID");
}

#[test]
fn tickets_resume_across_shards() {
    let dir = TempDir::new("resume2");
    let server = start_with_cert(&dir, &ec_cert("resume"), "2", &[]);
    let tls = server.tls_addr();
    // Ten connections from different source ports: the kernel spreads them over both shards,
    // and the ticket keys are shared, so each resumes wherever it lands.
    assert_resumes(
        tls,
        Arc::new(client_config(TLS13, &[b"http/1.1"])),
        10,
        "TLS 1.3 ticket",
    );
    assert_resumes(
        tls,
        Arc::new(client_config(TLS12, &[b"http/1.1"])),
        10,
        "TLS 1.2 ticket",
    );
}

// ---------------------------------------------------------------- 10. ALPN

#[test]
fn alpn_without_h2() {
    let dir = TempDir::new("alpn");
    let server = start_with_cert(&dir, &ec_cert("alpn"), "2", &["--no-h2"]);
    let tls = server.tls_addr();

    let h2_only = Arc::new(client_config(BOTH, &[b"h2"]));
    let err = match tls_connect(tls, h2_only) {
        Ok(conn) => panic!("h2-only offer accepted; ALPN {:?}", conn.alpn()),
        Err(err) => err,
    };
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        ),
        "want a no_application_protocol alert, got {err:?}"
    );

    let both = Arc::new(client_config(BOTH, &[b"h2", b"http/1.1"]));
    let mut conn = tls_connect(tls, both).expect("handshake offering h2 and http/1.1");
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(conn.get("/plaintext").unwrap().status, 200);

    let none = Arc::new(client_config(BOTH, &[]));
    let mut conn = tls_connect(tls, none).expect("handshake without ALPN");
    assert_eq!(conn.alpn(), None);
    assert_eq!(conn.get("/plaintext").unwrap().status, 200);
}

#[test]
fn alpn_prefers_h2_when_on() {
    let dir = TempDir::new("alpn-h2");
    let server = start_with_cert(&dir, &ec_cert("alpn"), "2", &[]);
    let conn = tls_connect(
        server.tls_addr(),
        Arc::new(client_config(BOTH, &[b"http/1.1", b"h2"])),
    )
    .expect("handshake");
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]));
}
