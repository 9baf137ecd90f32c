//! A data stream (RFC 8445 §3): its components, local and remote candidates, checklist, and
//! the paths its components send on.

use crate::candidate::{Candidate, CandidateType, TcpType};
use crate::checklist::CheckList;
use crate::consent::Consent;
use crate::pair::PairId;
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use stun_proto::TransportProtocol;

/// How traffic of a local candidate travels: datagrams on its own UDP socket, RFC 4571
/// frames on TCP connections named by its base (RFC 6544), or through one of the agent's
/// TURN clients (its relayed address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Via {
    Udp,
    Tcp,
    Relay(u8),
}

impl Via {
    /// The TURN client, for relayed traffic.
    pub(crate) fn relay(self) -> Option<u8> {
        match self {
            Via::Relay(r) => Some(r),
            _ => None,
        }
    }
}

/// A local candidate and how to send from it.
#[derive(Clone, Debug)]
pub(crate) struct LocalCandidate {
    pub(crate) cand: Candidate,
    /// The TURN client of a relayed candidate.
    pub(crate) relay: Option<u8>,
    /// The RFC 8421 interleaved rank of the host address it derives from.
    pub(crate) rank: u8,
    /// A relayed candidate whose allocation ended: it is kept (others refer to candidates
    /// by index) but never paired, announced or used again.
    pub(crate) retired: bool,
}

impl LocalCandidate {
    /// How the candidate's traffic travels.
    pub(crate) fn via(&self) -> Via {
        match (self.relay, self.cand.transport) {
            (Some(r), _) => Via::Relay(r),
            (None, TransportProtocol::Tcp) => Via::Tcp,
            (None, _) => Via::Udp,
        }
    }
}

/// A remote candidate: signalled, or peer-reflexive learnt from a check.
#[derive(Clone, Debug)]
pub(crate) struct RemoteCandidate {
    pub(crate) cand: Candidate,
    /// Learnt from a check (RFC 8445 §7.3.1.3) and not (yet) signalled.
    pub(crate) learnt: bool,
}

/// Where a component's data goes: a local socket (or relay) and a remote address, with the
/// consent state of RFC 7675.
#[derive(Clone, Debug)]
pub(crate) struct Path {
    pub(crate) local: Candidate,
    pub(crate) remote: Candidate,
    pub(crate) via: Via,
    /// The pair in the current generation; `None` for a path kept from before a restart.
    pub(crate) pair: Option<PairId>,
    pub(crate) consent: Consent,
}

impl Path {
    /// The local socket data leaves from: the base of the local candidate (for a relayed
    /// candidate, the relayed address, which the TURN client wraps).
    pub(crate) fn socket(&self) -> SocketAddr {
        self.local.base
    }
}

/// Per-component state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Component {
    /// The selected pair's path (RFC 8445 §8.1.1).
    pub(crate) selected: Option<Box<Path>>,
    /// The selected path of the generation before an ICE restart: it carries data until the
    /// new generation selects a pair (RFC 8445 §12.1).
    pub(crate) previous: Option<Box<Path>>,
    /// Controlling agent: the valid pair being nominated.
    pub(crate) nominating: Option<PairId>,
    /// When the first valid pair of the component appeared.
    pub(crate) first_valid: Option<Instant>,
}

/// One data stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) components: SmallVec<[Component; 2]>,
    pub(crate) local: Vec<LocalCandidate>,
    pub(crate) remote: Vec<RemoteCandidate>,
    pub(crate) checklist: CheckList,
    /// The peer sent end-of-candidates for this generation (RFC 8838 §14).
    pub(crate) remote_eoc: bool,
    /// We signalled end-of-candidates for this generation (RFC 8838 §13).
    pub(crate) local_eoc: bool,
    /// Peer-reflexive remote candidates learnt so far (capped).
    pub(crate) prflx_learnt: usize,
    /// The highest component ID the peer signalled (RFC 8445 §6.1.2.2).
    pub(crate) max_remote_component: u16,
    /// The checklist would have failed, but a passive TCP candidate may still be connected
    /// to by the peer's active candidates (RFC 6544 §6.2 prunes our pairs of passive
    /// candidates, so only the peer can check them): it fails at this time instead.
    pub(crate) accept_deadline: Option<Instant>,
}

