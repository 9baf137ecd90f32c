//! ICE agent security (`ice_core::Agent`), through the public API on a virtual clock:
//! checks and responses an attacker can forge (wrong USERNAME fragment, wrong or missing
//! integrity) change nothing; application data is accepted only from vouched paths; a flood
//! of checks from unknown addresses cannot grow memory beyond the caps; answers to
//! unauthenticated checks are small.
//!
//! `docs/SECURITY.md` maps each defence to its test (and to `crates/ice-core/tests/
//! bad_input.rs`, which already proves some of it).
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use ice_core::{
    Agent, AgentConfig, ConnectionState, Input, Received, Role, StreamId, Transmit,
    TransportProtocol,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    ErrorCode, IceControlled, IceControlling, Priority, RawAttribute, UseCandidate, Username,
    XorMappedAddress,
};
use stun_proto::{Class, IntegrityKey, Message, MessageBuilder, MessageType, TransactionId};
use turn_proto::server::MAX_UNAUTHENTICATED_GROWTH;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const A: &str = "198.51.100.1:5000";
const B: &str = "203.0.113.1:6000";

/// Two agents on one virtual wire: A controlling, B controlled.
struct Pair {
    a: Agent,
    b: Agent,
    now: Instant,
    sa: StreamId,
    /// Datagrams in flight, delivered by `run`.
    wire: Vec<Transmit>,
    /// Stop delivering (everything sent is lost).
    cut: bool,
}

fn config(role: Role) -> AgentConfig {
    AgentConfig {
        role,
        max_pairs: 10,
        max_remote_candidates: 8,
        max_peer_reflexive: 4,
        ..AgentConfig::default()
    }
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let mut a = Agent::new(config(Role::Controlling), 1, now);
        let mut b = Agent::new(config(Role::Controlled), 2, now);
        let sa_ = a.add_stream(1).unwrap();
        let sb = b.add_stream(1).unwrap();
        a.add_host_candidate(now, sa_, 1, sa(A), TransportProtocol::Udp)
            .unwrap();
        b.add_host_candidate(now, sb, 1, sa(B), TransportProtocol::Udp)
            .unwrap();
        a.finish_host_candidates(now);
        b.finish_host_candidates(now);
        let (ca, cb) = (a.local_credentials().clone(), b.local_credentials().clone());
        a.set_remote_credentials(now, &cb.ufrag, &cb.pwd).unwrap();
        b.set_remote_credentials(now, &ca.ufrag, &ca.pwd).unwrap();
        let line = |addr: &str| {
            format!(
                "candidate:1 1 udp 2130706431 {} typ host",
                addr.replace(':', " ")
            )
        };
        a.add_remote_candidate_str(now, sa_, &line(B)).unwrap();
        b.add_remote_candidate_str(now, sb, &line(A)).unwrap();
        let mut p = Pair {
            a,
            b,
            now,
            sa: sa_,
            wire: Vec::new(),
            cut: false,
        };
        p.collect();
        p
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.wire.push(t);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.wire.push(t);
        }
        while self.a.poll_event().is_some() {}
        while self.b.poll_event().is_some() {}
        if self.cut {
            self.wire.clear();
        }
    }

    fn deliver(&mut self, t: &Transmit) {
        let input = Input {
            transport: TransportProtocol::Udp,
            source: t.source,
            destination: t.destination,
            data: &t.payload,
        };
        if t.destination == sa(A) {
            let _ = self.a.handle_input(self.now, input);
        } else if t.destination == sa(B) {
            let _ = self.b.handle_input(self.now, input);
        }
    }

    /// Delivers what is in flight and runs the timers for `d`, on time.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            for t in std::mem::take(&mut self.wire) {
                self.deliver(&t);
            }
            self.collect();
            if !self.wire.is_empty() {
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn connected() -> Pair {
        let mut p = Pair::new();
        p.run(Duration::from_secs(3));
        assert_eq!(p.a.connection_state(), ConnectionState::Completed);
        assert_eq!(p.b.connection_state(), ConnectionState::Completed);
        p
    }
}

/// What must not change: candidates, pairs, states, role, the selected pair.
fn snapshot(a: &Agent, s: StreamId) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        a.local_candidates(s),
        a.remote_candidates(s),
        a.pairs(s),
        a.connection_state(),
        a.role(),
        a.checklist_state(s),
        a.selected_pair(s, 1)
    )
}

/// A Binding request as an attacker would build it.
fn forged_check(
    username: Option<&str>,
    sign: Option<(&IntegrityKey, bool)>,
    extra: &[&dyn stun_proto::attributes::EncodeAttribute],
    tid: u8,
) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new([tid; 12]),
    )
    .unwrap();
    if let Some(u) = username {
        b.add(&Username::new(u).unwrap()).unwrap();
    }
    b.add(&Priority(1_862_270_975)).unwrap();
    for a in extra {
        b.add(*a).unwrap();
    }
    match sign {
        Some((key, false)) => {
            b.add_message_integrity(key).unwrap();
        }
        Some((key, true)) => {
            b.add_message_integrity_sha256(key).unwrap();
        }
        None => {}
    }
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

