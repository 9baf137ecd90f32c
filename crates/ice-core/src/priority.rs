//! Priority arithmetic: candidate priorities (RFC 8445 §5.1.2), local preferences for
//! multihomed and dual-stack hosts (RFC 8421), TCP candidates (RFC 6544 §4.2), and pair
//! priorities (RFC 8445 §6.1.2.3).

use crate::candidate::{Candidate, CandidateType, TcpType};
use std::net::IpAddr;
use stun_proto::TransportProtocol;

/// RFC 8445 §5.1.2.2: the recommended type preferences.
pub const fn type_preference(kind: CandidateType) -> u32 {
    match kind {
        CandidateType::Host => 126,
        CandidateType::PeerReflexive => 110,
        CandidateType::ServerReflexive => 100,
        CandidateType::Relayed => 0,
    }
}

/// RFC 8445 §5.1.2.1: `priority = 2^24 * type preference + 2^8 * local preference +
/// (256 - component ID)`.
pub const fn candidate_priority(kind: CandidateType, local_preference: u16, component: u16) -> u32 {
    let component = if component == 0 || component > 256 {
        256
    } else {
        component as u32
    };
    (type_preference(kind) << 24) + ((local_preference as u32) << 8) + (256 - component)
}

/// The PRIORITY a check carries (RFC 8445 §7.1.1): the local candidate's priority formula,
/// but with the type preference of a peer-reflexive candidate.
pub const fn prflx_priority(local_preference: u16, component: u16) -> u32 {
    candidate_priority(CandidateType::PeerReflexive, local_preference, component)
}

/// Type preferences of TCP candidates (RFC 6544 §4.2).
///
/// RFC 6544 §4.2 keeps the RFC 8445 formula and lets an agent lower the type preferences of
/// the transport it prefers less; for RTP-like media it recommends preferring UDP. We make
/// the transport count more than the candidate type (any direct UDP candidate is preferred
/// over any TCP candidate), keep relayed candidates lowest, and use the values browsers use
/// (Chrome: TCP host 90, TCP peer-reflexive 80).
pub const fn tcp_type_preference(kind: CandidateType) -> u32 {
    match kind {
        CandidateType::Host => 90,
        CandidateType::PeerReflexive => 80,
        CandidateType::ServerReflexive => 70,
        CandidateType::Relayed => 0,
    }
}

/// RFC 6544 §4.2: the direction preference (0 to 7) of a TCP candidate. Host and relayed
/// candidates: active 6, passive 4, simultaneous-open 2; server- and peer-reflexive (and
/// NAT-assisted) ones: simultaneous-open 6, active 4, passive 2.
pub const fn direction_preference(kind: CandidateType, tcp_type: TcpType) -> u16 {
    match (kind.is_reflexive(), tcp_type) {
        (false, TcpType::Active) | (true, TcpType::SimultaneousOpen) => 6,
        (false, TcpType::Passive) | (true, TcpType::Active) => 4,
        (false, TcpType::SimultaneousOpen) | (true, TcpType::Passive) => 2,
    }
}

/// RFC 6544 §4.2: `local preference = 2^13 * direction-pref + other-pref`. The other-pref
/// (13 bits, unique among candidates of the same type and direction) carries the RFC 8421
/// interleaved rank of the address in its high 8 bits and `index` (a server, or a second
/// candidate of the same kind on the same address) in its low 5 bits.
pub const fn tcp_local_preference(
    kind: CandidateType,
    tcp_type: TcpType,
    rank: u8,
    index: u8,
) -> u16 {
    let index = if index > 31 { 31 } else { index };
    let other = (((255 - rank) as u16) << 5) | (31 - index) as u16;
    (direction_preference(kind, tcp_type) << 13) | other
}

/// RFC 8445 §5.1.2.1 with the TCP type preferences of RFC 6544 §4.2.
pub const fn tcp_candidate_priority(
    kind: CandidateType,
    local_preference: u16,
    component: u16,
) -> u32 {
    let component = if component == 0 || component > 256 {
        256
    } else {
        component as u32
    };
    (tcp_type_preference(kind) << 24) + ((local_preference as u32) << 8) + (256 - component)
}

