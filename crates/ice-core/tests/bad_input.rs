//! Hostile and broken input: refused or dropped, counted, and never changing state.

mod common;

use common::*;
use ice_core::{Agent, AgentConfig, ConnectionState, Input, Received, StreamId, TransportProtocol};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::{ErrorCode, IceControlling, Priority, Username};
use stun_proto::{IntegrityKey, Message, MessageBuilder, MessageType, TransactionId};

const LOCAL: &str = "203.0.113.1:6000";

/// A controlled agent with one host candidate and the peer's credentials.
fn agent() -> (Agent, StreamId, Instant) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut agent = Agent::new(common::controlled(), 7, now);
    let s = agent.add_stream(1).unwrap();
    agent
        .add_host_candidate(now, s, 1, sa(LOCAL), TransportProtocol::Udp)
        .unwrap();
    agent.finish_host_candidates(now);
    agent
        .set_remote_credentials(now, "peer", "peerpasswordpeerpassword")
        .unwrap();
    while agent.poll_event().is_some() {}
    (agent, s, now)
}

/// A check with the given USERNAME, signed with `key` (none: no MESSAGE-INTEGRITY).
fn check(username: &str, key: Option<&IntegrityKey>, tid: u8) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new([tid; 12]),
    )
    .unwrap();
    b.add(&Username::new(username).unwrap()).unwrap();
    b.add(&Priority(1_862_270_975)).unwrap();
    b.add(&IceControlling(1)).unwrap();
    if let Some(key) = key {
        b.add_message_integrity(key).unwrap();
    }
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

fn input<'a>(from: SocketAddr, data: &'a [u8]) -> Input<'a> {
    Input {
        transport: TransportProtocol::Udp,
        source: from,
        destination: sa(LOCAL),
        data,
    }
}

/// What must not change: candidates, pairs, states, role.
fn snapshot(a: &Agent, s: StreamId) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        a.remote_candidates(s),
        a.pairs(s),
        a.connection_state(),
        a.role(),
        a.checklist_state(s)
    )
}

fn error_code(t: &ice_core::Transmit) -> u16 {
    let msg = Message::parse(&t.payload).unwrap();
    assert!(!msg.has_message_integrity(), "400/401 carry no integrity");
    msg.get::<ErrorCode<'_>>().unwrap().unwrap().code()
}

#[test]
fn unauthenticated_checks_are_answered_and_change_nothing() {
    let (mut agent, s, now) = agent();
    let ours = agent.local_credentials().clone();
    let right = IntegrityKey::short_term(&ours.pwd);
    let wrong = IntegrityKey::short_term("notthepasswordnotthepassword");
    let from = sa("198.51.100.77:1234");
    let before = snapshot(&agent, s);
    let cases: [(Vec<u8>, u16); 4] = [
        (check("wrong:peer", Some(&right), 1), 401),
        (check(&format!("{}:peer", ours.ufrag), Some(&wrong), 2), 401),
        (check(&format!("{}:peer", ours.ufrag), None, 3), 400),
        (check("nocolon", Some(&right), 4), 401),
    ];
    for (bytes, code) in &cases {
        assert_eq!(
            agent.handle_input(now, input(from, bytes)),
            Received::Consumed
        );
        let t = agent.poll_transmit().expect("an error response");
        assert_eq!(t.destination, from);
        assert_eq!(error_code(&t), *code);
        assert!(agent.poll_transmit().is_none());
        assert!(agent.poll_event().is_none(), "no event");
        assert_eq!(snapshot(&agent, s), before);
    }
    let stats = agent.stats();
    assert_eq!(
        (
            stats.unauthenticated,
            stats.bad_requests,
            stats.checks_answered
        ),
        (3, 1, 0)
    );
    // The same check with the right credentials is answered and learnt.
    let good = check(&format!("{}:peer", ours.ufrag), Some(&right), 5);
    agent.handle_input(now, input(from, &good));
    let t = agent.poll_transmit().unwrap();
    assert!(
        Message::parse(&t.payload)
            .unwrap()
            .verify_integrity(&right)
            .is_ok()
    );
    assert_ne!(
        snapshot(&agent, s),
        before,
        "an authenticated check does change state"
    );
}