fn code_of(t: &Transmit) -> Option<u16> {
    let m = Message::parse(&t.payload).unwrap();
    match m.class() {
        Class::Success => None,
        _ => Some(m.require::<ErrorCode<'_>>().unwrap().code()),
    }
}

/// What `handle_input` made of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Consumed,
    Data,
    NotMine,
}

/// Feeds a datagram to A's socket; returns the outcome and the answers.
fn feed(agent: &mut Agent, now: Instant, from: SocketAddr, data: &[u8]) -> (Got, Vec<Transmit>) {
    let input = Input {
        transport: TransportProtocol::Udp,
        source: from,
        destination: sa(A),
        data,
    };
    let r = match agent.handle_input(now, input) {
        Received::Consumed => Got::Consumed,
        Received::Data { .. } => Got::Data,
        _ => Got::NotMine,
    };
    let out = std::iter::from_fn(|| agent.poll_transmit()).collect();
    (r, out)
}

// ---------------------------------------------------------------------------------------
// Forged checks and responses change nothing
// ---------------------------------------------------------------------------------------

#[test]
fn checks_with_a_wrong_ufrag_or_bad_integrity_change_nothing() {
    for connected in [false, true] {
        let mut p = if connected {
            Pair::connected()
        } else {
            Pair::new()
        };
        let ours = p.a.local_credentials().clone();
        let theirs = p.b.local_credentials().clone();
        let right = IntegrityKey::short_term(&ours.pwd);
        let wrong = IntegrityKey::short_term("notthepasswordnotthepassword");
        let good_user = format!("{}:{}", ours.ufrag, theirs.ufrag);
        let swapped = format!("{}:{}", theirs.ufrag, ours.ufrag);
        let wrong_ufrag = format!("x{}:{}", ours.ufrag, theirs.ufrag);
        let big_tie = IceControlling(u64::MAX);
        let controlled = IceControlled(u64::MAX);
        let unknown = RawAttribute {
            attr_type: stun_proto::attributes::AttributeType(0x7555),
            value: b"",
        };
        let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            (
                "wrong local ufrag, right password",
                forged_check(Some(&wrong_ufrag), Some((&right, false)), &[], 1),
                Some(401),
            ),
            (
                "ufrags swapped",
                forged_check(Some(&swapped), Some((&right, false)), &[], 2),
                Some(401),
            ),
            (
                "no colon in USERNAME",
                forged_check(Some(&ours.ufrag), Some((&right, false)), &[], 3),
                Some(401),
            ),
            (
                "wrong password (SHA-1)",
                forged_check(Some(&good_user), Some((&wrong, false)), &[], 4),
                Some(401),
            ),
            (
                "wrong password (SHA-256)",
                forged_check(Some(&good_user), Some((&wrong, true)), &[], 5),
                Some(401),
            ),
            (
                "no integrity",
                forged_check(Some(&good_user), None, &[], 6),
                Some(400),
            ),
            (
                "no USERNAME",
                forged_check(None, Some((&right, false)), &[], 7),
                Some(400),
            ),
            (
                "USE-CANDIDATE, wrong password",
                forged_check(
                    Some(&good_user),
                    Some((&wrong, false)),
                    &[&big_tie, &UseCandidate],
                    8,
                ),
                Some(401),
            ),
            (
                "role conflict, wrong password",
                forged_check(Some(&good_user), Some((&wrong, false)), &[&big_tie], 9),
                Some(401),
            ),
            (
                "controlled role, wrong password",
                forged_check(Some(&good_user), Some((&wrong, false)), &[&controlled], 10),
                Some(401),
            ),
            (
                "unknown attribute, wrong password",
                forged_check(Some(&good_user), Some((&wrong, false)), &[&unknown], 11),
                Some(401),
            ),
        ];
        // From the peer's own address (spoofed) and from unknown ones.
        for from in [sa(B), sa("192.0.2.66:4444"), sa("[2001:db8::66]:4444")] {
            for (name, bytes, expected) in &cases {
                let before = snapshot(&p.a, p.sa);
                let stats = p.a.stats();
                let (r, out) = feed(&mut p.a, p.now, from, bytes);
                assert_eq!(r, Got::Consumed, "{name}");
                assert_eq!(out.len(), 1, "{name}: one answer");
                assert_eq!(code_of(&out[0]), *expected, "{name} from {from}");
                assert_eq!(out[0].destination, from);
                let answer = Message::parse(&out[0].payload).unwrap();
                assert!(!answer.has_message_integrity(), "{name}: a signed answer");
                assert!(out[0].payload.len() <= bytes.len() + MAX_UNAUTHENTICATED_GROWTH);
                assert!(p.a.poll_event().is_none(), "{name}: an event");
                assert_eq!(
                    snapshot(&p.a, p.sa),
                    before,
                    "{name} from {from} changed the agent"
                );
                assert_eq!(p.a.stats().checks_answered, stats.checks_answered, "{name}");
            }
        }
        assert_eq!(
            p.a.role(),
            Role::Controlling,
            "never switched role for a forged check"
        );
        let s = p.a.stats();
        assert_eq!((s.unauthenticated, s.bad_requests), (27, 6));
        // Data from the unknown addresses is still refused: no check vouched for them.
        let (r, _) = feed(&mut p.a, p.now, sa("192.0.2.66:4444"), b"\x80 media");
        assert_eq!(r, Got::NotMine);
    }
}

