//! The Sans-IO contract: poll_timeout valid after new(), handle_timeout early or twice is
//! harmless; and RFC 8421 interleaving on a dual-stack host.

mod common;

use common::*;
use ice_core::{Agent, AgentConfig, CandidateType, ConnectionState, Event, TransportProtocol};
use std::time::{Duration, Instant};

#[test]
fn poll_timeout_is_valid_after_new_and_handle_timeout_is_idempotent() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let agent = Agent::new(AgentConfig::default(), 1, t0);
    assert_eq!(
        agent.poll_timeout(),
        None,
        "nothing to do yet, and nothing stale"
    );
    let mut p = host_pair(1, 221);
    let (a, b) = (p.a, p.b);
    p.net.flush();
    p.net.run_for(Duration::from_millis(25));
    // Hammer A with early and repeated timeouts: no transmit beyond what is due.
    let now = p.net.now;
    let due = p.net.agent(a).poll_timeout();
    for _ in 0..100 {
        p.net.agent(a).handle_timeout(now);
    }
    let mut extra = 0;
    while p.net.agent(a).poll_transmit().is_some() {
        extra += 1;
    }
    assert!(
        extra <= 1,
        "at most the one paced check that was due: {extra} (due {due:?}, now {now:?})"
    );
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
}

/// RFC 8421 §4: IPv6 and IPv4 host candidates interleave, IPv6 first, every local
/// preference unique.
#[test]
fn dual_stack_priorities_interleave() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut agent = Agent::new(AgentConfig::default(), 2, now);
    let s = agent.add_stream(1).unwrap();
    for addr in [
        "192.0.2.1:5000",
        "192.0.2.2:5000",
        "[2001:db8::1]:5000",
        "[2001:db8::2]:5000",
    ] {
        agent
            .add_host_candidate(now, s, 1, sa(addr), TransportProtocol::Udp)
            .unwrap();
    }
    let mut by_priority = agent.local_candidates(s);
    by_priority.sort_by_key(|c| std::cmp::Reverse(c.priority));
    let order: Vec<String> = by_priority.iter().map(|c| c.address.to_string()).collect();
    assert_eq!(
        order,
        [
            "[2001:db8::1]:5000",
            "192.0.2.1:5000",
            "[2001:db8::2]:5000",
            "192.0.2.2:5000"
        ]
    );
    let mut prios: Vec<u32> = by_priority.iter().map(|c| c.priority).collect();
    prios.dedup();
    assert_eq!(prios.len(), 4);
    assert!(
        by_priority
            .iter()
            .all(|c| c.kind == CandidateType::Host && c.priority >> 24 == 126)
    );
    // Foundations differ per base address (RFC 8445 §5.1.1.3).
    let mut foundations: Vec<_> = by_priority.iter().map(|c| c.foundation).collect();
    foundations.sort();
    foundations.dedup();
    assert_eq!(foundations.len(), 4);
    let events = std::iter::from_fn(|| agent.poll_event())
        .filter(|e| matches!(e, Event::LocalCandidate { .. }))
        .count();
    assert_eq!(events, 4, "every candidate trickled out");
}

/// RFC 8445 §5.1.1.1: loopback addresses are not candidates, unless the configuration
/// allows them (tests and demos on one machine); the IPv4-mapped form is judged as IPv4.
#[test]
fn loopback_host_candidates_only_when_allowed() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut agent = Agent::new(AgentConfig::default(), 1, t0);
    let s = agent.add_stream(1).unwrap();
    for addr in [
        "127.0.0.1:5000",
        "[::1]:5000",
        "[::ffff:127.0.0.1]:5000",
        "0.0.0.0:5000",
    ] {
        assert_eq!(
            agent.add_host_candidate(t0, s, 1, addr.parse().unwrap(), TransportProtocol::Udp),
            Err(ice_core::AddCandidateError::UnusableAddress),
            "{addr}"
        );
    }
    let config = AgentConfig {
        allow_loopback: true,
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(config, 1, t0);
    let s = agent.add_stream(1).unwrap();
    let c = agent
        .add_host_candidate(
            t0,
            s,
            1,
            "127.0.0.1:5000".parse().unwrap(),
            TransportProtocol::Udp,
        )
        .unwrap();
    assert_eq!(c.kind, CandidateType::Host);
    assert!(
        agent
            .add_host_candidate(
                t0,
                s,
                1,
                "0.0.0.0:5001".parse().unwrap(),
                TransportProtocol::Udp
            )
            .is_err(),
        "unspecified stays refused"
    );
}
