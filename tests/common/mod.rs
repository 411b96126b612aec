//! Test harness: starts the real `percore` binary on an ephemeral port and talks to it over
//! loopback. Responses on raw sockets are read with `httparse` (an independent parser), never with
//! our own.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_percore");

/// A running percore process. Killed (by its PID) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stderr line so far (the log).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `percore serve --listen 127.0.0.1:0 --shards 2 --no-pin` plus `extra`.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(&["--shards", "2"], extra, |_| {})
    }

    /// Starts with `base` then `extra` flags; `setup` may adjust the command (env, pre_exec).
    pub fn start_with(base: &[&str], extra: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--no-pin"];
        args.extend_from_slice(base);
        args.extend_from_slice(extra);
        Self::start_exact(&args, setup)
    }

    /// Runs the binary with exactly `args` (the subcommand first); they must make it listen on
    /// a plain port (logged), as `--listen 127.0.0.1:0` does.
    pub fn start_exact(args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn percore");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addr = line.find("listening on http://").map(|pos| {
                    let rest = &line[pos + "listening on http://".len()..];
                    rest.chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect::<String>()
                });
                // Logged before the address is sent: a test that reads the log as soon as the
                // server is up must find the listening line in it.
                log2.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("address in the listening line"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "percore did not report listening; log: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        Server { child, addr, log }
    }

    /// The first TLS listener's address (`--tls-listen 127.0.0.1:0`), from the log's
    /// "listening on https://" line.
    pub fn tls_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|line| {
                let pos = line.find("listening on https://")?;
                let rest = &line[pos + "listening on https://".len()..];
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                addr.parse().ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no https listener in the log: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// A connection that has completed one `GET /plaintext` and is now an idle keep-alive one.
    pub fn idle_connection(&self) -> TcpStream {
        let mut s = self.connect();
        s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let res = ResponseReader::new().read(&mut s, false).unwrap();
        assert_eq!(res.status, 200);
        s
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped; touches no memory.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One parsed response from a raw socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// The header fields of `res` that do not change between two identical requests (no Date, no
/// X-Request-Id), names lower-cased and sorted: what two answers that must be equal compare.
pub fn stable_headers(res: &RawResponse) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = res
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("date") && !n.eq_ignore_ascii_case("x-request-id"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.sort();
    headers
}

/// Reads responses off a raw connection, keeping leftover bytes between calls.
pub struct ResponseReader {
    pub buf: Vec<u8>,
}

impl ResponseReader {
    pub fn new() -> Self {
        ResponseReader { buf: Vec::new() }
    }

    /// Reads one whole response (Content-Length bodies or none; `head` = response to HEAD) from
    /// any stream: a `TcpStream`, or a TLS stream over one.
    pub fn read(&mut self, stream: &mut impl Read, head: bool) -> std::io::Result<RawResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = res
                .parse(&self.buf)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
            {
                let status = res.code.unwrap_or(0);
                let hdrs: Vec<(String, String)> = res
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len = if head || status == 204 || status == 304 || (100..200).contains(&status)
                {
                    0
                } else {
                    hdrs.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map(|(_, v)| v.trim().parse::<usize>().expect("numeric content-length"))
                        .unwrap_or(0)
                };
                while self.buf.len() < n + len {
                    self.fill(stream)?;
                }
                let body = self.buf[n..n + len].to_vec();
                self.buf.drain(..n + len);
                return Ok(RawResponse {
                    status,
                    headers: hdrs,
                    body,
                });
            }
            self.fill(stream)?;
        }
    }

    fn fill(&mut self, stream: &mut impl Read) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A blocking reqwest client (an independent HTTP/1.1 client); the timeout is a failure bound.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// Writes `request` on a fresh connection and reads one response.
pub fn roundtrip(server: &Server, request: &[u8]) -> RawResponse {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    ResponseReader::new()
        .read(&mut s, false)
        .expect("a response")
}

/// True when the server has closed the connection: a read returns EOF (or a reset) within 5 s.
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1024];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
pub mod app;
pub mod codings;
pub mod files;

/// Reads a whole HTTP/2 response body with h2's client, giving the window back as it goes.
pub async fn read_body(mut body: h2::RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Runs `fut` to completion on a current-thread tokio runtime (for the async clients: h2,
/// hyper), within `limit` (a failure bound).
pub fn run<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        tokio::time::timeout(limit, fut)
            .await
            .expect("test did not finish in time")
    })
}
