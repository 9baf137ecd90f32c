//! Two hours of virtual time: refreshes and consent keep a call alive, and nothing grows.

use std::time::Duration;

use floe_tests::sim::{Call, NatKind, PathType, Profile, Spec};
use ice_core::{ConnectionState, Event};
use turn_proto::server::ServerStats;

/// What must not grow.
#[derive(Debug, PartialEq, Eq)]
struct Sizes {
    pairs: [usize; 2],
    local_candidates: [usize; 2],
    remote_candidates: [usize; 2],
    nat_mappings: [usize; 2],
    turn_allocations: usize,
    turn_permissions: usize,
    turn_channels: usize,
}

struct Snapshot {
    at: Duration,
    sizes: Sizes,
    turn: ServerStats,
    cached_responses: usize,
    consent_checks: [u64; 2],
    checks_sent: [u64; 2],
    drops: u64,
}

fn snapshot(call: &Call) -> Snapshot {
    let now = call.sim.now();
    let per_side = |f: &dyn Fn(usize) -> usize| [f(0), f(1)];
    let nats = |i: usize| {
        call.side(i)
            .nat
            .map_or(0, |n| call.sim.nat(n).mappings(now).count())
    };
    let turn = call.sim.node(call.turn).server().stats();
    Snapshot {
        at: call.elapsed(),
        sizes: Sizes {
            pairs: per_side(&|i| call.agent(i).pairs(call.side(i).stream).len()),
            local_candidates: per_side(&|i| {
                call.agent(i).local_candidates(call.side(i).stream).len()
            }),
            remote_candidates: per_side(&|i| {
                call.agent(i).remote_candidates(call.side(i).stream).len()
            }),
            nat_mappings: per_side(&nats),
            turn_allocations: turn.allocations,
            turn_permissions: turn.permissions,
            turn_channels: turn.channels,
        },
        cached_responses: turn.cached_responses,
        turn,
        consent_checks: [0, 1].map(|i| call.agent(i).stats().consent_checks_sent),
        checks_sent: [0, 1].map(|i| call.agent(i).stats().checks_sent),
        drops: call.sim.stats().dropped_total(),
    }
}

/// Connects, talks for ten minutes (one message each way per second), takes a snapshot, talks
/// for another 110 minutes checking every ten minutes that all data arrived, and compares.
fn two_hours(a: NatKind, b: NatKind, seed: u64, path: PathType) -> (Snapshot, Snapshot) {
    let mut call = Call::new(Spec::v4(a, b, Profile::clean(), seed));
    let connected = call.connect(Duration::from_secs(10)).expect("connects");
    assert_eq!(call.path(), Some(path));
    let events_at_connect = [call.a.log.len(), call.b.log.len()];
    let mut first = None;
    for block in 0..12 {
        let e = call.exchange(&format!("block {block}"), 600, Duration::from_secs(1));
        assert_eq!(
            (e.received_by_a, e.received_by_b, e.off_path),
            (600, 600, 0),
            "block {block} ({:?})",
            call.elapsed()
        );
        if block == 0 {
            first = Some(snapshot(&call));
        }
    }
    let (first, last) = (first.expect("first snapshot"), snapshot(&call));
    assert!(last.at >= Duration::from_secs(2 * 3600), "{:?}", last.at);

    // The call never wavered: no state change, no new selection, after connecting.
    for (i, side) in [&call.a, &call.b].into_iter().enumerate() {
        assert_eq!(call.state(i), ConnectionState::Completed);
        let later: Vec<_> = side.log[events_at_connect[i]..]
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::ConnectionStateChanged(_) | Event::SelectedPair { .. }
                )
            })
            .collect();
        assert!(
            later.is_empty(),
            "{}: {later:?} after connecting at {connected:?}",
            side.name
        );
    }
    (first, last)
}

/// What holds for every long run.
fn common_assertions(first: &Snapshot, last: &Snapshot) {
    let minutes = (last.at - first.at).as_secs() / 60;
    assert!(minutes >= 109, "{minutes}");
    // Nothing grows.
    assert_eq!(last.sizes.pairs, first.sizes.pairs);
    assert_eq!(last.sizes.local_candidates, first.sizes.local_candidates);
    assert_eq!(last.sizes.remote_candidates, first.sizes.remote_candidates);
    assert!(last.sizes.turn_allocations <= first.sizes.turn_allocations);
    assert!(last.sizes.turn_permissions <= first.sizes.turn_permissions);
    assert!(last.sizes.turn_channels <= first.sizes.turn_channels);
    assert!(
        last.cached_responses <= 8,
        "cached responses: {}",
        last.cached_responses
    );
    for i in 0..2 {
        assert!(last.sizes.nat_mappings[i] <= 2, "{:?}", last.sizes);
        // No more connectivity checks once completed; consent checks every 4 to 6 s
        // (RFC 7675 §5.1).
        assert_eq!(last.checks_sent[i], first.checks_sent[i]);
        let consent = last.consent_checks[i] - first.consent_checks[i];
        let (lo, hi) = (minutes * 60 / 6, minutes * 60 / 4);
        assert!(
            (lo..=hi).contains(&consent),
            "{consent} consent checks in {minutes} min"
        );
    }
    // The steady state drops nothing anywhere in the network.
    assert_eq!(
        last.drops, first.drops,
        "datagrams dropped after the first ten minutes"
    );
}

/// A relayed call (symmetric NATs on both sides): the TURN allocation (600 s), its
/// permissions (300 s) and its channel (600 s) must all be refreshed many times over two
/// hours, or the data would stop or fall back to Send/Data indications.
#[test]
fn relayed_call_lives_two_hours_and_nothing_grows() {
    let (first, last) = two_hours(NatKind::Symmetric, NatKind::Symmetric, 21, PathType::Relay);
    common_assertions(&first, &last);
    let (t0, t1) = (&first.turn, &last.turn);
    assert!(
        last.sizes.turn_allocations >= 1,
        "the relay in use is alive"
    );
    assert!(last.sizes.turn_channels >= 1 && last.sizes.turn_permissions >= 1);
    assert_eq!(
        t1.data_indications, t0.data_indications,
        "the channel never lapsed"
    );
    let relayed =
        (t1.to_peer.packets + t1.to_client.packets) - (t0.to_peer.packets + t0.to_client.packets);
    assert!(
        relayed >= 2 * 6600,
        "all data went through the relay: {relayed}"
    );
    assert_eq!(
        t1.drops.no_permission, t0.drops.no_permission,
        "no permission lapsed"
    );
    assert_eq!(t1.drops.no_channel, t0.drops.no_channel);
    // At least one Refresh per allocation lifetime of the allocation in use.
    assert!(
        t1.success_responses - t0.success_responses >= 11,
        "{t0:?}\n{t1:?}"
    );
}

/// A direct call between port-restricted cones: consent alone keeps the NAT mappings alive.
#[test]
fn direct_call_lives_two_hours_and_nothing_grows() {
    let (first, last) = two_hours(
        NatKind::PortRestricted,
        NatKind::PortRestricted,
        22,
        PathType::Srflx,
    );
    common_assertions(&first, &last);
    assert_eq!(
        last.turn.to_peer.packets, first.turn.to_peer.packets,
        "nothing went through the relay"
    );
}
