//! End-to-end connectivity through the public API on an in-memory network.

mod common;

use common::*;
use ice_core::{ConnectionState, Event};
use std::time::Duration;

#[test]
fn host_to_host_connects_and_carries_data() {
    let mut p = host_pair(1, 1);
    let (a, b, s) = (p.a, p.b, p.stream);
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let sa_ = selected(&p.net, a, s, 1).unwrap();
    let sb = selected(&p.net, b, s, 1).unwrap();
    assert_eq!(sa_, (sb.1, sb.0), "both agents selected the same pair");
    p.net.send_data(a, s, 1, b"hello from A").unwrap();
    p.net.send_data(b, s, 1, b"hello from B").unwrap();
    p.net.run_for(Duration::from_millis(100));
    assert_eq!(p.net.received(b), ["hello from A"]);
    assert_eq!(p.net.received(a), ["hello from B"]);
}

/// Both agents behind address-dependent-filtering NATs; only server-reflexive candidates
/// can work, learnt from a STUN binding server (stun_proto::server::BindingServer).
#[test]
fn server_reflexive_through_two_nats() {
    let mut net = Net::new();
    let nat_a = net.add_nat("198.51.100.50", Filtering::AddressDependent);
    let nat_b = net.add_nat("203.0.113.50", Filtering::AddressDependent);
    net.add_stun_server("stun", "192.0.2.10");
    let config = |role| ice_core::AgentConfig {
        role,
        stun_servers: vec![sa("192.0.2.10:3478")],
        ..ice_core::AgentConfig::default()
    };
    let a = net.add_agent(
        "A",
        &["10.0.0.1"],
        config(ice_core::Role::Controlling),
        11,
        Some(nat_a),
    );
    let b = net.add_agent(
        "B",
        &["10.0.0.2"],
        config(ice_core::Role::Controlled),
        12,
        Some(nat_b),
    );
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["10.0.0.1"], 5000);
    add_hosts(&mut net, b, 1, &["10.0.0.2"], 6000);
    assert!(net.run_until(Duration::from_secs(10), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let (local, remote) = selected(&net, a, s, 1).unwrap();
    assert_eq!(
        local.ip(),
        ip("198.51.100.50"),
        "A's selected local candidate is its NAT mapping"
    );
    assert_eq!(remote.ip(), ip("203.0.113.50"));
    let kinds: Vec<_> = net
        .agent_ref(a)
        .local_candidates(s)
        .iter()
        .map(|c| c.kind)
        .collect();
    assert!(
        kinds.contains(&ice_core::CandidateType::ServerReflexive),
        "{kinds:?}"
    );
    assert_eq!(
        net.agent_ref(a).gathering_state(),
        ice_core::GatheringState::Complete
    );
    net.send_data(a, s, 1, b"through two NATs").unwrap();
    net.send_data(b, s, 1, b"and back").unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.received(b), ["through two NATs"]);
    assert_eq!(net.received(a), ["and back"]);
}

/// A is behind a NAT and gathers nothing but its host candidate: B learns A's NAT mapping
/// from A's check (remote peer-reflexive), A learns it from B's response (local
/// peer-reflexive).
#[test]
fn peer_reflexive_on_both_sides() {
    let mut net = Net::new();
    let nat = net.add_nat("198.51.100.50", Filtering::EndpointIndependent);
    let a = net.add_agent(
        "A",
        &["10.0.0.1"],
        ice_core::AgentConfig::default(),
        21,
        Some(nat),
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 22, None);
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["10.0.0.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    let ok = net.run_until(Duration::from_secs(10), |n| {
        both(n, a, b, ConnectionState::Completed)
    });
    if !ok {
        dump(&net, a, s);
        dump(&net, b, s);
    }
    assert!(ok);
    let prflx = ice_core::CandidateType::PeerReflexive;
    let a_local = net.agent_ref(a).local_candidates(s);
    assert!(
        a_local
            .iter()
            .any(|c| c.kind == prflx && c.address.ip() == ip("198.51.100.50")),
        "{a_local:?}"
    );
    let b_remote = net.agent_ref(b).remote_candidates(s);
    assert!(
        b_remote
            .iter()
            .any(|c| c.kind == prflx && c.address.ip() == ip("198.51.100.50")),
        "{b_remote:?}"
    );
    assert_eq!(
        count_events(&net, b, |e| matches!(
            e,
            Event::PeerReflexiveCandidate { .. }
        )),
        1
    );
    let (local, _) = selected(&net, a, s, 1).unwrap();
    assert_eq!(local.ip(), ip("198.51.100.50"));
    net.send_data(b, s, 1, b"to the prflx address").unwrap();
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.received(a), ["to the prflx address"]);
}

