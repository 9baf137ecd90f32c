//! What every floe state machine exchanges with its driver: datagrams in, transmits out.

use alloc::vec::Vec;
use core::net::SocketAddr;

/// The transport a datagram or stream message travels over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TransportProtocol {
    /// UDP.
    Udp,
    /// TCP (STUN framed by its own length, or RFC 4571 framing for ICE-TCP).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl TransportProtocol {
    /// True for transports that deliver reliably (TCP, TLS): STUN does not retransmit over
    /// them (RFC 8489 §6.2.2).
    pub const fn is_reliable(self) -> bool {
        !matches!(self, TransportProtocol::Udp)
    }
}

/// A datagram (or stream message) for the driver to send.
///
/// `source` names the local socket it must leave from: a host address bound by the driver,
/// or, at the ICE layer, a relayed address that is routed through a TURN client.
#[must_use = "a Transmit that is not sent is a lost packet"]
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transport.
    pub transport: TransportProtocol,
    /// The local address to send from.
    pub source: SocketAddr,
    /// The remote address to send to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

impl core::fmt::Debug for Transmit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transmit")
            .field("transport", &self.transport)
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// A datagram (or framed stream message) that arrived, as a driver hands it to a state
/// machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input<'a> {
    /// The transport it came over.
    pub transport: TransportProtocol,
    /// Where it came from.
    pub source: SocketAddr,
    /// The local address it arrived on.
    pub destination: SocketAddr,
    /// The bytes.
    pub data: &'a [u8],
}
