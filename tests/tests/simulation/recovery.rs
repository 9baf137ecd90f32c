//! When the path breaks mid-call: NAT mappings that expire, a NAT that reboots. Consent
//! freshness (RFC 7675) notices, an ICE restart (RFC 8445 §9) repairs.

use std::time::Duration;

use floe_tests::sim::{Call, NatKind, PathType, Profile, Spec};
use ice_core::{ConnectionState, Event, SendError};
use netsim::{DropReason, NatConfig};

const SECOND: Duration = Duration::from_secs(1);

/// Sends one message each way every second for `seconds`; returns how many arrived at A and
/// at B.
fn talk(call: &mut Call, tag: &str, seconds: usize) -> (usize, usize) {
    let e = call.exchange(tag, seconds, SECOND);
    (e.received_by_a, e.received_by_b)
}

fn connected(spec: Spec) -> Call {
    let mut call = Call::new(spec);
    assert!(
        call.connect(Duration::from_secs(10)).is_some(),
        "the call connects"
    );
    call
}

/// A (controlling) behind a symmetric NAT talks to B (no NAT) on a peer-reflexive path. The
/// NAT mapping the call uses expires: A's next datagrams leave from a new mapping with another
/// random port, while B's go to the old one and are dropped. B's consent checks get no answer:
/// `disconnected` after 8 s, consent lost and `failed` at 30 s. An ICE restart finds the new
/// mapping and data flows again.
#[test]
fn expired_mapping_is_caught_by_consent_and_repaired_by_an_ice_restart() {
    let mut call = connected(Spec::v4(
        NatKind::Symmetric,
        NatKind::None,
        Profile::clean(),
        11,
    ));
    assert_eq!(call.path(), Some(PathType::Prflx));
    assert_eq!(talk(&mut call, "before", 5), (5, 5));

    let (_, old_remote) = call.selected(1).expect("B's selected pair");
    let nat = call.a.nat.expect("A's NAT");
    assert!(
        call.sim.nat_mut(nat).expire_mapping(old_remote.address),
        "the call's mapping"
    );
    let expired_at = call.elapsed();
    let checks_before = [
        call.agent(0).stats().checks_sent,
        call.agent(1).stats().checks_sent,
    ];

    // Keep talking; B notices.
    let deadline = call.sim.now() + Duration::from_secs(40);
    let mut received_by_a_after = 0;
    while call.state(1) != ConnectionState::Failed && call.sim.now() < deadline {
        received_by_a_after += talk(&mut call, "during", 1).0;
    }
    let disconnected = call
        .b
        .last_reached(ConnectionState::Disconnected)
        .expect("disconnected")
        - expired_at;
    let failed = call
        .b
        .last_reached(ConnectionState::Failed)
        .expect("failed")
        - expired_at;
    assert!(
        disconnected <= Duration::from_secs(8),
        "disconnected after {disconnected:?}"
    );
    assert!(
        failed > Duration::from_secs(24) && failed <= Duration::from_secs(31),
        "failed after {failed:?}"
    );
    assert!(call.b.count(|e| matches!(e, Event::ConsentLost { .. })) == 1);
    let now = call.sim.now();
    let (node, stream) = (call.b.node, call.b.stream);
    assert_eq!(
        call.sim.node_mut(node).send(now, stream, 1, b"x"),
        Err(SendError::ConsentExpired),
        "nothing is sent without consent"
    );
    // B's datagrams died at A's NAT: there was no mapping for them any more.
    assert!(call.sim.nat(nat).stats().dropped(DropReason::NoMapping) > 0);
    assert!(
        received_by_a_after < 8,
        "B's data stopped reaching A: {received_by_a_after}"
    );

    // The application restarts ICE on both sides.
    call.restart();
    let restarted_at = call.elapsed();
    let repaired = call.run_until(call.sim.now() + Duration::from_secs(10), |c| {
        c.both(ConnectionState::Completed)
    });
    assert!(
        repaired,
        "the restart connects again: {:?} {:?}",
        call.state(0),
        call.state(1)
    );
    assert!(call.elapsed() - restarted_at < Duration::from_secs(2));
    let (_, new_remote) = call.selected(1).expect("a new pair");
    assert_ne!(
        new_remote.address, old_remote.address,
        "a new mapping, a new pair"
    );
    assert_eq!(call.path(), Some(PathType::Prflx));
    for (i, before) in checks_before.into_iter().enumerate() {
        assert!(call.agent(i).stats().checks_sent > before, "new checks");
        let selected_after = call
            .side(i)
            .log
            .iter()
            .filter(|(t, e)| *t >= restarted_at && matches!(e, Event::SelectedPair { .. }));
        assert_eq!(selected_after.count(), 1);
    }
    // B had failed: its restart goes back to checking before it completes again (W3C).
    let b_states: Vec<ConnectionState> = call
        .b
        .log
        .iter()
        .filter(|(t, _)| *t >= restarted_at)
        .filter_map(|(_, e)| match e {
            Event::ConnectionStateChanged(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        b_states.first(),
        Some(&ConnectionState::Checking),
        "{b_states:?}"
    );
    assert_eq!(
        b_states.last(),
        Some(&ConnectionState::Completed),
        "{b_states:?}"
    );
    assert_eq!(talk(&mut call, "after", 10), (10, 10), "data flows again");
}

/// On a cone NAT that preserves ports, an expired mapping comes back on the same port with
/// the next outbound datagram: the call goes on, without a restart.
#[test]
fn expired_mapping_of_a_port_preserving_cone_nat_is_harmless() {
    let mut call = connected(Spec::v4(
        NatKind::PortRestricted,
        NatKind::None,
        Profile::clean(),
        12,
    ));
    assert_eq!(call.path(), Some(PathType::Srflx));
    let (_, remote) = call.selected(1).expect("B's selected pair");
    let nat = call.a.nat.expect("A's NAT");
    assert!(call.sim.nat_mut(nat).expire_mapping(remote.address));
    let since = [call.a.log.len(), call.b.log.len()];
    assert_eq!(talk(&mut call, "through", 60), (60, 60));
    let now = call.sim.now();
    assert!(
        call.sim
            .nat(nat)
            .mappings(now)
            .any(|m| m.external() == remote.address),
        "the mapping is back on the same port"
    );
    for (i, since) in since.into_iter().enumerate() {
        assert_eq!(call.state(i), ConnectionState::Completed);
        let changes: Vec<_> = call.side(i).log[since..]
            .iter()
            .filter(|(_, e)| matches!(e, Event::ConnectionStateChanged(_)))
            .collect();
        assert!(
            changes.is_empty(),
            "{} noticed: {changes:?}",
            call.side(i).name
        );
    }
}

/// A direct call (A behind a symmetric NAT, B behind a full cone: peer-reflexive) runs for
/// `minutes`; then B's NAT reboots as a symmetric NAT (all mappings gone, new random ports).
/// Symmetric to symmetric only works through the relay: both agents lose consent, restart,
/// and must fall back to a relayed pair.
fn reboot_into_symmetric_then_restart(minutes: usize) {
    let mut call = connected(Spec::v4(
        NatKind::Symmetric,
        NatKind::FullCone,
        Profile::clean(),
        13,
    ));
    assert_eq!(call.path(), Some(PathType::Prflx));
    for m in 0..minutes {
        let (a, b) = talk(&mut call, &format!("minute {m}"), 60);
        assert_eq!((a, b), (60, 60), "minute {m}");
    }
    let nat = call.b.nat.expect("B's NAT");
    call.sim.nat_mut(nat).set_config(NatConfig::symmetric());
    call.sim.nat_mut(nat).flush_mappings();
    let lost = call.run_until(call.sim.now() + Duration::from_secs(40), |c| {
        c.state(0) == ConnectionState::Failed || c.state(1) == ConnectionState::Failed
    });
    assert!(lost, "consent notices the reboot");

    call.restart();
    let repaired = call.run_until(call.sim.now() + Duration::from_secs(30), |c| {
        c.both(ConnectionState::Completed)
    });
    assert!(
        repaired,
        "no relayed pair after the reboot; TURN allocations left: {}",
        call.sim.node(call.turn).server().allocation_count()
    );
    assert_eq!(call.path(), Some(PathType::Relay));
    assert_eq!(
        talk(&mut call, "after", 10),
        (10, 10),
        "data flows through the relay"
    );
}

#[test]
fn nat_reboot_one_minute_in_falls_back_to_the_relay() {
    reboot_into_symmetric_then_restart(1);
}

/// The same fifteen minutes in. A's relayed candidate is never used; behind A's symmetric
/// NAT the mapping towards the TURN server would lapse after 2 minutes, so the TURN client
/// keeps it alive with Binding indications every 15 s. After the reboot, B's own allocation
/// is bound to a 5-tuple that no longer exists: its next request gets 437, the allocation
/// expires, ice-core retires that relayed candidate (failing its pairs) and allocates again
/// from the same host candidate, and the restart finds a working relay.
#[test]
fn nat_reboot_fifteen_minutes_in_falls_back_to_the_relay() {
    reboot_into_symmetric_then_restart(15);
}
