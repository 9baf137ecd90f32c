//! Link behaviour: latency, jitter, loss, duplication, reordering, MTU, rate limit, and
//! changing a link mid-run.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{base, ip, ms, sa};
use netsim::nodes::{Pinger, Probe};
use netsim::{DropReason, HostId, LinkConfig, NodeId, RateLimit, RealmId, Sim};

const A: &str = "192.0.2.1:4000";
const B: &str = "192.0.2.2:4000";

/// Host A (with `link` as its access link) and host B (perfect link), both on the internet,
/// each with a probe.
struct Pair {
    sim: Sim,
    a_host: HostId,
    a: NodeId<Probe>,
    b: NodeId<Probe>,
}

impl Pair {
    fn new(link: LinkConfig, seed: u64) -> Self {
        let mut sim = Sim::new(seed, base());
        let a_host = sim.add_host(RealmId::INTERNET, &[sa(A).ip()], link);
        let b_host = sim.add_host(RealmId::INTERNET, &[sa(B).ip()], LinkConfig::default());
        let a = sim.add_node(a_host, &[sa(A)], Probe::new(sa(A))).unwrap();
        let b = sim.add_node(b_host, &[sa(B)], Probe::new(sa(B))).unwrap();
        Pair { sim, a_host, a, b }
    }

    /// A sends `n` datagrams of `len` bytes to B, all at once; returns how many B received.
    fn burst(&mut self, n: usize, len: usize) -> usize {
        for i in 0..n {
            let mut payload = vec![0u8; len.max(8)];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            self.sim.node_mut(self.a).send(sa(B), payload);
        }
        self.sim.run_for(Duration::from_secs(10));
        self.sim.node_mut(self.b).take_received().len()
    }

    fn link_stats(&self) -> &netsim::Stats {
        self.sim.link(self.sim.host_link(self.a_host)).stats()
    }
}

/// A pinger on host A (link `link`) sending one round every `interval` to a probe on B.
fn pinger_pair(
    link: LinkConfig,
    interval: Duration,
    rounds: u64,
) -> (Sim, NodeId<Pinger>, NodeId<Probe>) {
    let mut sim = Sim::new(11, base());
    let ha = sim.add_host(RealmId::INTERNET, &[sa(A).ip()], link);
    let hb = sim.add_host(RealmId::INTERNET, &[sa(B).ip()], LinkConfig::default());
    let start = sim.now();
    let pinger = Pinger::new(sa(A), sa(B), interval, start).rounds(rounds);
    let pinger = sim.add_node(ha, &[sa(A)], pinger).unwrap();
    let probe = sim.add_node(hb, &[sa(B)], Probe::new(sa(B))).unwrap();
    (sim, pinger, probe)
}

fn seq(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

#[test]
fn loss_rate_is_roughly_as_configured() {
    let mut p = Pair::new(
        LinkConfig {
            loss: 0.2,
            ..LinkConfig::default()
        },
        21,
    );
    let got = p.burst(10_000, 8);
    // Binomial(10000, 0.8): sd = 40; the band is ten standard deviations wide each side.
    assert!((7_600..=8_400).contains(&got), "delivered {got} of 10000");
    let stats = p.link_stats();
    assert_eq!(stats.dropped(DropReason::Loss), 10_000 - got as u64);
    assert_eq!(p.sim.stats().dropped(DropReason::Loss), 10_000 - got as u64);
    assert_eq!(stats.sent, 10_000);
}

#[test]
fn duplication_delivers_extra_copies() {
    let mut p = Pair::new(
        LinkConfig {
            duplicate: 0.3,
            ..LinkConfig::default()
        },
        22,
    );
    let got = p.burst(1_000, 8);
    // 1000 + Binomial(1000, 0.3): sd ~ 14.5.
    assert!(
        (1_200..=1_400).contains(&got),
        "delivered {got} for 1000 sent"
    );
    assert_eq!(p.link_stats().duplicated, got as u64 - 1_000);
    assert_eq!(p.sim.host(p.a_host).stats().sent, 1_000);
}

#[test]
fn reordering_holds_some_datagrams_back() {
    let arrival_order = |reorder: f64| {
        let link = LinkConfig {
            latency: ms(5),
            reorder,
            reorder_delay: ms(3),
            ..LinkConfig::default()
        };
        let (mut sim, _, probe) = pinger_pair(link, ms(1), 200);
        sim.run_for(Duration::from_secs(1));
        sim.node(probe)
            .received()
            .iter()
            .map(|a| seq(&a.datagram.payload))
            .collect::<Vec<_>>()
    };
    let in_order = arrival_order(0.0);
    assert_eq!(in_order, (0..200).collect::<Vec<_>>());
    let shuffled = arrival_order(0.25);
    let mut sorted = shuffled.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..200).collect::<Vec<_>>(),
        "nothing lost or duplicated"
    );
    let inversions = shuffled.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions >= 10, "only {inversions} datagrams overtaken");
}