#[test]
fn forged_responses_and_role_conflicts_change_nothing() {
    let mut p = Pair::new();
    // A's first check is on the wire: capture it, and deliver nothing.
    let check = p
        .wire
        .iter()
        .find(|t| t.source == sa(A) && t.payload.first() == Some(&0))
        .cloned()
        .unwrap_or_else(|| {
            p.a.handle_timeout(p.now);
            p.a.poll_transmit().unwrap()
        });
    let tid = Message::parse(&check.payload).unwrap().transaction_id();
    p.wire.clear();
    let wrong = IntegrityKey::short_term("notthepasswordnotthepassword");
    let response = |class: Class, code: Option<u16>, key: Option<&IntegrityKey>| {
        let mut buf = [0u8; 256];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(stun_proto::Method::BINDING, class),
            tid,
        )
        .unwrap();
        match code {
            None => {
                b.add(&XorMappedAddress(sa("192.0.2.66:1"))).unwrap();
            }
            Some(c) => {
                b.add(&ErrorCode::with_default_reason(c).unwrap()).unwrap();
            }
        }
        if let Some(k) = key {
            b.add_message_integrity(k).unwrap();
        }
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    };
    let forged = [
        (
            "success without integrity",
            response(Class::Success, None, None),
        ),
        (
            "success with a wrong key",
            response(Class::Success, None, Some(&wrong)),
        ),
        (
            "487 without integrity",
            response(Class::Error, Some(487), None),
        ),
        (
            "487 with a wrong key",
            response(Class::Error, Some(487), Some(&wrong)),
        ),
        (
            "400 without integrity",
            response(Class::Error, Some(400), None),
        ),
        (
            "401 with a wrong key",
            response(Class::Error, Some(401), Some(&wrong)),
        ),
    ];
    let before = snapshot(&p.a, p.sa);
    for (name, bytes) in &forged {
        let (r, out) = feed(&mut p.a, p.now, sa(B), bytes);
        assert_eq!(r, Got::Consumed, "{name}");
        assert!(out.is_empty(), "{name}: answered");
        assert!(p.a.poll_event().is_none(), "{name}: an event");
        assert_eq!(snapshot(&p.a, p.sa), before, "{name} changed the agent");
    }
    assert_eq!(p.a.stats().responses_dropped, forged.len() as u64);
    // The genuine exchange still works afterwards.
    p.wire.push(check);
    p.run(Duration::from_secs(3));
    assert_eq!(p.a.connection_state(), ConnectionState::Completed);
}

#[test]
fn data_is_accepted_only_from_vouched_paths() {
    let mut p = Pair::connected();
    let (r, _) = feed(&mut p.a, p.now, sa(B), b"\x80 from the peer");
    assert_eq!(r, Got::Data, "data on the selected pair is handed over");
    for stranger in [
        sa("192.0.2.66:6000"),
        sa("203.0.113.1:6001"),
        sa("[2001:db8::1]:6000"),
    ] {
        let before = p.a.stats().data_dropped;
        let (r, _) = feed(&mut p.a, p.now, stranger, b"\x80 injected");
        assert_eq!(r, Got::NotMine, "data from {stranger}");
        assert_eq!(p.a.stats().data_dropped, before + 1);
    }
    // Sending goes only on the selected pair, to the peer that passed the checks.
    let t = p.a.send(p.now, p.sa, 1, b"out").unwrap();
    assert_eq!((t.source, t.destination), (sa(A), sa(B)));
}

// ---------------------------------------------------------------------------------------
// Floods are capped
// ---------------------------------------------------------------------------------------

