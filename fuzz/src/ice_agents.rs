//! `ice_agents`: two ICE agents (`ice_core::Agent`) connecting over a network the input
//! controls (deliver, drop, duplicate, reorder, corrupt), with delayed signalling, restarts,
//! application data, arbitrary remote candidate lines, and a hostile third party that sends
//! arbitrary bytes, forged checks and responses, and replays of the agents' own datagrams
//! from any address (spoofing included). It knows no password.
//!
//! The harness sees every datagram and knows every password, so it knows, per agent, which
//! (local socket, remote address) paths carried a *successful check* — a Binding success
//! response with integrity valid under the peer's password, matching a check the agent
//! sent from that socket to that address, received on that socket from that address — and
//! which carried an *authenticated check* from the peer.
//!
//! Invariants:
//! * No panic.
//! * A full agent selects only pairs whose check succeeded (an ICE-lite agent, which sends
//!   no checks, only pairs on which it received an authenticated check).
//! * Application data is handed over, and sent, only on paths that had a successful check
//!   or an authenticated check.
//! * Input that is not authentic (no valid integrity under any password in play) changes
//!   nothing: candidates, pairs, states, role and selected pairs stay as they were; what
//!   it gets in answer is at most `MAX_UNAUTHENTICATED_GROWTH` bytes longer than it.
//! * Bounded: remote candidates within `max_remote_candidates`, learnt local candidates
//!   within `max_peer_reflexive`, pairs within `max_pairs` (plus the valid pairs outside the
//!   checklist, at most one per learnt candidate).
//! * The timer invariant of [`crate::clock`], for each agent.

use crate::clock::{Clock, TICK, Timed, check_settled};
use crate::ops::{Arbitrary, Encode, Encoder, Result, Unstructured, bytes, choice, sequence};
use ice_core::{
    Agent, AgentConfig, Event, Input as IceInput, Received, Role, StreamId, TransportProtocol,
};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{IceControlling, Priority, UseCandidate, Username};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_proto::server::MAX_UNAUTHENTICATED_GROWTH;

const MAX_PAIRS: usize = 10;
const MAX_REMOTE: usize = 8;
const MAX_PRFLX: usize = 3;

/// The configuration part of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// A is controlling (else controlled).
    pub a_controlling: bool,
    /// B is controlling (both controlling or both controlled: a role conflict).
    pub b_controlling: bool,
    /// B is an ICE-lite agent.
    pub b_lite: bool,
    /// Streams (1 or 2).
    pub streams: u8,
    /// Components per stream (1 or 2).
    pub components: u8,
    /// A second (IPv6) host address on each agent.
    pub dual_stack: bool,
    /// Credentials exchanged at the start (else only by an operation).
    pub early_credentials: bool,
    /// Ta in ms (5 to 260).
    pub ta: u8,
    /// Seed.
    pub seed: u8,
}

