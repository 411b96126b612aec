//! End-to-end tests of the shards crate: real threads, real runtimes, real sockets on loopback,
//! clients from std. Readiness is awaited through channels, never through sleeps.

use std::{
    cell::{Cell, RefCell},
    io::Read,
    net::{SocketAddr, TcpStream},
    rc::Rc,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use shards::{
    start, Config, DriverChoice, DriverKind, Envelope, Error, MeshError, RingFlags, Shard,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal address")
}

fn test_config(shards: usize) -> Config {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_test_writer()
        .try_init();
    Config {
        shards,
        pin: false,
        listen: vec![loopback0()],
        handle_signals: false,
        grace: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Gives other tasks of the shard a turn.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the test server");
    s.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    s
}

fn read_byte(s: &mut TcpStream) -> u8 {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("the server writes one byte");
    b[0]
}

// ---------------------------------------------------------------------------------------------
// mesh

const PER_SHARD: u64 = 25_000;
const MESH_SHARDS: usize = 4;

/// Shard `me` sends its message `seq` to this shard.
fn target(me: usize, seq: u64) -> usize {
    (me + 1 + (seq % 3) as usize) % MESH_SHARDS
}

#[test]
fn mesh_delivers_every_message_exactly_once_and_answers_every_call() {
    type Msg = (usize, u64);
    let (report_tx, report_rx) = mpsc::channel::<(usize, Vec<Msg>, u64)>();
    let config = Config {
        listen: vec![],
        ..test_config(MESH_SHARDS)
    };
    let running = start(config, move |mut shard: Shard<Msg, u64>| {
        let report_tx = report_tx.clone();
        async move {
            let me = shard.id();
            let expected_in: u64 = (0..MESH_SHARDS)
                .filter(|&s| s != me)
                .map(|s| (0..PER_SHARD).filter(|&q| target(s, q) == me).count() as u64)
                .sum();
            let mut inbox = shard.take_inbox().expect("inbox taken once");
            let received = Rc::new(RefCell::new(Vec::new()));
            let (done_tx, done_rx) = futures_channel::oneshot::channel::<()>();
            let rec = received.clone();
            monoio::spawn(async move {
                let mut done_tx = Some(done_tx);
                while let Some(Envelope { from, msg, reply }) = inbox.recv().await {
                    assert_eq!(from, msg.0, "envelope names its sender");
                    rec.borrow_mut().push(msg);
                    if let Some(reply) = reply {
                        reply.send(msg.1);
                    }
                    if rec.borrow().len() as u64 == expected_in {
                        if let Some(tx) = done_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            });
            let mesh = shard.mesh();
            let mut replies = 0;
            for seq in 0..PER_SHARD {
                let to = target(me, seq);
                if seq % 2 == 0 {
                    let mut msg = (me, seq);
                    loop {
                        match mesh.send(to, msg) {
                            Ok(()) => break,
                            Err(MeshError::Full(m)) => {
                                msg = m;
                                yield_now().await;
                            }
                            Err(e) => panic!("send {seq} to {to}: {e}"),
                        }
                    }
                } else {
                    let r = mesh.call(to, (me, seq)).await.expect("call answered");
                    assert_eq!(r, seq);
                    replies += 1;
                }
            }
            done_rx.await.expect("all expected messages arrive");
            let got = received.borrow().clone();
            report_tx
                .send((me, got, replies))
                .expect("test thread waits");
            shard.shutdown().triggered().await;
        }
    })
    .expect("start");

    let mut all = Vec::new();
    let mut replies = 0;
    for _ in 0..MESH_SHARDS {
        let (me, got, r) = report_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("report");
        for &(from, seq) in &got {
            assert_eq!(
                target(from, seq),
                me,
                "message {from}/{seq} reached the wrong shard"
            );
        }
        all.extend(got);
        replies += r;
    }
    running.shutdown();
    running.join().expect("join");

    let total = PER_SHARD * MESH_SHARDS as u64;
    assert_eq!(all.len() as u64, total, "messages lost or duplicated");
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, total, "duplicates");
    assert_eq!(replies, total / 2, "every call got its reply");
}

#[test]
fn call_to_a_shard_that_ended_fails_instead_of_hanging() {
    let (tx, rx) = mpsc::channel();
    let config = Config {
        listen: vec![],
        ..test_config(2)
    };
    let running = start(config, move |mut shard: Shard<u32, u32>| {
        let tx = tx.clone();
        async move {
            if shard.id() == 1 {
                // Leaves a task waiting on the inbox behind, then ends.
                let mut inbox = shard.take_inbox().expect("inbox");
                monoio::spawn(async move { while inbox.recv().await.is_some() {} });
                yield_now().await;
                return;
            }
            // Wait until shard 1 is closed, then call it.
            let mesh = shard.mesh();
            let err = loop {
                match mesh.call(1, 7).await {
                    Err(e) => break e,
                    Ok(_) => yield_now().await,
                }
            };
            tx.send(matches!(err, MeshError::Gone(7) | MeshError::NoReply))
                .expect("test waits");
        }
    })
    .expect("start");
    assert!(rx.recv_timeout(TIMEOUT).expect("shard 0 reports"));
    running.join().expect("join");
}

// ---------------------------------------------------------------------------------------------
// listener

#[test]
fn binding_a_taken_port_is_a_bind_error_naming_the_address() {
    let taken = std::net::TcpListener::bind(loopback0()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let config = Config {
        listen: vec![addr],
        ..test_config(1)
    };
    match start(config, |_shard: Shard<(), ()>| async {}) {
        Err(e @ Error::Bind { addr: a, .. }) => {
            assert_eq!(a, addr);
            assert!(e
                .to_string()
                .starts_with(&format!("cannot listen on {addr}: ")));
        }
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("binding a taken port succeeded"),
    }
}

#[test]
fn port_zero_gives_every_shard_the_same_port_and_both_accept() {
    let (tx, rx) = mpsc::channel();
    let running = start(test_config(2), move |shard: Shard<(), ()>| {
        let tx = tx.clone();
        async move {
            tx.send(shard.local_addrs()[0]).expect("test waits");
            let id = shard.id() as u8;
            shard
                .serve(move |mut s, _peer, _listener| async move {
                    let _ = s.write_all(vec![id]).await;
                })
                .await;
        }
    })
    .expect("start");
    let addr = running.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(TIMEOUT).expect("shard reports"), addr);
    }
    // SO_REUSEPORT spreads connections by 4-tuple hash: both shards should see some.
    let mut seen = [false; 2];
    for _ in 0..200 {
        let id = read_byte(&mut connect(addr));
        seen[id as usize] = true;
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(seen, [true, true], "both shards accept on the shared port");
    running.shutdown();
    running.join().expect("join");
}

// ---------------------------------------------------------------------------------------------
// accept limit

#[test]
fn accept_pauses_at_the_connection_limit_and_resumes_when_one_closes() {
    const LIMIT: usize = 4;
    const CLIENTS: usize = 10;
    let max_seen = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let config = Config {
        max_conns_per_shard: Some(LIMIT),
        ..test_config(1)
    };
    let (m, s) = (max_seen.clone(), served.clone());
    let running = start(config, move |shard: Shard<(), ()>| {
        let (max_seen, served) = (m.clone(), s.clone());
        async move {
            let now = Rc::new(Cell::new(0usize));
            shard
                .serve(move |mut stream, _peer, _listener| {
                    let (now, max_seen, served) = (now.clone(), max_seen.clone(), served.clone());
                    async move {
                        now.set(now.get() + 1);
                        max_seen.fetch_max(now.get(), Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.write_all(vec![b'x']).await;
                        // Hold the connection until the client closes it.
                        let mut buf = vec![0u8; 16];
                        loop {
                            let (r, b) = stream.read(buf).await;
                            buf = b;
                            if !matches!(r, Ok(n) if n > 0) {
                                break;
                            }
                        }
                        now.set(now.get() - 1);
                    }
                })
                .await;
        }
    })
    .expect("start");
    let addr = running.local_addrs()[0];
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
    // The first LIMIT are served; the rest wait in the backlog.
    for c in clients.iter_mut().take(LIMIT) {
        assert_eq!(read_byte(c), b'x');
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        assert_eq!(
            served.load(Ordering::SeqCst),
            LIMIT,
            "accepted beyond the limit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Closing one lets the next in; every client eventually gets its byte.
    for (i, mut c) in clients.drain(..).enumerate() {
        if i >= LIMIT {
            assert_eq!(
                read_byte(&mut c),
                b'x',
                "client {i} served after earlier ones closed"
            );
        }
        drop(c);
    }
    assert_eq!(served.load(Ordering::SeqCst), CLIENTS);
    assert!(max_seen.load(Ordering::SeqCst) <= LIMIT);
    running.shutdown();
    running.join().expect("join");
}

// ---------------------------------------------------------------------------------------------
// shutdown

#[test]
fn shutdown_waits_for_a_connection_in_progress() {
    let (started_tx, started_rx) = mpsc::channel();
    let running = start(test_config(1), move |shard: Shard<(), ()>| {
        let started_tx = started_tx.clone();
        async move {
            shard
                .serve(move |mut s, _peer, _listener| {
                    let started_tx = started_tx.clone();
                    async move {
                        let _ = started_tx.send(());
                        monoio::time::sleep(Duration::from_millis(300)).await;
                        let _ = s.write_all(vec![b'k']).await;
                    }
                })
                .await;
        }
    })
    .expect("start");
    let mut client = connect(running.local_addrs()[0]);
    started_rx.recv_timeout(TIMEOUT).expect("handler started");
    let t0 = Instant::now();
    running.shutdown();
    running.join().expect("join");
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "join waited for the handler"
    );
    assert_eq!(
        read_byte(&mut client),
        b'k',
        "the connection finished, not dropped"
    );
}

#[test]
fn shutdown_gives_up_on_connections_after_the_grace_period() {
    let (started_tx, started_rx) = mpsc::channel();
    let config = Config {
        grace: Duration::from_millis(200),
        ..test_config(1)
    };
    let running = start(config, move |shard: Shard<(), ()>| {
        let started_tx = started_tx.clone();
        async move {
            shard
                .serve(move |mut s, _peer, _listener| {
                    let started_tx = started_tx.clone();
                    async move {
                        let _ = started_tx.send(());
                        // The client never sends nor closes. (A bare `pending()` would not do:
                        // monoio frees a task that no waker refers to.)
                        let _ = s.read(vec![0u8; 16]).await;
                        std::future::pending::<()>().await;
                    }
                })
                .await;
        }
    })
    .expect("start");
    let _client = connect(running.local_addrs()[0]);
    started_rx.recv_timeout(TIMEOUT).expect("handler started");
    let t0 = Instant::now();
    running.shutdown();
    running.join().expect("join");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(190),
        "grace respected: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "join bounded by grace: {took:?}"
    );
}

#[test]
fn shutdown_closes_the_listeners_at_once() {
    let (tx, rx) = mpsc::channel();
    let running = start(test_config(1), move |shard: Shard<(), ()>| {
        let tx = tx.clone();
        async move {
            let sd = shard.shutdown();
            shard
                .serve(move |mut s, _peer, _listener| async move {
                    // Held until the client closes.
                    let _ = s.read(vec![0u8; 16]).await;
                })
                .await;
            let _ = tx.send(sd.is_triggered());
        }
    })
    .expect("start");
    let addr = running.local_addrs()[0];
    let _held = connect(addr);
    running.shutdown();
    // While the held connection keeps the shard in its grace period, new connections are refused.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if TcpStream::connect(addr).is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "listener still open after shutdown"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(_held);
    assert!(rx.recv_timeout(TIMEOUT).expect("serve returned"));
    running.join().expect("join");
}

// ---------------------------------------------------------------------------------------------
// driver

/// Starts one shard with `driver`, serves one connection, and returns what the shard reported.
fn serve_one_with(driver: DriverChoice) -> Result<DriverKind, Error> {
    let (tx, rx) = mpsc::channel();
    let config = Config {
        driver,
        ..test_config(1)
    };
    let running = start(config, move |shard: Shard<(), ()>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(shard.driver());
            shard
                .serve(|mut s, _peer, _listener| async move {
                    let _ = s.write_all(b"ok".to_vec()).await;
                })
                .await;
        }
    })?;
    let kind = rx.recv_timeout(TIMEOUT).expect("shard reports its driver");
    assert_eq!(running.drivers(), &[kind]);
    let mut client = connect(running.local_addrs()[0]);
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).expect("served");
    assert_eq!(&buf, b"ok");
    running.shutdown();
    running.join()?;
    Ok(kind)
}

#[test]
fn epoll_driver_serves_a_connection() {
    assert_eq!(
        serve_one_with(DriverChoice::Epoll).expect("epoll"),
        DriverKind::Epoll
    );
}

#[test]
fn auto_driver_uses_io_uring_with_single_issuer_and_defer_taskrun() {
    if std::env::var_os("SHARDS_TEST_NO_URING").is_some() {
        eprintln!("SHARDS_TEST_NO_URING set: skipped");
        return;
    }
    let kind = serve_one_with(DriverChoice::Auto).expect("auto");
    assert_eq!(kind, DriverKind::IoUring(RingFlags::SINGLE_DEFER));
    assert_eq!(kind.to_string(), "io_uring (single_issuer,defer_taskrun)");
}

const SECCOMP_CHILD: &str = "SHARDS_TEST_SECCOMP_CHILD";

/// Makes `io_uring_setup` fail with EPERM in this thread and the threads it spawns later, as
/// Docker's default seccomp profile does.
fn deny_io_uring_setup() {
    #[repr(C)]
    struct SockFilter {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const NR_IO_URING_SETUP: u32 = 425; // same on x86_64 and aarch64
    let prog = [
        // A = seccomp_data.nr (offset 0)
        SockFilter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        SockFilter {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: NR_IO_URING_SETUP,
        },
        SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: plain prctl/seccomp calls; `fprog` and `prog` outlive the call, which copies them.
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "no_new_privs"
        );
        let rc = libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            0,
            &fprog as *const SockFprog,
        );
        assert_eq!(rc, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

/// Runs only as the re-executed child of the test below (a seccomp filter cannot be removed, so it
/// must not touch the other tests' process).
#[test]
fn seccomp_child_falls_back_to_epoll() {
    if std::env::var_os(SECCOMP_CHILD).is_none() {
        return;
    }
    deny_io_uring_setup();
    match serve_one_with(DriverChoice::IoUring) {
        Err(Error::UringRefused { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM))
        }
        Err(e) => panic!("expected UringRefused, got {e}"),
        Ok(kind) => panic!("io_uring demanded under seccomp gave {kind}"),
    }
    assert_eq!(
        serve_one_with(DriverChoice::Auto).expect("auto"),
        DriverKind::Epoll
    );
    println!("seccomp-child-ok");
}

#[test]
fn auto_driver_falls_back_to_epoll_when_io_uring_is_refused() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "seccomp_child_falls_back_to_epoll",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SECCOMP_CHILD, "1")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("seccomp-child-ok"),
        "child failed: {}\n{stdout}\n{stderr}",
        out.status
    );
}

// ---------------------------------------------------------------------------------------------
// signals

const SIGNAL_CHILD: &str = "SHARDS_TEST_SIGNAL_CHILD";

/// Runs only as the re-executed child of the test below: signals go to the whole process.
#[test]
fn signal_child_run_stops_on_sigterm() {
    if std::env::var_os(SIGNAL_CHILD).is_none() {
        return;
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(TIMEOUT).is_ok() {
            // SAFETY: sending a signal to our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        }
    });
    let config = Config {
        handle_signals: true,
        ..test_config(2)
    };
    shards::run(config, move |shard: Shard<(), ()>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
            shard.serve(|_s, _peer, _listener| async {}).await;
        }
    })
    .expect("run returns Ok after SIGTERM");
    println!("signal-child-ok");
}

#[test]
fn run_shuts_down_gracefully_on_sigterm() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "signal_child_run_stops_on_sigterm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGNAL_CHILD, "1")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("signal-child-ok"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
