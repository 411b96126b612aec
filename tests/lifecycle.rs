//! Start-up, limits, drivers and shutdown of the real binary.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{closed_by_server, eventually, roundtrip, ResponseReader, Server, BIN};

fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run percore");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flag_is_one_line_naming_it() {
    let (code, stderr) = run_to_exit(&["serve", "--listen", "nonsense"]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.trim().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("--listen"), "stderr: {stderr}");
    assert!(stderr.contains("nonsense"), "stderr: {stderr}");

    let (code, stderr) = run_to_exit(&["serve", "--max-body", "lots"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--max-body"), "stderr: {stderr}");
}

#[test]
fn bad_middleware_flag_is_one_line_naming_it() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cors-origin", "https://x.example/path"],
            "--cors-origin",
        ),
        (&["--rate-limit=-1"], "--rate-limit"),
        (
            &["--rate-limit", "10", "--rate-limit-burst", "0"],
            "--rate-limit-burst",
        ),
        (&["--trusted-proxies", "10.0.0.0/99"], "--trusted-proxies"),
        (&["--frame-options", "sometimes"], "--frame-options"),
        (&["--hsts-preload"], "--hsts-preload"),
        (&["--csp", "default-src \u{1}"], "--csp"),
        (&["--forwarded-header", "via"], "--forwarded-header"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{flags:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{flags:?}: {stderr}");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
    }
}

#[test]
fn port_held_by_another_program_is_one_clear_line() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(&["serve", "--listen", &addr, "--no-pin", "--shards", "1"]);
    assert_ne!(code, Some(0));
    assert!(code.is_some(), "killed by a signal");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&addr)).collect();
    assert_eq!(error_lines.len(), 1, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
}

#[test]
fn listens_on_ipv4_and_ipv6_at_once() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let server = Server::start(&["--listen", "[::1]:0"]);
    assert_eq!(
        roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    let v6_port = || {
        let log = server.log_text();
        let rest = log
            .lines()
            .find_map(|l| l.split("listening on http://[::1]:").nth(1))?;
        Some(
            rest.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>(),
        )
    };
    assert!(eventually(Duration::from_secs(5), || v6_port().is_some()));
    let port = v6_port().expect("a v6 listening line");
    let mut s = std::net::TcpStream::connect(format!("[::1]:{port}")).unwrap();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        ResponseReader::new().read(&mut s, false).unwrap().status,
        200
    );
}

#[test]
fn each_shard_logs_its_driver_and_epoll_flag_serves() {
    let server = Server::start(&["--io-driver", "epoll"]);
    assert_eq!(
        roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    assert!(eventually(Duration::from_secs(5), || epoll_shards(&server) == 2));
}

/// Installs a seccomp filter that makes io_uring_setup fail with EPERM, as Docker's default
/// profile does. Runs in the child between fork and exec.
fn refuse_io_uring() -> std::io::Result<()> {
    const IO_URING_SETUP: u32 = 425; // same number on x86_64 and aarch64
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl with constant arguments and a pointer to a filter that outlives the call;
    // runs in the forked child before exec, touching only that child.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _ as libc::c_ulong,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn falls_back_to_epoll_when_io_uring_is_refused() {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return;
    }
    let server = Server::start_with(&["--shards", "2", "--io-driver", "auto"], &[], |cmd| {
        // SAFETY: the closure only calls async-signal-safe prctl(2).
        unsafe {
            cmd.pre_exec(refuse_io_uring);
        }
    });
    assert_eq!(
        roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    assert!(
        eventually(Duration::from_secs(5), || epoll_shards(&server) == 2),
        "log: {}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(log.contains("refused"), "the reason is logged: {log}");
}

/// How many shards logged that their runtime runs on epoll.
fn epoll_shards(server: &Server) -> usize {
    server
        .log_text()
        .lines()
        .filter(|l| l.contains("shard runtime built") && l.contains("driver=epoll"))
        .count()
}

#[test]
fn connection_limit_pauses_accepting_and_recovers() {
    let server = Server::start_with(&["--shards", "1"], &["--max-conns", "4"], |_| {});
    let mut held: Vec<_> = (0..4).map(|_| server.idle_connection()).collect();
    // Over the limit: the connection waits in the backlog, unanswered.
    let mut waiting = server.connect();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    waiting
        .write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let early = ResponseReader::new().read(&mut waiting, false);
    assert!(early.is_err(), "served over the limit: {early:?}");
    // One closes; the waiting one is accepted and served.
    drop(held.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let res = ResponseReader::new().read(&mut waiting, false).unwrap();
    assert_eq!(res.status, 200);
    drop(held);
    assert_eq!(
        roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
}

#[test]
fn sigterm_with_fifty_requests_in_flight_loses_none() {
    let mut server = Server::start(&[]);
    // Fifty requests whose bodies are half sent: in flight when the signal arrives.
    let mut conns: Vec<_> = (0..50)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
                .unwrap();
            s
        })
        .collect();
    // Let the heads reach the server before the signal (ordering, not readiness).
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    for s in conns.iter_mut() {
        s.write_all(b"world").unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let res = ResponseReader::new()
            .read(s, false)
            .unwrap_or_else(|e| panic!("request {i} lost: {e}"));
        assert_eq!(res.status, 200, "request {i}");
        assert_eq!(res.body_str(), "helloworld", "request {i}");
        assert_eq!(res.header("connection"), Some("close"));
    }
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exited after the in-flight requests");
    assert_eq!(status.code(), Some(0), "log: {}", server.log_text());
}

/// Sends SIGINT and checks that every connection in `idle` is closed by the server and that it
/// exits 0, all within `within`.
fn sigint_closes_and_exits_zero(
    server: &mut Server,
    idle: &mut [std::net::TcpStream],
    within: Duration,
) {
    let start = Instant::now();
    server.signal(libc::SIGINT);
    for s in idle.iter_mut() {
        assert!(closed_by_server(s));
    }
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exited promptly");
    assert_eq!(status.code(), Some(0));
    assert!(start.elapsed() < within);
}

#[test]
fn sigint_closes_idle_keep_alive_connections_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut idle: Vec<_> = (0..20).map(|_| server.idle_connection()).collect();
    sigint_closes_and_exits_zero(&mut server, &mut idle, Duration::from_secs(5));
}

/// Connections idle long enough to be parked (waiting without a buffer) close at SIGINT too.
#[test]
fn sigint_closes_parked_connections_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut idle: Vec<_> = (0..5).map(|_| server.idle_connection()).collect();
    // Parked after about two ticks.
    std::thread::sleep(Duration::from_millis(2500));
    sigint_closes_and_exits_zero(&mut server, &mut idle, Duration::from_secs(3));
}

#[test]
fn grace_period_bounds_shutdown() {
    let mut server = Server::start(&["--grace", "1"]);
    // A request that never completes its body.
    let mut s = server.connect();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(6))
        .expect("exited within the grace period");
    assert_eq!(status.code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn second_signal_exits_at_once() {
    let mut server = Server::start(&["--grace", "30"]);
    let mut s = server.connect();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exited at the second signal");
    assert_ne!(status.code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// mimalloc asks for transparent huge pages on its arena; the server turns them off for the
/// process, or every 2 MiB range with a few live blocks (parked connections) costs 2 MiB of RSS.
/// (On a kernel built without THP, /proc shows no THP line and there is nothing to check.)
#[test]
fn server_runs_without_transparent_huge_pages() {
    let server = Server::start(&[]);
    let _idle = server.idle_connection();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    let Some(thp) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        return;
    };
    assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
}
