//! NAT behaviour, RFC 4787: mapping, filtering, port assignment, hairpinning, mapping
//! lifetime, nesting and the UDP-blocking firewall.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{NAT_IP, NatScenario, S1, base, ip, ms, sa};
use netsim::nodes::{Echo, Pinger, Probe};
use netsim::{
    DropReason, FilteringBehavior, LinkConfig, MappingBehavior, NatConfig, PortAssignment, RealmId,
    Sim,
};

fn config(mapping: MappingBehavior, filtering: FilteringBehavior) -> NatConfig {
    NatConfig {
        mapping,
        filtering,
        ..NatConfig::full_cone()
    }
}

/// RFC 4787 §4.1: the external mapping the same internal endpoint gets towards
/// S1:3478, S1:3479 (same address, other port) and S2:3478 (other address).
fn mappings(mapping: MappingBehavior) -> [SocketAddr; 3] {
    let mut s = NatScenario::new(config(mapping, FilteringBehavior::EndpointIndependent));
    [
        s.mapping_towards(0),
        s.mapping_towards(1),
        s.mapping_towards(2),
    ]
}

#[test]
fn endpoint_independent_mapping_reuses_one_mapping_for_all_destinations() {
    let [a, b, c] = mappings(MappingBehavior::EndpointIndependent);
    assert_eq!(a.ip(), ip(NAT_IP));
    assert_eq!(a, b);
    assert_eq!(a, c);
}

#[test]
fn address_dependent_mapping_changes_with_destination_address_only() {
    let [a, b, c] = mappings(MappingBehavior::AddressDependent);
    assert_eq!(a, b, "same destination address, other port: same mapping");
    assert_ne!(a, c, "other destination address: new mapping");
}

#[test]
fn address_and_port_dependent_mapping_changes_with_any_destination() {
    let [a, b, c] = mappings(MappingBehavior::AddressAndPortDependent);
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(b, c);
}

/// RFC 4787 §5: after the client sent to S1:3478, who may send in to its mapping:
/// [S1:3478 (the echo replies), S1:9999 (same address), S2:9999 (other address)].
fn admitted(filtering: FilteringBehavior) -> [bool; 3] {
    let mut s = NatScenario::new(config(MappingBehavior::EndpointIndependent, filtering));
    let mapping = s.mapping_towards(0);
    let reply_came_back = s.sim.node(s.client).received().len() == 1;
    [
        reply_came_back,
        s.unsolicited(0, mapping),
        s.unsolicited(1, mapping),
    ]
}

#[test]
fn endpoint_independent_filtering_admits_anyone() {
    assert_eq!(
        admitted(FilteringBehavior::EndpointIndependent),
        [true, true, true]
    );
}

#[test]
fn address_dependent_filtering_admits_the_contacted_address() {
    assert_eq!(
        admitted(FilteringBehavior::AddressDependent),
        [true, true, false]
    );
}

#[test]
fn address_and_port_dependent_filtering_admits_the_contacted_endpoint() {
    let mut s = NatScenario::new(NatConfig::port_restricted_cone());
    let mapping = s.mapping_towards(0);
    assert!(!s.unsolicited(0, mapping));
    assert_eq!(s.sim.nat(s.nat).stats().dropped(DropReason::Filtered), 1);
    assert_eq!(
        admitted(FilteringBehavior::AddressAndPortDependent),
        [true, false, false]
    );
}

#[test]
fn no_mapping_no_entry_whatever_the_filtering() {
    let mut s = NatScenario::new(NatConfig::full_cone());
    assert!(!s.unsolicited(1, SocketAddr::new(ip(NAT_IP), 5000)));
    assert_eq!(s.sim.nat(s.nat).stats().dropped(DropReason::NoMapping), 1);
    assert_eq!(s.sim.stats().dropped(DropReason::NoMapping), 1);
}

#[test]
fn presets_behave_as_named() {
    let [a, b, c] = {
        let mut s = NatScenario::new(NatConfig::symmetric());
        [
            s.mapping_towards(0),
            s.mapping_towards(1),
            s.mapping_towards(2),
        ]
    };
    assert!(
        a != b && b != c && a != c,
        "symmetric: a mapping per destination"
    );
    let mut s = NatScenario::new(NatConfig::restricted_cone());
    let m = s.mapping_towards(0);
    assert_eq!(m, s.mapping_towards(2), "cone: one mapping");
    // The client has now contacted S1 and S2; a third address is still refused.
    assert!(s.unsolicited(0, m));
    let stranger = s.sim.add_host(
        RealmId::INTERNET,
        &[ip("198.51.100.3")],
        LinkConfig::default(),
    );
    let p = s
        .sim
        .add_node(
            stranger,
            &[sa("198.51.100.3:1")],
            Probe::new(sa("198.51.100.3:1")),
        )
        .unwrap();
    s.sim.node_mut(p).send(m, b"x".to_vec());
    s.sim.run_for(ms(100));
    assert_eq!(s.sim.nat(s.nat).stats().dropped(DropReason::Filtered), 1);
}

