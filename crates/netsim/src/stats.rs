//! Counters kept by every host, link and NAT, and by the simulator as a whole.

use std::fmt;

/// Why the simulator dropped a datagram.
///
/// Every drop increments the counter of the element that dropped it (host, link or NAT), the
/// simulator-wide counters in [`Sim::stats`](crate::Sim::stats), and emits a
/// `tracing::debug!` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The link lost it (random loss, [`LinkConfig::loss`](crate::LinkConfig::loss)).
    Loss,
    /// The IP packet was larger than the link's MTU.
    Mtu,
    /// The link's rate-limit queue was full.
    QueueFull,
    /// The link was down ([`LinkConfig::down`](crate::LinkConfig::down)).
    LinkDown,
    /// A NAT's filtering behaviour refused an inbound datagram (RFC 4787 §5).
    Filtered,
    /// An inbound datagram reached a NAT's outside address for which no (live) mapping exists.
    NoMapping,
    /// A NAT ran out of external ports for a new mapping.
    PortsExhausted,
    /// A datagram from inside a NAT to one of the NAT's own external addresses, with
    /// hairpinning disabled (RFC 4787 §6).
    Hairpin,
    /// A NAT's firewall blocks this transport.
    Firewall,
    /// No host or NAT owns the destination address, or the datagram mixes address families.
    NoRoute,
    /// It reached the destination host, but no node is bound to the destination port.
    UnboundPort,
    /// A node sent from a socket it is not bound to (the address is not its host's).
    BadSource,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 12] = [
        DropReason::Loss,
        DropReason::Mtu,
        DropReason::QueueFull,
        DropReason::LinkDown,
        DropReason::Filtered,
        DropReason::NoMapping,
        DropReason::PortsExhausted,
        DropReason::Hairpin,
        DropReason::Firewall,
        DropReason::NoRoute,
        DropReason::UnboundPort,
        DropReason::BadSource,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DropReason::Loss => "loss",
            DropReason::Mtu => "mtu",
            DropReason::QueueFull => "queue full",
            DropReason::LinkDown => "link down",
            DropReason::Filtered => "filtered",
            DropReason::NoMapping => "no mapping",
            DropReason::PortsExhausted => "ports exhausted",
            DropReason::Hairpin => "hairpinning disabled",
            DropReason::Firewall => "firewall",
            DropReason::NoRoute => "no route",
            DropReason::UnboundPort => "unbound port",
            DropReason::BadSource => "bad source",
        };
        f.write_str(name)
    }
}

/// Counters of one element.
///
/// What `sent` and `delivered` count depends on the element:
///
/// | element | `sent` | `delivered` |
/// |---|---|---|
/// | host | datagrams its nodes sent (accepted) | datagrams handed to its nodes |
/// | link | datagrams offered (both directions) | copies that came out (duplicates too) |
/// | NAT | datagrams translated outbound (hairpinned included) | datagrams translated inbound |
/// | simulator | datagrams accepted from nodes | datagrams handed to nodes |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that entered the element (see the table).
    pub sent: u64,
    /// Datagrams that left the element towards their destination (see the table).
    pub delivered: u64,
    /// Extra copies made by link duplication.
    pub duplicated: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl Stats {
    /// Datagrams dropped for `reason`.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Datagrams dropped for any reason.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// The non-zero drop counters, in [`DropReason::ALL`] order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn counts_by_reason() {
        let mut s = Stats::default();
        s.count_drop(DropReason::Loss);
        s.count_drop(DropReason::Loss);
        s.count_drop(DropReason::Mtu);
        assert_eq!(s.dropped(DropReason::Loss), 2);
        assert_eq!(s.dropped(DropReason::Filtered), 0);
        assert_eq!(s.dropped_total(), 3);
        let drops: Vec<_> = s.drops().collect();
        assert_eq!(drops, [(DropReason::Loss, 2), (DropReason::Mtu, 1)]);
    }
}
