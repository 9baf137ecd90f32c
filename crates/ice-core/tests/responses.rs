//! Our checks' responses (RFC 8445 §7.2.5): symmetry, errors, integrity.

mod common;

use common::*;
use ice_core::{Agent, Input, PairState, Received, StreamId, TransportProtocol};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::XorMappedAddress;
use stun_proto::{IntegrityKey, Message, MessageBuilder, MessageType, TransactionId};

const LOCAL: &str = "198.51.100.1:5000";
const REMOTE: &str = "203.0.113.1:6000";
const PEER_PWD: &str = "peerpasswordpeerpassword";

/// A controlling agent with one pair, and its first check.
fn agent_with_check() -> (Agent, StreamId, Instant, Vec<u8>) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut agent = Agent::new(ice_core::AgentConfig::default(), 241, now);
    let s = agent.add_stream(1).unwrap();
    agent
        .add_host_candidate(now, s, 1, sa(LOCAL), TransportProtocol::Udp)
        .unwrap();
    agent.finish_host_candidates(now);
    agent.set_remote_credentials(now, "peer", PEER_PWD).unwrap();
    agent
        .add_remote_candidate_str(
            now,
            s,
            "candidate:1 1 udp 2130706431 203.0.113.1 6000 typ host",
        )
        .unwrap();
    agent.handle_timeout(now);
    let check = std::iter::from_fn(|| agent.poll_transmit())
        .find(|t| t.destination == sa(REMOTE))
        .expect("a check")
        .payload;
    (agent, s, now, check)
}

fn response(check: &[u8], class: MessageType, key: &IntegrityKey, error: Option<u16>) -> Vec<u8> {
    let tid: TransactionId = Message::parse(check).unwrap().transaction_id();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, class, tid).unwrap();
    match error {
        Some(code) => stun_proto::server::add_error(&mut b, code, &[]).unwrap(),
        None => {
            b.add(&XorMappedAddress(sa(LOCAL))).unwrap();
        }
    }
    b.add_message_integrity(key).unwrap();
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

fn deliver(agent: &mut Agent, now: Instant, from: SocketAddr, data: &[u8]) -> Received<'static> {
    match agent.handle_input(
        now,
        Input {
            transport: TransportProtocol::Udp,
            source: from,
            destination: sa(LOCAL),
            data,
        },
    ) {
        Received::Consumed => Received::Consumed,
        Received::NotMine => Received::NotMine,
        other => panic!("unexpected {other:?}"),
    }
}

fn state(agent: &Agent, s: StreamId) -> PairState {
    agent.pairs(s)[0].state
}

#[test]
fn success_from_the_right_address_validates_the_pair() {
    let (mut agent, s, now, check) = agent_with_check();
    let ok = response(
        &check,
        MessageType::BINDING_SUCCESS,
        &IntegrityKey::short_term(PEER_PWD),
        None,
    );
    deliver(&mut agent, now, sa(REMOTE), &ok);
    assert!(agent.pairs(s)[0].valid);
    // The controlling agent nominates it at once: the pair waits for its USE-CANDIDATE check.
    assert_eq!(state(&agent, s), PairState::Waiting);
}

/// RFC 8445 §7.2.5.2.1: a response from another address fails the pair.
#[test]
fn non_symmetric_response_fails_the_pair() {
    let (mut agent, s, now, check) = agent_with_check();
    let ok = response(
        &check,
        MessageType::BINDING_SUCCESS,
        &IntegrityKey::short_term(PEER_PWD),
        None,
    );
    deliver(&mut agent, now, sa("203.0.113.1:6001"), &ok);
    assert_eq!(state(&agent, s), PairState::Failed);
    assert!(!agent.pairs(s)[0].valid);
}

/// RFC 8445 §7.2.5.2.4: an unrecoverable error response fails the pair.
#[test]
fn error_response_fails_the_pair() {
    let (mut agent, s, now, check) = agent_with_check();
    let err = response(
        &check,
        MessageType::BINDING_ERROR,
        &IntegrityKey::short_term(PEER_PWD),
        Some(400),
    );
    deliver(&mut agent, now, sa(REMOTE), &err);
    assert_eq!(state(&agent, s), PairState::Failed);
}