#[test]
fn oversize_datagrams_are_dropped_at_the_mtu() {
    let link = LinkConfig {
        mtu: 576,
        ..LinkConfig::default()
    };
    let mut p = Pair::new(link.clone(), 23);
    // IPv4: 20 + 8 + 548 = 576 fits; one more byte does not.
    assert_eq!(p.burst(1, 548), 1);
    assert_eq!(p.burst(1, 549), 0);
    assert_eq!(p.link_stats().dropped(DropReason::Mtu), 1);

    // IPv6 headers are 20 bytes longer.
    let mut sim = Sim::new(1, base());
    let (a6, b6) = (sa("[2001:db8::1]:1"), sa("[2001:db8::2]:1"));
    let ha = sim.add_host(RealmId::INTERNET, &[a6.ip()], link);
    let hb = sim.add_host(RealmId::INTERNET, &[b6.ip()], LinkConfig::default());
    let a = sim.add_node(ha, &[a6], Probe::new(a6)).unwrap();
    let b = sim.add_node(hb, &[b6], Probe::new(b6)).unwrap();
    sim.node_mut(a).send(b6, vec![0; 528]);
    sim.node_mut(a).send(b6, vec![0; 529]);
    sim.run_for(ms(10));
    let lens: Vec<_> = sim
        .node(b)
        .received()
        .iter()
        .map(|r| r.datagram.payload.len())
        .collect();
    assert_eq!(lens, [528]);
}

#[test]
fn rate_limit_paces_and_drops_when_the_queue_is_full() {
    let mut p = Pair::new(
        LinkConfig {
            rate_limit: Some(RateLimit {
                bytes_per_second: 10_000,
                queue_bytes: 3_000,
            }),
            ..LinkConfig::default()
        },
        24,
    );
    let t0 = p.sim.now();
    // 972 bytes of payload make 1000-byte IP packets: 100 ms each at 10 kB/s, three fit.
    for _ in 0..10 {
        p.sim.node_mut(p.a).send(sa(B), vec![0; 972]);
    }
    p.sim.run_for(Duration::from_secs(2));
    let arrivals: Vec<_> = p
        .sim
        .node(p.b)
        .received()
        .iter()
        .map(|r| r.at - t0)
        .collect();
    assert_eq!(arrivals, [ms(100), ms(200), ms(300)]);
    assert_eq!(p.link_stats().dropped(DropReason::QueueFull), 7);
    // The queue drained: a later datagram goes straight through.
    p.sim.node_mut(p.a).send(sa(B), vec![0; 972]);
    let sent = p.sim.now();
    p.sim.run_for(Duration::from_secs(1));
    assert_eq!(
        p.sim.node(p.b).received().last().unwrap().at - sent,
        ms(100)
    );
}

