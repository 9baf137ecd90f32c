//! Same seeds and inputs give byte-identical transmits.

mod common;

use common::*;
use ice_core::{AgentConfig, ConnectionState, Role};
use std::time::Duration;

/// A busy scenario: two NATs, a STUN server, two streams, 10% loss, data and consent;
/// returns everything every node sent, with times.
fn scenario(seed: u64) -> Vec<(Duration, usize, Vec<u8>, String, String)> {
    let mut net = Net::new();
    net.loss = 0.1;
    let nat_a = net.add_nat("198.51.100.50", Filtering::AddressDependent);
    let nat_b = net.add_nat("203.0.113.50", Filtering::EndpointIndependent);
    net.add_stun_server("stun", "192.0.2.10");
    let config = |role| AgentConfig {
        role,
        stun_servers: vec![sa("192.0.2.10:3478")],
        ..AgentConfig::default()
    };
    let a = net.add_agent(
        "A",
        &["10.0.0.1"],
        config(Role::Controlling),
        seed,
        Some(nat_a),
    );
    let b = net.add_agent(
        "B",
        &["10.0.0.2"],
        config(Role::Controlled),
        seed + 1,
        Some(nat_b),
    );
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 2, &["10.0.0.1"], 5000);
    add_hosts(&mut net, b, 2, &["10.0.0.2"], 6000);
    assert!(net.run_until(Duration::from_secs(20), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    for i in 0..100u32 {
        let _ = net.send_data(a, s, 1 + (i % 2) as u16, &i.to_be_bytes());
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(20));
    net.log
        .iter()
        .map(|(t, n, tr)| {
            (
                *t,
                *n,
                tr.payload.clone(),
                tr.source.to_string(),
                tr.destination.to_string(),
            )
        })
        .collect()
}

#[test]
fn same_seed_same_bytes() {
    let first = scenario(1000);
    let second = scenario(1000);
    assert!(
        first.len() > 150,
        "a busy scenario: {} transmits",
        first.len()
    );
    assert_eq!(first, second, "byte-identical transmit sequence");
    let other = scenario(2000);
    assert_ne!(
        first, other,
        "another seed, other credentials and transaction IDs"
    );
}