/// What the third party sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attack {
    /// These bytes.
    Raw(Vec<u8>),
    /// A check with the right USERNAME but a wrong password (`signed`) or none.
    Check {
        /// With (wrong) MESSAGE-INTEGRITY.
        signed: bool,
        /// With USE-CANDIDATE.
        use_candidate: bool,
    },
    /// A success response to the target's latest check, with a wrong key or none.
    Response {
        /// With (wrong) MESSAGE-INTEGRITY.
        signed: bool,
    },
    /// One of the agents' datagrams seen on the wire, again.
    Replay(u8),
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Deliver every datagram and signal in flight, until none is left (bounded rounds).
    Flush,
    /// Deliver one datagram in flight.
    Deliver(u8),
    /// Drop one.
    Drop(u8),
    /// Deliver a copy.
    Duplicate(u8),
    /// Deliver with one byte changed.
    Corrupt {
        /// Which one.
        which: u8,
        /// Where.
        at: u16,
        /// The xor.
        xor: u8,
    },
    /// Deliver the pending signalling (credentials, candidates, end-of-candidates).
    Signal,
    /// The third party sends to agent `to` (0: A, 1: B) from `from`.
    Attack {
        /// 0: A, 1: B.
        to: u8,
        /// Source: an attacker address, or (spoofed) one of the agents'.
        from: u8,
        /// What.
        attack: Attack,
    },
    /// The application gives agent `to` a remote candidate line.
    Candidate {
        /// 0: A, 1: B.
        to: u8,
        /// The line.
        line: Vec<u8>,
    },
    /// The application restarts agent `who`.
    Restart(u8),
    /// The application sends data on agent `who`'s first component.
    Send {
        /// 0: A, 1: B.
        who: u8,
        /// Length.
        len: u16,
    },
    /// Time passes (ms); every timer runs at its time.
    Advance(u16),
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The configuration.
    pub setup: Setup,
    /// Operations.
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Setup {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Setup {
            a_controlling: bool::arbitrary(u)?,
            b_controlling: bool::arbitrary(u)?,
            b_lite: bool::arbitrary(u)?,
            streams: u8::arbitrary(u)?,
            components: u8::arbitrary(u)?,
            dual_stack: bool::arbitrary(u)?,
            early_credentials: bool::arbitrary(u)?,
            ta: u8::arbitrary(u)?,
            seed: u8::arbitrary(u)?,
        })
    }
}

impl Encode for Setup {
    fn encode(&self, e: &mut Encoder) {
        e.bool(self.a_controlling)
            .bool(self.b_controlling)
            .bool(self.b_lite)
            .u8(self.streams)
            .u8(self.components)
            .bool(self.dual_stack)
            .bool(self.early_credentials)
            .u8(self.ta)
            .u8(self.seed);
    }
}

impl<'a> Arbitrary<'a> for Attack {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 4)? {
            0 => Attack::Raw(bytes(u, 1500)?.to_vec()),
            1 => Attack::Check {
                signed: bool::arbitrary(u)?,
                use_candidate: bool::arbitrary(u)?,
            },
            2 => Attack::Response {
                signed: bool::arbitrary(u)?,
            },
            _ => Attack::Replay(u8::arbitrary(u)?),
        })
    }
}

impl Encode for Attack {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Attack::Raw(b) => {
                e.u8(0).bytes(b);
            }
            Attack::Check {
                signed,
                use_candidate,
            } => {
                e.u8(1).bool(*signed).bool(*use_candidate);
            }
            Attack::Response { signed } => {
                e.u8(2).bool(*signed);
            }
            Attack::Replay(w) => {
                e.u8(3).u8(*w);
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 13)? {
            0 | 1 => Op::Flush,
            2 => Op::Deliver(u8::arbitrary(u)?),
            3 => Op::Drop(u8::arbitrary(u)?),
            4 => Op::Duplicate(u8::arbitrary(u)?),
            5 => Op::Corrupt {
                which: u8::arbitrary(u)?,
                at: u16::arbitrary(u)?,
                xor: u8::arbitrary(u)?,
            },
            6 => Op::Signal,
            7 | 8 => Op::Attack {
                to: u8::arbitrary(u)?,
                from: u8::arbitrary(u)?,
                attack: Attack::arbitrary(u)?,
            },
            9 => Op::Candidate {
                to: u8::arbitrary(u)?,
                line: bytes(u, 300)?.to_vec(),
            },
            10 => Op::Restart(u8::arbitrary(u)?),
            11 => Op::Send {
                who: u8::arbitrary(u)?,
                len: u16::arbitrary(u)?,
            },
            _ => Op::Advance(u16::arbitrary(u)?),
        })
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Flush => {
                e.u8(0);
            }
            Op::Deliver(w) => {
                e.u8(2).u8(*w);
            }
            Op::Drop(w) => {
                e.u8(3).u8(*w);
            }
            Op::Duplicate(w) => {
                e.u8(4).u8(*w);
            }
            Op::Corrupt { which, at, xor } => {
                e.u8(5).u8(*which).u16(*at).u8(*xor);
            }
            Op::Signal => {
                e.u8(6);
            }
            Op::Attack { to, from, attack } => {
                e.u8(7).u8(*to).u8(*from).put(attack);
            }
            Op::Candidate { to, line } => {
                e.u8(9).u8(*to).bytes(line);
            }
            Op::Restart(w) => {
                e.u8(10).u8(*w);
            }
            Op::Send { who, len } => {
                e.u8(11).u8(*who).u16(*len);
            }
            Op::Advance(ms) => {
                e.u8(12).u16(*ms);
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Input {
            setup: Setup::arbitrary(u)?,
            ops: sequence(u)?,
        })
    }
}

