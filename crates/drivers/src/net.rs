//! Socket helpers: binding UDP sockets and listing host addresses.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Binds a UDP socket. With `reuse_port`, several sockets (one per worker) may bind the same
/// address and the kernel spreads datagrams between them (`SO_REUSEPORT`). IPv6 sockets are
/// IPv6-only, so an IPv4 and an IPv6 socket can share a port number.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Which interface addresses [`host_addresses`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressFilter {
    /// Include IPv4 addresses.
    pub ipv4: bool,
    /// Include IPv6 addresses.
    pub ipv6: bool,
    /// Include loopback addresses (127.0.0.0/8, ::1).
    pub loopback: bool,
    /// Include link-local addresses (169.254.0.0/16, fe80::/10).
    pub link_local: bool,
}

impl Default for AddressFilter {
    fn default() -> Self {
        AddressFilter {
            ipv4: true,
            ipv6: true,
            loopback: false,
            link_local: false,
        }
    }
}

/// The machine's interface addresses, for host candidates: loopback and link-local are
/// skipped unless asked for.
pub fn host_addresses(filter: AddressFilter) -> io::Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| keep(ip, filter))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn keep(ip: &IpAddr, filter: AddressFilter) -> bool {
    let family = match ip {
        IpAddr::V4(_) => filter.ipv4,
        IpAddr::V6(_) => filter.ipv6,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    family
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && (filter.loopback || !ip.is_loopback())
        && (filter.link_local || !link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rules() {
        let f = AddressFilter::default();
        assert!(keep(&"192.0.2.1".parse().unwrap(), f));
        assert!(!keep(&"127.0.0.1".parse().unwrap(), f));
        assert!(!keep(&"169.254.1.1".parse().unwrap(), f));
        assert!(!keep(&"fe80::1".parse().unwrap(), f));
        assert!(keep(&"2001:db8::1".parse().unwrap(), f));
        let all = AddressFilter {
            loopback: true,
            link_local: true,
            ..f
        };
        assert!(keep(&"::1".parse().unwrap(), all));
        assert!(keep(&"fe80::1".parse().unwrap(), all));
        let v4 = AddressFilter { ipv6: false, ..f };
        assert!(!keep(&"2001:db8::1".parse().unwrap(), v4));
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_an_address() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_udp(addr, true).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        assert!(bind_udp(addr, false).is_err());
    }
}
