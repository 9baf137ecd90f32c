//! NAT behaviour as RFC 4787 classifies it, and the usual presets.

use std::time::Duration;

use smallvec::SmallVec;

use crate::datagram::Transport;

/// How a NAT reuses an external mapping for one internal endpoint (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingBehavior {
    /// The same mapping for every destination (RFC 4787 §4.1, REQ-1 asks for this).
    EndpointIndependent,
    /// The same mapping while the destination IP address is the same.
    AddressDependent,
    /// The same mapping only for the same destination IP address and port ("symmetric").
    AddressAndPortDependent,
}

/// Which external endpoints may send in through an existing mapping (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilteringBehavior {
    /// Anyone may send in once the mapping exists (RFC 4787 §5, REQ-8 recommends this
    /// for transparency).
    EndpointIndependent,
    /// Only IP addresses the internal endpoint has sent to.
    AddressDependent,
    /// Only IP address and port pairs the internal endpoint has sent to.
    AddressAndPortDependent,
}

/// How a NAT picks the external port of a new mapping (RFC 4787 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortAssignment {
    /// Keep the internal port when it is free (RFC 4787 §4.2.1 "port preservation");
    /// otherwise fall back to the next free port after it.
    Preserving,
    /// The next free port after the one assigned last, wrapping within the range.
    Sequential,
    /// A uniformly random free port of the range (drawn from the NAT's seeded generator).
    Random,
}

/// Which transports a NAT lets through, in either direction.
///
/// A set of blocked transports: [`Firewall::block_udp`] is the network where only TCP works
/// (the case TURN over TCP and ICE-TCP exist for), `Firewall::open().block(Transport::Tcp)`
/// the reverse. Blocked packets vanish ([`DropReason::Firewall`](crate::DropReason::Firewall)):
/// a TCP connect through a TCP-blocking firewall times out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Firewall {
    blocked: SmallVec<[Transport; 2]>,
}

impl Firewall {
    /// A firewall that lets everything through.
    #[must_use]
    pub fn open() -> Self {
        Firewall::default()
    }

    /// A firewall that blocks all UDP and lets TCP through, as some corporate and public
    /// networks do.
    #[must_use]
    pub fn block_udp() -> Self {
        Firewall::open().block(Transport::Udp)
    }

    /// This firewall, also blocking `transport`.
    #[must_use]
    pub fn block(mut self, transport: Transport) -> Self {
        if !self.blocked.contains(&transport) {
            self.blocked.push(transport);
        }
        self
    }

    /// Whether `transport` passes.
    #[must_use]
    pub fn allows(&self, transport: Transport) -> bool {
        !self.blocked.contains(&transport)
    }
}

/// The behaviour of a NAT, for UDP (RFC 4787) and TCP (RFC 5382).
///
/// Mapping, filtering, port assignment and hairpinning apply to both transports, each with
/// its own mappings. For TCP, filtering decides which inbound SYNs may open a connection
/// through an existing mapping (RFC 5382 §4.3); segments of a connection the NAT tracks
/// pass, and a connection's state lives for
/// [`tcp_established_timeout`](Self::tcp_established_timeout) or
/// [`tcp_transitory_timeout`](Self::tcp_transitory_timeout) without traffic. A TCP mapping
/// lives while one of its connections does, or for `mapping_lifetime` after its last
/// outbound segment.
///
/// Start from a preset ([`full_cone`](Self::full_cone), [`restricted_cone`](Self::restricted_cone),
/// [`port_restricted_cone`](Self::port_restricted_cone), [`symmetric`](Self::symmetric)) and
/// adjust fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatConfig {
    /// Mapping behaviour (RFC 4787 §4.1).
    pub mapping: MappingBehavior,
    /// Filtering behaviour (RFC 4787 §5).
    pub filtering: FilteringBehavior,
    /// External port choice (RFC 4787 §4.2.1).
    pub port_assignment: PortAssignment,
    /// External ports the NAT assigns (inclusive). Port preservation may use a port outside it.
    pub port_range: (u16, u16),
    /// A mapping (and each filtering permission) expires after this much time without
    /// outbound traffic. RFC 4787 §4.3 REQ-5: at least 2 minutes, 5 recommended.
    pub mapping_lifetime: Duration,
    /// A TCP connection that saw SYNs both ways (and no FIN or RST) is forgotten after this
    /// long without a segment either way. RFC 5382 REQ-5: at least 2 hours 4 minutes (the
    /// presets' value): a keepalive every 2 hours then keeps it.
    pub tcp_established_timeout: Duration,
    /// A TCP connection being opened or closed is forgotten after this long without a
    /// segment. RFC 5382 REQ-5: at least 4 minutes (the presets' value).
    pub tcp_transitory_timeout: Duration,
    /// Whether inbound traffic also refreshes a mapping. RFC 4787 §4.3 REQ-6 requires outbound
    /// refresh and leaves inbound refresh to the NAT ("MAY").
    pub inbound_refresh: bool,
    /// Whether packets from inside to the NAT's own external addresses are looped back in
    /// (RFC 4787 §6 REQ-9; RFC 5382 REQ-8 for TCP).
    pub hairpinning: bool,
    /// Which transports the NAT lets through at all.
    pub firewall: Firewall,
}

