//! `percore serve --config FILE` with the real binary: a server configured by the file alone,
//! the command line and environment over the file, `--check`, the shipped example, and every
//! kind of bad file as one stderr line naming the file and the key. Responses are read with
//! httparse (tests/common), not with our parser.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::process::{Command, Stdio};

use common::files::TempDir;
use common::{roundtrip, Server, BIN};
use tls_common::ec_cert;

/// A site root with one file, and a mounted directory with another.
fn site(dir: &TempDir) -> (String, String) {
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("assets/app.css"), "body{}").unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    let mounted = dir.path().join("downloads");
    std::fs::create_dir_all(&mounted).unwrap();
    std::fs::write(mounted.join("notes.txt"), "mounted file").unwrap();
    (
        root.to_str().unwrap().to_owned(),
        mounted.to_str().unwrap().to_owned(),
    )
}

/// A file that serves `site` on an ephemeral port with a mount and a Cache-Control pattern.
fn serving_config(dir: &TempDir) -> String {
    let (root, mounted) = site(dir);
    dir.write(
        "percore.toml",
        format!(
            r#"
listen = ["127.0.0.1:0"]
shards = 1
no-pin = true
root = "{root}"
mount = ["/downloads={mounted}"]
cache-control = ["assets/**=public, max-age=31536000, immutable"]
default-cache-control = "no-cache"
max-body = "4KiB"
"#
        ),
    )
}

