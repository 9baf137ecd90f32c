//! Addresses and routing: IPv6-only, dual-stack and multi-homed hosts, binding, unbound
//! ports, unroutable destinations.

mod common;

use std::net::SocketAddr;

use common::{NAT_IP, base, ip, ms, sa};
use netsim::nodes::{Echo, Probe};
use netsim::{BindError, DropReason, LinkConfig, NatConfig, RealmId, Sim};

#[test]
fn ipv6_only_hosts_talk() {
    let mut sim = Sim::new(1, base());
    let (a, b) = (sa("[2001:db8::a]:5000"), sa("[2001:db8::b]:7"));
    let ha = sim.add_host(
        RealmId::INTERNET,
        &[a.ip()],
        LinkConfig::with_latency(ms(4)),
    );
    let hb = sim.add_host(RealmId::INTERNET, &[b.ip()], LinkConfig::default());
    let probe = sim.add_node(ha, &[a], Probe::new(a)).unwrap();
    let echo = sim.add_node(hb, &[b], Echo::new()).unwrap();
    sim.node_mut(probe).send(b, b"v6".to_vec());
    sim.run_for(ms(100));
    assert_eq!(sim.node(echo).received()[0].datagram.source, a);
    let reply = &sim.node(probe).received()[0];
    assert_eq!((reply.datagram.source, reply.at - sim.base()), (b, ms(8)));
    // An IPv6-only host cannot reach an IPv4 address.
    sim.node_mut(probe).send(sa("192.0.2.1:1"), b"x".to_vec());
    sim.run_for(ms(10));
    assert_eq!(sim.host(ha).stats().dropped(DropReason::NoRoute), 1);
}

#[test]
fn dual_stack_host_uses_both_families() {
    let mut sim = Sim::new(2, base());
    let ha = sim.add_host(
        RealmId::INTERNET,
        &[ip("192.0.2.10"), ip("2001:db8::10")],
        LinkConfig::default(),
    );
    let hb = sim.add_host(
        RealmId::INTERNET,
        &[ip("192.0.2.20"), ip("2001:db8::20")],
        LinkConfig::default(),
    );
    let (a4, a6) = (sa("192.0.2.10:5000"), sa("[2001:db8::10]:5000"));
    let (b4, b6) = (sa("192.0.2.20:7"), sa("[2001:db8::20]:7"));
    let client = sim.add_node(ha, &[a4, a6], Probe::new(a4)).unwrap();
    let echo = sim.add_node(hb, &[b4, b6], Echo::new()).unwrap();
    sim.node_mut(client).send(b4, b"four".to_vec());
    sim.node_mut(client)
        .send_datagram(netsim::Datagram::udp(a6, b6, b"six".to_vec()));
    sim.run_for(ms(10));
    let seen: Vec<_> = sim
        .node(echo)
        .received()
        .iter()
        .map(|r| (r.datagram.source, r.datagram.destination))
        .collect();
    assert_eq!(seen, [(a4, b4), (a6, b6)]);
    let replies: Vec<_> = sim
        .node(client)
        .received()
        .iter()
        .map(|r| r.datagram.destination)
        .collect();
    assert_eq!(replies, [a4, a6]);
    assert_eq!(sim.host(ha).addresses().count(), 2);
}

#[test]
fn multi_homed_host_nats_ipv4_and_routes_ipv6_directly() {
    let mut sim = Sim::new(3, base());
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip(NAT_IP)],
        NatConfig::full_cone(),
        LinkConfig::default(),
    );
    let home = sim.nat(nat).inside_realm();
    let host = sim.add_host(home, &[ip("192.168.1.10")], LinkConfig::default());
    let v6_link = sim.add_interface(
        host,
        RealmId::INTERNET,
        &[ip("2001:db8::10")],
        LinkConfig::with_latency(ms(3)),
    );
    let server = sim.add_host(
        RealmId::INTERNET,
        &[ip("198.51.100.1"), ip("2001:db8::1")],
        LinkConfig::default(),
    );
    let (l4, l6) = (sa("192.168.1.10:5000"), sa("[2001:db8::10]:5000"));
    let (s4, s6) = (sa("198.51.100.1:7"), sa("[2001:db8::1]:7"));
    let client = sim.add_node(host, &[l4, l6], Probe::new(l4)).unwrap();
    let echo = sim.add_node(server, &[s4, s6], Echo::new()).unwrap();
    sim.node_mut(client).send(s4, b"4".to_vec());
    sim.node_mut(client)
        .send_datagram(netsim::Datagram::udp(l6, s6, b"6".to_vec()));
    sim.run_for(ms(100));
    let sources: Vec<_> = sim
        .node(echo)
        .received()
        .iter()
        .map(|r| r.datagram.source)
        .collect();
    assert_eq!(
        sources,
        [sa("203.0.113.1:5000"), l6],
        "IPv4 translated, IPv6 not"
    );
    assert_eq!(sim.node(client).received().len(), 2);
    assert_eq!(
        sim.link(v6_link).stats().sent,
        2,
        "IPv6 used its own interface both ways"
    );
    assert_eq!(sim.host(host).interfaces()[1].realm(), RealmId::INTERNET);
}

