//! Trickle ICE (RFC 8838): candidates late, in bursts, before credentials; end-of-candidates.

mod common;

use common::*;
use ice_core::{CheckListState, ConnectionState, TransportProtocol};
use std::time::Duration;

/// RFC 8445 §7.3: checks that arrive before the peer's credentials are answered at once;
/// our own checks wait for the credentials (RFC 8838: candidates before credentials).
#[test]
fn candidates_and_checks_before_credentials() {
    let mut net = Net::new();
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        71,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 72, None);
    // A knows B's credentials; B learns A's only after 700 ms.
    let cb = net.agent(b).local_credentials().clone();
    let ca = net.agent(a).local_credentials().clone();
    let now = net.now;
    net.agent(a)
        .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
        .unwrap();
    net.signalling.push((a, b));
    net.signalling.push((b, a));
    let s = add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    net.run_for(Duration::from_millis(700));
    let stats = net.agent_ref(b).stats();
    assert!(
        stats.checks_answered > 0,
        "B answered A's checks without A's credentials"
    );
    assert_eq!(
        stats.checks_sent, 0,
        "B's own checks wait for the credentials"
    );
    assert_eq!(
        net.agent_ref(b).remote_candidates(s).len(),
        1,
        "B has A's trickled candidate"
    );
    assert!(!net.agent_ref(b).pairs(s).is_empty(), "and paired it");
    let now = net.now;
    net.agent(b)
        .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
        .unwrap();
    net.flush();
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    assert!(net.agent_ref(b).stats().checks_sent > 0);
}

/// The peer's candidates arrive seconds late: checks start when they do.
#[test]
fn candidates_arriving_late() {
    let mut p = host_pair(1, 81);
    p.net.signal_delay = Duration::from_secs(3);
    let (a, b) = (p.a, p.b);
    p.net.run_for(Duration::from_millis(2900));
    assert_eq!(p.net.state(a), ConnectionState::New);
    assert!(check_times(&p.net, a).is_empty());
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let first = check_times(&p.net, a)[0];
    assert!(first >= Duration::from_secs(3), "first check at {first:?}");
}

/// Many candidates arriving in one burst: all are paired, checks go out paced by Ta, and
/// the agents connect.
#[test]
fn candidates_in_a_burst_are_paced() {
    let mut net = Net::new();
    net.hold_signals = true;
    // Only the last addresses work, so most pairs need checking.
    net.filter = Some(Box::new(|_, d| {
        d.ip() != ip("198.51.100.3") && d.ip() != ip("203.0.113.3")
    }));
    let ips_a = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let ips_b = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    let a = net.add_agent("A", &ips_a, ice_core::AgentConfig::default(), 91, None);
    let b = net.add_agent("B", &ips_b, controlled(), 92, None);
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &ips_a, 5000);
    add_hosts(&mut net, b, 1, &ips_b, 6000);
    net.run_for(Duration::from_millis(500));
    assert_eq!(
        net.held.len(),
        8,
        "3 candidates and end-of-candidates each way"
    );
    net.release_signals();
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.agent_ref(a).remote_candidates(s).len(), 3);
    assert_eq!(
        net.agent_ref(a).pairs(s).len(),
        9,
        "every local candidate paired with every remote one"
    );
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    // RFC 8445 §8.1.2: after nomination nothing of the component is left to check.
    let pending = net
        .agent_ref(a)
        .pairs(s)
        .iter()
        .filter(|p| p.state.is_pending())
        .count();
    assert_eq!(pending, 0);
    let times = check_times(&net, a);
    assert!(times.len() >= 9, "{times:?}");
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(50),
            "checks paced by Ta: {times:?}"
        );
    }
}

