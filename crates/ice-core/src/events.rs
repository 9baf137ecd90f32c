//! What the agent reports: events, input outcomes and states.

use crate::candidate::{Candidate, TcpType};
use crate::config::Role;
use core::fmt;
use std::net::SocketAddr;
use stun_proto::TransportProtocol;

/// A data stream of the agent (RFC 8445 §3), numbered in the order streams were added: the
/// first stream is the first checklist of the checklist set (§6.1.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub(crate) u16);

impl StreamId {
    /// The stream's index, from 0.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream{}", self.0)
    }
}

/// Names a TCP or TLS connection to a TURN server that the agent asked for with
/// [`Event::TurnConnect`], in the calls and events about it
/// ([`Agent::turn_connected`](crate::Agent::turn_connected),
/// [`Agent::turn_connect_failed`](crate::Agent::turn_connect_failed),
/// [`Agent::turn_closed`](crate::Agent::turn_closed), [`Event::TurnClose`]). Every
/// connection the agent asks for gets a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TurnConnectionId(u32);

impl TurnConnectionId {
    /// The id of the `attempt`-th connection (from 0) of TURN client `relay`.
    pub(crate) const fn new(relay: u8, attempt: u8) -> Self {
        TurnConnectionId(((relay as u32) << 8) | attempt as u32)
    }

    /// The TURN client the connection is for.
    pub(crate) const fn relay(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The id as a number (unique within one agent), for logs and maps.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for TurnConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "turn{}", self.0)
    }
}

/// The agent's connection state, named as W3C WebRTC's `RTCIceConnectionState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Nothing to check yet.
    New,
    /// Checks are running; not every component has a usable pair.
    Checking,
    /// Every component of every stream has a usable (valid) pair; nomination may still be
    /// going on.
    Connected,
    /// Every component of every stream has a selected (nominated) pair.
    Completed,
    /// A checklist failed (after the peer's end-of-candidates, RFC 8838 §8), or consent was
    /// lost (RFC 7675 §5.1).
    Failed,
    /// A selected pair stopped answering consent checks; consent has not expired yet.
    Disconnected,
    /// [`Agent::close`](crate::Agent::close) was called.
    Closed,
}

/// The gathering state, named as W3C WebRTC's `RTCIceGatheringState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatheringState {
    /// No candidate yet.
    New,
    /// Candidates are being gathered.
    Gathering,
    /// Host candidates are complete and every STUN/TURN transaction has finished.
    Complete,
}