/// Runs two agents that both believe they have `role`; returns which of them answered 487
/// and which switched its role.
fn role_conflict(role: ice_core::Role, seeds: (u64, u64)) -> (usize, usize) {
    let mut net = Net::new();
    let config = ice_core::AgentConfig {
        role,
        ..ice_core::AgentConfig::default()
    };
    let a = net.add_agent("A", &["198.51.100.1"], config.clone(), seeds.0, None);
    let b = net.add_agent("B", &["203.0.113.1"], config, seeds.1, None);
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    assert!(net.run_until(Duration::from_secs(10), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let roles = [net.agent_ref(a).role(), net.agent_ref(b).role()];
    assert_ne!(roles[0], roles[1], "the conflict is repaired: {roles:?}");
    let stats = [net.agent_ref(a).stats(), net.agent_ref(b).stats()];
    assert_eq!(
        stats[0].role_switches + stats[1].role_switches,
        1,
        "exactly one agent switched"
    );
    assert_eq!(
        stats[0].role_conflicts_answered + stats[1].role_conflicts_answered,
        1,
        "one 487"
    );
    let changed: Vec<usize> = [a, b]
        .into_iter()
        .filter(|&n| count_events(&net, n, |e| matches!(e, Event::RoleChanged(_))) == 1)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        selected(&net, a, s, 1).map(|(l, r)| (r, l)),
        selected(&net, b, s, 1)
    );
    let answered = if stats[0].role_conflicts_answered == 1 {
        a
    } else {
        b
    };
    (answered, changed[0])
}

/// RFC 8445 §7.3.1.1 both ways: with the seeds swapped, the other agent has the larger
/// tie-breaker, so the 487 goes the other direction.
#[test]
fn role_conflict_both_controlling() {
    let (answered1, switched1) = role_conflict(ice_core::Role::Controlling, (31, 32));
    let (answered2, switched2) = role_conflict(ice_core::Role::Controlling, (32, 31));
    assert_ne!(answered1, switched1, "the 487 sender keeps its role");
    assert_ne!(answered2, switched2);
    assert_ne!(answered1, answered2, "both directions are exercised");
}

#[test]
fn role_conflict_both_controlled() {
    let (answered1, switched1) = role_conflict(ice_core::Role::Controlled, (31, 32));
    let (answered2, switched2) = role_conflict(ice_core::Role::Controlled, (32, 31));
    assert_ne!(answered1, switched1);
    assert_ne!(answered2, switched2);
    assert_ne!(answered1, answered2, "both directions are exercised");
}

/// A full agent against an ICE-lite server (RFC 8445 §2.5): the full agent controls, the
/// lite one only answers and follows the nomination.
#[test]
fn lite_server_and_full_client() {
    let mut net = Net::new();
    let nat = net.add_nat("198.51.100.50", Filtering::AddressAndPortDependent);
    let full = net.add_agent("full", &["10.0.0.1"], controlled(), 41, Some(nat));
    let lite = net.add_agent(
        "lite",
        &["203.0.113.1"],
        ice_core::AgentConfig::lite(),
        42,
        None,
    );
    net.connect(full, lite);
    net.agent(full).set_remote_lite(true);
    assert_eq!(
        net.agent_ref(full).role(),
        ice_core::Role::Controlling,
        "RFC 8445 §6.1.1"
    );
    let s = add_hosts(&mut net, full, 1, &["10.0.0.1"], 5000);
    add_hosts(&mut net, lite, 1, &["203.0.113.1"], 6000);
    assert!(net.run_until(Duration::from_secs(10), |n| both(
        n,
        full,
        lite,
        ConnectionState::Completed
    )));
    assert_eq!(
        net.agent_ref(lite).stats().checks_sent,
        0,
        "a lite agent sends no checks"
    );
    let (lite_local, lite_remote) = selected(&net, lite, s, 1).unwrap();
    assert_eq!(lite_local, sa("203.0.113.1:6000"));
    assert_eq!(
        lite_remote.ip(),
        ip("198.51.100.50"),
        "the lite agent sends to the NAT mapping"
    );
    net.send_data(lite, s, 1, b"from the server").unwrap();
    net.send_data(full, s, 1, b"from the client").unwrap();
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.received(full), ["from the server"]);
    assert_eq!(net.received(lite), ["from the client"]);
}

