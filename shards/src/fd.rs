//! Borrowing a monoio stream's file descriptor, for system calls monoio does not wrap
//! (`sendfile`, `ioctl(FIONBIO)`) made through safe wrappers such as rustix.
//!
//! monoio 0.2.4's `TcpStream` implements `AsRawFd` but not `AsFd`, so safe code cannot borrow
//! its descriptor; this is the one place that turns the raw number into a `BorrowedFd`.

use std::os::fd::{AsRawFd, BorrowedFd};

/// The descriptor of `stream`, borrowed for as long as `stream` is.
pub fn sock_fd(stream: &monoio::net::TcpStream) -> BorrowedFd<'_> {
    // SAFETY: `borrow_raw` requires the descriptor to stay open for the returned lifetime. It is
    // tied to `&stream`, and monoio closes a stream's descriptor only when the stream is dropped
    // (or consumed by value), which the shared borrow rules out meanwhile.
    unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_fd_is_the_streams() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let raw = client.as_raw_fd();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stream = monoio::net::TcpStream::from_std(client).unwrap();
            assert_eq!(sock_fd(&stream).as_raw_fd(), raw);
        });
    }
}
