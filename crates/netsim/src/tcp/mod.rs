//! TCP between nodes: the commands nodes issue, the events they get, and the endpoint model.
//!
//! The simulator runs the TCP endpoints itself (one stack per host): nodes only see a byte
//! stream. A node asks for things with [`TcpCommand`]s, returned from
//! [`Node::poll_tcp`](crate::Node::poll_tcp), and learns what happened through
//! [`TcpEvent`]s handed to [`Node::handle_tcp`](crate::Node::handle_tcp). Underneath, real
//! segments (SYN, SYN-ACK, ACK, data, FIN, RST, with sequence numbers) cross the same links
//! and NATs as datagrams, so loss, latency, NAT filtering and link cuts act on them, and
//! captures show them.

mod conn;
mod segment;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) use conn::{Conn, Output, Setup};
pub(crate) use segment::{Flags, Segment, mss_for_mtu};

use crate::node::BindError;

/// Identifies one TCP connection of a [`Sim`](crate::Sim), unique for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpId(pub(crate) u64);

impl fmt::Display for TcpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp#{}", self.0)
    }
}

/// What a node asks the simulator's TCP to do (returned from
/// [`Node::poll_tcp`](crate::Node::poll_tcp)).
///
/// A node may use any address of its host (TCP ports are a namespace of their own, apart
/// from the UDP sockets the node is bound to). Errors come back as events:
/// [`TcpEvent::ListenFailed`], [`TcpEvent::ConnectFailed`]. Commands on an unknown or
/// finished connection, or on one owned by another node, are ignored (and traced).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpCommand {
    /// Accept connections on `local`. An unspecified IP (`0.0.0.0:p`, `[::]:p`) listens on
    /// every address of that family of the host, and port 0 on every port of the address
    /// (as [`Sim::bind`](crate::Sim::bind) does for UDP: a relay that owns a whole address);
    /// the most specific listener wins.
    Listen {
        /// The address and port to listen on.
        local: SocketAddr,
    },
    /// Stop accepting on `local` (connections already accepted stay).
    Unlisten {
        /// As given to [`Listen`](Self::Listen).
        local: SocketAddr,
    },
    /// Open a connection from `local` to `remote`: [`TcpEvent::Connected`] or
    /// [`TcpEvent::ConnectFailed`] follows.
    ///
    /// Port 0 picks an ephemeral port (49152–65535, in order, skipping ports in use); an
    /// unspecified IP picks the host's first address of `remote`'s family. An explicit port
    /// may be one the node listens on or connects from already (as `SO_REUSEADDR` allows;
    /// ICE-TCP simultaneous-open candidates need it), to another remote (or the same one once
    /// its old connection is in TIME-WAIT). When both ends connect to each other at once, the
    /// SYNs cross and both get [`Connected`](TcpEvent::Connected) (RFC 9293 §3.5
    /// simultaneous open); a SYN that arrives before the local connect finds no connection
    /// and is refused, or accepted by a listener.
    Connect {
        /// The local address (port 0: ephemeral; unspecified IP: the host's).
        local: SocketAddr,
        /// Where to connect.
        remote: SocketAddr,
    },
    /// Queue bytes on a connection. They are delivered in order, once, however lossy the
    /// path; before the handshake completes they wait.
    Send {
        /// The connection.
        id: TcpId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close gracefully: queued bytes go out, then a FIN. The node gets no more events for
    /// the connection (bytes that still arrive are acknowledged and discarded).
    Close {
        /// The connection.
        id: TcpId,
    },
    /// Abort: send a RST and forget the connection at once, queued bytes included.
    Abort {
        /// The connection.
        id: TcpId,
    },
}

