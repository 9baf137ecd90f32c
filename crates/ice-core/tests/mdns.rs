//! mDNS remote candidates (draft-ietf-mmusic-mdns-ice-candidates): surfaced for the caller
//! to resolve, then used as ordinary candidates.

mod common;

use common::*;
use ice_core::{ConnectionState, Event, MdnsError};
use std::time::Duration;

#[test]
fn mdns_candidate_is_resolved_by_the_caller() {
    let mut net = Net::new();
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        191,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 192, None);
    // Only credentials are exchanged automatically; B's candidate reaches A as an mDNS name.
    let (ca, cb) = (
        net.agent(a).local_credentials().clone(),
        net.agent(b).local_credentials().clone(),
    );
    let now = net.now;
    net.agent(a)
        .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
        .unwrap();
    net.agent(b)
        .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
        .unwrap();
    let s = add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    let name = "9d7bb7a5-c3cf-4e36-a2d7-1d1a9c39a3fd.local";
    let line = format!(
        "candidate:3988702780 1 udp 2113937151 {name} 6000 typ host generation 0 ufrag {} network-cost 999",
        cb.ufrag
    );
    net.agent(a)
        .add_remote_candidate_str(now, s, &line)
        .unwrap();
    // The same name again does not ask twice.
    net.agent(a)
        .add_remote_candidate_str(now, s, &line)
        .unwrap();
    net.flush();
    let asked: Vec<_> = net
        .events(a)
        .filter(|e| matches!(e, Event::ResolveMdns { .. }))
        .cloned()
        .collect();
    assert_eq!(
        asked,
        [Event::ResolveMdns {
            name: name.to_owned()
        }]
    );
    assert!(
        net.agent_ref(a).remote_candidates(s).is_empty(),
        "held until resolved"
    );
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.state(a), ConnectionState::New);
    let now = net.now;
    assert_eq!(
        net.agent(a)
            .resolved_mdns(now, "other.local", ip("203.0.113.1")),
        Err(MdnsError::UnknownName)
    );
    assert_eq!(
        net.agent(a).resolved_mdns(now, name, ip("203.0.113.1")),
        Ok(2)
    );
    net.flush();
    let remote = net.agent_ref(a).remote_candidates(s);
    assert_eq!(remote.len(), 1, "the duplicate collapsed");
    assert_eq!(remote[0].address, sa("203.0.113.1:6000"));
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
}

#[test]
fn unresolvable_names_are_dropped() {
    let mut p = host_pair(1, 201);
    p.net.signalling.clear();
    let (a, s) = (p.a, p.stream);
    let now = p.net.now;
    p.net
        .agent(a)
        .add_remote_candidate_str(
            now,
            s,
            "candidate:1 1 udp 2113937151 x1.local 6000 typ host",
        )
        .unwrap();
    assert_eq!(p.net.agent(a).mdns_failed(now, "x1.local"), Ok(1));
    assert_eq!(
        p.net
            .agent(a)
            .resolved_mdns(now, "x1.local", ip("203.0.113.1")),
        Err(MdnsError::UnknownName)
    );
    // A non-mDNS host name is the caller's to resolve before adding.
    assert_eq!(
        p.net.agent(a).add_remote_candidate_str(
            now,
            s,
            "candidate:1 1 udp 2113937151 turn.example.org 6000 typ host"
        ),
        Err(ice_core::RemoteCandidateError::UnresolvedName)
    );
}

/// RFC 8838 §8 with mDNS names: a checklist whose only remote candidate waits for its name
/// does not fail at the peer's end-of-candidates; it fails once the name is given up.
#[test]
fn a_pending_name_holds_off_failure_until_given_up() {
    let mut p = host_pair(1, 211);
    p.net.signalling.clear();
    let (a, s) = (p.a, p.stream);
    let now = p.net.now;
    p.net
        .agent(a)
        .add_remote_candidate_str(
            now,
            s,
            "candidate:1 1 udp 2113937151 x2.local 6000 typ host",
        )
        .unwrap();
    p.net
        .agent(a)
        .end_of_remote_candidates(now, s, None)
        .unwrap();
    p.net.run_for(Duration::from_secs(3));
    assert_ne!(
        p.net.state(a),
        ConnectionState::Failed,
        "the name may still resolve"
    );
    let now = p.net.now;
    assert_eq!(p.net.agent(a).mdns_failed(now, "x2.local"), Ok(1));
    p.net.flush();
    assert_eq!(p.net.state(a), ConnectionState::Failed);
}
