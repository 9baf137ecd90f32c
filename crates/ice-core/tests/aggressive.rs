//! A controlling peer that uses RFC 5245 aggressive nomination (USE-CANDIDATE on every
//! check) still works: the controlled agent selects the highest-priority nominated pair
//! (RFC 8445 §8.1.1).

mod common;

use common::*;
use ice_core::{Agent, ConnectionState, Event, Input, TransportProtocol};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::{IceControlling, Priority, UseCandidate, Username, XorMappedAddress};
use stun_proto::{IntegrityKey, Message, MessageBuilder, MessageType, TransactionId};

const PEER_UFRAG: &str = "peer";
const PEER_PWD: &str = "peerpasswordpeerpassword";

fn request(ufrag: &str, key: &IntegrityKey, priority: u32, tid: u8) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new([tid; 12]),
    )
    .unwrap();
    b.add(&Username::new(&format!("{ufrag}:{PEER_UFRAG}")).unwrap())
        .unwrap();
    b.add(&Priority(priority)).unwrap();
    b.add(&IceControlling(99)).unwrap();
    b.add(&UseCandidate).unwrap();
    b.add_message_integrity(key).unwrap();
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

/// The peer's answer to one of the agent's checks.
fn answer(check: &[u8], mapped: SocketAddr) -> Vec<u8> {
    let tid = Message::parse(check).unwrap().transaction_id();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, tid).unwrap();
    b.add(&XorMappedAddress(mapped)).unwrap();
    b.add_message_integrity(&IntegrityKey::short_term(PEER_PWD))
        .unwrap();
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

#[test]
fn aggressive_nomination_selects_the_best_nominated_pair() {
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let local = sa("203.0.113.1:6000");
    let mut agent = Agent::new(controlled(), 231, now);
    let s = agent.add_stream(1).unwrap();
    agent
        .add_host_candidate(now, s, 1, local, TransportProtocol::Udp)
        .unwrap();
    agent.finish_host_candidates(now);
    agent
        .set_remote_credentials(now, PEER_UFRAG, PEER_PWD)
        .unwrap();
    let ours = agent.local_credentials().clone();
    let key = IntegrityKey::short_term(&ours.pwd);
    // The peer checks from a low-priority address first, then from a better one, both with
    // USE-CANDIDATE.
    let low = sa("198.51.100.7:7000");
    let high = sa("198.51.100.8:7000");
    for (i, (from, priority)) in [(low, 100u32), (high, 2_000_000_000)]
        .into_iter()
        .enumerate()
    {
        let bytes = request(&ours.ufrag, &key, priority, i as u8);
        agent.handle_input(
            now,
            Input {
                transport: TransportProtocol::Udp,
                source: from,
                destination: local,
                data: &bytes,
            },
        );
        // Answer every triggered check the agent sends.
        for _ in 0..20 {
            now += Duration::from_millis(50);
            agent.handle_timeout(now);
            while let Some(t) = agent.poll_transmit() {
                let msg = Message::parse(&t.payload).unwrap();
                if msg.message_type() == MessageType::BINDING_REQUEST {
                    let reply = answer(&t.payload, local);
                    agent.handle_input(
                        now,
                        Input {
                            transport: TransportProtocol::Udp,
                            source: t.destination,
                            destination: local,
                            data: &reply,
                        },
                    );
                }
            }
        }
    }
    let selected: Vec<SocketAddr> = std::iter::from_fn(|| agent.poll_event())
        .filter_map(|e| match e {
            Event::SelectedPair { remote, .. } => Some(remote.address),
            _ => None,
        })
        .collect();
    assert_eq!(
        selected,
        [low, high],
        "the better nomination replaces the first"
    );
    assert_eq!(agent.selected_pair(s, 1).unwrap().1.address, high);
    assert_eq!(agent.connection_state(), ConnectionState::Completed);
}