/// RFC 8489 §9.1.4: a response failing integrity is ignored; the check retransmits and a
/// good response still validates it.
#[test]
fn response_with_bad_integrity_is_ignored() {
    let (mut agent, s, now, check) = agent_with_check();
    let forged = response(
        &check,
        MessageType::BINDING_SUCCESS,
        &IntegrityKey::short_term("notthepeerpasswordatall"),
        None,
    );
    deliver(&mut agent, now, sa(REMOTE), &forged);
    assert_eq!(state(&agent, s), PairState::InProgress);
    assert_eq!(agent.stats().responses_dropped, 1);
    agent.handle_timeout(now + Duration::from_millis(500));
    let again = std::iter::from_fn(|| agent.poll_transmit())
        .find(|t| t.destination == sa(REMOTE))
        .unwrap();
    assert_eq!(again.payload, check, "retransmitted unchanged");
    let ok = response(
        &check,
        MessageType::BINDING_SUCCESS,
        &IntegrityKey::short_term(PEER_PWD),
        None,
    );
    deliver(
        &mut agent,
        now + Duration::from_millis(600),
        sa(REMOTE),
        &ok,
    );
    assert!(agent.pairs(s)[0].valid);
}

/// A response nobody asked for is dropped and counted.
#[test]
fn unsolicited_response_is_dropped() {
    let (mut agent, s, now, _) = agent_with_check();
    let stray = response(
        &[
            0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
        ],
        MessageType::BINDING_SUCCESS,
        &IntegrityKey::short_term(PEER_PWD),
        None,
    );
    assert_eq!(
        deliver(&mut agent, now, sa(REMOTE), &stray),
        Received::Consumed
    );
    assert_eq!(agent.stats().responses_dropped, 1);
    assert_eq!(state(&agent, s), PairState::InProgress);
}

/// RFC 7675 §5.1: consent needs authenticated responses; forged ones refresh nothing.
#[test]
fn forged_consent_responses_do_not_refresh_consent() {
    let (mut agent, s, t0, check) = agent_with_check();
    let good = IntegrityKey::short_term(PEER_PWD);
    let forged = IntegrityKey::short_term("notthepeerpasswordatall");
    let ok = response(&check, MessageType::BINDING_SUCCESS, &good, None);
    deliver(&mut agent, t0, sa(REMOTE), &ok);
    let mut now = t0;
    let answer_with = |agent: &mut Agent, now: Instant, key: &IntegrityKey| {
        agent.handle_timeout(now);
        while let Some(t) = agent.poll_transmit() {
            if t.destination == sa(REMOTE)
                && Message::parse(&t.payload).unwrap().message_type()
                    == MessageType::BINDING_REQUEST
            {
                let r = response(&t.payload, MessageType::BINDING_SUCCESS, key, None);
                deliver(agent, now, sa(REMOTE), &r);
            }
        }
    };
    // Nomination goes through with genuine answers.
    let mut selected_at = None;
    for _ in 0..10 {
        now += Duration::from_millis(50);
        answer_with(&mut agent, now, &good);
        if agent.connection_state() == ice_core::ConnectionState::Completed {
            selected_at.get_or_insert(now);
        }
    }
    let selected_at = selected_at.expect("completed");
    // From now on every consent check gets a forged answer.
    while agent.connection_state() == ice_core::ConnectionState::Completed {
        now += Duration::from_millis(100);
        answer_with(&mut agent, now, &forged);
        assert!(
            now - selected_at < Duration::from_secs(9),
            "forged responses kept consent alive"
        );
    }
    assert_eq!(
        agent.connection_state(),
        ice_core::ConnectionState::Disconnected
    );
    assert!(agent.stats().responses_dropped > 0);
    assert!(now - selected_at >= Duration::from_secs(8));
    // A genuine answer restores it.
    for _ in 0..70 {
        now += Duration::from_millis(100);
        answer_with(&mut agent, now, &good);
    }
    assert_eq!(
        agent.connection_state(),
        ice_core::ConnectionState::Completed
    );
    let _ = s;
}
