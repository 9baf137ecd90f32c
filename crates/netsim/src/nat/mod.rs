//! NAT boxes with the behaviours RFC 4787 classifies.
//!
//! A NAT sits between its inside realm and its parent realm. Outbound packets (inside to
//! parent) get their source rewritten to an external endpoint, creating or refreshing a
//! mapping; inbound packets (to an external endpoint) are filtered and rewritten back to
//! the internal endpoint.
//!
//! TCP (RFC 5382) uses the same mappings, port assignment and filtering, per transport, and
//! on top tracks each connection from the flags going by: only a SYN opens one (outbound, or
//! inbound when the filter admits it), and it lives for the established or the transitory
//! idle timeout.

mod config;
mod ports;
mod table;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use smallvec::SmallVec;

pub use config::{FilteringBehavior, Firewall, MappingBehavior, NatConfig, PortAssignment};
pub use table::Mapping;

use crate::datagram::Transport;
use crate::link::LinkId;
use crate::packet::Packet;
use crate::stats::{DropReason, Stats};
use crate::topology::RealmId;
use ports::PortAllocator;
use table::{MappingKey, Table, Timeouts};

/// Identifies a NAT of a [`Sim`](crate::Sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatId(pub(crate) usize);

/// Where an outbound packet goes after translation.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Up the NAT's uplink into the parent realm.
    Forward(Packet),
    /// Back into the inside realm: it was addressed to one of the NAT's own external
    /// endpoints (RFC 4787 §6, RFC 5382 §7.1 hairpinning); already translated in both
    /// directions.
    Hairpin(Packet),
}

/// A TCP connection a NAT tracks (RFC 5382 §5), from [`Nat::tcp_sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpSession {
    /// The internal endpoint.
    pub internal: SocketAddr,
    /// The external endpoint (the mapping's).
    pub external: SocketAddr,
    /// The remote endpoint.
    pub remote: SocketAddr,
    /// SYNs went both ways and no FIN or RST yet: the established idle timeout applies
    /// rather than the transitory one.
    pub established: bool,
    /// The last segment either way.
    pub last_activity: Instant,
}

/// A NAT box: configuration, mapping table, counters.
#[derive(Debug)]
pub struct Nat {
    config: NatConfig,
    outside: SmallVec<[IpAddr; 2]>,
    parent: RealmId,
    inside: RealmId,
    uplink: LinkId,
    table: Table,
    ports: PortAllocator,
    rng: ChaCha20Rng,
    pub(crate) stats: Stats,
}

impl Nat {
    pub(crate) fn new(
        config: NatConfig,
        outside: &[IpAddr],
        parent: RealmId,
        inside: RealmId,
        uplink: LinkId,
        rng: ChaCha20Rng,
    ) -> Self {
        Nat {
            ports: PortAllocator::new(config.port_range),
            config,
            outside: outside.iter().copied().collect(),
            parent,
            inside,
            uplink,
            table: Table::default(),
            rng,
            stats: Stats::default(),
        }
    }

    /// The behaviour.
    #[must_use]
    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    /// Change the behaviour. Existing mappings stay; lookups, filtering, lifetimes and port
    /// choice follow the new configuration from now on.
    pub fn set_config(&mut self, config: NatConfig) {
        self.config = config;
    }

    /// The NAT's addresses in its parent realm (at most one per address family is used).
    #[must_use]
    pub fn outside_addresses(&self) -> &[IpAddr] {
        &self.outside
    }

    /// The realm the NAT's outside addresses live in.
    #[must_use]
    pub fn parent_realm(&self) -> RealmId {
        self.parent
    }

    /// The realm behind the NAT; add hosts (or further NATs) to it.
    #[must_use]
    pub fn inside_realm(&self) -> RealmId {
        self.inside
    }

    /// The link between the NAT and its parent realm.
    #[must_use]
    pub fn uplink(&self) -> LinkId {
        self.uplink
    }

