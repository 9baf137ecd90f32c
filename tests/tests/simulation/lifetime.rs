//! RFC 5780 §4.6 binding lifetime discovery through netsim NATs: the search finds the NAT's
//! configured mapping lifetime to within its precision, whatever the mapping and filtering.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drivers::sim::{MachineNode, StunServerNode};
use netsim::{LinkConfig, NatConfig, RealmId, Sim};
use stun_proto::nat::lifetime::{
    BindingLifetime, BindingLifetimeDiscovery, LifetimeConfig, LifetimeEvent,
};
use stun_proto::server::{BindingServer, BindingServerConfig};

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Runs the search from behind a NAT with `config` and returns the result and the virtual
/// time it took.
fn discover(
    mut nat_config: NatConfig,
    lifetime: Duration,
    seed: u64,
) -> (BindingLifetime, Duration) {
    nat_config.mapping_lifetime = lifetime;
    let start = Instant::now();
    let mut sim = Sim::new(seed, start);
    let link = LinkConfig::with_latency(Duration::from_millis(15));
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &["203.0.113.1".parse().unwrap()],
        nat_config,
        link.clone(),
    );
    let home = sim.nat(nat).inside_realm();
    let server_host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse().unwrap()], link);
    let client_host = sim.add_host(
        home,
        &["192.168.1.2".parse().unwrap()],
        LinkConfig::default(),
    );
    let server = sock("192.0.2.1:3478");
    let stun = StunServerNode::new(BindingServer::new(BindingServerConfig::default()), start);
    sim.add_node(server_host, &[server], stun).unwrap();
    let (x, y) = (sock("192.168.1.2:5000"), sock("192.168.1.2:5001"));
    let search =
        BindingLifetimeDiscovery::new(LifetimeConfig::default(), seed, start, x, y, server);
    let client = sim
        .add_node(client_host, &[x, y], MachineNode::new(search, start))
        .unwrap();
    let done = sim.run_until_condition(start + Duration::from_secs(4 * 3600), |sim| {
        sim.node(client).machine().is_done()
    });
    assert!(done, "the search did not end");
    let events = sim.node_mut(client).take_events();
    match events.last() {
        Some((at, LifetimeEvent::Finished(r))) => (*r, *at - start),
        other => panic!("{other:?}"),
    }
}

#[test]
fn finds_the_mapping_lifetime_behind_each_kind_of_nat() {
    let kinds = [
        ("full cone", NatConfig::full_cone()),
        ("port-restricted", NatConfig::port_restricted_cone()),
        ("symmetric", NatConfig::symmetric()),
    ];
    for (i, (name, config)) in kinds.into_iter().enumerate() {
        for secs in [30u64, 120, 300] {
            let lifetime = Duration::from_secs(secs);
            let (r, took) = discover(config.clone(), lifetime, 100 + i as u64);
            let less_than = r
                .less_than
                .unwrap_or_else(|| panic!("{name} {secs}: {r:?}"));
            // The server's response reaches the NAT one hop (30 ms) after the idle time ends.
            assert!(r.at_least <= lifetime, "{name} {secs}: {r:?}");
            assert!(
                less_than + Duration::from_millis(100) >= lifetime,
                "{name} {secs}: {r:?}"
            );
            assert!(
                less_than - r.at_least <= Duration::from_secs(5),
                "{name} {secs}: {r:?}"
            );
            assert!(r.rounds <= 12, "{name} {secs}: {r:?}");
            eprintln!(
                "{name}, lifetime {secs} s: [{:?}, {less_than:?}) in {} rounds, {took:?} virtual",
                r.at_least, r.rounds
            );
        }
    }
}