impl Default for NatConfig {
    /// A port-restricted cone NAT, the most common home NAT.
    fn default() -> Self {
        NatConfig::port_restricted_cone()
    }
}

impl NatConfig {
    fn cone(filtering: FilteringBehavior) -> Self {
        NatConfig {
            mapping: MappingBehavior::EndpointIndependent,
            filtering,
            port_assignment: PortAssignment::Preserving,
            port_range: (1024, 65535),
            mapping_lifetime: Duration::from_secs(120),
            tcp_established_timeout: Duration::from_secs(2 * 3600 + 4 * 60),
            tcp_transitory_timeout: Duration::from_secs(4 * 60),
            inbound_refresh: false,
            hairpinning: true,
            firewall: Firewall::open(),
        }
    }

    /// Full cone: endpoint-independent mapping and filtering.
    #[must_use]
    pub fn full_cone() -> Self {
        NatConfig::cone(FilteringBehavior::EndpointIndependent)
    }

    /// Restricted cone: endpoint-independent mapping, address-dependent filtering.
    #[must_use]
    pub fn restricted_cone() -> Self {
        NatConfig::cone(FilteringBehavior::AddressDependent)
    }

    /// Port-restricted cone: endpoint-independent mapping, address-and-port-dependent
    /// filtering.
    #[must_use]
    pub fn port_restricted_cone() -> Self {
        NatConfig::cone(FilteringBehavior::AddressAndPortDependent)
    }

    /// Symmetric: address-and-port-dependent mapping and filtering, random ports, no
    /// hairpinning.
    #[must_use]
    pub fn symmetric() -> Self {
        NatConfig {
            mapping: MappingBehavior::AddressAndPortDependent,
            port_assignment: PortAssignment::Random,
            hairpinning: false,
            ..NatConfig::cone(FilteringBehavior::AddressAndPortDependent)
        }
    }

    /// A port-restricted cone NAT whose firewall blocks all UDP (TCP passes).
    #[must_use]
    pub fn udp_blocked() -> Self {
        NatConfig {
            firewall: Firewall::block_udp(),
            ..NatConfig::port_restricted_cone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_their_names() {
        let f = NatConfig::full_cone();
        assert_eq!(f.mapping, MappingBehavior::EndpointIndependent);
        assert_eq!(f.filtering, FilteringBehavior::EndpointIndependent);
        assert_eq!(
            NatConfig::restricted_cone().filtering,
            FilteringBehavior::AddressDependent
        );
        assert_eq!(
            NatConfig::port_restricted_cone().filtering,
            FilteringBehavior::AddressAndPortDependent
        );
        let s = NatConfig::symmetric();
        assert_eq!(s.mapping, MappingBehavior::AddressAndPortDependent);
        assert_eq!(s.filtering, FilteringBehavior::AddressAndPortDependent);
        assert_eq!(s.port_assignment, PortAssignment::Random);
    }

    #[test]
    fn firewall_blocks_what_it_lists() {
        assert!(Firewall::open().allows(Transport::Udp));
        assert!(Firewall::open().allows(Transport::Tcp));
        assert!(!Firewall::block_udp().allows(Transport::Udp));
        assert!(Firewall::block_udp().allows(Transport::Tcp));
        let tcp_only_blocked = Firewall::open().block(Transport::Tcp);
        assert!(tcp_only_blocked.allows(Transport::Udp));
        assert!(!tcp_only_blocked.allows(Transport::Tcp));
        assert!(!NatConfig::udp_blocked().firewall.allows(Transport::Udp));
        assert!(NatConfig::udp_blocked().firewall.allows(Transport::Tcp));
    }
}