#[test]
fn malformed_stun_and_stray_data_are_dropped() {
    let (mut agent, s, now) = agent();
    let before = snapshot(&agent, s);
    let from = sa("198.51.100.77:1234");
    let mut bad_fingerprint = check(
        &format!("{}:peer", agent.local_credentials().ufrag),
        None,
        9,
    );
    let n = bad_fingerprint.len();
    bad_fingerprint[n - 1] ^= 0xff;
    let inputs: [&[u8]; 4] = [
        &[0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42],
        &[0, 1, 0, 0],
        &bad_fingerprint,
        &[1; 40],
    ];
    for data in inputs {
        assert_eq!(
            agent.handle_input(now, input(from, data)),
            Received::Consumed
        );
        assert!(agent.poll_transmit().is_none());
    }
    assert_eq!(
        agent.handle_input(now, input(from, b"\x80application data")),
        Received::NotMine
    );
    // Not our socket at all.
    let elsewhere = Input {
        destination: sa("203.0.113.1:7777"),
        ..input(from, &[0, 1, 0, 0])
    };
    assert_eq!(agent.handle_input(now, elsewhere), Received::NotMine);
    let stats = agent.stats();
    assert_eq!((stats.malformed, stats.data_dropped), (4, 1));
    assert_eq!(snapshot(&agent, s), before);
}

/// A flood of authenticated checks from ever new addresses: every one is answered, but the
/// learnt candidates and pairs stay within their caps.
#[test]
fn flood_of_checks_stays_within_caps() {
    let (mut agent, s, now) = agent();
    let ours = agent.local_credentials().clone();
    let key = IntegrityKey::short_term(&ours.pwd);
    let config = AgentConfig::default();
    for i in 0..10_000u32 {
        let mut buf = [0u8; 256];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::BINDING_REQUEST,
            TransactionId::new([(i % 251) as u8; 12]),
        )
        .unwrap();
        b.add(&Username::new(&format!("{}:peer", ours.ufrag)).unwrap())
            .unwrap();
        b.add(&Priority(1_862_270_975)).unwrap();
        b.add(&IceControlling(1)).unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_fingerprint().unwrap();
        let host = std::net::Ipv4Addr::from(0xC633_6400 + i / 50_000); // 198.51.100.0 upwards
        let from = SocketAddr::new(host.into(), 1024 + (i % 50_000) as u16);
        agent.handle_input(now, input(from, b.finish()));
        while agent.poll_transmit().is_some() {}
        while agent.poll_event().is_some() {}
    }
    let stats = agent.stats();
    assert_eq!(stats.checks_answered, 10_000);
    let remote = agent.remote_candidates(s).len();
    assert!(
        remote <= config.max_peer_reflexive,
        "{remote} learnt candidates"
    );
    assert!(agent.pairs(s).len() <= config.max_pairs);
    assert_eq!(stats.prflx_capped, 10_000 - remote as u64);
    assert_ne!(agent.connection_state(), ConnectionState::Failed);
}

proptest! {
    /// Arbitrary datagrams, STUN-looking or not, never panic and never create candidates or
    /// pairs.
    #[test]
    fn arbitrary_datagrams_change_nothing(data in proptest::collection::vec(any::<u8>(), 0..200), stunish in any::<bool>()) {
        let (mut agent, s, now) = agent();
        let before = snapshot(&agent, s);
        let mut data = data;
        if stunish && data.len() >= 20 {
            data[0] &= 0x01;
            data[4..8].copy_from_slice(&stun_proto::MAGIC_COOKIE.to_be_bytes());
            let len = (data.len() - 20) as u16 & !3;
            data.truncate(20 + usize::from(len));
            data[2..4].copy_from_slice(&len.to_be_bytes());
        }
        let _ = agent.handle_input(now, input(sa("198.51.100.77:1234"), &data));
        agent.handle_timeout(now + Duration::from_millis(10));
        prop_assert_eq!(snapshot(&agent, s), before);
    }
}