/// What the simulator's TCP tells a node (handed to
/// [`Node::handle_tcp`](crate::Node::handle_tcp)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpEvent {
    /// A [`TcpCommand::Listen`] could not be honoured.
    ListenFailed {
        /// As given in the command.
        local: SocketAddr,
        /// Why.
        error: BindError,
    },
    /// A connection the node opened with [`TcpCommand::Connect`] is established.
    Connected {
        /// The connection, for [`TcpCommand::Send`] and [`TcpCommand::Close`].
        id: TcpId,
        /// The local address actually used (the ephemeral port chosen, if any).
        local: SocketAddr,
        /// The remote address.
        remote: SocketAddr,
    },
    /// A [`TcpCommand::Connect`] failed.
    ConnectFailed {
        /// The local address *as given in the command* (port 0 for an ephemeral port), so
        /// the node can match it to its request.
        local: SocketAddr,
        /// The remote address, as given.
        remote: SocketAddr,
        /// Why.
        error: ConnectError,
    },
    /// A connection to one of the node's listeners completed its handshake.
    Accepted {
        /// The connection.
        id: TcpId,
        /// The local address it arrived on.
        local: SocketAddr,
        /// The peer, as seen from here (translated by any NATs on the way).
        remote: SocketAddr,
    },
    /// Bytes arrived, in order.
    Data {
        /// The connection.
        id: TcpId,
        /// The next bytes of the stream.
        bytes: Vec<u8>,
    },
    /// The connection ended other than by the node's own [`TcpCommand::Close`] or
    /// [`TcpCommand::Abort`]. No more events follow for it.
    Closed {
        /// The connection.
        id: TcpId,
        /// How it ended.
        reason: CloseReason,
    },
}

/// Why a [`TcpCommand::Connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectError {
    /// The peer answered with a RST (nobody listens on the port).
    Refused,
    /// No answer within [`TcpConfig::connect_timeout`] (a filtering NAT or firewall, a cut
    /// link, an unroutable address).
    TimedOut,
    /// The local IP is not an address of the node's host (or the host has no address of
    /// the remote's family).
    AddressNotOnHost,
    /// The local and remote addresses are of different families.
    AddressFamily,
    /// The connection (local and remote address) exists already, or no ephemeral port is
    /// left.
    InUse,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectError::Refused => "connection refused",
            ConnectError::TimedOut => "connection timed out",
            ConnectError::AddressNotOnHost => "local address is not the host's",
            ConnectError::AddressFamily => "address families differ",
            ConnectError::InUse => "address in use",
        })
    }
}

impl std::error::Error for ConnectError {}

/// How a connection ended, in [`TcpEvent::Closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed (its FIN arrived after all its data). The simulator closes this
    /// side in turn: bytes queued here still go out, then a FIN.
    Fin,
    /// The peer (or a middlebox) reset the connection.
    Reset,
    /// Data went unacknowledged for [`TcpConfig::user_timeout`], or keepalive probes went
    /// unanswered: the path is gone (a link cut, an expired NAT session).
    TimedOut,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::Fin => "closed by peer",
            CloseReason::Reset => "reset",
            CloseReason::TimedOut => "timed out",
        })
    }
}

/// How the simulator's TCP endpoints behave; [`Sim::set_tcp_config`](crate::Sim::set_tcp_config)
/// sets it for connections opened afterwards. A duration too long to add to an `Instant`
/// (`Duration::MAX`) means "never".
///
/// Retransmission follows RFC 6298 in spirit: the timeout starts at `initial_rto`, then is
/// `max(min_rto, 2 × SRTT, SRTT + 4 × RTTVAR)` once round trips have been measured (Karn's
/// rule: never from a retransmitted segment), and doubles on every expiry up to `max_rto`.
/// An expiry resends everything outstanding (go-back-N); the receiver keeps out-of-order
/// segments, so loss costs time, never bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpConfig {
    /// Retransmission timeout before any round trip is measured (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Lower bound of the retransmission timeout (Linux: 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the backed-off retransmission timeout (RFC 6298 allows 60 s).
    pub max_rto: Duration,
    /// Give up a handshake after this long ([`ConnectError::TimedOut`]). Default 127 s:
    /// Linux's six SYN retransmissions.
    pub connect_timeout: Duration,
    /// Give up an established connection when data (or a FIN) has gone unacknowledged this
    /// long ([`CloseReason::TimedOut`]; RFC 5482's user timeout). Default 15 min, about
    /// Linux's `tcp_retries2`.
    pub user_timeout: Duration,
    /// How long the side that closed first keeps the connection in TIME-WAIT, to acknowledge
    /// a retransmitted FIN (Linux: 60 s).
    pub time_wait: Duration,
    /// Idle time after which keepalive probes start (RFC 1122 §4.2.3.6; off by default as
    /// in every stack; Linux's default when enabled is 2 h).
    pub keepalive: Option<Duration>,
    /// Time between keepalive probes (Linux: 75 s).
    pub keepalive_interval: Duration,
    /// Unanswered probes before the connection is given up (Linux: 9).
    pub keepalive_probes: u32,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(127),
            user_timeout: Duration::from_secs(15 * 60),
            time_wait: Duration::from_secs(60),
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
        }
    }
}
