//! TCP sockets: stream listeners, RFC 6062 relay listeners, and connections to peers made
//! from a relayed address.
//!
//! A TCP relayed address is both listened on (peers connect to it, RFC 6062 §5.3) and
//! connected from (Connect, §5.2). Linux lets a second socket bind an address that a
//! socket listens on only when both set `SO_REUSEPORT` (same user), so relay listeners and
//! outgoing peer sockets set it, with `SO_REUSEADDR`. Every worker owns its own relay
//! ports, so no two of our listeners share one.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Pending connections a listener holds before the worker accepts them.
const BACKLOG: i32 = 1024;

fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A restarted server can listen again while old connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking listener on `addr`; with `reuse_port`, one per worker on the same address
/// (`SO_REUSEPORT`: the kernel spreads new connections over them).
pub(super) fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A non-blocking listener on an RFC 6062 relayed address.
pub(super) fn listen_relay(relayed: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = tcp_socket(relayed)?;
    socket.set_reuse_port(true)?;
    socket.bind(&relayed.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Starts a non-blocking connection from `relayed` to `peer`. The outcome comes with the
/// socket's first writable event ([`connect_result`]).
pub(super) fn connect_from(
    relayed: SocketAddr,
    peer: SocketAddr,
) -> io::Result<mio::net::TcpStream> {
    let socket = tcp_socket(relayed)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&relayed.into())?;
    match socket.connect(&SockAddr::from(peer)) {
        Ok(()) => {}
        // Refusals known at once are reported at once. Anything else (EINPROGRESS above
        // all) is left for the writable event, where the socket's error tells.
        Err(e) if definite_failure(&e) => return Err(e),
        Err(_) => {}
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

fn definite_failure(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrInUse
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
    )
}

/// After a writable (or error) event on a connecting socket: `Some(Ok(()))` connected,
/// `Some(Err(_))` failed, `None` still connecting.
pub(super) fn connect_result(stream: &mio::net::TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
            // Connecting still, or failed with its error already taken: a socket that
            // failed reports hang-up, which the caller sees as the event's error flag.
            None
        }
        Err(e) => Some(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_relayed_address_listens_and_connects_out_at_once() {
        let relay = listen_relay("127.0.0.1:0".parse().unwrap()).unwrap();
        let relayed = relay.local_addr().unwrap();
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect_from(relayed, peer.local_addr().unwrap()).unwrap();
        let (_accepted, from) = peer.accept().unwrap();
        assert_eq!(
            from, relayed,
            "the connection comes from the relayed address"
        );
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match connect_result(&stream) {
                Some(r) => break r.unwrap(),
                None if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                None => panic!("never connected"),
            }
        }
    }

    #[test]
    fn a_refused_connect_is_an_error() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let relay = listen_relay("127.0.0.1:0".parse().unwrap()).unwrap();
        let result = connect_from(relay.local_addr().unwrap(), addr).map(|s| {
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(r) = connect_result(&s) {
                    break r;
                }
                assert!(Instant::now() < end, "no outcome");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        assert!(matches!(result, Err(_) | Ok(Err(_))), "{result:?}");
    }
}
