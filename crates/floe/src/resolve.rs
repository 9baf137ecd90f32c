//! Turning `HOST[:PORT]` arguments into socket addresses.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The STUN/TURN default port (RFC 8489 §18.5, RFC 8656).
pub const DEFAULT_PORT: u16 = 3478;

/// Resolves `HOST:PORT`, `HOST`, `IP`, `[IPv6]:PORT` or `IPv6`, with `DEFAULT_PORT` when none is
/// given. The first address returned by the resolver is used.
pub fn resolve(target: &str) -> io::Result<SocketAddr> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = target.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let with_port = if target
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        target.to_string()
    } else {
        format!("{target}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{target} did not resolve")))
}

/// Formats an address as `ip:port`, with IPv6 in brackets.
pub fn show(addr: SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            resolve("192.0.2.1:19302").unwrap(),
            "192.0.2.1:19302".parse().unwrap()
        );
        assert_eq!(
            resolve("192.0.2.1").unwrap(),
            "192.0.2.1:3478".parse().unwrap()
        );
        assert_eq!(
            resolve("[2001:db8::1]:5").unwrap(),
            "[2001:db8::1]:5".parse().unwrap()
        );
        assert_eq!(
            resolve("2001:db8::1").unwrap(),
            "[2001:db8::1]:3478".parse().unwrap()
        );
        assert_eq!(resolve("localhost:9").unwrap().port(), 9);
        assert_eq!(resolve("localhost").unwrap().port(), 3478);
        assert_eq!(show("[::1]:5".parse().unwrap()), "[::1]:5");
    }
}