impl Stream {
    pub(crate) fn new(components: u16) -> Self {
        Stream {
            components: (0..components).map(|_| Component::default()).collect(),
            local: Vec::new(),
            remote: Vec::new(),
            checklist: CheckList::new(),
            remote_eoc: false,
            local_eoc: false,
            prflx_learnt: 0,
            max_remote_component: 0,
            accept_deadline: None,
        }
    }

    pub(crate) fn component(&self, id: u16) -> Option<&Component> {
        self.components.get(usize::from(id).checked_sub(1)?)
    }

    pub(crate) fn component_mut(&mut self, id: u16) -> Option<&mut Component> {
        self.components.get_mut(usize::from(id).checked_sub(1)?)
    }

    /// RFC 8445 §6.1.2.2: when the peer signals fewer components, the stream effectively has
    /// the smaller number.
    pub(crate) fn effective_components(&self) -> u16 {
        let local = self.components.len() as u16;
        match self.max_remote_component {
            0 => local,
            remote => local.min(remote),
        }
    }

    /// The local candidate that owns a socket: a host candidate of that transport whose base
    /// it is, or the live relayed candidate of a TURN client (a client that re-allocated also
    /// has retired candidates from its earlier allocations).
    pub(crate) fn local_for_socket(&self, socket: SocketAddr, via: Via) -> Option<u16> {
        self.local
            .iter()
            .position(|l| match via {
                Via::Relay(_) => {
                    l.via() == via && l.cand.kind == CandidateType::Relayed && !l.retired
                }
                Via::Udp | Via::Tcp => {
                    l.via() == via && l.cand.kind == CandidateType::Host && l.cand.base == socket
                }
            })
            .map(|i| i as u16)
    }

    pub(crate) fn remote_index(
        &self,
        component: u16,
        transport: TransportProtocol,
        address: SocketAddr,
    ) -> Option<u16> {
        self.remote
            .iter()
            .position(|r| {
                r.cand.component == component
                    && r.cand.transport == transport
                    && r.cand.address == address
            })
            .map(|i| i as u16)
    }

    /// The local candidate that stands for a local candidate in the checklist: reflexive
    /// candidates are replaced by their base (RFC 8445 §6.1.2.4).
    pub(crate) fn base_of(&self, local: u16) -> Option<u16> {
        let l = self.local.get(usize::from(local))?;
        if !l.cand.kind.is_reflexive() {
            return Some(local);
        }
        // A host candidate is its own base (an active TCP one too, whose address has port 9).
        self.local
            .iter()
            .position(|b| {
                b.cand.kind == CandidateType::Host
                    && b.relay.is_none()
                    && b.cand.base == l.cand.base
                    && b.cand.transport == l.cand.transport
                    && b.cand.component == l.cand.component
            })
            .map(|i| i as u16)
    }

    /// RFC 8445 §6.1.2.2: pair candidates of the same component, transport and address
    /// family; IPv6 link-local addresses only with link-local addresses. RFC 6544 §6.2: TCP
    /// candidates pair by TCP type (active with passive, passive with active, simultaneous
    /// open with simultaneous open).
    pub(crate) fn can_pair(local: &Candidate, remote: &Candidate) -> bool {
        local.component == remote.component
            && local.transport == remote.transport
            && local.address.is_ipv4() == remote.address.is_ipv4()
            && is_link_local(local.address.ip()) == is_link_local(remote.address.ip())
            && match (local.transport, local.tcp_type, remote.tcp_type) {
                (TransportProtocol::Udp, _, _) => true,
                (TransportProtocol::Tcp, Some(l), Some(r)) => l.pairs_with(r),
                _ => false,
            }
    }

    /// RFC 6544 §6.2: pairs whose local candidate is passive are pruned from the checklist:
    /// we cannot open their connection, the peer checks them. (Triggered checks over a
    /// connection the peer opened are another matter.)
    pub(crate) fn checkable(local: &Candidate) -> bool {
        local.tcp_type != Some(TcpType::Passive)
    }

    /// True if the peer may still connect to one of our passive candidates: a remote
    /// candidate pairs with it (RFC 6544 §6.2).
    pub(crate) fn awaits_inbound(&self) -> bool {
        self.local
            .iter()
            .filter(|l| {
                l.cand.tcp_type == Some(TcpType::Passive) && l.cand.kind == CandidateType::Host
            })
            .any(|l| {
                self.remote
                    .iter()
                    .any(|r| Stream::can_pair(&l.cand, &r.cand))
            })
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(_) => false,
    }
}
