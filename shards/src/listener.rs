//! Binding the listening sockets, in the starting thread so that errors come back from `start`
//! synchronously. It owns socket options and the port-0 rule; accepting is `accept.rs`'s job.
//!
//! Per listen address, one socket per shard:
//! - `SO_REUSEPORT` (when `reuse_port`): every shard has its own socket in one reuse-port group
//!   and the kernel spreads new connections over them, so shards never contend on one accept
//!   queue. The price of the choice: a second process of the same user can join the group too.
//!   That is what allows a restart without refused connections (start the new server, then stop
//!   the old one), but it also means a second instance started by mistake does not get "address in
//!   use": it silently takes a share of the connections. With `reuse_port = false` a taken port is
//!   an error, and all shards accept from one socket (duplicated descriptors).
//! - `SO_REUSEADDR`: rebinding while old connections sit in TIME_WAIT.
//! - `IPV6_V6ONLY` on v6 sockets, so `[::]:p` and `0.0.0.0:p` can both be listed without clashing.
//! - non-blocking: required by the epoll driver; io_uring does not care.
//! - port 0: the first socket gets a port from the kernel; the others of that address bind to it.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;

/// Every listener, grouped by shard (`per_shard[s][i]` serves `local_addrs[i]`).
pub(crate) struct Bound {
    pub(crate) per_shard: Vec<Vec<TcpListener>>,
    pub(crate) local_addrs: Vec<SocketAddr>,
}

pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    shards: usize,
    backlog: i32,
    reuse_port: bool,
) -> Result<Bound, Error> {
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let first = bind_one(addr, backlog, reuse_port)?;
        let real = first
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let mut socks = vec![first];
        for _ in 1..shards {
            let sock = if reuse_port {
                bind_one(real, backlog, reuse_port)?
            } else {
                socks[0]
                    .try_clone()
                    .map_err(|source| Error::Bind { addr: real, source })?
            };
            socks.push(sock);
        }
        for (shard, sock) in socks.into_iter().enumerate() {
            per_shard[shard].push(sock);
        }
        local_addrs.push(real);
    }
    Ok(Bound {
        per_shard,
        local_addrs,
    })
}

fn bind_one(addr: SocketAddr, backlog: i32, reuse_port: bool) -> Result<TcpListener, Error> {
    let err = |source| Error::Bind { addr, source };
    // socket2 sets SOCK_CLOEXEC on Linux.
    let sock =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    sock.set_reuse_address(true).map_err(err)?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(err)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.listen(backlog).map_err(err)?;
    Ok(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_is_one_line_naming_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = taken.local_addr().expect("local addr");
        let Err(e) = bind_all(&[addr], 1, 16, true) else {
            panic!("binding a port held without SO_REUSEPORT must fail");
        };
        let line = e.to_string();
        assert!(matches!(e, Error::Bind { addr: a, .. } if a == addr));
        assert!(
            line.starts_with(&format!("cannot listen on {addr}: ")),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn port_zero_resolves_to_one_port_for_every_shard() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let bound = bind_all(&[any], 3, 16, true).expect("bind");
        let port = bound.local_addrs[0].port();
        assert_ne!(port, 0);
        for shard in &bound.per_shard {
            assert_eq!(shard[0].local_addr().expect("local addr").port(), port);
        }
    }

    #[test]
    fn without_reuse_port_shards_share_one_socket() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let bound = bind_all(&[any], 2, 16, false).expect("bind");
        let addr = bound.local_addrs[0];
        assert_eq!(
            bound.per_shard[1][0].local_addr().expect("local addr"),
            addr
        );
        // And a second instance gets "address in use".
        assert!(bind_all(&[addr], 1, 16, false).is_err());
    }
}