// ---- port assignment (RFC 4787 §4.2.1) ----

#[test]
fn preserving_port_assignment_keeps_the_port_while_free() {
    let mut s = NatScenario::new(NatConfig {
        port_assignment: PortAssignment::Preserving,
        ..NatConfig::full_cone()
    });
    assert_eq!(s.mapping_towards(0), SocketAddr::new(ip(NAT_IP), 5000));
    // A second host behind the same NAT using the same port cannot keep it.
    let home = s.sim.nat(s.nat).inside_realm();
    let h2 = s
        .sim
        .add_host(home, &[ip("192.168.1.11")], LinkConfig::default());
    let local = sa("192.168.1.11:5000");
    let p = s.sim.add_node(h2, &[local], Probe::new(local)).unwrap();
    s.sim.node_mut(p).send(s.echoes[0].0, b"x".to_vec());
    s.sim.run_for(ms(100));
    let seen = s
        .sim
        .node(s.echoes[0].1)
        .received()
        .last()
        .unwrap()
        .datagram
        .source;
    assert_eq!(seen, SocketAddr::new(ip(NAT_IP), 5001));
}

fn symmetric_ports(assignment: PortAssignment, seed: u64) -> Vec<u16> {
    let mut s = NatScenario::with_seed(
        NatConfig {
            port_assignment: assignment,
            port_range: (20_000, 29_999),
            ..NatConfig::symmetric()
        },
        seed,
    );
    (0..3).map(|i| s.mapping_towards(i).port()).collect()
}

#[test]
fn sequential_port_assignment_counts_up_from_the_range_start() {
    assert_eq!(
        symmetric_ports(PortAssignment::Sequential, 1),
        [20_000, 20_001, 20_002]
    );
}

#[test]
fn random_port_assignment_is_random_in_range_and_seeded() {
    let ports = symmetric_ports(PortAssignment::Random, 1);
    assert!(ports.iter().all(|p| (20_000..=29_999).contains(p)));
    assert!(
        ports.windows(2).any(|w| w[1] != w[0] + 1),
        "random ports are not sequential: {ports:?}"
    );
    assert_eq!(
        ports,
        symmetric_ports(PortAssignment::Random, 1),
        "same seed, same ports"
    );
    assert_ne!(
        ports,
        symmetric_ports(PortAssignment::Random, 2),
        "other seed, other ports"
    );
}

// ---- hairpinning (RFC 4787 §6) ----

/// Two clients behind one full-cone NAT; B sends to A's external mapping.
fn hairpin(enabled: bool) -> (Sim, Vec<netsim::nodes::Arrival>, netsim::NatId) {
    let mut s = NatScenario::new(NatConfig {
        hairpinning: enabled,
        ..NatConfig::full_cone()
    });
    let a_external = s.mapping_towards(0);
    let home = s.sim.nat(s.nat).inside_realm();
    let hb = s
        .sim
        .add_host(home, &[ip("192.168.1.11")], LinkConfig::default());
    let b_local = sa("192.168.1.11:6000");
    let b = s.sim.add_node(hb, &[b_local], Probe::new(b_local)).unwrap();
    s.sim.node_mut(b).send(a_external, b"hairpin".to_vec());
    s.sim.run_for(ms(100));
    let got = s.sim.node_mut(s.client).take_received();
    // Drop the echo reply from the first exchange.
    let got = got
        .into_iter()
        .filter(|a| a.datagram.payload == b"hairpin")
        .collect();
    (s.sim, got, s.nat)
}

#[test]
fn hairpinning_on_loops_back_with_the_external_source() {
    let (sim, got, nat) = hairpin(true);
    assert_eq!(got.len(), 1);
    // RFC 4787 REQ-9: the receiver sees B's external endpoint, not its private address.
    assert_eq!(got[0].datagram.source, SocketAddr::new(ip(NAT_IP), 6000));
    assert_eq!(got[0].datagram.destination, sa(common::CLIENT));
    assert_eq!(sim.nat(nat).stats().dropped(DropReason::Hairpin), 0);
}

#[test]
fn hairpinning_off_drops() {
    let (sim, got, nat) = hairpin(false);
    assert!(got.is_empty());
    assert_eq!(sim.nat(nat).stats().dropped(DropReason::Hairpin), 1);
}