/// Something that happened. Drain with [`Agent::poll_event`](crate::Agent::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new local candidate: send it to the peer (trickle, RFC 8838 §9). The `ufrag` tells
    /// the peer which generation it belongs to.
    LocalCandidate {
        /// The stream.
        stream: StreamId,
        /// The candidate.
        candidate: Candidate,
        /// The local username fragment of the generation.
        ufrag: String,
    },
    /// No more local candidates for this stream in this generation: send the peer an
    /// end-of-candidates indication (RFC 8838 §13).
    LocalEndOfCandidates {
        /// The stream.
        stream: StreamId,
        /// The local username fragment of the generation.
        ufrag: String,
    },
    /// The gathering state changed.
    GatheringStateChanged(GatheringState),
    /// The connection state changed.
    ConnectionStateChanged(ConnectionState),
    /// A pair was selected for a component (RFC 8445 §8.1.1): data goes there from now on.
    SelectedPair {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// A remote candidate names an mDNS host (draft-ietf-mmusic-mdns-ice-candidates):
    /// resolve it and call [`Agent::resolved_mdns`](crate::Agent::resolved_mdns).
    ResolveMdns {
        /// The `.local` name.
        name: String,
    },
    /// The role changed after a role conflict (RFC 8445 §7.3.1.1).
    RoleChanged(Role),
    /// Consent to send on a selected pair expired (RFC 7675 §5.1): nothing more is sent on
    /// it.
    ConsentLost {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
    },
    /// A peer-reflexive remote candidate was learnt from a check (RFC 8445 §7.3.1.3).
    PeerReflexiveCandidate {
        /// The stream.
        stream: StreamId,
        /// The candidate.
        candidate: Candidate,
    },
    /// Open a TCP connection for a check (RFC 6544 §7.1), then report the outcome with
    /// [`Agent::tcp_connected`](crate::Agent::tcp_connected) or
    /// [`Agent::tcp_connect_failed`](crate::Agent::tcp_connect_failed), naming it by this
    /// same `(local, remote)`.
    TcpConnect {
        /// The base of the local candidate. For [`TcpType::Active`], connect from an
        /// ephemeral port of this IP address (or from this port, if the driver bound it);
        /// for [`TcpType::SimultaneousOpen`], connect from exactly this address, the port
        /// the candidate is bound to, while the peer does the same towards it.
        local: SocketAddr,
        /// The peer's passive or simultaneous-open candidate.
        remote: SocketAddr,
        /// How to open it: [`TcpType::Active`] or [`TcpType::SimultaneousOpen`].
        tcp_type: TcpType,
    },
    /// Close a TCP connection (or abandon the attempt to open it): the agent no longer needs
    /// it. Do not report [`Agent::tcp_closed`](crate::Agent::tcp_closed) for it.
    TcpClose {
        /// The local name of the connection.
        local: SocketAddr,
        /// The remote address of the connection.
        remote: SocketAddr,
    },
    /// Open a TCP or TLS connection to a TURN server for a relayed candidate (RFC 8656 §3.1;
    /// see "TURN over TCP and TLS" on [`Agent`](crate::Agent)), then report the outcome with
    /// [`Agent::turn_connected`](crate::Agent::turn_connected) (with the connection's local
    /// address) or [`Agent::turn_connect_failed`](crate::Agent::turn_connect_failed), naming
    /// it by `id`.
    TurnConnect {
        /// The connection's name in later calls and events.
        id: TurnConnectionId,
        /// The base of the UDP host candidate the relayed candidate is gathered from: connect
        /// from an ephemeral port of this IP address (its port belongs to the UDP socket).
        local: SocketAddr,
        /// The TURN server.
        server: SocketAddr,
        /// [`TransportProtocol::Tcp`] or [`TransportProtocol::Tls`]. With TLS the driver
        /// makes the handshake (and verifies the server's certificate) before reporting the
        /// connection; the agent only ever sees the plaintext.
        transport: TransportProtocol,
        /// For TLS: the name to send in SNI and to verify the certificate against, from
        /// [`AgentConfig::turn_server_names`](crate::AgentConfig::turn_server_names).
        server_name: Option<String>,
    },
    /// Close a TURN connection (or abandon the attempt to open it): the agent no longer
    /// needs it (its allocation failed or ended, the connection attempt took longer than
    /// [`AgentConfig::tcp_connect_timeout`](crate::AgentConfig::tcp_connect_timeout), or the
    /// agent closed). Do not report [`Agent::turn_closed`](crate::Agent::turn_closed) for it.
    TurnClose {
        /// The connection.
        id: TurnConnectionId,
    },
}

/// What became of a datagram given to [`Agent::handle_input`](crate::Agent::handle_input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received<'a> {
    /// ICE, STUN or TURN traffic the agent handled (or dropped and counted).
    Consumed,
    /// Application data from the peer on a pair the agent vouches for: a sub-slice of the
    /// input, also when it arrived wrapped in TURN ChannelData or a Data indication.
    Data {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
        /// The peer's transport address (for relayed paths, as the TURN server sees it).
        from: SocketAddr,
        /// The bytes.
        data: &'a [u8],
    },
    /// Not for this agent: an unknown local address, or data from an address no check has
    /// vouched for (counted in [`Stats::data_dropped`](crate::Stats::data_dropped) when the
    /// local address is ours).
    NotMine,
}