/// The PRIORITY a check from `local` carries (RFC 8445 §7.1.1): the priority `local` would
/// have as a peer-reflexive candidate. For TCP (RFC 6544 §4.2, §7.1) the peer-reflexive
/// type and direction preferences apply, and the other-pref is kept.
pub const fn check_priority(local: &Candidate) -> u32 {
    let lp = local_preference_of(local.priority);
    match (local.transport, local.tcp_type) {
        (TransportProtocol::Tcp, Some(t)) => {
            let lp = (direction_preference(CandidateType::PeerReflexive, t) << 13) | (lp & 0x1FFF);
            tcp_candidate_priority(CandidateType::PeerReflexive, lp, local.component)
        }
        _ => prflx_priority(lp, local.component),
    }
}

/// The local preference packed into a priority (its middle 16 bits).
pub const fn local_preference_of(priority: u32) -> u16 {
    (priority >> 8) as u16
}

/// RFC 8445 §6.1.2.3: `2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0)`, where G is the
/// controlling agent's candidate priority and D the controlled agent's.
pub const fn pair_priority(controlling: u32, controlled: u32) -> u64 {
    let (g, d) = (controlling as u64, controlled as u64);
    let (min, max) = if g < d { (g, d) } else { (d, g) };
    (min << 32) + 2 * max + if g > d { 1 } else { 0 }
}

/// Assigns local preferences to the addresses of a multihomed, possibly dual-stack host.
///
/// RFC 8445 §5.1.2.1 requires the local preference to be unique among candidates of one type
/// for a component, and RFC 8421 §4 asks that IPv6 and IPv4 be interleaved rather than all
/// of one family first, with IPv6 ahead, so that a broken family costs one check slot rather
/// than a whole round. Addresses are ranked in the order they are added within their family
/// (the caller adds its preferred interface first); ranks interleave the families
/// (v6#0, v4#0, v6#1, v4#1, ...). The high byte of the local preference carries the
/// interleaved rank; the low byte distinguishes STUN/TURN servers (RFC 8445 §5.1.2.2: the
/// preference among TURN servers must be unique as well).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalPreferences {
    v4: u8,
    v6: u8,
}

impl LocalPreferences {
    /// The interleaved rank for the next address of `ip`'s family, counting it.
    pub fn next_rank(&mut self, ip: IpAddr, prefer_ipv6: bool) -> u8 {
        let (own, first) = match ip {
            IpAddr::V6(_) => (&mut self.v6, prefer_ipv6),
            IpAddr::V4(_) => (&mut self.v4, !prefer_ipv6),
        };
        let index = *own;
        *own = own.saturating_add(1);
        // RFC 8421 §4: interleave the families, the preferred family first.
        let rank = u16::from(index) * 2 + u16::from(!first);
        rank.min(255) as u8
    }
}

/// The local preference for an address of interleaved `rank`, obtained through server
/// `server_index` (0 for host candidates).
pub const fn local_preference(rank: u8, server_index: u8) -> u16 {
    (((255 - rank) as u16) << 8) | (255 - server_index) as u16
}

/// How far the high byte of a relayed candidate's local preference drops per step down the
/// transport-to-server ranking (UDP, TCP, TLS).
const RELAY_TRANSPORT_STEP: u8 = 64;

