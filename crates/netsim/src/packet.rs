//! What the simulator routes: a UDP datagram or a TCP segment.

use std::net::SocketAddr;

use crate::datagram::{Datagram, Transport};
use crate::tcp::Segment;

/// One IP packet on its way through links, realms and NATs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    Udp(Datagram),
    Tcp(Segment),
}

impl Packet {
    pub(crate) fn source(&self) -> SocketAddr {
        match self {
            Packet::Udp(d) => d.source,
            Packet::Tcp(s) => s.source,
        }
    }

    pub(crate) fn destination(&self) -> SocketAddr {
        match self {
            Packet::Udp(d) => d.destination,
            Packet::Tcp(s) => s.destination,
        }
    }

    pub(crate) fn set_source(&mut self, source: SocketAddr) {
        match self {
            Packet::Udp(d) => d.source = source,
            Packet::Tcp(s) => s.source = source,
        }
    }

    pub(crate) fn set_destination(&mut self, destination: SocketAddr) {
        match self {
            Packet::Udp(d) => d.destination = destination,
            Packet::Tcp(s) => s.destination = destination,
        }
    }

    pub(crate) fn transport(&self) -> Transport {
        match self {
            Packet::Udp(d) => d.transport,
            Packet::Tcp(_) => Transport::Tcp,
        }
    }

    /// Size of the IP packet: what links apply their MTU and rate limit to.
    pub(crate) fn ip_len(&self) -> usize {
        match self {
            Packet::Udp(d) => d.ip_len(),
            Packet::Tcp(s) => s.ip_len(),
        }
    }

    /// Transport payload bytes (for traces).
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Packet::Udp(d) => d.payload.len(),
            Packet::Tcp(s) => s.payload.len(),
        }
    }
}

impl From<Datagram> for Packet {
    fn from(d: Datagram) -> Self {
        Packet::Udp(d)
    }
}

impl From<Segment> for Packet {
    fn from(s: Segment) -> Self {
        Packet::Tcp(s)
    }
}
