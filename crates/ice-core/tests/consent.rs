//! Consent freshness (RFC 7675) and keepalives (RFC 8445 §11).

mod common;

use common::*;
use ice_core::{ConnectionState, Event, SendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn consent_checks_are_randomised_around_five_seconds() {
    let mut p = host_pair(1, 151);
    let (a, b) = (p.a, p.b);
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let start = p.net.elapsed();
    p.net.run_for(Duration::from_secs(60));
    let consent: Vec<Duration> = check_times(&p.net, a)
        .into_iter()
        .filter(|t| *t > start)
        .collect();
    assert!(consent.len() >= 10, "{consent:?}");
    let gaps: Vec<Duration> = consent.windows(2).map(|w| w[1] - w[0]).collect();
    for g in &gaps {
        assert!(
            *g >= Duration::from_secs(4) && *g <= Duration::from_secs(6),
            "RFC 7675 §5.1 bounds: {gaps:?}"
        );
    }
    let mut distinct = gaps.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > gaps.len() / 2,
        "intervals are randomised: {gaps:?}"
    );
    assert_eq!(p.net.state(a), ConnectionState::Completed, "consent kept");
    assert_eq!(
        p.net.agent_ref(a).stats().keepalives_sent,
        0,
        "consent checks are traffic enough"
    );
}

/// The peer goes silent: disconnected after 8 s, consent lost and failed after 30 s;
/// sending stops.
#[test]
fn consent_lost_after_thirty_seconds_of_silence() {
    let mut p = host_pair(1, 161);
    let (a, b, s) = (p.a, p.b, p.stream);
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let silent = Arc::new(AtomicBool::new(false));
    let flag = silent.clone();
    p.net.filter = Some(Box::new(move |_, _| flag.load(Ordering::Relaxed)));
    silent.store(true, Ordering::Relaxed);
    let t0 = p.net.elapsed();
    assert!(p.net.run_until(Duration::from_secs(40), |n| n.state(a)
        == ConnectionState::Failed));
    let disconnected = p.net.reached(a, ConnectionState::Disconnected).unwrap() - t0;
    let failed = p.net.reached(a, ConnectionState::Failed).unwrap() - t0;
    // Consent was last refreshed at most one interval (6 s) before the silence.
    assert!(
        disconnected <= Duration::from_secs(8),
        "disconnected after {disconnected:?}"
    );
    assert!(
        failed > Duration::from_secs(24) && failed <= Duration::from_secs(30),
        "failed after {failed:?}"
    );
    assert!(
        p.net
            .events(a)
            .any(|e| matches!(e, Event::ConsentLost { .. }))
    );
    let now = p.net.now;
    assert_eq!(
        p.net.agent(a).send(now, s, 1, b"x"),
        Err(SendError::ConsentExpired)
    );
    // And nothing more goes out on the path.
    let before = p.net.log.iter().filter(|(_, n, _)| *n == a).count();
    p.net.run_for(Duration::from_secs(30));
    let after = p.net.log.iter().filter(|(_, n, _)| *n == a).count();
    assert_eq!(before, after, "no traffic after consent expired");
}

/// A short silence (a few seconds) shows as disconnected and recovers.
#[test]
fn short_silence_recovers() {
    let mut p = host_pair(1, 171);
    let (a, b) = (p.a, p.b);
    assert!(p.net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let silent = Arc::new(AtomicBool::new(true));
    let flag = silent.clone();
    p.net.filter = Some(Box::new(move |_, _| flag.load(Ordering::Relaxed)));
    assert!(p.net.run_until(Duration::from_secs(15), |n| n.state(a)
        == ConnectionState::Disconnected));
    silent.store(false, Ordering::Relaxed);
    assert!(p.net.run_until(Duration::from_secs(10), |n| n.state(a)
        == ConnectionState::Completed));
}

/// An ICE-lite agent sends no consent checks; it keeps NAT bindings with Binding
/// indications every Tr = 15 s (RFC 8445 §11), and treats the peer's checks as liveness.
#[test]
fn lite_keepalives() {
    let mut net = Net::new();
    let full = net.add_agent(
        "full",
        &["198.51.100.1"],
        ice_core::AgentConfig::default(),
        181,
        None,
    );
    let lite = net.add_agent(
        "lite",
        &["203.0.113.1"],
        ice_core::AgentConfig::lite(),
        182,
        None,
    );
    net.connect(full, lite);
    net.agent(full).set_remote_lite(true);
    add_hosts(&mut net, full, 1, &["198.51.100.1"], 5000);
    add_hosts(&mut net, lite, 1, &["203.0.113.1"], 6000);
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        full,
        lite,
        ConnectionState::Completed
    )));
    net.run_for(Duration::from_secs(61));
    let keepalives = net.agent_ref(lite).stats().keepalives_sent;
    assert!(
        (3..=5).contains(&keepalives),
        "{keepalives} keepalives in 61 s"
    );
    assert_eq!(net.agent_ref(lite).stats().checks_sent, 0);
    assert!(net.agent_ref(full).stats().indications_received >= 3);
    assert_eq!(
        net.state(lite),
        ConnectionState::Completed,
        "the full agent's consent checks keep it alive"
    );
}
