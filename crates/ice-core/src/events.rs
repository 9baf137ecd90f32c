//! What the agent reports: events, input outcomes and states.

use crate::candidate::{Candidate, TcpType};
use crate::config::Role;
use core::fmt;
use std::net::SocketAddr;

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