#[test]
fn latency_and_jitter_bound_arrival_times() {
    let link = LinkConfig {
        latency: ms(50),
        jitter: ms(10),
        ..LinkConfig::default()
    };
    let (mut sim, pinger, probe) = pinger_pair(link, ms(20), 200);
    sim.run_for(Duration::from_secs(10));
    let delays: Vec<Duration> = sim
        .node(probe)
        .received()
        .iter()
        .map(|a| a.at - sim.node(pinger).sent_at(seq(&a.datagram.payload)).unwrap())
        .collect();
    assert_eq!(delays.len(), 200);
    assert!(
        delays.iter().all(|d| (ms(50)..=ms(60)).contains(d)),
        "{delays:?}"
    );
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 100, "jitter varies the delay");
    let mean = delays.iter().sum::<Duration>() / 200;
    assert!((ms(53)..=ms(57)).contains(&mean), "mean delay {mean:?}");
}

#[test]
fn pure_latency_is_exact_and_adds_up_along_the_path() {
    let (mut sim, pinger, probe) = pinger_pair(LinkConfig::with_latency(ms(7)), ms(100), 5);
    sim.run_for(Duration::from_secs(1));
    for a in sim.node(probe).received() {
        let sent = sim.node(pinger).sent_at(seq(&a.datagram.payload)).unwrap();
        assert_eq!(a.at - sent, ms(7));
    }
    assert_eq!(sim.node(probe).received().len(), 5);
}

#[test]
fn cutting_a_link_mid_run_drops_until_restored() {
    let (mut sim, pinger, probe) = pinger_pair(LinkConfig::default(), ms(10), 300);
    let start = sim.now();
    let a_link = sim.host_link(sim.node_host(pinger));
    sim.run_until(start + Duration::from_secs(1));
    let mut cut = sim.link(a_link).config().clone();
    cut.down = true;
    sim.link_mut(a_link).set_config(cut);
    // Rounds 101..=200 (sent at 1.01 s ..= 2.00 s) hit the cut link.
    sim.run_until(start + Duration::from_secs(2));
    let mut restored = sim.link(a_link).config().clone();
    restored.down = false;
    sim.link_mut(a_link).set_config(restored);
    sim.run_until(start + Duration::from_secs(4));
    let seqs: Vec<u64> = sim
        .node(probe)
        .received()
        .iter()
        .map(|a| seq(&a.datagram.payload))
        .collect();
    let expected: Vec<u64> = (0..=100).chain(201..300).collect();
    assert_eq!(seqs, expected);
    assert_eq!(sim.link(a_link).stats().dropped(DropReason::LinkDown), 100);
}

#[test]
fn datagrams_are_sent_from_the_nodes_socket_only() {
    let mut p = Pair::new(LinkConfig::default(), 25);
    let from_elsewhere = netsim::Datagram::udp(sa("192.0.2.1:4001"), sa(B), b"x".to_vec());
    let spoofed = netsim::Datagram::udp(sa("192.0.2.99:4000"), sa(B), b"x".to_vec());
    p.sim.node_mut(p.a).send_datagram(from_elsewhere);
    p.sim.node_mut(p.a).send_datagram(spoofed);
    p.sim.run_for(ms(10));
    assert!(p.sim.node(p.b).received().is_empty());
    assert_eq!(
        p.sim.host(p.a_host).stats().dropped(DropReason::BadSource),
        2
    );
    assert_eq!(p.sim.host(p.a_host).stats().sent, 0);
    // Binding the port (port 0 = every port of the address) makes the first one legal.
    p.sim
        .bind(p.a, SocketAddr::new(ip("192.0.2.1"), 0))
        .unwrap();
    let ok = netsim::Datagram::udp(sa("192.0.2.1:4001"), sa(B), b"x".to_vec());
    p.sim.node_mut(p.a).send_datagram(ok);
    p.sim.run_for(ms(10));
    assert_eq!(p.sim.node(p.b).received().len(), 1);
}
