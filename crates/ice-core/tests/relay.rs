//! Relayed candidates through the turn-proto server: the only path when direct traffic
//! between the peers is blocked.

mod common;

use common::*;
use ice_core::{AgentConfig, CandidateType, ConnectionState, Role, TurnServer};
use std::time::Duration;

fn turn_config(role: Role) -> AgentConfig {
    AgentConfig {
        role,
        turn_servers: vec![TurnServer {
            server: sa("192.0.2.20:3478"),
            transport: ice_core::TransportProtocol::Udp,
            username: "user".into(),
            password: "secret".into(),
        }],
        ..AgentConfig::default()
    }
}

#[test]
fn relay_when_direct_paths_are_blocked() {
    let mut net = Net::new();
    let nat_a = net.add_nat("198.51.100.50", Filtering::AddressAndPortDependent);
    let nat_b = net.add_nat("203.0.113.50", Filtering::AddressAndPortDependent);
    net.add_turn_server("turn", "192.0.2.20");
    // The NATs cannot reach each other directly: only the relay carries traffic.
    net.filter = Some(Box::new(|s, d| {
        let (s, d) = (s.ip(), d.ip());
        (s == ip("198.51.100.50") && d == ip("203.0.113.50"))
            || (s == ip("203.0.113.50") && d == ip("198.51.100.50"))
    }));
    let a = net.add_agent(
        "A",
        &["10.0.0.1"],
        turn_config(Role::Controlling),
        211,
        Some(nat_a),
    );
    let b = net.add_agent(
        "B",
        &["10.0.0.2"],
        turn_config(Role::Controlled),
        212,
        Some(nat_b),
    );
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["10.0.0.1"], 5000);
    add_hosts(&mut net, b, 1, &["10.0.0.2"], 6000);
    let ok = net.run_until(Duration::from_secs(15), |n| {
        both(n, a, b, ConnectionState::Completed)
    });
    if !ok {
        dump(&net, a, s);
        dump(&net, b, s);
    }
    assert!(ok);
    for node in [a, b] {
        let kinds: Vec<_> = net
            .agent_ref(node)
            .local_candidates(s)
            .iter()
            .map(|c| c.kind)
            .collect();
        assert!(kinds.contains(&CandidateType::Relayed), "{kinds:?}");
        assert!(
            kinds.contains(&CandidateType::ServerReflexive),
            "the Allocate response's mapped address: {kinds:?}"
        );
        assert_eq!(
            net.agent_ref(node).gathering_state(),
            ice_core::GatheringState::Complete
        );
    }
    let (local, remote) = net.agent_ref(a).selected_pair(s, 1).unwrap();
    assert!(
        local.kind == CandidateType::Relayed || remote.kind == CandidateType::Relayed,
        "a relayed candidate is selected: {local:?} {remote:?}"
    );
    for i in 0..5 {
        net.send_data(a, s, 1, format!("a{i}").as_bytes()).unwrap();
        net.send_data(b, s, 1, format!("b{i}").as_bytes()).unwrap();
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.received(b), ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(net.received(a), ["b0", "b1", "b2", "b3", "b4"]);
    // Relayed data ends up on a channel (RFC 8445 §12.1): the last transmits of the
    // relaying side are ChannelData (first byte 0x40-0x4f) towards the TURN server.
    let relayer = if local.kind == CandidateType::Relayed {
        a
    } else {
        b
    };
    let last = net
        .log
        .iter()
        .rev()
        .find(|(_, n, t)| *n == relayer && t.destination == sa("192.0.2.20:3478"))
        .unwrap();
    assert!(
        (0x40..=0x4f).contains(&last.2.payload[0]),
        "ChannelData, first byte {:#x}",
        last.2.payload[0]
    );
    net.run_for(Duration::from_secs(30));
    assert!(
        both(&net, a, b, ConnectionState::Completed),
        "consent holds through the relay"
    );
}