/// The gaps between A's first checks when A is configured with Ta = 20 ms and told
/// `remote` as the peer's `a=ice-pacing` (the outer `None`: never told).
fn check_gaps_with_remote_pacing(remote: Option<Option<Duration>>) -> (Duration, Vec<Duration>) {
    let mut net = Net::new();
    // Only the last addresses work, so most pairs need checking.
    net.filter = Some(Box::new(|_, d| {
        d.ip() != ip("198.51.100.3") && d.ip() != ip("203.0.113.3")
    }));
    let ips_a = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let ips_b = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    let config = ice_core::AgentConfig {
        ta: Duration::from_millis(20),
        ..Default::default()
    };
    let a = net.add_agent("A", &ips_a, config, 93, None);
    let b = net.add_agent("B", &ips_b, controlled(), 94, None);
    if let Some(proposed) = remote {
        net.agent(a).set_remote_pacing(proposed);
    }
    net.connect(a, b);
    add_hosts(&mut net, a, 1, &ips_a, 5000);
    add_hosts(&mut net, b, 1, &ips_b, 6000);
    assert!(net.run_until(Duration::from_secs(10), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let times = check_times(&net, a);
    assert!(times.len() >= 5, "{times:?}");
    let gaps = times.windows(2).map(|w| w[1] - w[0]).collect();
    (net.agent_ref(a).ta(), gaps)
}

/// RFC 8445 §14.2: both agents pace at the higher of the two proposed Ta values, and a peer
/// that proposes none counts as proposing 50 ms.
#[test]
fn ta_is_the_higher_of_the_two_proposals() {
    let ms = Duration::from_millis;
    for (remote, want) in [
        (None, ms(20)),                 // the peer's proposal unknown: the configured Ta
        (Some(None), ms(50)),           // the peer proposed nothing: the default counts
        (Some(Some(ms(10))), ms(20)),   // ours is higher
        (Some(Some(ms(120))), ms(120)), // theirs is higher
    ] {
        let (ta, gaps) = check_gaps_with_remote_pacing(remote);
        assert_eq!(ta, want, "{remote:?}");
        assert!(gaps.iter().all(|g| *g >= want), "{remote:?}: {gaps:?}");
        // Paced at Ta, not slower: the checks of the burst go out one Ta apart.
        assert_eq!(gaps.iter().min(), Some(&want), "{remote:?}: {gaps:?}");
    }
}

/// With no usable pair the agents do not fail while more candidates may come; they fail
/// once end-of-candidates has arrived and every pair is done (RFC 8838 §8).
#[test]
fn no_usable_pair_fails_only_after_end_of_candidates() {
    let mut net = Net::new();
    net.hold_signals = true;
    // Everything between A and B is lost.
    net.filter = Some(Box::new(|_, _| true));
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        101,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 102, None);
    net.connect(a, b);
    let s = add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    // Deliver the candidates but keep the end-of-candidates indications back.
    net.run_for(Duration::from_millis(10));
    let (candidates, eoc): (Vec<_>, Vec<_>) = std::mem::take(&mut net.held)
        .into_iter()
        .partition(|(_, s)| matches!(s, Signal::Candidate(..)));
    net.held = candidates;
    net.release_signals();
    net.hold_signals = true;
    net.run_for(Duration::from_secs(60));
    for node in [a, b] {
        assert_eq!(
            net.state(node),
            ConnectionState::Checking,
            "no failure without end-of-candidates"
        );
        let pairs = net.agent_ref(node).pairs(s);
        assert!(
            pairs.iter().all(|p| p.state == ice_core::PairState::Failed),
            "every check timed out"
        );
    }
    net.held = eoc;
    net.release_signals();
    net.run_for(Duration::from_millis(100));
    for node in [a, b] {
        assert_eq!(net.state(node), ConnectionState::Failed);
        assert_eq!(
            net.agent_ref(node).checklist_state(s),
            Some(CheckListState::Failed)
        );
    }
}

/// With end-of-candidates known from the start, failure comes when the last check times
/// out (39.5 s with the RFC 8489 defaults), not earlier.
#[test]
fn failure_waits_for_the_last_check() {
    let mut net = Net::new();
    net.filter = Some(Box::new(|_, _| true));
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        111,
        None,
    );
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), 112, None);
    net.connect(a, b);
    add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    assert!(net.run_until(Duration::from_secs(60), |n| n.state(a)
        == ConnectionState::Failed));
    let failed = net.reached(a, ConnectionState::Failed).unwrap();
    assert!(
        failed >= Duration::from_millis(39_500),
        "failed at {failed:?}"
    );
    assert!(failed < Duration::from_secs(41), "failed at {failed:?}");
}

/// Remote candidates after end-of-candidates are ignored (RFC 8838 §14); local candidates
/// after our end-of-candidates are refused (§13).
#[test]
fn nothing_after_end_of_candidates() {
    let mut p = host_pair(1, 121);
    let (a, s) = (p.a, p.stream);
    p.net.run_for(Duration::from_millis(100));
    let now = p.net.now;
    let line = "candidate:9 1 udp 2130706431 203.0.113.9 7000 typ host";
    assert_eq!(
        p.net.agent(a).add_remote_candidate_str(now, s, line),
        Err(ice_core::RemoteCandidateError::AfterEndOfCandidates)
    );
    let host = common::sa("198.51.100.1:5999");
    assert_eq!(
        p.net
            .agent(a)
            .add_host_candidate(now, s, 1, host, TransportProtocol::Udp),
        Err(ice_core::AddCandidateError::AfterEndOfCandidates)
    );
}

/// Gathering never holds checks back: with a STUN server that never answers, the agents
/// connect over their host candidates while gathering is still running; gathering completes
/// when the Binding transaction times out.
#[test]
fn gathering_does_not_block_checks() {
    let mut net = Net::new();
    net.add_node("silent-stun", &["192.0.2.10"], Machine::Sink, None);
    let config = |role| ice_core::AgentConfig {
        role,
        stun_servers: vec![sa("192.0.2.10:3478")],
        ..ice_core::AgentConfig::default()
    };
    let a = net.add_agent(
        "A",
        &["198.51.100.1"],
        config(ice_core::Role::Controlling),
        281,
        None,
    );
    let b = net.add_agent(
        "B",
        &["203.0.113.1"],
        config(ice_core::Role::Controlled),
        282,
        None,
    );
    net.connect(a, b);
    add_hosts(&mut net, a, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, 1, &["203.0.113.1"], 6000);
    assert!(net.run_until(Duration::from_secs(1), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    assert_eq!(
        net.agent_ref(a).gathering_state(),
        ice_core::GatheringState::Gathering
    );
    assert!(net.run_until(Duration::from_secs(45), |n| {
        n.agent_ref(a).gathering_state() == ice_core::GatheringState::Complete
    }));
    assert!(
        net.elapsed() >= Duration::from_millis(39_500),
        "after the transaction timeout"
    );
    assert_eq!(net.state(a), ConnectionState::Completed);
}