/// The local preference of a relayed candidate for an address of interleaved `rank`,
/// obtained from TURN server `server_index` over `transport`.
///
/// RFC 8445 §5.1.2.2 uses the local preference to rank TURN servers. The transport to the
/// server ranks first, as in browsers (Chrome: TURN/UDP, then TURN/TCP, then TURN/TLS): a
/// relay reached over TCP or TLS works where UDP is blocked, but adds head-of-line blocking
/// (and TLS overhead) to every packet, so it is used only when UDP relaying does not work.
/// Over UDP this is [`local_preference`]; over TCP the high byte is 64 lower, over TLS 128,
/// so the transport outranks the address as long as the host has fewer than 64 ranks (32
/// addresses of each family).
pub const fn relay_local_preference(
    rank: u8,
    server_index: u8,
    transport: TransportProtocol,
) -> u16 {
    let steps = match transport {
        TransportProtocol::Udp => 0,
        TransportProtocol::Tcp => 1,
        _ => 2,
    };
    let high = (255 - rank).saturating_sub(steps * RELAY_TRANSPORT_STEP);
    ((high as u16) << 8) | (255 - server_index) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8445_formula() {
        // RFC 8445 §5.1.2.1 with host type preference 126, local preference 65535,
        // component 1: the value browsers send for their first host candidate.
        assert_eq!(
            candidate_priority(CandidateType::Host, 65535, 1),
            2_130_706_431
        );
        assert_eq!(
            candidate_priority(CandidateType::ServerReflexive, 65535, 1),
            1_694_498_815
        );
        assert_eq!(
            candidate_priority(CandidateType::Relayed, 65535, 2),
            16_777_214
        );
        assert_eq!(prflx_priority(65535, 1), (110 << 24) + (65535 << 8) + 255);
        assert_eq!(local_preference_of(2_130_706_431), 65535);
    }

    #[test]
    fn pair_priority_is_symmetric_between_roles() {
        // Both agents compute the same value: each puts the controlling agent's
        // candidate priority in G.
        let (a, b) = (2_130_706_431u32, 1_694_498_815u32);
        assert_eq!(
            pair_priority(a, b),
            (u64::from(b) << 32) + 2 * u64::from(a) + 1
        );
        assert_eq!(pair_priority(b, a), (u64::from(b) << 32) + 2 * u64::from(a));
        assert!(pair_priority(a, a) < pair_priority(a, a + 1));
    }

    #[test]
    fn rfc6544_tcp_preferences() {
        use CandidateType::*;
        use TcpType::*;
        // §4.2: host active 6, passive 4, so 2; reflexive so 6, active 4, passive 2.
        assert_eq!(direction_preference(Host, Active), 6);
        assert_eq!(direction_preference(Host, Passive), 4);
        assert_eq!(direction_preference(Host, SimultaneousOpen), 2);
        assert_eq!(direction_preference(PeerReflexive, SimultaneousOpen), 6);
        assert_eq!(direction_preference(ServerReflexive, Active), 4);
        assert_eq!(direction_preference(PeerReflexive, Passive), 2);
        // A single address: other-pref 8191, the maximum.
        assert_eq!(tcp_local_preference(Host, Active, 0, 0), 6 * 8192 + 8191);
        assert_eq!(tcp_local_preference(Host, Passive, 0, 0), 4 * 8192 + 8191);
        assert!(
            tcp_local_preference(Host, Passive, 1, 0) < tcp_local_preference(Host, Passive, 0, 31)
        );
        // UDP is preferred: the best TCP host candidate is below a UDP server-reflexive one.
        let tcp_host = tcp_candidate_priority(Host, 65535, 1);
        assert!(tcp_host < candidate_priority(ServerReflexive, 0, 1));
        assert!(
            tcp_candidate_priority(Relayed, 65535, 1)
                < tcp_candidate_priority(ServerReflexive, 0, 1)
        );
    }

    #[test]
    fn relays_over_udp_rank_before_tcp_before_tls() {
        use TransportProtocol::*;
        // UDP keeps the plain local preference.
        for (rank, server) in [(0, 0), (1, 3), (40, 255)] {
            assert_eq!(
                relay_local_preference(rank, server, Udp),
                local_preference(rank, server)
            );
        }
        // The transport outranks the address and the server index.
        let worst_udp = relay_local_preference(63, 255, Udp);
        let best_tcp = relay_local_preference(0, 0, Tcp);
        assert!(worst_udp > best_tcp);
        assert!(relay_local_preference(63, 255, Tcp) > relay_local_preference(0, 0, Tls));
        // Unique per server and transport for one address.
        let mut all: Vec<u16> = [Udp, Tcp, Tls]
            .iter()
            .flat_map(|&t| (0..4).map(move |s| relay_local_preference(0, s, t)))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12);
        // Many addresses: saturates rather than wrapping.
        assert_eq!(relay_local_preference(255, 255, Tls), 0);
        let p = |t| candidate_priority(CandidateType::Relayed, relay_local_preference(0, 0, t), 1);
        assert!(p(Udp) > p(Tcp) && p(Tcp) > p(Tls));
    }

    #[test]
    fn rfc8421_interleaves_families() {
        let mut prefs = LocalPreferences::default();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let order = [v4, v4, v6, v6].map(|ip| prefs.next_rank(ip, true));
        // IPv6 first, then alternating: v6#0=0, v4#0=1, v6#1=2, v4#1=3.
        assert_eq!(order, [1, 3, 0, 2]);
        let lp: Vec<u16> = order.iter().map(|&r| local_preference(r, 0)).collect();
        let mut sorted = lp.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "local preferences are unique");
        assert_eq!(local_preference(0, 0), 65535);
        assert!(local_preference(0, 1) < local_preference(0, 0));
        assert!(local_preference(1, 0) < local_preference(0, 255));
    }
}