#[test]
fn binding_is_checked() {
    let mut sim = Sim::new(4, base());
    let h = sim.add_host(RealmId::INTERNET, &[ip("192.0.2.1")], LinkConfig::default());
    let a = sa("192.0.2.1:1");
    let n = sim.add_node(h, &[a], Probe::new(a)).unwrap();
    assert_eq!(
        sim.add_node(h, &[a], Echo::new()).unwrap_err(),
        BindError::InUse(a)
    );
    let foreign = sa("192.0.2.2:1");
    assert_eq!(
        sim.bind(n, foreign),
        Err(BindError::AddressNotOnHost(foreign))
    );
    assert!(sim.unbind(n, a));
    assert!(!sim.unbind(n, a));
    assert!(sim.node_sockets(n).is_empty());
    sim.add_node(h, &[a], Echo::new()).unwrap();
}

#[test]
fn unbound_ports_and_unknown_addresses_are_dropped_and_counted() {
    let mut sim = Sim::new(5, base());
    let ha = sim.add_host(RealmId::INTERNET, &[ip("192.0.2.1")], LinkConfig::default());
    let hb = sim.add_host(RealmId::INTERNET, &[ip("192.0.2.2")], LinkConfig::default());
    let a = sa("192.0.2.1:1");
    let probe = sim.add_node(ha, &[a], Probe::new(a)).unwrap();
    sim.node_mut(probe)
        .send(sa("192.0.2.2:9"), b"nobody home".to_vec());
    sim.node_mut(probe)
        .send(sa("192.0.2.77:9"), b"no such host".to_vec());
    sim.run_for(ms(10));
    assert_eq!(sim.host(hb).stats().dropped(DropReason::UnboundPort), 1);
    assert_eq!(sim.stats().dropped(DropReason::UnboundPort), 1);
    assert_eq!(sim.stats().dropped(DropReason::NoRoute), 1);
    assert_eq!(sim.stats().sent, 2);
    assert_eq!(sim.stats().delivered, 0);
    // A wildcard binding (port 0) catches every port of the address.
    let catch_all = sim
        .add_node(hb, &[SocketAddr::new(ip("192.0.2.2"), 0)], Echo::new())
        .unwrap();
    sim.node_mut(probe)
        .send(sa("192.0.2.2:9"), b"hello".to_vec());
    sim.run_for(ms(10));
    assert_eq!(sim.node(catch_all).received().len(), 1);
    assert_eq!(
        sim.node(probe).received()[0].datagram.source,
        sa("192.0.2.2:9")
    );
}

#[test]
#[should_panic(expected = "already in use")]
fn an_address_can_only_be_used_once_per_realm() {
    let mut sim = Sim::new(6, base());
    sim.add_host(RealmId::INTERNET, &[ip("192.0.2.1")], LinkConfig::default());
    sim.add_host(RealmId::INTERNET, &[ip("192.0.2.1")], LinkConfig::default());
}

#[test]
fn private_addresses_repeat_across_realms() {
    let mut sim = Sim::new(7, base());
    let mut homes = Vec::new();
    for outside in ["203.0.113.1", "203.0.113.2"] {
        let nat = sim.add_nat(
            RealmId::INTERNET,
            &[ip(outside)],
            NatConfig::default(),
            LinkConfig::default(),
        );
        let realm = sim.nat(nat).inside_realm();
        let host = sim.add_host(realm, &[ip("192.168.1.10")], LinkConfig::default());
        let local = sa("192.168.1.10:5000");
        homes.push(sim.add_node(host, &[local], Probe::new(local)).unwrap());
    }
    let server = sim.add_host(
        RealmId::INTERNET,
        &[ip("198.51.100.1")],
        LinkConfig::default(),
    );
    let echo = sim
        .add_node(server, &[sa("198.51.100.1:7")], Echo::new())
        .unwrap();
    for home in &homes {
        sim.node_mut(*home)
            .send(sa("198.51.100.1:7"), b"x".to_vec());
    }
    sim.run_for(ms(10));
    let sources: Vec<_> = sim
        .node(echo)
        .received()
        .iter()
        .map(|r| r.datagram.source)
        .collect();
    assert_eq!(sources, [sa("203.0.113.1:5000"), sa("203.0.113.2:5000")]);
    assert!(homes.iter().all(|h| sim.node(*h).received().len() == 1));
}
