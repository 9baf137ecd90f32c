//! Candidates (RFC 8445 §4, §5.1.1): a transport address with a type, a base, a priority and
//! a foundation.

use core::fmt;
use std::net::SocketAddr;
use stun_proto::TransportProtocol;

/// The type of a candidate (RFC 8445 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CandidateType {
    /// An address on a local interface.
    Host,
    /// The address a NAT mapped a host candidate to, learnt from a STUN server.
    ServerReflexive,
    /// The address a NAT mapped a host candidate to, learnt from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server that relays for us.
    Relayed,
}

impl CandidateType {
    /// The SDP token (RFC 8839 §5.1): `host`, `srflx`, `prflx`, `relay`.
    pub const fn as_sdp(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relayed => "relay",
        }
    }

    /// The type for an SDP token, case-insensitively.
    pub fn from_sdp(token: &str) -> Option<CandidateType> {
        [
            CandidateType::Host,
            CandidateType::ServerReflexive,
            CandidateType::PeerReflexive,
            CandidateType::Relayed,
        ]
        .into_iter()
        .find(|t| t.as_sdp().eq_ignore_ascii_case(token))
    }

    /// True for server- and peer-reflexive candidates, which cannot send on their own: checks
    /// leave from their base (RFC 8445 §6.1.2.4).
    pub const fn is_reflexive(self) -> bool {
        matches!(
            self,
            CandidateType::ServerReflexive | CandidateType::PeerReflexive
        )
    }
}

impl fmt::Display for CandidateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sdp())
    }
}

/// The TCP candidate type of RFC 6544 §4.5 (`tcptype`): which side opens the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpType {
    /// Opens connections and accepts none; signalled with port 9 (RFC 6544 §4.5).
    Active,
    /// Accepts connections on a listening socket and opens none.
    Passive,
    /// Simultaneous open: connects from a bound port to a peer doing the same (RFC 6544
    /// §7.1).
    SimultaneousOpen,
}

impl TcpType {
    /// The SDP token: `active`, `passive`, `so`.
    pub const fn as_sdp(self) -> &'static str {
        match self {
            TcpType::Active => "active",
            TcpType::Passive => "passive",
            TcpType::SimultaneousOpen => "so",
        }
    }

    /// The TCP type for an SDP token, case-insensitively.
    pub fn from_sdp(token: &str) -> Option<TcpType> {
        [TcpType::Active, TcpType::Passive, TcpType::SimultaneousOpen]
            .into_iter()
            .find(|t| t.as_sdp().eq_ignore_ascii_case(token))
    }

    /// RFC 6544 §6.2: a local candidate of this type pairs with a remote candidate of type
    /// `remote`: active with passive, passive with active, simultaneous-open with
    /// simultaneous-open.
    pub const fn pairs_with(self, remote: TcpType) -> bool {
        matches!(
            (self, remote),
            (TcpType::Active, TcpType::Passive)
                | (TcpType::Passive, TcpType::Active)
                | (TcpType::SimultaneousOpen, TcpType::SimultaneousOpen)
        )
    }

    /// RFC 6544 §7.2: the type of the peer-reflexive remote candidate learnt from a check
    /// that arrived on a connection of a local candidate of this type.
    pub(crate) const fn peer_of(self) -> TcpType {
        match self {
            TcpType::Active => TcpType::Passive,
            TcpType::Passive => TcpType::Active,
            TcpType::SimultaneousOpen => TcpType::SimultaneousOpen,
        }
    }
}

/// RFC 6544 §4.5: active TCP candidates are signalled with the discard port, 9: they have no
/// listening socket.
pub const ACTIVE_TCP_PORT: u16 = 9;

/// Most characters a foundation may have (RFC 8839 §5.1: `1*32ice-char`).
pub const MAX_FOUNDATION_LEN: usize = 32;

/// A candidate foundation: 1 to 32 `ice-char`s (ALPHA / DIGIT / "+" / "/"), stored inline so
/// that candidates stay `Copy` and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Foundation {
    len: u8,
    bytes: [u8; MAX_FOUNDATION_LEN],
}

/// True for the characters of RFC 8839's `ice-char`.
pub(crate) fn is_ice_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

impl Foundation {
    /// A foundation from text; `None` unless it is 1 to 32 `ice-char`s.
    pub fn new(s: &str) -> Option<Foundation> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_FOUNDATION_LEN || !b.iter().all(|&c| is_ice_char(c)) {
            return None;
        }
        let mut bytes = [0u8; MAX_FOUNDATION_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Some(Foundation {
            len: b.len() as u8,
            bytes,
        })
    }