// ---- mapping lifetime (RFC 4787 §4.3) ----

/// A client behind a port-restricted cone NAT with 30 s mappings and sequential ports, and a
/// server probe at S1:3478.
struct Lifetime {
    sim: Sim,
    nat: netsim::NatId,
    client: netsim::NodeId<Probe>,
    server: netsim::NodeId<Probe>,
}

const SERVER: &str = "198.51.100.1:3478";

impl Lifetime {
    fn new(inbound_refresh: bool) -> Self {
        let mut sim = Sim::new(3, base());
        let nat = sim.add_nat(
            RealmId::INTERNET,
            &[ip(NAT_IP)],
            NatConfig {
                mapping_lifetime: Duration::from_secs(30),
                port_assignment: PortAssignment::Sequential,
                inbound_refresh,
                ..NatConfig::port_restricted_cone()
            },
            LinkConfig::default(),
        );
        let home = sim.nat(nat).inside_realm();
        let ch = sim.add_host(home, &[sa(common::CLIENT).ip()], LinkConfig::default());
        let client = sim
            .add_node(ch, &[sa(common::CLIENT)], Probe::new(sa(common::CLIENT)))
            .unwrap();
        let sh = sim.add_host(RealmId::INTERNET, &[ip(S1)], LinkConfig::default());
        let server = sim
            .add_node(sh, &[sa(SERVER)], Probe::new(sa(SERVER)))
            .unwrap();
        Lifetime {
            sim,
            nat,
            client,
            server,
        }
    }

    /// The client sends to the server; returns the source the server saw.
    fn client_sends(&mut self) -> SocketAddr {
        self.sim
            .node_mut(self.client)
            .send(sa(SERVER), b"out".to_vec());
        self.sim.run_for(ms(1));
        self.sim
            .node(self.server)
            .received()
            .last()
            .unwrap()
            .datagram
            .source
    }

    /// At `at` seconds since the start, the server sends to `to`; returns whether it got in.
    fn server_sends_at(&mut self, at: u64, to: SocketAddr) -> bool {
        self.sim
            .run_until(self.sim.base() + Duration::from_secs(at));
        let before = self.sim.node(self.client).received().len();
        self.sim.node_mut(self.server).send(to, b"in".to_vec());
        self.sim.run_for(ms(1));
        self.sim.node(self.client).received().len() > before
    }
}

#[test]
fn idle_mapping_expires() {
    let mut l = Lifetime::new(false);
    let m = l.client_sends();
    assert!(l.server_sends_at(29, m), "alive just before the lifetime");
    assert!(
        !l.server_sends_at(31, m),
        "expired after 30 s without outbound traffic"
    );
    assert_eq!(l.sim.nat(l.nat).stats().dropped(DropReason::NoMapping), 1);
    assert_eq!(l.sim.nat(l.nat).mappings(l.sim.now()).count(), 0);
    // Sending again creates a new mapping, on the next sequential port.
    let m2 = l.client_sends();
    assert_eq!(m2.port(), m.port() + 1);
    assert!(l.server_sends_at(40, m2));
}

#[test]
fn outbound_traffic_refreshes_the_mapping() {
    let mut l = Lifetime::new(false);
    let m = l.client_sends();
    // RFC 4787 REQ-6: outbound refresh. The client sends every 20 s for two minutes.
    for t in [20, 40, 60, 80, 100] {
        l.sim.run_until(l.sim.base() + Duration::from_secs(t));
        assert_eq!(l.client_sends(), m, "the mapping is kept, not recreated");
    }
    assert!(
        l.server_sends_at(125, m),
        "alive 25 s after the last refresh"
    );
}

#[test]
fn inbound_traffic_refreshes_only_when_configured() {
    for inbound_refresh in [false, true] {
        let mut l = Lifetime::new(inbound_refresh);
        let m = l.client_sends();
        assert!(l.server_sends_at(20, m));
        assert_eq!(
            l.server_sends_at(40, m),
            inbound_refresh,
            "inbound at 20 s refreshed the mapping: {inbound_refresh}"
        );
    }
}

#[test]
fn flush_and_expire_on_demand() {
    let mut l = Lifetime::new(false);
    let m = l.client_sends();
    assert!(l.server_sends_at(1, m));
    assert!(
        l.sim.nat_mut(l.nat).expire_mapping(m),
        "mapping expires mid-call"
    );
    assert!(!l.server_sends_at(2, m));
    let m2 = l.client_sends();
    assert_ne!(m2, m);
    assert_eq!(l.sim.nat_mut(l.nat).flush_mappings(), 1);
    assert!(!l.server_sends_at(3, m2));
}