fn get(server: &Server, path: &str) -> common::RawResponse {
    roundtrip(
        server,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// A 5,000-byte body: above the file's `max-body = "4KiB"`.
fn post_5000(server: &Server) -> common::RawResponse {
    let mut request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec();
    request.resize(request.len() + 5000, b'x');
    roundtrip(server, &request)
}

/// Runs `percore` with `args` (and `env`) to its exit: (status code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run percore");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit status 2, one stderr line holding every one of `names`, no panic or backtrace.
fn assert_one_line_error(file: &str, names: &[&str]) {
    let (code, _, stderr) = run(&["serve", "--config", file], &[]);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one line; stderr: {stderr}");
    assert!(lines[0].starts_with("percore: "), "stderr: {stderr}");
    for name in names {
        assert!(
            lines[0].contains(name),
            "want {name} named; stderr: {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_server_started_with_only_a_config_file_serves_what_it_says() {
    let dir = TempDir::new("config-serve");
    let file = serving_config(&dir);
    let server = Server::start_exact(&["serve", "--config", &file], |_| {});

    let asset = get(&server, "/assets/app.css");
    assert_eq!(asset.status, 200);
    assert_eq!(asset.body_str(), "body{}");
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let home = get(&server, "/");
    assert_eq!(home.body_str(), "<h1>home</h1>");
    assert_eq!(home.header("cache-control"), Some("no-cache"));
    let mounted = get(&server, "/downloads/notes.txt");
    assert_eq!(mounted.status, 200);
    assert_eq!(mounted.body_str(), "mounted file");
    // max-body = "4KiB" from the file.
    assert_eq!(post_5000(&server).status, 413);
}

#[test]
fn command_line_flags_override_the_file() {
    let dir = TempDir::new("config-override");
    let file = serving_config(&dir);
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("index.html"), "other root").unwrap();
    // --listen replaces the file's list (not merged with it); --root and --max-body win.
    let server = Server::start_exact(
        &[
            "serve",
            "--config",
            &file,
            "--listen",
            "127.0.0.1:0",
            "--root",
            other.to_str().unwrap(),
            "--max-body",
            "8KiB",
        ],
        |_| {},
    );
    assert_eq!(get(&server, "/").body_str(), "other root");
    assert_eq!(
        post_5000(&server).status,
        200,
        "the command line's --max-body 8KiB"
    );
    let listeners = server.log_text().matches("listening on http://").count();
    assert_eq!(listeners, 1, "log: {}", server.log_text());
}

#[test]
fn environment_variables_override_the_file() {
    let dir = TempDir::new("config-env");
    let file = dir.write(
        "percore.toml",
        "listen = [\"127.0.0.1:0\"]\nno-pin = true\nshards = 2\nio-driver = \"io_uring\"\n",
    );
    let server = Server::start_exact(&["serve", "--config", &file], |cmd| {
        cmd.env("PERCORE_SHARDS", "1")
            .env("PERCORE_IO_DRIVER", "epoll");
    });
    let log = server.log_text();
    assert!(log.contains("shards=1"), "PERCORE_SHARDS wins; log: {log}");
    assert!(
        log.contains("driver=epoll"),
        "PERCORE_IO_DRIVER wins; log: {log}"
    );
    assert!(!log.contains("shard=1"), "one shard only; log: {log}");
}

#[test]
fn check_validates_without_serving() {
    let dir = TempDir::new("config-check");
    let file = serving_config(&dir);
    let (code, stdout, stderr) = run(&["serve", "--config", &file, "--check"], &[]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stdout.trim(), "config ok");
    // A root that does not exist is found by --check, as at start-up.
    let (code, _, stderr) = run(
        &[
            "serve",
            "--config",
            &file,
            "--check",
            "--root",
            "/nonexistent/www",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains("--root"), "stderr: {stderr}");
}

/// The shipped example, with its paths moved into a temporary directory, passes `--check`
/// (certificate files loaded): it cannot rot unnoticed.
#[test]
fn the_example_file_passes_check() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/percore.toml"
    ))
    .expect("examples/percore.toml");
    let dir = TempDir::new("config-example");
    let base = dir.path().to_str().unwrap();
    for sub in [
        "srv/www/example.com",
        "srv/downloads",
        "etc/percore",
        "var/log/percore",
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let cert = ec_cert("example");
    dir.write("etc/percore/fullchain.pem", &cert.cert_pem);
    dir.write("etc/percore/privkey.pem", &cert.key_pem);
    // Paths start a string ("/srv/...) or follow a mount's prefix (=/srv/...).
    let moved = ["\"/srv/", "=/srv/", "\"/etc/percore/", "\"/var/log/"]
        .iter()
        .fold(example, |text, from| {
            let (quote_or_eq, path) = from.split_at(1);
            text.replace(from, &format!("{quote_or_eq}{base}{path}"))
        });
    let file = dir.write("percore.toml", moved);
    let (code, stdout, stderr) = run(&["serve", "--config", &file, "--check"], &[]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stdout.trim(), "config ok");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}

#[test]
fn unreadable_file_is_one_line_naming_it() {
    assert_one_line_error(
        "/nonexistent/percore.toml",
        &[
            "--config /nonexistent/percore.toml",
            "No such file or directory",
        ],
    );
}

#[test]
fn syntax_error_is_one_line_with_line_and_column() {
    let dir = TempDir::new("config-syntax");
    let file = dir.write("bad.toml", "shards = 1\nmax-body = 8 MiB\n");
    assert_one_line_error(&file, &[&format!("{file}:2:")]);
}

#[test]
fn unknown_key_is_one_line_naming_it() {
    let dir = TempDir::new("config-unknown");
    let file = dir.write("bad.toml", "hedaer-timeout = 10\n");
    assert_one_line_error(&file, &[&file, "\"hedaer-timeout\"", "header-timeout"]);
}

#[test]
fn wrong_type_is_one_line_naming_the_key() {
    let dir = TempDir::new("config-type");
    let file = dir.write("bad.toml", "header-timeout = true\n");
    assert_one_line_error(&file, &[&file, "header-timeout:", "boolean"]);
    let file = dir.write("switch.toml", "no-h2 = \"yes\"\n");
    assert_one_line_error(&file, &[&file, "no-h2:", "true or false"]);
}

#[test]
fn value_the_flag_refuses_is_one_line_naming_the_key() {
    let dir = TempDir::new("config-value");
    let file = dir.write("bad.toml", "max-body = \"8 MB\"\n");
    assert_one_line_error(&file, &[&file, "max-body:", "\"8 MB\"", "expected a size"]);
    let file = dir.write("listen.toml", "listen = [\"127.0.0.1:0\", \"nowhere\"]\n");
    assert_one_line_error(&file, &[&file, "listen:", "\"nowhere\""]);
}

#[test]
fn tables_and_config_inside_the_file_are_one_line_naming_the_key() {
    let dir = TempDir::new("config-nested");
    let file = dir.write("table.toml", "[tls]\ncert = \"x.pem\"\n");
    assert_one_line_error(&file, &[&file, "tls:"]);
    let file = dir.write("array.toml", "[[mount]]\nprefix = \"/a\"\n");
    assert_one_line_error(&file, &[&file, "mount:"]);
    let file = dir.write("config.toml", "config = \"other.toml\"\n");
    assert_one_line_error(&file, &[&file, "config:"]);
}

#[test]
fn a_missing_partner_flag_is_one_line_listing_it() {
    let dir = TempDir::new("config-requires");
    let file = dir.write("cert.toml", "cert = \"/x/fullchain.pem\"\n");
    assert_one_line_error(&file, &["--key"]);
}