    /// A numeric foundation, as this agent assigns them.
    pub(crate) fn from_number(n: u32) -> Foundation {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut v = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let text = &digits[at..];
        let mut bytes = [0u8; MAX_FOUNDATION_LEN];
        bytes[..text.len()].copy_from_slice(text);
        Foundation {
            len: text.len() as u8,
            bytes,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII ice-chars are ever stored.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Foundation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Foundation({})", self.as_str())
    }
}

impl fmt::Display for Foundation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A candidate, local or remote (RFC 8445 §4, §5.3).
///
/// For remote candidates `base` equals `address`: the base of a peer's candidate is not
/// signalled and not needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Host, server-reflexive, peer-reflexive or relayed.
    pub kind: CandidateType,
    /// UDP, or TCP with a [`TcpType`] (RFC 6544).
    pub transport: TransportProtocol,
    /// The TCP candidate type, for TCP candidates.
    pub tcp_type: Option<TcpType>,
    /// The component ID, 1 to 256 (RFC 8445 §5.1.1.1).
    pub component: u16,
    /// The transport address.
    pub address: SocketAddr,
    /// The base (RFC 8445 §4): the address checks and data leave from. A host or relayed
    /// candidate is its own base; a reflexive one has its host candidate as base. An active
    /// TCP host candidate has port 9 in `address` (RFC 6544 §4.5) and the local address the
    /// agent names its outgoing connections by in `base`.
    pub base: SocketAddr,
    /// The related address (`raddr`/`rport`, RFC 8839 §5.1): the base of a server-reflexive
    /// candidate, the mapped address of a relayed one.
    pub related: Option<SocketAddr>,
    /// The priority (RFC 8445 §5.1.2).
    pub priority: u32,
    /// The foundation (RFC 8445 §5.1.1.3).
    pub foundation: Foundation,
}

impl Candidate {
    /// Formats the candidate as an RFC 8839 `candidate-attribute` value, without the `a=`
    /// prefix: `candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host`. Use
    /// [`CandidateLine`](crate::sdp::CandidateLine) for extension attributes such as `ufrag`.
    pub fn to_sdp(&self) -> String {
        crate::sdp::CandidateLine::from_candidate(self).to_string()
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::sdp::CandidateLine::from_candidate(self), f)
    }
}

/// RFC 8445 §5.1.3: a candidate is redundant if its transport address and base equal those
/// of another candidate (of the same transport and, RFC 6544, the same TCP type).
pub(crate) fn is_redundant(a: &Candidate, b: &Candidate) -> bool {
    a.address == b.address
        && a.base == b.base
        && a.transport == b.transport
        && a.tcp_type == b.tcp_type
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foundation_rules() {
        assert_eq!(Foundation::new("842163049").unwrap().as_str(), "842163049");
        assert!(Foundation::new("a+/Z").is_some());
        assert!(Foundation::new("").is_none());
        assert!(Foundation::new("with space").is_none());
        assert!(Foundation::new(&"x".repeat(33)).is_none());
        assert!(Foundation::new(&"x".repeat(32)).is_some());
        assert_eq!(Foundation::from_number(0).as_str(), "0");
        assert_eq!(
            Foundation::from_number(4_294_967_295).as_str(),
            "4294967295"
        );
    }

    #[test]
    fn type_tokens() {
        for t in [
            CandidateType::Host,
            CandidateType::ServerReflexive,
            CandidateType::PeerReflexive,
            CandidateType::Relayed,
        ] {
            assert_eq!(CandidateType::from_sdp(t.as_sdp()), Some(t));
        }
        assert_eq!(
            CandidateType::from_sdp("SRFLX"),
            Some(CandidateType::ServerReflexive)
        );
        assert_eq!(CandidateType::from_sdp("nat"), None);
        assert_eq!(TcpType::from_sdp("so"), Some(TcpType::SimultaneousOpen));
    }

    #[test]
    fn rfc6544_pairing_table() {
        use TcpType::*;
        let all = [Active, Passive, SimultaneousOpen];
        let pairs: Vec<_> = all
            .iter()
            .flat_map(|&l| all.iter().map(move |&r| (l, r)))
            .filter(|&(l, r)| l.pairs_with(r))
            .collect();
        assert_eq!(
            pairs,
            [
                (Active, Passive),
                (Passive, Active),
                (SimultaneousOpen, SimultaneousOpen)
            ]
        );
        for t in all {
            assert!(t.pairs_with(t.peer_of()), "{t:?}");
        }
    }
}
