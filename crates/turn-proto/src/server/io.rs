//! What the server exchanges with its driver besides [`Transmit`](stun_proto::Transmit)s:
//! datagrams in, datagrams to send at once, events and command errors.

use super::allocation::FiveTuple;
use core::fmt;
use std::net::SocketAddr;
use stun_proto::TransportProtocol;

/// A datagram (or a framed stream message) handed to [`Server::handle_input`].
///
/// Over TCP and TLS (`transport` Tcp/Tls) the input is exactly one message cut from the
/// connection's byte stream by `stun_proto::framing::StreamFramer` (STUN, or ChannelData
/// with its stream padding removed); `source` and `destination` are the connection's remote
/// and local addresses. The datagram is `buf[headroom..]`. A driver that receives into `buf[4..]` and passes
/// `headroom: 4` lets the server turn a peer's datagram into a ChannelData message by
/// writing the 4-byte header in front of it, without copying the payload.
///
/// [`Server::handle_input`]: super::Server::handle_input
#[derive(Debug)]
pub struct ServerInput<'a> {
    /// The transport it came over: UDP, TCP or TLS from clients; UDP from peers (the bytes
    /// of RFC 6062 TCP peers never reach the core: the driver bridges them).
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
    /// The TCP or TLS connection the allocation was made on closed
    /// ([`Server::connection_closed`](super::Server::connection_closed)).
    ConnectionClosed,
}

/// Something the driver must do or may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Bind a socket on `relayed`, then report with
    /// [`Server::relay_bound`](super::Server::relay_bound). With
    /// [`RelayBinding::Automatic`](super::RelayBinding::Automatic) this is a notice.
    ///
    /// For `transport` TCP (an RFC 6062 allocation) bind a TCP socket and listen on it:
    /// accepted connections are reported with
    /// [`Server::incoming_peer_connection`](super::Server::incoming_peer_connection), and
    /// connections asked for by [`ServerEvent::ConnectPeer`] are made from this address.
    BindRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The transport towards peers: UDP, or TCP for an RFC 6062 allocation.
        transport: TransportProtocol,
    },
    /// Close the socket on `relayed`: its allocation has ended. (The TCP connections made
    /// from a TCP relay are closed by their own [`ServerEvent::ClosePeerConnection`].)
    ReleaseRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The transport towards peers: UDP, or TCP.
        transport: TransportProtocol,
    },
    /// RFC 6062 §5.2: open a TCP connection from `relayed` to `peer` (with a timeout of your
    /// own; the core gives up after
    /// [`ServerConfig::tcp_connect_timeout`](super::ServerConfig::tcp_connect_timeout)) and
    /// report with [`Server::peer_connected`](super::Server::peer_connected). Buffer what the
    /// peer sends until [`ServerEvent::Bridge`] names this connection.
    ConnectPeer {
        /// The CONNECTION-ID that names this peer data connection from now on.
        connection_id: u32,
        /// The allocation's TCP relayed address: the connection's local address.
        relayed: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// RFC 6062 §5.4: a ConnectionBind succeeded. The success response was queued before
    /// this event: write it on the client data connection first, then copy bytes as they
    /// are between the client data connection `client` and the peer data connection
    /// `peer` (beginning with what was buffered from the peer), without the core: the
    /// core reads nothing more from either. When one side closes, close the other, and
    /// report it with [`Server::connection_closed`](super::Server::connection_closed) or
    /// [`Server::peer_connection_closed`](super::Server::peer_connection_closed).
    Bridge {
        /// The CONNECTION-ID.
        connection_id: u32,
        /// The client data connection's transport (TCP or TLS).
        transport: TransportProtocol,
        /// The client data connection: (local, remote), as in its inputs' (destination,
        /// source).
        client: (SocketAddr, SocketAddr),
        /// The peer data connection: (relayed, peer).
        peer: (SocketAddr, SocketAddr),
    },
    /// Close the peer data connection `connection_id` (and, once bridged, its client data
    /// connection too), or abandon the attempt to open it: the Connect timed out, no
    /// ConnectionBind came in time (RFC 6062 §5.3), one half of a bridge closed, or the
    /// allocation ended (§5.5). Nothing needs to be reported back.
    ClosePeerConnection {
        /// The CONNECTION-ID.
        connection_id: u32,
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

/// How opening a TCP connection to a peer failed, as the driver reports it
/// ([`Server::peer_connected`](super::Server::peer_connected)). Every failure is answered
/// with 447 (RFC 6062 §5.2); the kind is for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The peer refused the connection (RST).
    Refused,
    /// No answer in the driver's own time limit.
    TimedOut,
    /// Any other failure (unreachable, no route, ...).
    Other,
}

/// Why [`Server::peer_connected`](super::Server::peer_connected) refused a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerConnectedError {
    /// No Connect is waiting for this connection (unknown, already reported, timed out, or
    /// its allocation ended): close the connection if it was opened.
    NotPending(u32),
}

impl fmt::Display for PeerConnectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerConnectedError::NotPending(id) => write!(f, "no Connect waits for connection {id}"),
        }
    }
}

impl std::error::Error for PeerConnectedError {}

/// What the core decided about a TCP connection a peer opened to a relayed address
/// ([`Server::incoming_peer_connection`](super::Server::incoming_peer_connection)).
#[must_use = "a refused peer connection must be closed"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncomingPeer {
    /// Keep the connection under this CONNECTION-ID and buffer what the peer sends; a
    /// ConnectionAttempt indication went to the client (queued for `poll_transmit`).
    Accepted {
        /// The CONNECTION-ID.
        connection_id: u32,
    },
    /// Close the connection at once (RFC 6062 §5.3); nothing is sent to the client.
    Refused(PeerRefusal),
}

/// Why an incoming peer connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerRefusal {
    /// No active TCP allocation owns the relayed address.
    NoAllocation,
    /// The peer policy denies the peer's address.
    DeniedPeer,
    /// The allocation has no permission for the peer's IP (RFC 6062 §5.3).
    NoPermission,
    /// The allocation already has a connection with this peer transport address.
    AlreadyConnected,
    /// A quota on peer connections is reached
    /// ([`Quotas::tcp_connections_per_allocation`](super::Quotas::tcp_connections_per_allocation),
    /// [`Quotas::unbound_tcp_connections`](super::Quotas::unbound_tcp_connections)).
    TooManyConnections,
}