/// Authentic checks (an attacker replaying the peer's checks, or a misbehaving peer) from
/// ever new addresses, IPv4 and IPv6: each is answered once, but remote peer-reflexive
/// candidates, pairs and local candidates stay within their caps. Unauthenticated ones from
/// as many addresses teach the agent nothing at all.
#[test]
fn floods_of_checks_from_unknown_addresses_stay_within_the_caps() {
    let mut p = Pair::new();
    let ours = p.a.local_credentials().clone();
    let key = IntegrityKey::short_term(&ours.pwd);
    let user = format!("{}:{}", ours.ufrag, p.b.local_credentials().ufrag);
    let wrong = IntegrityKey::short_term("notthepasswordnotthepassword");
    let config = config(Role::Controlling);
    let before = snapshot(&p.a, p.sa);
    for (authentic, n) in [(false, 5_000u32), (true, 5_000)] {
        for i in 0..n {
            let from = if i % 2 == 0 {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(0xC000_0200 + (i >> 8))),
                    1024 + (i & 0xff) as u16,
                )
            } else {
                SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0x66,
                        0,
                        0,
                        0,
                        (i >> 16) as u16,
                        i as u16,
                    )),
                    4000,
                )
            };
            let k = if authentic { &key } else { &wrong };
            let bytes = forged_check(
                Some(&user),
                Some((k, false)),
                &[&IceControlled(7)],
                (i % 251) as u8,
            );
            let (_, out) = feed(&mut p.a, p.now, from, &bytes);
            assert_eq!(out.len(), 1, "one answer per check");
            assert!(out[0].payload.len() <= bytes.len() + MAX_UNAUTHENTICATED_GROWTH);
            while p.a.poll_event().is_some() {}
            if authentic && i % 500 == 0 {
                p.now += Duration::from_millis(50);
                p.a.handle_timeout(p.now);
                while p.a.poll_transmit().is_some() {}
            }
        }
        if !authentic {
            assert_eq!(
                snapshot(&p.a, p.sa),
                before,
                "unauthenticated checks taught something"
            );
        }
    }
    let remote = p.a.remote_candidates(p.sa).len();
    let learnt = remote - 1;
    assert!(
        learnt <= config.max_peer_reflexive,
        "{learnt} peer-reflexive candidates"
    );
    assert!(remote <= config.max_remote_candidates);
    let pairs = p.a.pairs(p.sa).len();
    assert!(pairs <= config.max_pairs, "{pairs} pairs");
    let s = p.a.stats();
    assert_eq!((s.unauthenticated, s.checks_answered), (5_000, 5_000));
    assert_eq!(s.prflx_capped, 5_000 - learnt as u64);
}

// ---------------------------------------------------------------------------------------
// Fixed bug
// ---------------------------------------------------------------------------------------

/// Found by the `ice_agents` fuzz target (`fuzz/regressions/ice_agents/
/// stale-nomination-deadline`). A controlling agent's nomination check times out: the
/// checklist fails and the valid pair is dropped, but the component keeps `first_valid`.
/// When an authentic check from the peer later revives the checklist (RFC 8445 §7.3.1.4),
/// `poll_timeout()` returns `first_valid + nomination_timeout`, long past, and
/// `handle_timeout` never cleared it: a driver sleeping until `poll_timeout()` span. Now the
/// deadline counts only components with a valid pair, and a lost valid pair resets it.
#[test]
fn stale_nomination_deadline_after_failed_nomination() {
    let mut p = Pair::new();
    // Connect until A has a valid pair and nominates; keep one of B's checks.
    let mut b_check = None;
    for _ in 0..200 {
        for t in std::mem::take(&mut p.wire) {
            if t.source == sa(B) && b_check.is_none() {
                let m = Message::parse(&t.payload).unwrap();
                if m.class() == Class::Request {
                    b_check = Some(t.clone());
                }
            }
            // Deliver everything but A's nominating check.
            let nominating = t.source == sa(A)
                && Message::parse(&t.payload)
                    .is_ok_and(|m| m.has(stun_proto::attributes::AttributeType::USE_CANDIDATE));
            if !nominating {
                p.deliver(&t);
            }
        }
        p.collect();
        if p.a.pairs(p.sa).iter().any(|x| x.valid) && p.wire.is_empty() {
            break;
        }
        p.now += Duration::from_millis(10);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
        p.collect();
    }
    let b_check = b_check.expect("B checked A");
    // Lose everything from now on: the nomination check times out (39.5 s).
    p.cut = true;
    p.run(Duration::from_secs(60));
    assert_eq!(
        p.a.checklist_state(p.sa),
        Some(ice_core::CheckListState::Failed)
    );
    // A late, authentic check from B revives the checklist.
    p.cut = false;
    p.deliver(&b_check);
    p.collect();
    p.a.handle_timeout(p.now);
    let next = p.a.poll_timeout();
    assert!(
        next.is_none_or(|t| t > p.now),
        "after handle_timeout(now), poll_timeout() is {:?} in the past",
        next.map(|t| p.now - t)
    );
}
