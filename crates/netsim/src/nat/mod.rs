//! NAT boxes with the behaviours RFC 4787 classifies.
//!
//! A NAT sits between its inside realm and its parent realm. Outbound datagrams (inside to
//! parent) get their source rewritten to an external endpoint, creating or refreshing a
//! mapping; inbound datagrams (to an external endpoint) are filtered and rewritten back to
//! the internal endpoint.

mod config;
mod ports;
mod table;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use smallvec::SmallVec;

pub use config::{FilteringBehavior, Firewall, MappingBehavior, NatConfig, PortAssignment};
pub use table::Mapping;

use crate::datagram::Datagram;
use crate::link::LinkId;
use crate::stats::{DropReason, Stats};
use crate::topology::RealmId;
use ports::PortAllocator;
use table::{MappingKey, Table};

/// Identifies a NAT of a [`Sim`](crate::Sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatId(pub(crate) usize);

/// Where an outbound datagram goes after translation.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Up the NAT's uplink into the parent realm.
    Forward(Datagram),
    /// Back into the inside realm: it was addressed to one of the NAT's own external
    /// endpoints (RFC 4787 §6 hairpinning); already translated in both directions.
    Hairpin(Datagram),
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

    /// The mappings alive at `now` (pass [`Sim::now`](crate::Sim::now)).
    pub fn mappings(&self, now: Instant) -> impl Iterator<Item = &Mapping> + '_ {
        let lifetime = self.config.mapping_lifetime;
        self.table.iter().filter(move |m| m.is_live(now, lifetime))
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

    /// Translate a datagram leaving the inside realm.
    pub(crate) fn outbound(&mut self, now: Instant, dg: Datagram) -> Result<Outbound, DropReason> {
        let result = self.translate_out(now, dg);
        self.count(result.as_ref().err().copied(), true);
        let dg = result?;
        if !self.owns(dg.destination.ip()) {
            return Ok(Outbound::Forward(dg));
        }
        // RFC 4787 §6 REQ-9: a hairpinned datagram carries the sender's external endpoint as
        // its source, and goes through the same filtering as one arriving from outside.
        self.inbound(now, dg).map(Outbound::Hairpin)
    }

    /// Filter and translate a datagram that arrived at one of the NAT's outside addresses.
    pub(crate) fn inbound(&mut self, now: Instant, dg: Datagram) -> Result<Datagram, DropReason> {
        let result = self.translate_in(now, dg);
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

    fn translate_out(&mut self, now: Instant, mut dg: Datagram) -> Result<Datagram, DropReason> {
        if !self.config.firewall.allows(dg.transport) {
            return Err(DropReason::Firewall);
        }
        if self.owns(dg.destination.ip()) && !self.config.hairpinning {
            return Err(DropReason::Hairpin);
        }
        let lifetime = self.config.mapping_lifetime;
        let key = MappingKey::new(self.config.mapping, dg.transport, dg.source, dg.destination);
        let external = match self.table.by_key(&key, now, lifetime) {
            Some(m) => m.external(),
            None => self.create_mapping(key, &dg, now)?,
        };
        let mapping = self
            .table
            .by_external(dg.transport, external, now, lifetime)
            .ok_or(DropReason::NoMapping)?;
        mapping.refresh_outbound(dg.destination, now, lifetime);
        dg.source = external;
        Ok(dg)
    }

    fn create_mapping(
        &mut self,
        key: MappingKey,
        dg: &Datagram,
        now: Instant,
    ) -> Result<SocketAddr, DropReason> {
        // One external address per family: RFC 4787 §4.1 REQ-2 ("paired" pooling) holds
        // trivially.
        let ip = self
            .outside
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == dg.destination.is_ipv4())
            .ok_or(DropReason::NoRoute)?;
        // Free the ports of expired mappings before choosing one.
        self.table.purge(now, self.config.mapping_lifetime);
        let table = &self.table;
        let transport = dg.transport;
        let port = self
            .ports
            .allocate(
                self.config.port_assignment,
                self.config.port_range,
                dg.source.port(),
                &mut self.rng,
                |p| table.is_free(transport, SocketAddr::new(ip, p)),
            )
            .ok_or(DropReason::PortsExhausted)?;
        let external = SocketAddr::new(ip, port);
        self.table.insert(key, external, now);
        Ok(external)
    }

    fn translate_in(&mut self, now: Instant, mut dg: Datagram) -> Result<Datagram, DropReason> {
        if !self.config.firewall.allows(dg.transport) {
            return Err(DropReason::Firewall);
        }
        let lifetime = self.config.mapping_lifetime;
        let filtering = self.config.filtering;
        let inbound_refresh = self.config.inbound_refresh;
        let mapping = self
            .table
            .by_external(dg.transport, dg.destination, now, lifetime)
            .ok_or(DropReason::NoMapping)?;
        if !mapping.admits(filtering, dg.source, now, lifetime) {
            return Err(DropReason::Filtered);
        }
        if inbound_refresh {
            mapping.refresh_inbound(filtering, dg.source, now);
        }
        dg.destination = mapping.internal();
        Ok(dg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        match n.outbound(now, Datagram::udp(sa(from), sa(to), vec![]))? {
            Outbound::Forward(d) => Ok(d.source),
            Outbound::Hairpin(d) => panic!("unexpected hairpin {d:?}"),
        }
    }

    #[test]
    fn outbound_then_inbound_round_trip() {
        let t0 = base();
        let mut n = nat(NatConfig::port_restricted_cone());
        let ext = out(&mut n, t0, "192.168.1.2:5000", "198.51.100.1:3478").unwrap();
        assert_eq!(ext, sa("203.0.113.1:5000"));
        let back = n
            .inbound(t0, Datagram::udp(sa("198.51.100.1:3478"), ext, vec![]))
            .unwrap();
        assert_eq!(back.destination, sa("192.168.1.2:5000"));
        assert_eq!(
            n.inbound(t0, Datagram::udp(sa("198.51.100.1:9"), ext, vec![])),
            Err(DropReason::Filtered)
        );
        assert_eq!(
            n.inbound(
                t0,
                Datagram::udp(sa("198.51.100.1:9"), sa("203.0.113.1:1"), vec![])
            ),
            Err(DropReason::NoMapping)
        );
        assert_eq!(n.stats().sent, 1);
        assert_eq!(n.stats().delivered, 1);
        assert_eq!(n.stats().dropped_total(), 2);
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