impl Encode for Input {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.setup).put(&self.ops[..]);
    }
}

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// A datagram in flight.
#[derive(Clone, Debug)]
struct Packet {
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// Signalling between the agents.
#[derive(Clone, Debug)]
enum Signal {
    Credentials(String, String),
    Candidate(StreamId, String),
    EndOfCandidates(StreamId, String),
}

/// What the harness knows about one agent.
#[derive(Debug, Default)]
struct Side {
    /// Host sockets.
    sockets: Vec<SocketAddr>,
    /// Every local password the agent has had.
    passwords: Vec<IntegrityKey>,
    /// Every local ufrag.
    ufrags: Vec<String>,
    /// Checks sent: transaction ID -> (local socket, remote address).
    checks: HashMap<TransactionId, (SocketAddr, SocketAddr)>,
    /// The latest check sent.
    last_check: Option<(TransactionId, SocketAddr, SocketAddr)>,
    /// Paths whose check succeeded.
    succeeded: HashSet<(SocketAddr, SocketAddr)>,
    /// Paths an authenticated check from the peer arrived on.
    checked_by_peer: HashSet<(SocketAddr, SocketAddr)>,
    lite: bool,
    /// Local candidates that are not peer-reflexive (hosts).
    hosts: usize,
}

struct Harness {
    agents: [Agent; 2],
    sides: [Side; 2],
    streams: Vec<StreamId>,
    clock: Clock,
    wire: Vec<Packet>,
    /// Datagrams the agents sent (the last 64), for replays.
    seen: Vec<Packet>,
    signals: Vec<(usize, Signal)>,
}

struct AgentTimed<'a>(&'a mut Agent);

impl Timed for AgentTimed<'_> {
    fn timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }
    fn deadline(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn drain(&mut self) -> usize {
        std::iter::from_fn(|| self.0.poll_transmit()).count()
            + std::iter::from_fn(|| self.0.poll_event()).count()
    }
}

/// The body of the target.
pub fn run(data: &[u8]) {
    let _ = capture(data);
}

/// Runs the target and returns the datagrams the agents sent (the last 64): real checks
/// and responses for the seed corpora.
pub fn capture(data: &[u8]) -> Vec<Vec<u8>> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Vec::new();
    };
    let mut h = Harness::new(&input.setup);
    for op in &input.ops {
        h.op(op);
        h.check_bounds();
    }
    h.seen.into_iter().map(|p| p.data).collect()
}

/// `FLOE_FUZZ_DEBUG` set: print each agent's state at every timer step.
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FLOE_FUZZ_DEBUG").is_some())
}

fn attacker(i: u8) -> SocketAddr {
    match i % 4 {
        0 => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66)),
            1000 + u16::from(i),
        ),
        1 => SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 0, 1)),
            1000 + u16::from(i),
        ),
        2 => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 5000),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 67)), u16::from(i)),
    }
}

