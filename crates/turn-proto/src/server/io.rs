//! What the server exchanges with its driver besides [`Transmit`](stun_proto::Transmit)s:
//! datagrams in, datagrams to send at once, events and command errors.

use super::allocation::FiveTuple;
use core::fmt;
use std::net::SocketAddr;
use stun_proto::TransportProtocol;

/// A datagram (or a framed stream message) handed to [`Server::handle_input`].
///
/// The datagram is `buf[headroom..]`. A driver that receives into `buf[4..]` and passes
/// `headroom: 4` lets the server turn a peer's datagram into a ChannelData message by
/// writing the 4-byte header in front of it, without copying the payload.
///
/// [`Server::handle_input`]: super::Server::handle_input
#[derive(Debug)]
pub struct ServerInput<'a> {
    /// The transport it came over (peers are always UDP).
    pub transport: TransportProtocol,
    /// Where it came from: a client, or a peer.
    pub source: SocketAddr,
    /// The local address it arrived on: a listening address, or a relayed address.
    pub destination: SocketAddr,
    /// The buffer: `headroom` spare bytes, then the datagram.
    pub buf: &'a mut [u8],
    /// Spare bytes before the datagram.
    pub headroom: usize,
}

impl<'a> ServerInput<'a> {
    /// A UDP datagram with no headroom.
    pub fn udp(source: SocketAddr, destination: SocketAddr, data: &'a mut [u8]) -> Self {
        ServerInput {
            transport: TransportProtocol::Udp,
            source,
            destination,
            buf: data,
            headroom: 0,
        }
    }

    /// A UDP datagram at `buf[headroom..]`.
    pub fn udp_with_headroom(
        source: SocketAddr,
        destination: SocketAddr,
        buf: &'a mut [u8],
        headroom: usize,
    ) -> Self {
        ServerInput {
            transport: TransportProtocol::Udp,
            source,
            destination,
            buf,
            headroom,
        }
    }
}

/// Bytes to send now, borrowed from the input buffer or from the server's scratch buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The transport (towards a client, the 5-tuple's; towards a peer, UDP).
    pub transport: TransportProtocol,
    /// The local address to send from: a relayed address (to a peer) or the listening
    /// address of the 5-tuple (to a client).
    pub source: SocketAddr,
    /// Where to send.
    pub destination: SocketAddr,
    /// The bytes.
    pub data: &'a [u8],
    /// Set the DF bit (IPv4) / do not fragment (IPv6): the client asked with
    /// DONT-FRAGMENT in a Send indication (RFC 8656 §11.2, §14).
    pub dont_fragment: bool,
}

impl fmt::Debug for Datagram<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datagram")
            .field("transport", &self.transport)
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("len", &self.data.len())
            .field("dont_fragment", &self.dont_fragment)
            .finish()
    }
}

/// What [`Server::handle_input`](super::Server::handle_input) asks of the driver.
#[must_use = "a relayed datagram that is not sent is a lost packet"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerOutput<'a> {
    /// Nothing to send right now: the input was a request (its response, if any, is
    /// queued for [`poll_transmit`](super::Server::poll_transmit)), or it was dropped
    /// (and counted in [`stats`](super::Server::stats)).
    Handled,
    /// Relay this datagram now.
    Send(Datagram<'a>),
}

/// Why an allocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteReason {
    /// Its lifetime ran out.
    Expired,
    /// The client deleted it (Refresh with LIFETIME 0).
    Deleted,
    /// No relay socket could be bound (or the driver did not answer in time).
    BindFailed,
}

/// Something the driver must do or may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Bind a socket on `relayed`, then report with
    /// [`Server::relay_bound`](super::Server::relay_bound). With
    /// [`RelayBinding::Automatic`](super::RelayBinding::Automatic) this is a notice.
    BindRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The transport towards peers (UDP).
        transport: TransportProtocol,
    },
    /// Close the socket on `relayed`: its allocation has ended.
    ReleaseRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The transport towards peers (UDP).
        transport: TransportProtocol,
    },
    /// An allocation is now active.
    AllocationCreated {
        /// Its 5-tuple.
        five_tuple: FiveTuple,
        /// The user that created it.
        username: String,
        /// Its relayed transport address(es).
        relayed: Vec<SocketAddr>,
    },
    /// An allocation ended.
    AllocationDeleted {
        /// Its 5-tuple.
        five_tuple: FiveTuple,
        /// Why.
        reason: DeleteReason,
    },
}

/// How binding a relay socket failed, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindFailure {
    /// The address is in use by another socket.
    AddressInUse,
    /// Any other failure.
    Other,
}

/// Why [`Server::relay_bound`](super::Server::relay_bound) refused a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayBoundError {
    /// No allocation is waiting for a bind of this address (unknown, already reported, or
    /// given up after [`ServerConfig::relay_bind_timeout`](super::ServerConfig::relay_bind_timeout)).
    NotPending(SocketAddr),
}

impl fmt::Display for RelayBoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayBoundError::NotPending(a) => write!(f, "no bind of {a} is pending"),
        }
    }
}

impl std::error::Error for RelayBoundError {}
