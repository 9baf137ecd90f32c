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
    /// A NAT's filtering behaviour refused an inbound datagram (RFC 4787 §5), or an
    /// unsolicited inbound TCP SYN (RFC 5382 §4.3).
    Filtered,
    /// An inbound datagram reached a NAT's outside address for which no (live) mapping exists;
    /// or a TCP segment other than a SYN belongs to no connection the NAT tracks (its session
    /// expired, RFC 5382 §5, or it never saw the SYN).
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
    /// It reached the destination host, but no node is bound to the destination port (for
    /// TCP: a segment that belongs to no connection and no listener; the host answers it
    /// with a RST).
    UnboundPort,
    /// A node sent from a socket it is not bound to (the address is not its host's).
    BadSource,
    /// A node handed over a [`Datagram`](crate::Datagram) with
    /// [`Transport::Tcp`](crate::Transport::Tcp): TCP is a stream, sent with
    /// [`TcpCommand::Send`](crate::TcpCommand::Send).
    BadTransport,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 13] = [
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
        DropReason::BadTransport,
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
            DropReason::BadTransport => "bad transport",
        };
        f.write_str(name)
    }
}

/// Counters of one element.
///
/// `sent`, `delivered`, `duplicated` and the drops count packets: UDP datagrams and TCP
/// segments alike. What `sent` and `delivered` count depends on the element:
///
/// | element | `sent` | `delivered` |
/// |---|---|---|
/// | host | datagrams from its nodes, segments from its TCP | datagrams to its nodes, segments to its TCP |
/// | link | packets offered (both directions) | copies that came out (duplicates too) |
/// | NAT | packets translated outbound (hairpinned included) | packets translated inbound |
/// | simulator | host totals | host totals |
///
/// [`tcp`](Self::tcp) counts connections and stream bytes (hosts and the simulator only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets that entered the element (see the table).
    pub sent: u64,
    /// Packets that left the element towards their destination (see the table).
    pub delivered: u64,
    /// Extra copies made by link duplication.
    pub duplicated: u64,
    /// TCP connection counters (zero for links and NATs).
    pub tcp: TcpStats,
    dropped: [u64; DropReason::ALL.len()],
}

/// TCP counters of a host or of the whole simulator ([`Stats::tcp`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections opened by [`TcpCommand::Connect`](crate::TcpCommand::Connect) that were
    /// established (simultaneous opens included).
    pub connected: u64,
    /// Connections accepted by a listener.
    pub accepted: u64,
    /// Connects that failed (refused, timed out, or refused at once by the local stack).
    pub connect_failed: u64,
    /// Established connections that ended with FINs both ways.
    pub closed: u64,
    /// Established connections that a RST ended.
    pub reset: u64,
    /// Established connections given up for lack of acknowledgements or keepalive answers.
    pub timed_out: u64,
    /// Segments sent again after a retransmission timeout.
    pub retransmitted: u64,
    /// RST segments sent (to closed ports, to stray segments, by aborts).
    pub resets_sent: u64,
    /// Stream bytes nodes queued with [`TcpCommand::Send`](crate::TcpCommand::Send).
    pub bytes_sent: u64,
    /// Stream bytes delivered to nodes in [`TcpEvent::Data`](crate::TcpEvent::Data).
    pub bytes_delivered: u64,
}

impl TcpStats {
    pub(crate) fn add(&mut self, other: &TcpStats) {
        self.connected += other.connected;
        self.accepted += other.accepted;
        self.connect_failed += other.connect_failed;
        self.closed += other.closed;
        self.reset += other.reset;
        self.timed_out += other.timed_out;
        self.retransmitted += other.retransmitted;
        self.resets_sent += other.resets_sent;
        self.bytes_sent += other.bytes_sent;
        self.bytes_delivered += other.bytes_delivered;
    }
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
