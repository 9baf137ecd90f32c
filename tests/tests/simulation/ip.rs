//! IPv6-only and dual-stack hosts.

use std::time::Duration;

use floe_tests::sim::{Call, NatKind, PathType, Profile, Spec, Stack};
use ice_core::{CandidateType, Event, GatheringState};

fn call(stack: Stack, seed: u64) -> Call {
    let mut call =
        Call::new(Spec::v4(NatKind::None, NatKind::None, Profile::clean(), seed).with_stack(stack));
    assert!(call.connect(Duration::from_secs(10)).is_some(), "connects");
    call
}

/// Candidates an agent announced, of one type.
fn announced(call: &Call, i: usize, kind: CandidateType) -> Vec<std::net::SocketAddr> {
    call.side(i)
        .log
        .iter()
        .filter_map(|(_, e)| match e {
            Event::LocalCandidate { candidate, .. } if candidate.kind == kind => {
                Some(candidate.address)
            }
            _ => None,
        })
        .collect()
}

/// IPv6 everywhere, no NAT: host to host over IPv6. The STUN server reflects the host
/// address, so no server-reflexive candidate is announced (it would be redundant).
#[test]
fn ipv6_only_hosts_connect_host_to_host() {
    let mut call = call(Stack::V6Only, 31);
    assert_eq!(call.path(), Some(PathType::Host));
    for i in 0..2 {
        let (local, remote) = call.selected(i).expect("selected");
        assert!(local.address.is_ipv6() && remote.address.is_ipv6());
        assert_eq!(call.agent(i).gathering_state(), GatheringState::Complete);
        assert!(announced(&call, i, CandidateType::ServerReflexive).is_empty());
    }
    assert!(
        call.sim.node(call.stun).machine().stats().success >= 2,
        "both asked the STUN server"
    );
    let e = call.exchange("v6", 20, Duration::from_millis(20));
    assert_eq!((e.received_by_a, e.received_by_b, e.off_path), (20, 20, 0));
}

/// An IPv6-only host can only use an IPv6 relayed address, from an IPv6-only TURN server:
/// ice-core asks for it with REQUESTED-ADDRESS-FAMILY (RFC 8656 §7.1).
#[test]
fn ipv6_only_hosts_gather_ipv6_relayed_candidates() {
    let call = call(Stack::V6Only, 32);
    for i in 0..2 {
        let relayed = announced(&call, i, CandidateType::Relayed);
        assert!(
            relayed.iter().any(|a| a.is_ipv6()),
            "{}: relayed {relayed:?}; TURN server errors {:?}",
            call.side(i).name,
            call.sim.node(call.turn).server().stats().errors
        );
    }
}

/// Dual-stack hosts with public IPv4 and IPv6 addresses: both host pairs work, and RFC 8421
/// gives the IPv6 host candidate the higher local preference, so the IPv6 pair wins.
#[test]
fn dual_stack_public_hosts_select_the_ipv6_host_pair() {
    let call = call(Stack::DualStack(NatKind::None, NatKind::None), 33);
    assert_eq!(call.path(), Some(PathType::Host));
    for i in 0..2 {
        let hosts: Vec<_> = call
            .agent(i)
            .local_candidates(call.side(i).stream)
            .into_iter()
            .filter(|c| c.kind == CandidateType::Host)
            .collect();
        let v6 = hosts
            .iter()
            .find(|c| c.address.is_ipv6())
            .expect("an IPv6 host candidate");
        let v4 = hosts
            .iter()
            .find(|c| c.address.is_ipv4())
            .expect("an IPv4 host candidate");
        assert!(v6.priority > v4.priority, "RFC 8421: IPv6 first");
        let (local, remote) = call.selected(i).expect("selected");
        assert_eq!(local.address, v6.address);
        assert!(remote.address.is_ipv6() && remote.kind == CandidateType::Host);
    }
}

/// IPv4 behind symmetric NATs (only the relay would work) plus public IPv6: the IPv6 host
/// pair wins, and the data never touches the relay.
#[test]
fn dual_stack_behind_symmetric_nats_selects_the_ipv6_host_pair() {
    let mut call = call(Stack::DualStack(NatKind::Symmetric, NatKind::Symmetric), 34);
    assert_eq!(call.path(), Some(PathType::Host));
    for i in 0..2 {
        let (local, remote) = call.selected(i).expect("selected");
        assert!(local.address.is_ipv6() && remote.address.is_ipv6());
        // The IPv4 side gathered what it could: a server-reflexive and a relayed candidate.
        assert!(!announced(&call, i, CandidateType::ServerReflexive).is_empty());
        assert!(
            announced(&call, i, CandidateType::Relayed)
                .iter()
                .any(|a| a.is_ipv4())
        );
    }
    let e = call.exchange("dual", 20, Duration::from_millis(20));
    assert_eq!((e.received_by_a, e.received_by_b, e.off_path), (20, 20, 0));
}