impl Harness {
    fn new(s: &Setup) -> Harness {
        let clock = Clock::new();
        let now = clock.now;
        let config = |controlling: bool, lite: bool| {
            let mut c = if lite {
                AgentConfig::lite()
            } else {
                AgentConfig::default()
            };
            if !lite {
                c.role = if controlling {
                    Role::Controlling
                } else {
                    Role::Controlled
                };
            }
            c.ta = Duration::from_millis(5 + u64::from(s.ta));
            c.max_pairs = MAX_PAIRS;
            c.max_remote_candidates = MAX_REMOTE;
            c.max_peer_reflexive = MAX_PRFLX;
            c.max_pending_mdns = 4;
            c
        };
        let mut agents = [
            Agent::new(config(s.a_controlling, false), u64::from(s.seed), now),
            Agent::new(
                config(s.b_controlling, s.b_lite),
                u64::from(s.seed) + 1,
                now,
            ),
        ];
        let mut sides = [Side::default(), Side::default()];
        sides[1].lite = s.b_lite;
        let nstreams = 1 + usize::from(s.streams % 2);
        let ncomp = 1 + u16::from(s.components % 2);
        let mut streams = Vec::new();
        for i in 0..nstreams {
            let mut id = None;
            for (k, agent) in agents.iter_mut().enumerate() {
                let stream = agent.add_stream(ncomp).expect("a stream");
                id = Some(stream);
                for c in 1..=ncomp {
                    let port = 5000 + 10 * i as u16 + c;
                    let mut ips = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + k as u8))];
                    if s.dual_stack {
                        ips.push(IpAddr::V6(Ipv6Addr::new(
                            0x2001,
                            0xdb8,
                            0xa + k as u16,
                            0,
                            0,
                            0,
                            0,
                            1,
                        )));
                    }
                    for ip in ips {
                        let addr = SocketAddr::new(ip, port);
                        agent
                            .add_host_candidate(now, stream, c, addr, TransportProtocol::Udp)
                            .expect("a host candidate");
                        sides[k].sockets.push(addr);
                        sides[k].hosts += 1;
                    }
                }
            }
            streams.push(id.expect("two agents"));
        }
        for (k, agent) in agents.iter_mut().enumerate() {
            agent.finish_host_candidates(now);
            let creds = agent.local_credentials().clone();
            sides[k]
                .passwords
                .push(IntegrityKey::short_term(&creds.pwd));
            sides[k].ufrags.push(creds.ufrag);
        }
        if s.b_lite {
            agents[0].set_remote_lite(true);
        }
        let mut h = Harness {
            agents,
            sides,
            streams,
            clock,
            wire: Vec::new(),
            seen: Vec::new(),
            signals: Vec::new(),
        };
        for k in 0..2 {
            let c = h.agents[k].local_credentials().clone();
            let signal = (1 - k, Signal::Credentials(c.ufrag, c.pwd));
            if s.early_credentials {
                h.deliver_signal(signal);
            } else {
                h.signals.push(signal);
            }
        }
        for k in 0..2 {
            h.drain(k, None);
        }
        h
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Flush => {
                for _ in 0..8 {
                    if self.wire.is_empty() && self.signals.is_empty() {
                        break;
                    }
                    for s in std::mem::take(&mut self.signals) {
                        self.deliver_signal(s);
                    }
                    for p in std::mem::take(&mut self.wire) {
                        self.deliver(&p, false);
                    }
                }
            }
            Op::Deliver(w) => {
                if let Some(p) = take(&mut self.wire, *w) {
                    self.deliver(&p, false);
                }
            }
            Op::Drop(w) => {
                let _ = take(&mut self.wire, *w);
            }
            Op::Duplicate(w) => {
                if !self.wire.is_empty() {
                    let p = self.wire[usize::from(*w) % self.wire.len()].clone();
                    self.deliver(&p, false);
                }
            }
            Op::Corrupt { which, at, xor } => {
                if let Some(mut p) = take(&mut self.wire, *which) {
                    if !p.data.is_empty() {
                        let n = p.data.len();
                        p.data[usize::from(*at) % n] ^= xor;
                    }
                    self.deliver(&p, true);
                }
            }
            Op::Signal => {
                for s in std::mem::take(&mut self.signals) {
                    self.deliver_signal(s);
                }
            }
            Op::Attack { to, from, attack } => self.attack(usize::from(to % 2), *from, attack),
            Op::Candidate { to, line } => {
                let k = usize::from(to % 2);
                let now = self.clock.now;
                let line = String::from_utf8_lossy(line);
                let stream = self.streams[0];
                let _ = self.agents[k].add_remote_candidate_str(now, stream, &line);
                self.drain(k, None);
            }
            Op::Restart(who) => {
                let k = usize::from(who % 2);
                let now = self.clock.now;
                if let Ok(c) = self.agents[k].restart(now) {
                    self.sides[k]
                        .passwords
                        .push(IntegrityKey::short_term(&c.pwd));
                    self.sides[k].ufrags.push(c.ufrag.clone());
                    self.signals
                        .push((1 - k, Signal::Credentials(c.ufrag, c.pwd)));
                }
                self.drain(k, None);
            }
            Op::Send { who, len } => {
                let k = usize::from(who % 2);
                let now = self.clock.now;
                let data = vec![0x80; usize::from(*len % 1200)];
                let stream = self.streams[0];
                if let Ok(t) = self.agents[k].send(now, stream, 1, &data) {
                    self.check_data_path(k, t.source, t.destination, "sent");
                    self.transmitted(k, t);
                }
                self.drain(k, None);
            }
            Op::Advance(ms) => self.advance(Duration::from_millis(u64::from(*ms))),
        }
    }

    fn owner(&self, addr: SocketAddr) -> Option<usize> {
        (0..2).find(|&k| self.sides[k].sockets.contains(&addr))
    }

    fn deliver_signal(&mut self, (to, signal): (usize, Signal)) {
        let now = self.clock.now;
        let agent = &mut self.agents[to];
        match signal {
            Signal::Credentials(u, p) => {
                let _ = agent.set_remote_credentials(now, &u, &p);
            }
            Signal::Candidate(stream, line) => {
                let _ = agent.add_remote_candidate_str(now, stream, &line);
            }
            Signal::EndOfCandidates(stream, ufrag) => {
                let _ = agent.end_of_remote_candidates(now, stream, Some(&ufrag));
            }
        }
        self.drain(to, None);
    }

    /// Delivers a datagram of the network to its destination agent, if any.
    fn deliver(&mut self, p: &Packet, corrupted: bool) {
        let Some(k) = self.owner(p.destination) else {
            return;
        };
        self.input(k, p.source, p.destination, &p.data, corrupted);
    }

    /// Learns what the datagram proves (before the agent sees it) and whether it is
    /// authentic.
    fn learn(
        &mut self,
        k: usize,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(msg) = Message::parse(data) else {
            return false;
        };
        let own = &self.sides[k].passwords;
        let peer = &self.sides[1 - k].passwords;
        let by_own = own.iter().any(|key| msg.verify_integrity(key).is_ok());
        let by_peer = peer.iter().any(|key| msg.verify_integrity(key).is_ok());
        if msg.method() == Method::BINDING && msg.class() == Class::Request && by_own {
            self.sides[k].checked_by_peer.insert((destination, source));
        }
        if msg.method() == Method::BINDING && msg.class() == Class::Success && by_peer {
            let tid = msg.transaction_id();
            if self.sides[k].checks.get(&tid) == Some(&(destination, source)) {
                self.sides[k].succeeded.insert((destination, source));
            }
        }
        by_own || by_peer
    }

    fn snapshot(&self, k: usize) -> String {
        let a = &self.agents[k];
        let mut s = format!("{:?} {:?}", a.connection_state(), a.role());
        for &stream in &self.streams {
            s += &format!(
                "|{:?}|{:?}|{:?}|{:?}",
                a.local_candidates(stream),
                a.remote_candidates(stream),
                a.pairs(stream),
                a.checklist_state(stream)
            );
            for c in 1..=2 {
                s += &format!("|{:?}", a.selected_pair(stream, c));
            }
        }
        s
    }

    fn input(
        &mut self,
        k: usize,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        _corrupted: bool,
    ) {
        let now = self.clock.now;
        let authentic = self.learn(k, source, destination, data);
        let before = (!authentic).then(|| self.snapshot(k));
        let input = IceInput {
            transport: TransportProtocol::Udp,
            source,
            destination,
            data,
        };
        let received = match self.agents[k].handle_input(now, input) {
            Received::Data { from, .. } => Some(from),
            _ => None,
        };
        if let Some(from) = received {
            assert_eq!(from, source);
            self.check_data_path(k, destination, from, "handed over");
        }
        if let Some(before) = before {
            assert_eq!(
                self.snapshot(k),
                before,
                "unauthenticated input from {source} changed agent {k}"
            );
        }
        self.drain(k, (!authentic).then_some((source, data.len())));
    }

    /// Application data on (local, remote) needs a successful or authenticated check there.
    fn check_data_path(&self, k: usize, local: SocketAddr, remote: SocketAddr, what: &str) {
        let side = &self.sides[k];
        assert!(
            side.succeeded.contains(&(local, remote))
                || side.checked_by_peer.contains(&(local, remote)),
            "agent {k}: data {what} on {local} <-> {remote}, a path no check vouched for"
        );
    }

    fn attack(&mut self, to: usize, from: u8, attack: &Attack) {
        let source = match from % 8 {
            // Spoof the other agent's sockets.
            0 | 1 => {
                let s = &self.sides[1 - to].sockets;
                s[usize::from(from / 8) % s.len()]
            }
            _ => attacker(from / 8),
        };
        let sockets = &self.sides[to].sockets;
        let destination = sockets[usize::from(from) % sockets.len()];
        let data = match attack {
            Attack::Raw(b) => b.clone(),
            Attack::Check {
                signed,
                use_candidate,
            } => {
                let ours = self.sides[to].ufrags.last().cloned().unwrap_or_default();
                let theirs = self.sides[1 - to]
                    .ufrags
                    .last()
                    .cloned()
                    .unwrap_or_default();
                forged_check(&format!("{ours}:{theirs}"), *signed, *use_candidate, from)
            }
            Attack::Response { signed } => {
                let Some((tid, local, remote)) = self.sides[to].last_check else {
                    return;
                };
                let mut buf = [0u8; 128];
                let mut b =
                    MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, tid).expect("fits");
                b.add(&stun_proto::attributes::XorMappedAddress(attacker(from)))
                    .expect("fits");
                if *signed {
                    b.add_message_integrity(&IntegrityKey::short_term("notthepasswordnotthepw"))
                        .expect("fits");
                }
                b.add_fingerprint().expect("fits");
                let bytes = b.finish().to_vec();
                // As if from the checked address, on the checked socket.
                self.input(to, remote, local, &bytes, false);
                return;
            }
            Attack::Replay(w) => {
                if self.seen.is_empty() {
                    return;
                }
                self.seen[usize::from(*w) % self.seen.len()].data.clone()
            }
        };
        self.input(to, source, destination, &data, false);
    }

    /// Takes agent `k`'s output. `cause`: the unauthenticated datagram (source, length)
    /// that was just handled, whose answers are bounded.
    fn drain(&mut self, k: usize, cause: Option<(SocketAddr, usize)>) {
        while let Some(t) = self.agents[k].poll_transmit() {
            if let Some((to, len)) = cause {
                if t.destination == to {
                    assert!(
                        t.payload.len() <= len + MAX_UNAUTHENTICATED_GROWTH,
                        "agent {k} answered {len} unauthenticated bytes with {}",
                        t.payload.len()
                    );
                }
            }
            self.transmitted(k, t);
        }
        while let Some(e) = self.agents[k].poll_event() {
            match e {
                Event::LocalCandidate {
                    stream,
                    candidate,
                    ufrag,
                } => {
                    let line = format!("{} ufrag {ufrag}", candidate.to_sdp());
                    self.signals.push((1 - k, Signal::Candidate(stream, line)));
                }
                Event::LocalEndOfCandidates { stream, ufrag } => {
                    self.signals
                        .push((1 - k, Signal::EndOfCandidates(stream, ufrag)));
                }
                Event::SelectedPair { local, remote, .. } => {
                    let side = &self.sides[k];
                    let path = (local.base, remote.address);
                    if side.lite {
                        assert!(
                            side.checked_by_peer.contains(&path),
                            "lite agent {k} selected {path:?} without an authenticated check"
                        );
                    } else {
                        assert!(
                            side.succeeded.contains(&path),
                            "agent {k} selected {path:?}, whose check never succeeded"
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// A datagram an agent sent: onto the wire.
    fn transmitted(&mut self, k: usize, t: ice_core::Transmit) {
        assert!(
            self.sides[k].sockets.contains(&t.source),
            "agent {k} sent from {}, not one of its sockets",
            t.source
        );
        if let Ok(msg) = Message::parse(&t.payload) {
            if msg.method() == Method::BINDING && msg.class() == Class::Request {
                let tid = msg.transaction_id();
                self.sides[k].checks.insert(tid, (t.source, t.destination));
                self.sides[k].last_check = Some((tid, t.source, t.destination));
            }
        }
        let p = Packet {
            source: t.source,
            destination: t.destination,
            data: t.payload,
        };
        if self.seen.len() >= 64 {
            self.seen.remove(0);
        }
        self.seen.push(p.clone());
        if self.wire.len() < 64 {
            self.wire.push(p);
        }
    }

    fn advance(&mut self, d: Duration) {
        let until = self.clock.now + d;
        let mut ticked = false;
        for _ in 0..100_000 {
            let next = self.agents.iter().filter_map(|a| a.poll_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    // A deadline not after the last tick can only be the tolerated known bug
                    // (anything else fails `check_settled`): let the clock move on, as a
                    // real driver's would, instead of spinning.
                    let floor = if t <= self.clock.now && ticked {
                        self.clock.now + TICK
                    } else {
                        self.clock.now
                    };
                    self.clock.now = floor.max(t).min(until);
                    self.tick();
                    ticked = true;
                    if self.clock.now == until {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.clock.now = until;
        self.tick();
    }

    fn tick(&mut self) {
        let now = self.clock.now;
        for k in 0..2 {
            self.agents[k].handle_timeout(now);
            self.drain(k, None);
            if debug() {
                eprintln!(
                    "t={:?} agent {k}: next {:?} {}",
                    now - self.clock.origin,
                    self.agents[k].poll_timeout().map(|t| t - self.clock.origin),
                    self.snapshot(k)
                );
            }
            check_settled("ice agent", &mut AgentTimed(&mut self.agents[k]), now);
        }
    }

    fn check_bounds(&self) {
        for k in 0..2 {
            let a = &self.agents[k];
            let mut pairs = 0;
            for &s in &self.streams {
                let remote = a.remote_candidates(s).len();
                assert!(
                    remote <= MAX_REMOTE,
                    "agent {k}: {remote} remote candidates"
                );
                let learnt = a
                    .local_candidates(s)
                    .iter()
                    .filter(|c| c.kind == ice_core::CandidateType::PeerReflexive)
                    .count();
                assert!(
                    learnt <= MAX_PRFLX,
                    "agent {k}: {learnt} learnt local candidates"
                );
                pairs += a.pairs(s).len();
            }
            assert!(
                pairs <= MAX_PAIRS + MAX_PRFLX * self.streams.len(),
                "agent {k}: {pairs} pairs"
            );
        }
    }
}

fn forged_check(username: &str, signed: bool, use_candidate: bool, salt: u8) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let tid = TransactionId::new([salt; 12]);
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_REQUEST, tid).expect("fits");
    if let Ok(u) = Username::new(username) {
        b.add(&u).expect("fits");
    }
    b.add(&Priority(1_862_270_975)).expect("fits");
    b.add(&IceControlling(u64::from(salt))).expect("fits");
    if use_candidate {
        b.add(&UseCandidate).expect("fits");
    }
    if signed {
        b.add_message_integrity(&IntegrityKey::short_term("notthepasswordnotthepw"))
            .expect("fits");
    }
    b.add_fingerprint().expect("fits");
    b.finish().to_vec()
}

fn take(q: &mut Vec<Packet>, which: u8) -> Option<Packet> {
    if q.is_empty() {
        None
    } else {
        let i = usize::from(which) % q.len();
        Some(q.remove(i))
    }
}