// ---- nesting and firewall ----

#[test]
fn nested_nat_translates_twice_and_cgnat_hairpins_between_homes() {
    let mut sim = Sim::new(4, base());
    let cgn = sim.add_nat(
        RealmId::INTERNET,
        &[ip(NAT_IP)],
        NatConfig::full_cone(),
        LinkConfig::with_latency(ms(3)),
    );
    let carrier = sim.nat(cgn).inside_realm();
    let mut home = |outside: &str, local: &str| {
        let nat = sim.add_nat(
            carrier,
            &[ip(outside)],
            NatConfig::full_cone(),
            LinkConfig::default(),
        );
        let realm = sim.nat(nat).inside_realm();
        let host = sim.add_host(realm, &[sa(local).ip()], LinkConfig::default());
        let node = sim
            .add_node(host, &[sa(local)], Probe::new(sa(local)))
            .unwrap();
        (nat, node)
    };
    let (home1, client1) = home("100.64.0.2", "192.168.1.10:5000");
    let (_home2, client2) = home("100.64.0.3", "192.168.1.10:7000");
    let sh = sim.add_host(RealmId::INTERNET, &[ip(S1)], LinkConfig::default());
    let echo = sim.add_node(sh, &[sa(SERVER)], Echo::new()).unwrap();

    sim.node_mut(client1).send(sa(SERVER), b"hi".to_vec());
    sim.run_for(ms(100));
    let external = sim.node(echo).received()[0].datagram.source;
    assert_eq!(
        external,
        sa("203.0.113.1:5000"),
        "the server sees the CGNAT"
    );
    assert_eq!(
        sim.node(client1).received()[0].datagram.source,
        sa(SERVER),
        "reply made it down"
    );
    let inner: Vec<_> = sim
        .nat(home1)
        .mappings(sim.now())
        .map(|m| (m.internal(), m.external()))
        .collect();
    assert_eq!(inner, [(sa("192.168.1.10:5000"), sa("100.64.0.2:5000"))]);
    let outer: Vec<_> = sim
        .nat(cgn)
        .mappings(sim.now())
        .map(|m| (m.internal(), m.external()))
        .collect();
    assert_eq!(outer, [(sa("100.64.0.2:5000"), sa("203.0.113.1:5000"))]);

    // A client in another home behind the same CGNAT reaches client 1 by hairpinning.
    sim.node_mut(client2).send(external, b"neighbour".to_vec());
    sim.run_for(ms(100));
    let got = sim.node(client1).received().last().unwrap();
    assert_eq!(got.datagram.payload, b"neighbour");
    assert_eq!(got.datagram.source, sa("203.0.113.1:7000"));
}

#[test]
fn udp_blocking_firewall_drops_both_ways() {
    let mut s = NatScenario::new(NatConfig::udp_blocked());
    let (echo_addr, echo) = s.echoes[0];
    s.sim.node_mut(s.client).send(echo_addr, b"x".to_vec());
    s.sim.run_for(ms(100));
    assert!(s.sim.node(echo).received().is_empty());
    assert!(!s.unsolicited(1, SocketAddr::new(ip(NAT_IP), 5000)));
    let stats = s.sim.nat(s.nat).stats();
    assert_eq!(stats.dropped(DropReason::Firewall), 2);
    assert_eq!(stats.sent, 0);
    assert_eq!(s.sim.stats().dropped(DropReason::Firewall), 2);
}

#[test]
fn a_periodic_pinger_through_a_symmetric_nat_keeps_one_mapping() {
    let mut sim = Sim::new(5, base());
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip(NAT_IP)],
        NatConfig::symmetric(),
        LinkConfig::default(),
    );
    let home = sim.nat(nat).inside_realm();
    let ch = sim.add_host(home, &[sa(common::CLIENT).ip()], LinkConfig::default());
    let start = sim.now();
    let pinger = Pinger::new(
        sa(common::CLIENT),
        sa(SERVER),
        Duration::from_secs(10),
        start,
    );
    let pinger = sim.add_node(ch, &[sa(common::CLIENT)], pinger).unwrap();
    let sh = sim.add_host(RealmId::INTERNET, &[ip(S1)], LinkConfig::default());
    let echo = sim.add_node(sh, &[sa(SERVER)], Echo::new()).unwrap();
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.node(pinger).reply_seqs().len(), 61);
    let sources: std::collections::BTreeSet<_> = sim
        .node(echo)
        .received()
        .iter()
        .map(|a| a.datagram.source)
        .collect();
    assert_eq!(
        sources.len(),
        1,
        "refreshed every 10 s, the mapping never expires"
    );
}
