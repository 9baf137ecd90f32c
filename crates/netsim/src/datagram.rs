//! The unit the simulator moves: one datagram with its addresses and transport.

use std::net::SocketAddr;

/// A transport protocol the simulator emulates.
///
/// [`Datagram`]s are UDP. TCP is a byte stream between nodes: nodes drive it with
/// [`TcpCommand`](crate::TcpCommand)s and see it as [`TcpEvent`](crate::TcpEvent)s, while the
/// simulator moves its segments through the same links and NATs. NAT mappings
/// ([`Mapping::transport`](crate::Mapping::transport)) and the [`Firewall`] are per transport,
/// so "UDP blocked, TCP allowed" is `Firewall::block(Transport::Udp)`.
///
/// [`Firewall`]: crate::Firewall
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP (RFC 768).
    Udp,
    /// TCP (RFC 9293).
    Tcp,
}

impl Transport {
    /// The IP protocol number that carries this transport (17 for UDP, 6 for TCP).
    #[must_use]
    pub const fn ip_protocol(self) -> u8 {
        match self {
            Transport::Udp => 17,
            Transport::Tcp => 6,
        }
    }

    /// Bytes of transport header in front of the payload (8 for UDP; 20 for TCP without
    /// options).
    #[must_use]
    pub const fn header_len(self) -> usize {
        match self {
            Transport::Udp => 8,
            Transport::Tcp => 20,
        }
    }
}

/// One datagram: what a [`Node`](crate::Node) sends and receives over UDP.
///
/// `source` is the local socket the sending node uses (it must be one the node is bound to);
/// on delivery `destination` is the receiving node's bound socket and `source` is the
/// sender's address as translated by any NATs on the way.
///
/// Datagrams are UDP: one with [`Transport::Tcp`] handed to the simulator is dropped
/// ([`DropReason::BadTransport`](crate::DropReason::BadTransport)); TCP data goes through
/// [`TcpCommand::Send`](crate::TcpCommand::Send).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use]
pub struct Datagram {
    /// Where the datagram comes from.
    pub source: SocketAddr,
    /// Where the datagram goes.
    pub destination: SocketAddr,
    /// The transport payload (for UDP: the bytes after the UDP header).
    pub payload: Vec<u8>,
    /// The transport it travels over.
    pub transport: Transport,
}

impl Datagram {
    /// A UDP datagram.
    pub fn udp(source: SocketAddr, destination: SocketAddr, payload: impl Into<Vec<u8>>) -> Self {
        Datagram {
            source,
            destination,
            payload: payload.into(),
            transport: Transport::Udp,
        }
    }

    /// Size of the IP packet that carries this datagram: IP header (20 bytes for IPv4, 40 for
    /// IPv6) + transport header + payload. Links apply their MTU and rate limit to this size.
    #[must_use]
    pub fn ip_len(&self) -> usize {
        let ip_header = if self.source.is_ipv4() { 20 } else { 40 };
        ip_header + self.transport.header_len() + self.payload.len()
    }

    /// Whether source and destination are of the same address family (a datagram that mixes
    /// IPv4 and IPv6 cannot be routed).
    #[must_use]
    pub fn same_family(&self) -> bool {
        self.source.is_ipv4() == self.destination.is_ipv4()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_len_counts_headers_per_family() {
        let v4 = Datagram::udp(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            vec![0; 100],
        );
        assert_eq!(v4.ip_len(), 128);
        let v6 = Datagram::udp(
            "[2001:db8::1]:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
            vec![0; 100],
        );
        assert_eq!(v6.ip_len(), 148);
        assert!(v6.same_family());
        let mixed = Datagram::udp(
            "10.0.0.1:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
            vec![],
        );
        assert!(!mixed.same_family());
    }
}