    /// Counters: `sent` = translated outbound, `delivered` = translated inbound.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The mappings alive at `now` (pass [`Sim::now`](crate::Sim::now)), UDP and TCP.
    pub fn mappings(&self, now: Instant) -> impl Iterator<Item = &Mapping> + '_ {
        let t = self.timeouts();
        self.table.iter().filter(move |m| m.is_live(now, &t))
    }

    /// The TCP connections the NAT tracks at `now` (RFC 5382 §5): established ones live for
    /// [`NatConfig::tcp_established_timeout`] without traffic, others for
    /// [`NatConfig::tcp_transitory_timeout`].
    pub fn tcp_sessions(&self, now: Instant) -> impl Iterator<Item = TcpSession> + '_ {
        let t = self.timeouts();
        self.table
            .iter()
            .filter(|m| m.transport() == Transport::Tcp)
            .flat_map(move |m| {
                m.sessions(now, t).map(|(remote, s)| TcpSession {
                    internal: m.internal(),
                    external: m.external(),
                    remote,
                    established: s.established(),
                    last_activity: s.last(),
                })
            })
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            mapping: self.config.mapping_lifetime,
            tcp_established: self.config.tcp_established_timeout,
            tcp_transitory: self.config.tcp_transitory_timeout,
        }
    }

    /// Drop every mapping at once, as a NAT reboot or a mass expiry would. Returns how many
    /// there were. Inbound traffic to them is dropped ([`DropReason::NoMapping`]) until the
    /// inside sends again, which creates new mappings (possibly on other ports).
    pub fn flush_mappings(&mut self) -> usize {
        self.table.clear()
    }

    /// Drop the mappings whose external endpoint is `external` ("the mapping expired
    /// mid-call"). Returns whether there was one.
    pub fn expire_mapping(&mut self, external: SocketAddr) -> bool {
        let transports: Vec<_> = self
            .table
            .iter()
            .filter(|m| m.external() == external)
            .map(Mapping::transport)
            .collect();
        transports
            .into_iter()
            .fold(false, |any, t| self.table.remove(t, external) | any)
    }

    /// Whether `ip` is one of the NAT's outside addresses.
    pub(crate) fn owns(&self, ip: IpAddr) -> bool {
        self.outside.contains(&ip)
    }

    /// Translate a packet leaving the inside realm.
    pub(crate) fn outbound(&mut self, now: Instant, p: Packet) -> Result<Outbound, DropReason> {
        let result = self.translate_out(now, p);
        self.count(result.as_ref().err().copied(), true);
        let p = result?;
        if !self.owns(p.destination().ip()) {
            return Ok(Outbound::Forward(p));
        }
        // RFC 4787 §6 REQ-9, RFC 5382 REQ-8: a hairpinned packet carries the sender's
        // external endpoint as its source, and goes through the same filtering as one
        // arriving from outside.
        self.inbound(now, p).map(Outbound::Hairpin)
    }

    /// Filter and translate a packet that arrived at one of the NAT's outside addresses.
    pub(crate) fn inbound(&mut self, now: Instant, p: Packet) -> Result<Packet, DropReason> {
        let result = self.translate_in(now, p);
        self.count(result.as_ref().err().copied(), false);
        result
    }

    fn count(&mut self, dropped: Option<DropReason>, outbound: bool) {
        match dropped {
            None if outbound => self.stats.sent += 1,
            None => self.stats.delivered += 1,
            Some(reason) => self.stats.count_drop(reason),
        }
    }

    fn translate_out(&mut self, now: Instant, mut p: Packet) -> Result<Packet, DropReason> {
        let (transport, source, destination) = (p.transport(), p.source(), p.destination());
        if !self.config.firewall.allows(transport) {
            return Err(DropReason::Firewall);
        }
        if self.owns(destination.ip()) && !self.config.hairpinning {
            return Err(DropReason::Hairpin);
        }
        let t = self.timeouts();
        let key = MappingKey::new(self.config.mapping, transport, source, destination);
        // RFC 5382 §5: only a SYN creates TCP state; any UDP datagram does.
        let opens = match &p {
            Packet::Udp(_) => true,
            Packet::Tcp(s) => s.is_initial_syn(),
        };
        let external = match self.table.by_key(&key, now, &t) {
            Some(m) => m.external(),
            None if opens => self.create_mapping(key, transport, source, destination, now)?,
            None => return Err(DropReason::NoMapping),
        };
        let mapping = self
            .table
            .by_external(transport, external, now, &t)
            .ok_or(DropReason::NoMapping)?;
        if let Packet::Tcp(s) = &p {
            if !mapping.track(destination, s.flags, true, true, now, &t) {
                return Err(DropReason::NoMapping);
            }
        }
        mapping.refresh_outbound(destination, now, t.mapping);
        p.set_source(external);
        Ok(p)
    }

    fn create_mapping(
        &mut self,
        key: MappingKey,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        now: Instant,
    ) -> Result<SocketAddr, DropReason> {
        // One external address per family: RFC 4787 §4.1 REQ-2 ("paired" pooling) holds
        // trivially.
        let ip = self
            .outside
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == destination.is_ipv4())
            .ok_or(DropReason::NoRoute)?;
        // Free the ports of expired mappings before choosing one.
        self.table.purge(now, &self.timeouts());
        let table = &self.table;
        let port = self
            .ports
            .allocate(
                self.config.port_assignment,
                self.config.port_range,
                source.port(),
                &mut self.rng,
                |p| table.is_free(transport, SocketAddr::new(ip, p)),
            )
            .ok_or(DropReason::PortsExhausted)?;
        let external = SocketAddr::new(ip, port);
        self.table.insert(key, external, now);
        Ok(external)
    }

    fn translate_in(&mut self, now: Instant, mut p: Packet) -> Result<Packet, DropReason> {
        let (transport, source) = (p.transport(), p.source());
        if !self.config.firewall.allows(transport) {
            return Err(DropReason::Firewall);
        }
        let t = self.timeouts();
        let filtering = self.config.filtering;
        let inbound_refresh = self.config.inbound_refresh;
        let mapping = self
            .table
            .by_external(transport, p.destination(), now, &t)
            .ok_or(DropReason::NoMapping)?;
        let admitted = mapping.admits(filtering, source, now, &t);
        match &p {
            Packet::Udp(_) if !admitted => return Err(DropReason::Filtered),
            Packet::Udp(_) => {}
            // RFC 5382 §4.3: segments of a tracked connection pass; a SYN opens one if the
            // filter admits it (a SYN crossing the one this mapping sent to its sender is
            // "tracked": that is what lets a simultaneous open through); anything else is
            // dropped. REQ-4's ICMP error for refused SYNs is not emulated: they vanish.
            Packet::Tcp(s) => {
                if !mapping.track(source, s.flags, false, admitted, now, &t) {
                    return Err(if s.is_initial_syn() {
                        DropReason::Filtered
                    } else {
                        DropReason::NoMapping
                    });
                }
            }
        }
        if inbound_refresh {
            mapping.refresh_inbound(filtering, source, now);
        }
        p.set_destination(mapping.internal());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::Datagram;
    use crate::tcp::{Flags, Segment};
    use rand_core::SeedableRng;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn nat(config: NatConfig) -> Nat {
        Nat::new(
            config,
            &["203.0.113.1".parse().unwrap()],
            RealmId(0),
            RealmId(1),
            LinkId(0),
            ChaCha20Rng::seed_from_u64(1),
        )
    }

    fn out(n: &mut Nat, now: Instant, from: &str, to: &str) -> Result<SocketAddr, DropReason> {
        match n.outbound(now, udp(from, to))? {
            Outbound::Forward(d) => Ok(d.source()),
            Outbound::Hairpin(d) => panic!("unexpected hairpin {d:?}"),
        }
    }

    fn udp(from: &str, to: &str) -> Packet {
        Datagram::udp(sa(from), sa(to), vec![]).into()
    }

    fn tcp(from: &str, to: &str, flags: Flags) -> Packet {
        Packet::Tcp(Segment {
            source: sa(from),
            destination: sa(to),
            seq: 1,
            ack: 0,
            flags,
            mss: None,
            payload: Vec::new(),
        })
    }

    #[test]
    fn outbound_then_inbound_round_trip() {
        let t0 = base();
        let mut n = nat(NatConfig::port_restricted_cone());
        let ext = out(&mut n, t0, "192.168.1.2:5000", "198.51.100.1:3478").unwrap();
        assert_eq!(ext, sa("203.0.113.1:5000"));
        let back = n
            .inbound(t0, udp("198.51.100.1:3478", &ext.to_string()))
            .unwrap();
        assert_eq!(back.destination(), sa("192.168.1.2:5000"));
        assert_eq!(
            n.inbound(t0, udp("198.51.100.1:9", &ext.to_string())),
            Err(DropReason::Filtered)
        );
        assert_eq!(
            n.inbound(t0, udp("198.51.100.1:9", "203.0.113.1:1")),
            Err(DropReason::NoMapping)
        );
        assert_eq!(n.stats().sent, 1);
        assert_eq!(n.stats().delivered, 1);
        assert_eq!(n.stats().dropped_total(), 2);
    }

    #[test]
    fn tcp_syn_opens_state_and_the_filter_guards_inbound_syns() {
        let t0 = base();
        let mut n = nat(NatConfig::port_restricted_cone());
        let (inside, server, ext) = ("192.168.1.2:5000", "198.51.100.1:443", "203.0.113.1:5000");
        // Nothing but a SYN opens a mapping.
        assert_eq!(
            n.outbound(t0, tcp(inside, server, Flags::ACK)).unwrap_err(),
            DropReason::NoMapping
        );
        let Outbound::Forward(syn) = n.outbound(t0, tcp(inside, server, Flags::SYN)).unwrap()
        else {
            panic!("not forwarded")
        };
        assert_eq!(syn.source(), sa(ext));
        let synack = tcp(server, ext, Flags::SYN | Flags::ACK);
        assert_eq!(n.inbound(t0, synack).unwrap().destination(), sa(inside));
        // The TCP mapping is not the UDP one: no UDP gets in.
        assert_eq!(
            n.inbound(t0, udp(server, ext)).unwrap_err(),
            DropReason::NoMapping
        );
        // An unsolicited SYN from another port is filtered; a stray ACK has no connection.
        let stranger = "198.51.100.1:9999";
        assert_eq!(
            n.inbound(t0, tcp(stranger, ext, Flags::SYN)).unwrap_err(),
            DropReason::Filtered
        );
        assert_eq!(
            n.inbound(t0, tcp(stranger, ext, Flags::ACK)).unwrap_err(),
            DropReason::NoMapping
        );
        let sessions: Vec<_> = n.tcp_sessions(t0).collect();
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].established);
        assert_eq!(sessions[0].remote, sa(server));
    }

    #[test]
    fn expire_and_flush() {
        let t0 = base();
        let mut n = nat(NatConfig {
            port_assignment: PortAssignment::Sequential,
            ..NatConfig::full_cone()
        });
        let a = out(&mut n, t0, "192.168.1.2:5000", "198.51.100.1:1").unwrap();
        let b = out(&mut n, t0, "192.168.1.3:5000", "198.51.100.1:1").unwrap();
        assert_eq!(n.mappings(t0).count(), 2);
        assert!(n.expire_mapping(a));
        assert!(!n.expire_mapping(a));
        assert_eq!(n.mappings(t0).count(), 1);
        assert_eq!(n.flush_mappings(), 1);
        let b2 = out(&mut n, t0, "192.168.1.3:5000", "198.51.100.1:1").unwrap();
        assert_ne!(b, b2, "a flushed mapping comes back on a new port");
    }

    #[test]
    fn firewall_and_family() {
        let t0 = base();
        let mut n = nat(NatConfig::udp_blocked());
        assert_eq!(
            out(&mut n, t0, "192.168.1.2:5000", "198.51.100.1:1"),
            Err(DropReason::Firewall)
        );
        let mut n = nat(NatConfig::full_cone());
        assert_eq!(
            out(&mut n, t0, "[fd00::2]:5000", "[2001:db8::1]:1"),
            Err(DropReason::NoRoute)
        );
        assert!(n.mappings(t0 + Duration::from_secs(1)).next().is_none());
    }
}