/// Two streams of two components each: every component gets its own selected pair, and
/// foundations unfreeze across streams (RFC 8445 §6.1.2.6).
#[test]
fn two_streams_two_components() {
    let mut net = Net::new();
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        51,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 52, None);
    net.connect(a, b);
    let now = net.now;
    let mut streams = Vec::new();
    for (node, ip_, base) in [(a, "198.51.100.1", 5000u16), (b, "203.0.113.1", 6000u16)] {
        let agent = net.agent(node);
        let s1 = agent.add_stream(2).unwrap();
        let s2 = agent.add_stream(2).unwrap();
        for (k, s) in [s1, s2].into_iter().enumerate() {
            for c in 1..=2u16 {
                let addr = std::net::SocketAddr::new(ip(ip_), base + k as u16 * 10 + c);
                agent
                    .add_host_candidate(now, s, c, addr, ice_core::TransportProtocol::Udp)
                    .unwrap();
            }
        }
        agent.finish_host_candidates(now);
        streams = vec![s1, s2];
    }
    // Before any check: one pair per foundation is Waiting, in the first checklist only.
    net.flush();
    net.run_for(Duration::from_millis(25));
    assert!(net.run_until(Duration::from_secs(10), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    for &s in &streams {
        for c in 1..=2u16 {
            let (la, ra) = selected(&net, a, s, c).unwrap();
            let (lb, rb) = selected(&net, b, s, c).unwrap();
            assert_eq!((la, ra), (rb, lb), "stream {s} component {c}");
        }
    }
    for (k, &s) in streams.iter().enumerate() {
        for c in 1..=2u16 {
            net.send_data(a, s, c, format!("s{k}c{c}").as_bytes())
                .unwrap();
        }
    }
    net.run_for(Duration::from_millis(50));
    let got: Vec<_> = net.nodes[b]
        .data
        .iter()
        .map(|(_, s, c, d)| (s.index(), *c, String::from_utf8_lossy(d).into_owned()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 1, "s0c1".into()),
            (0, 2, "s0c2".into()),
            (1, 1, "s1c1".into()),
            (1, 2, "s1c2".into())
        ]
    );
}

/// Delivers B's candidate to A, then A's to B `stagger` later; returns when each agent
/// reached Connected and Completed, measured from the later delivery.
fn time_to_connected(stagger: Duration) -> [(Duration, Duration); 2] {
    let mut net = Net::new();
    net.latency = Duration::ZERO;
    net.hold_signals = true;
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        61,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 62, None);
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    net.flush();
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.state(a), ConnectionState::New);
    let held = std::mem::take(&mut net.held);
    let deliver = |net: &mut Net, to: usize| {
        let now = net.now;
        for (dest, signal) in &held {
            if let Signal::Candidate(stream, line) = signal {
                if *dest == to {
                    net.agent(to)
                        .add_remote_candidate_str(now, *stream, line)
                        .unwrap();
                }
            }
        }
        net.flush();
    };
    deliver(&mut net, a);
    net.run_for(stagger);
    let later = net.elapsed();
    deliver(&mut net, b);
    assert!(net.run_until(Duration::from_secs(2), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    assert!(selected(&net, a, s, 1).is_some());
    [a, b].map(|node| {
        let connected = net.reached(node, ConnectionState::Connected).unwrap();
        let completed = net.reached(node, ConnectionState::Completed).unwrap();
        (
            connected.saturating_sub(later),
            completed.saturating_sub(later),
        )
    })
}

/// Time to connected on a zero-latency network with one host candidate each side: at most
/// 2 x Ta + one check round trip (zero here) after the later candidate arrives, whether
/// the candidates arrive together or 30 ms apart.
#[test]
fn time_to_connected_on_zero_latency() {
    let ta = Duration::from_millis(50);
    for stagger in [Duration::ZERO, Duration::from_millis(30)] {
        for (node, (connected, completed)) in time_to_connected(stagger).into_iter().enumerate() {
            println!(
                "stagger {stagger:?} node {node}: connected +{connected:?}, completed +{completed:?}"
            );
            assert!(
                connected <= 2 * ta,
                "connected {connected:?} after the later candidate"
            );
            assert!(
                completed <= 2 * ta,
                "completed {completed:?} after the later candidate"
            );
        }
    }
}
