//! Driving nodes: virtual time, stepping, typed access, timers.

mod common;

use std::time::{Duration, Instant};

use common::{base, ms, sa};
use netsim::nodes::{Echo, Pinger, Probe};
use netsim::{Datagram, LinkConfig, Node, RealmId, Sim};

/// Client pinger (link latency 10 ms) and echo server (perfect link).
fn ping_echo(rounds: u64) -> (Sim, netsim::NodeId<Pinger>, netsim::NodeId<Echo>) {
    let mut sim = Sim::new(1, base());
    let (c, s) = (sa("192.0.2.1:5000"), sa("192.0.2.2:7"));
    let hc = sim.add_host(
        RealmId::INTERNET,
        &[c.ip()],
        LinkConfig::with_latency(ms(10)),
    );
    let hs = sim.add_host(RealmId::INTERNET, &[s.ip()], LinkConfig::default());
    let start = sim.now() + ms(5);
    let pinger = sim
        .add_node(hc, &[c], Pinger::new(c, s, ms(100), start).rounds(rounds))
        .unwrap();
    let echo = sim.add_node(hs, &[s], Echo::new()).unwrap();
    (sim, pinger, echo)
}

#[test]
fn step_processes_one_event_at_a_time_in_time_order() {
    let (mut sim, pinger, echo) = ping_echo(1);
    let t0 = sim.now();
    assert_eq!(
        sim.next_event_time(),
        Some(t0 + ms(5)),
        "the pinger's first timer"
    );
    let mut times = Vec::new();
    while sim.step() {
        times.push(sim.now() - t0);
    }
    // timer at 5 ms, out of the client link at 15, out of the server link at 15 (echo
    // replies at once), back through the client link at 25.
    assert_eq!(times, [ms(5), ms(15), ms(15), ms(15), ms(25)]);
    assert_eq!(sim.node(echo).received()[0].at - t0, ms(15));
    assert_eq!(sim.node(pinger).rtts(), [ms(20)]);
    assert!(!sim.step());
    assert_eq!(sim.next_event_time(), None);
}

#[test]
fn run_until_idle_stops_when_nothing_is_left() {
    let (mut sim, pinger, _) = ping_echo(3);
    let t0 = sim.now();
    assert!(sim.run_until_idle(t0 + Duration::from_secs(10)));
    assert_eq!(sim.now() - t0, ms(225), "clock stays at the last event");
    assert_eq!(sim.node(pinger).rtts().len(), 3);

    let (mut sim, _, _) = ping_echo(1_000);
    let deadline = sim.now() + Duration::from_secs(1);
    assert!(!sim.run_until_idle(deadline));
    assert_eq!(sim.now(), deadline);
}

#[test]
fn run_until_condition_stops_at_the_event_that_satisfies_it() {
    let (mut sim, pinger, _) = ping_echo(1_000);
    let t0 = sim.now();
    let done = sim.run_until_condition(t0 + Duration::from_secs(10), |sim| {
        sim.node(pinger).rtts().len() == 2
    });
    assert!(done);
    assert_eq!(sim.now() - t0, ms(125));
    let never = sim.run_until_condition(sim.now() + ms(50), |_| false);
    assert!(!never);
    assert_eq!(sim.now() - t0, ms(175));
}

#[test]
fn run_until_never_goes_back_and_run_for_adds_up() {
    let (mut sim, _, _) = ping_echo(0);
    let t0 = sim.now();
    sim.run_for(ms(30));
    sim.run_until(t0 + ms(10));
    assert_eq!(sim.elapsed(), ms(30));
    sim.run_for(ms(30));
    assert_eq!(sim.now(), t0 + ms(60));
}

#[test]
fn commands_between_steps_go_out_at_virtual_now() {
    let mut sim = Sim::new(2, base());
    let (a, b) = (sa("192.0.2.1:1"), sa("192.0.2.2:2"));
    let ha = sim.add_host(
        RealmId::INTERNET,
        &[a.ip()],
        LinkConfig::with_latency(ms(3)),
    );
    let hb = sim.add_host(RealmId::INTERNET, &[b.ip()], LinkConfig::default());
    let pa = sim.add_node(ha, &[a], Probe::new(a)).unwrap();
    let pb = sim.add_node(hb, &[b], Probe::new(b)).unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.node_mut(pa).send(b, b"late".to_vec());
    sim.run_for(Duration::from_secs(1));
    let got = &sim.node(pb).received()[0];
    assert_eq!(got.at - sim.base(), Duration::from_secs(1) + ms(3));
    assert_eq!(got.datagram.payload, b"late");
}

/// A node that asks for a deadline in the past after every timeout, a few times.
struct Overdue {
    left: u32,
    fired: Vec<Instant>,
    deadline: Instant,
}

impl Node for Overdue {
    fn handle_datagram(&mut self, _: Instant, _: Datagram) {}
    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        self.left -= 1;
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (self.left > 0).then_some(self.deadline)
    }
}

#[test]
fn overdue_timers_fire_at_now_not_in_the_past() {
    let mut sim = Sim::new(3, base());
    let h = sim.add_host(
        RealmId::INTERNET,
        &[sa("192.0.2.1:1").ip()],
        LinkConfig::default(),
    );
    sim.run_for(Duration::from_secs(5));
    let node = Overdue {
        left: 3,
        fired: Vec::new(),
        deadline: sim.base(),
    };
    let id = sim.add_node(h, &[], node).unwrap();
    sim.run_for(ms(1));
    let five = sim.base() + Duration::from_secs(5);
    assert_eq!(sim.node(id).fired, [five, five, five]);
}

#[test]
fn timers_fire_exactly_on_the_grid() {
    let (mut sim, pinger, _) = ping_echo(4);
    sim.run_for(Duration::from_secs(1));
    let t0 = sim.base();
    let sent: Vec<_> = (0..4)
        .map(|s| sim.node(pinger).sent_at(s).unwrap() - t0)
        .collect();
    assert_eq!(sent, [ms(5), ms(105), ms(205), ms(305)]);
}
