//! Scenario builders for the end-to-end simulation matrix: two ICE agents, each alone
//! behind its own NAT (or none), a STUN server and a TURN server on the public internet, all
//! in one [`netsim::Sim`] driven in virtual time. The test is the signalling channel: it
//! carries credentials, trickled candidates and end-of-candidates between the agents with a
//! fixed delay.
//!
//! The tests in `tests/tests/simulation*.rs` and `cargo run -p floe-tests --example matrix`
//! (which writes `docs/SIMULATION.md`) share this code.
//!
//! # Address plan
//!
//! | what | IPv4 | IPv6 |
//! |---|---|---|
//! | STUN server | `192.0.2.1:3478` | `[2001:db8::1]:3478` |
//! | TURN server (listens on UDP and TCP 3478 and "TLS" 5349, relays on 49152–65535 of the same IP) | `192.0.2.2` | `2001:db8::2` |
//! | agent A (controlling) behind its NAT / without NAT | `192.168.1.10:5000` / `198.51.100.10:5000` | `[2001:db8:a::10]:5000` |
//! | A's NAT, outside | `198.51.100.1` | |
//! | agent B (controlled) behind its NAT / without NAT | `10.0.0.10:6000` / `203.0.113.10:6000` | `[2001:db8:b::10]:6000` |
//! | B's NAT, outside | `203.0.113.1` | |
//!
//! ICE-TCP host candidates ([`SideSpec::ice_tcp`]) take the agent's IPv4 address with the
//! port after its UDP port: passive 5001 / 6001, active 5002 / 6002 (signalled as port 9),
//! simultaneous-open 5003 / 6003.
//!
//! # Links
//!
//! Each agent's access link carries the [`Profile`]: a quarter of the round-trip time one
//! way (so A to B crosses two access links: half the RTT), and the loss split between the
//! two links so that a datagram from A to B is lost with the profile's probability. NAT
//! uplinks and the servers' links are perfect.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use drivers::sim::{AgentNode, StunServerNode, TurnServerNode};
use ice_core::{
    AgentConfig, Candidate, CandidateType, ConnectionState, Credentials, Event, Role, StreamId,
    TcpType, TransportProtocol, TurnServer,
};
use netsim::{
    CaptureId, CaptureSink, HostId, LinkConfig, NatConfig, NatId, NodeId, RealmId, Sim, Transport,
};
use stun_proto::server::{BindingServer, BindingServerConfig};
use turn_proto::server::{RelayBinding, RelayRange, ServerConfig, ServerEvent};

/// The TURN user every agent authenticates as.
pub const TURN_USER: &str = "floe";
/// Its password.
pub const TURN_PASSWORD: &str = "simulated-password";
/// The realm of the TURN server.
pub const TURN_REALM: &str = "floe.sim";
/// The TURN server's TCP port (also its UDP port).
pub const TURN_TCP_PORT: u16 = 3478;
/// The TURN server's "TLS" port (RFC 8656 §3.1: 5349 for TURN over TLS). netsim carries it
/// as TCP with plaintext: the TLS layer is a real driver's job.
pub const TURN_TLS_PORT: u16 = 5349;
/// The name agents know the TLS TURN server by (sent as SNI by a real driver).
pub const TURN_TLS_NAME: &str = "turn.floe.sim";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal IP address")
}

fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A NAT in front of one agent: the usual names for the RFC 4787 behaviours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatKind {
    /// No NAT: the agent has a public address.
    None,
    /// Full cone: endpoint-independent mapping and filtering.
    FullCone,
    /// Restricted cone: endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Port-restricted cone: endpoint-independent mapping, address-and-port-dependent
    /// filtering.
    PortRestricted,
    /// Symmetric: address-and-port-dependent mapping and filtering, random ports.
    Symmetric,
}

impl NatKind {
    /// Every kind, from the most to the least permissive.
    pub const ALL: [NatKind; 5] = [
        NatKind::None,
        NatKind::FullCone,
        NatKind::RestrictedCone,
        NatKind::PortRestricted,
        NatKind::Symmetric,
    ];

    /// The netsim preset, `None` for no NAT.
    pub fn config(self) -> Option<NatConfig> {
        match self {
            NatKind::None => None,
            NatKind::FullCone => Some(NatConfig::full_cone()),
            NatKind::RestrictedCone => Some(NatConfig::restricted_cone()),
            NatKind::PortRestricted => Some(NatConfig::port_restricted_cone()),
            NatKind::Symmetric => Some(NatConfig::symmetric()),
        }
    }

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            NatKind::None => "none",
            NatKind::FullCone => "full cone",
            NatKind::RestrictedCone => "restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
        }
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How the selected pair crosses the NATs.
///
/// Computed from the selected pair's two candidates: `relay` if either is relayed, else
/// `prflx` if either is peer-reflexive, else `srflx` if either is server-reflexive, else
/// `host`. A peer-reflexive candidate whose address is also a server-reflexive candidate of
/// the same agent (learnt from a check before the trickled candidate arrived) counts as
/// server-reflexive: it is the same NAT mapping, only discovered in another order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathType {
    /// Host to host: no NAT on the way.
    Host,
    /// Through a NAT mapping that the STUN server saw too (endpoint-independent mapping).
    Srflx,
    /// Through a NAT mapping only the peer's checks revealed (address-dependent mapping).
    Prflx,
    /// Through the TURN server.
    Relay,
}

impl PathType {
    /// The RFC 8445 abbreviation.
    pub fn label(self) -> &'static str {
        match self {
            PathType::Host => "host",
            PathType::Srflx => "srflx",
            PathType::Prflx => "prflx",
            PathType::Relay => "relay",
        }
    }

    fn rank(kind: CandidateType) -> PathType {
        match kind {
            CandidateType::Host => PathType::Host,
            CandidateType::ServerReflexive => PathType::Srflx,
            CandidateType::PeerReflexive => PathType::Prflx,
            CandidateType::Relayed => PathType::Relay,
        }
    }

    /// The type of a pair, given the server-reflexive addresses of the local agent
    /// (`local_srflx`) and of the peer (`remote_srflx`).
    pub fn of(
        local: &Candidate,
        remote: &Candidate,
        local_srflx: &[SocketAddr],
        remote_srflx: &[SocketAddr],
    ) -> PathType {
        let kind = |c: &Candidate, srflx: &[SocketAddr]| match c.kind {
            CandidateType::PeerReflexive if srflx.contains(&c.address) => PathType::Srflx,
            k => PathType::rank(k),
        };
        kind(local, local_srflx).max(kind(remote, remote_srflx))
    }
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The path RFC 4787 predicts between agents behind NATs `a` and `b` (the order does not
/// matter). See `docs/SIMULATION.md` for the reasoning, cell by cell:
///
/// * no NAT on either side: `host`;
/// * no symmetric NAT: `srflx` — with endpoint-independent mapping the address the STUN
///   server saw is the address the peer sees, and each side's checks open its own filter
///   for the other's (hole punching);
/// * a symmetric NAT facing no NAT, a full cone or a restricted cone: `prflx` — the
///   symmetric side's checks leave from a new mapping, which the other side learns as a
///   peer-reflexive candidate; its filter lets them in (no filter, endpoint-independent
///   filtering, or address-dependent filtering opened by its own checks to the symmetric
///   NAT's IP);
/// * a symmetric NAT facing a port-restricted cone or another symmetric NAT: `relay` —
///   the other side's filter only admits the port it sent to, and it cannot know the port
///   the symmetric NAT picks for the checks.
pub fn predicted(a: NatKind, b: NatKind) -> PathType {
    use NatKind::*;
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    match (lo, hi) {
        (None, None) => PathType::Host,
        (_, Symmetric) => match lo {
            None | FullCone | RestrictedCone => PathType::Prflx,
            PortRestricted | Symmetric => PathType::Relay,
        },
        _ => PathType::Srflx,
    }
}

/// The network conditions on the agents' access links.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// A short name.
    pub name: &'static str,
    /// Round-trip time between the agents.
    pub rtt: Duration,
    /// Probability that a datagram from one agent to the other is lost.
    pub loss: f64,
    /// Extra one-way delay per access link, uniform in `0..=jitter` (reorders on its own).
    pub jitter: Duration,
    /// Probability per access link that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    /// How long a held-back datagram is delayed.
    pub reorder_delay: Duration,
    /// Probability per access link that a datagram is duplicated.
    pub duplicate: f64,
}

impl Profile {
    /// A clean network: 60 ms RTT, nothing lost, reordered or duplicated.
    pub fn clean() -> Profile {
        Profile {
            name: "clean",
            rtt: Duration::from_millis(60),
            loss: 0.0,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
        }
    }

    /// A bad network: 300 ms RTT, `loss` between the agents, 20 ms of jitter, 5% of
    /// datagrams held back 50 ms, 2% duplicated (per access link).
    pub fn impaired(name: &'static str, loss: f64) -> Profile {
        Profile {
            name,
            rtt: Duration::from_millis(300),
            loss,
            jitter: Duration::from_millis(20),
            reorder: 0.05,
            reorder_delay: Duration::from_millis(50),
            duplicate: 0.02,
        }
    }

    /// The three profiles of the matrix: clean, 10% loss and 30% loss.
    pub fn matrix() -> [Profile; 3] {
        [
            Profile::clean(),
            Profile::impaired("10% loss", 0.10),
            Profile::impaired("30% loss", 0.30),
        ]
    }

    /// The access link of an agent.
    pub fn access_link(&self) -> LinkConfig {
        LinkConfig {
            latency: self.rtt / 4,
            jitter: self.jitter,
            // Two links in a row lose 1 - (1 - p)^2: p = 1 - sqrt(1 - loss).
            loss: 1.0 - (1.0 - self.loss).sqrt(),
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_delay: self.reorder_delay,
            ..LinkConfig::default()
        }
    }

    /// Whether anything is lost, reordered or duplicated.
    pub fn is_clean(&self) -> bool {
        self.loss == 0.0 && self.reorder == 0.0 && self.duplicate == 0.0
    }
}

/// Which addresses the agents have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// IPv4 only, each agent behind its NAT (or none).
    V4(NatKind, NatKind),
    /// IPv6 only, public addresses, no NAT; the servers are IPv6 only too.
    V6Only,
    /// IPv4 behind the NATs plus a public IPv6 address on a second interface; the servers
    /// are dual-stack.
    DualStack(NatKind, NatKind),
}

impl Stack {
    fn nats(self) -> (NatKind, NatKind) {
        match self {
            Stack::V4(a, b) | Stack::DualStack(a, b) => (a, b),
            Stack::V6Only => (NatKind::None, NatKind::None),
        }
    }

    fn has_v4(self) -> bool {
        !matches!(self, Stack::V6Only)
    }

    fn has_v6(self) -> bool {
        !matches!(self, Stack::V4(..))
    }
}

/// Everything that defines a scenario. The same spec gives the same run, datagram for
/// datagram.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Addresses and NATs.
    pub stack: Stack,
    /// Network conditions on the access links.
    pub profile: Profile,
    /// The seed every random choice derives from (netsim, agents, TURN server).
    pub seed: u64,
    /// Delay of the signalling channel.
    pub signal_delay: Duration,
    /// Lifetime of NAT mappings (RFC 4787 REQ-5: at least 2 minutes).
    pub mapping_lifetime: Duration,
    /// What each agent (A, B) has beyond its UDP host candidates.
    pub sides: [SideSpec; 2],
}

/// One agent's network and candidates beyond the defaults of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideSpec {
    /// Its NAT's firewall drops all UDP (`Firewall::open().block(Transport::Udp)`), as some
    /// corporate networks do: only TCP gets out. Needs a NAT.
    pub udp_blocked: bool,
    /// The transports it reaches the TURN server over, one TURN server entry each (TCP to
    /// port 3478, TLS to port 5349): the relayed candidates are UDP in every case.
    pub turn: Vec<TransportProtocol>,
    /// ICE-TCP host candidates (RFC 6544) of these types, on its IPv4 address.
    pub ice_tcp: Vec<TcpType>,
}

impl Default for SideSpec {
    /// UDP through the firewall, TURN over UDP, no TCP candidates: the matrix.
    fn default() -> Self {
        SideSpec {
            udp_blocked: false,
            turn: vec![TransportProtocol::Udp],
            ice_tcp: Vec::new(),
        }
    }
}

impl Spec {
    /// IPv4 agents behind NATs `a` and `b`, on a `profile` network.
    pub fn v4(a: NatKind, b: NatKind, profile: Profile, seed: u64) -> Spec {
        Spec {
            stack: Stack::V4(a, b),
            profile,
            seed,
            signal_delay: Duration::from_millis(50),
            mapping_lifetime: Duration::from_secs(120),
            sides: [SideSpec::default(), SideSpec::default()],
        }
    }

    /// The same with side `i` (0: A, 1: B) as given.
    pub fn with_side(mut self, i: usize, side: SideSpec) -> Spec {
        self.sides[i] = side;
        self
    }

    /// Another stack, same defaults.
    pub fn with_stack(mut self, stack: Stack) -> Spec {
        self.stack = stack;
        self
    }
}

/// A seed for one element of a scenario, derived from the scenario's seed (SplitMix64).
pub fn derive_seed(seed: u64, element: u64) -> u64 {
    let mut z = seed
        .wrapping_add(element.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One of the two agents.
#[derive(Debug)]
pub struct Side {
    /// "A" or "B".
    pub name: &'static str,
    /// The agent.
    pub node: NodeId<AgentNode>,
    /// Its host.
    pub host: HostId,
    /// The NAT in front of its IPv4 address, if any.
    pub nat: Option<NatId>,
    /// Its one stream (one component).
    pub stream: StreamId,
    /// Its host candidates' sockets.
    pub sockets: Vec<SocketAddr>,
    /// Every event of the agent with the virtual time since the start.
    pub log: Vec<(Duration, Event)>,
}

impl Side {
    /// When the agent first reached `state`.
    pub fn reached(&self, state: ConnectionState) -> Option<Duration> {
        self.log.iter().find_map(|(t, e)| match e {
            Event::ConnectionStateChanged(s) if *s == state => Some(*t),
            _ => None,
        })
    }

    /// When the agent last reached `state`.
    pub fn last_reached(&self, state: ConnectionState) -> Option<Duration> {
        self.log.iter().rev().find_map(|(t, e)| match e {
            Event::ConnectionStateChanged(s) if *s == state => Some(*t),
            _ => None,
        })
    }

    /// How many events match.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.log.iter().filter(|(_, e)| f(e)).count()
    }

    /// The server-reflexive addresses the agent announced.
    pub fn srflx_addresses(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (_, e) in &self.log {
            if let Event::LocalCandidate { candidate, .. } = e {
                if candidate.kind == CandidateType::ServerReflexive
                    && !out.contains(&candidate.address)
                {
                    out.push(candidate.address);
                }
            }
        }
        out
    }
}

/// What the signalling channel carries.
#[derive(Clone, Debug)]
enum Message {
    Credentials(Credentials),
    Candidate(String),
    EndOfCandidates(String),
}

#[derive(Debug)]
struct Signal {
    at: Instant,
    /// 0: to A, 1: to B.
    to: usize,
    message: Message,
}

/// A signalling message the receiving agent refused, for diagnostics.
#[derive(Clone, Debug)]
pub struct SignalError {
    /// When.
    pub at: Duration,
    /// To whom.
    pub to: &'static str,
    /// What went wrong.
    pub error: String,
}

/// Two agents, a STUN server and a TURN server in one simulated network, and the
/// signalling between the agents.
#[derive(Debug)]
pub struct Call {
    /// The network.
    pub sim: Sim,
    /// The controlling agent.
    pub a: Side,
    /// The controlled agent.
    pub b: Side,
    /// The STUN server.
    pub stun: NodeId<StunServerNode>,
    /// The TURN server.
    pub turn: NodeId<TurnServerNode>,
    /// The TURN server's host.
    pub turn_host: HostId,
    /// The spec it was built from.
    pub spec: Spec,
    /// Signalling messages an agent refused.
    pub signal_errors: Vec<SignalError>,
    signals: VecDeque<Signal>,
}

/// The servers' addresses in a stack.
fn server_addresses(stack: Stack) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let mut stun = Vec::new();
    let mut turn = Vec::new();
    if stack.has_v4() {
        stun.push(ip("192.0.2.1"));
        turn.push(ip("192.0.2.2"));
    }
    if stack.has_v6() {
        stun.push(ip("2001:db8::1"));
        turn.push(ip("2001:db8::2"));
    }
    (stun, turn)
}

impl Call {
    /// Builds the network and the agents; gathering starts at once and the credentials are
    /// on their way through the signalling channel. Nothing has run yet.
    pub fn new(spec: Spec) -> Call {
        let start = Instant::now(); // the base of virtual time; nothing else reads a clock
        let mut sim = Sim::new(derive_seed(spec.seed, 0), start);
        let (stun_ips, turn_ips) = server_addresses(spec.stack);

        let stun_host = sim.add_host(RealmId::INTERNET, &stun_ips, LinkConfig::default());
        let stun_sockets: Vec<SocketAddr> = stun_ips.iter().map(|i| sock(*i, 3478)).collect();
        let server = BindingServer::new(BindingServerConfig::default());
        let stun = sim
            .add_node(stun_host, &stun_sockets, StunServerNode::new(server, start))
            .expect("STUN server sockets");

        let turn_host = sim.add_host(RealmId::INTERNET, &turn_ips, LinkConfig::default());
        let turn_sockets: Vec<SocketAddr> = turn_ips.iter().map(|i| sock(*i, 3478)).collect();
        let mut config = ServerConfig::new(TURN_REALM);
        config.relays = turn_ips.iter().map(|i| RelayRange::dynamic(*i)).collect();
        config.relay_binding = RelayBinding::Driver; // the adapter confirms every bind
        config.add_user(TURN_USER, TURN_PASSWORD);
        let tls_sockets: Vec<SocketAddr> =
            turn_ips.iter().map(|i| sock(*i, TURN_TLS_PORT)).collect();
        let server = TurnServerNode::new(config, &turn_sockets, derive_seed(spec.seed, 1), start)
            .expect("TURN configuration")
            .with_tcp(&turn_sockets)
            .with_tls(&tls_sockets);
        let turn = server.add_to(&mut sim, turn_host).expect("TURN sockets");

        let (nat_a, nat_b) = spec.stack.nats();
        let plan_a = SidePlan {
            name: "A",
            role: Role::Controlling,
            nat: nat_a,
            nat_outside: "198.51.100.1",
            private: "192.168.1.10",
            public: "198.51.100.10",
            v6: "2001:db8:a::10",
            port: 5000,
        };
        let plan_b = SidePlan {
            name: "B",
            role: Role::Controlled,
            nat: nat_b,
            nat_outside: "203.0.113.1",
            private: "10.0.0.10",
            public: "203.0.113.10",
            v6: "2001:db8:b::10",
            port: 6000,
        };
        let a = plan_a.build(&mut sim, &spec, 0, &stun_sockets, &turn_ips, 2);
        let b = plan_b.build(&mut sim, &spec, 1, &stun_sockets, &turn_ips, 3);

        let mut call = Call {
            sim,
            a,
            b,
            stun,
            turn,
            turn_host,
            spec,
            signal_errors: Vec::new(),
            signals: VecDeque::new(),
        };
        // Offer and answer: the credentials go first, the trickled candidates follow.
        for from in 0..2 {
            let creds = call.side(from).agent_credentials(&call.sim);
            call.post(1 - from, Message::Credentials(creds));
        }
        call
    }

    /// Side 0 (A) or 1 (B).
    pub fn side(&self, i: usize) -> &Side {
        if i == 0 { &self.a } else { &self.b }
    }

    fn side_mut(&mut self, i: usize) -> &mut Side {
        if i == 0 { &mut self.a } else { &mut self.b }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// The agent of a side.
    pub fn agent(&self, i: usize) -> &ice_core::Agent {
        self.sim.node(self.side(i).node).agent()
    }

    /// The connection state of a side.
    pub fn state(&self, i: usize) -> ConnectionState {
        self.agent(i).connection_state()
    }

    /// Both agents are in `state`.
    pub fn both(&self, state: ConnectionState) -> bool {
        self.state(0) == state && self.state(1) == state
    }

    fn post(&mut self, to: usize, message: Message) {
        let at = self.sim.now() + self.spec.signal_delay;
        self.signals.push_back(Signal { at, to, message });
    }

    /// Moves the agents' new events into their logs, and sends what the peer must hear.
    fn pump(&mut self) {
        for i in 0..2 {
            let node = self.side(i).node;
            if !self.sim.node(node).has_events() {
                continue;
            }
            let base = self.sim.base();
            for (at, event) in self.sim.node_mut(node).take_events() {
                let message = match &event {
                    Event::LocalCandidate {
                        candidate, ufrag, ..
                    } => Some(Message::Candidate(format!(
                        "{} ufrag {ufrag}",
                        candidate.to_sdp()
                    ))),
                    Event::LocalEndOfCandidates { ufrag, .. } => {
                        Some(Message::EndOfCandidates(ufrag.clone()))
                    }
                    _ => None,
                };
                if let Some(m) = message {
                    self.post(1 - i, m);
                }
                self.side_mut(i).log.push((at - base, event));
            }
        }
    }

    /// Hands the due signalling messages to their agents.
    fn deliver_signals(&mut self) {
        let now = self.sim.now();
        while self.signals.front().is_some_and(|s| s.at <= now) {
            let Some(signal) = self.signals.pop_front() else {
                break;
            };
            let (node, stream, name) = {
                let s = self.side(signal.to);
                (s.node, s.stream, s.name)
            };
            let result = self
                .sim
                .node_mut(node)
                .command(now, |agent| match &signal.message {
                    Message::Credentials(c) => agent
                        .set_remote_credentials(now, &c.ufrag, &c.pwd)
                        .map_err(|e| e.to_string()),
                    Message::Candidate(line) => agent
                        .add_remote_candidate_str(now, stream, line)
                        .map_err(|e| format!("{e}: {line}")),
                    Message::EndOfCandidates(ufrag) => agent
                        .end_of_remote_candidates(now, stream, Some(ufrag))
                        .map_err(|e| e.to_string()),
                });
            if let Err(error) = result {
                self.signal_errors.push(SignalError {
                    at: self.sim.elapsed(),
                    to: name,
                    error,
                });
            }
        }
    }

    /// Runs the network and the signalling until `done` holds (checked after every event;
    /// returns `true`) or `deadline` (returns `false`, the clock at the deadline).
    pub fn run_until(&mut self, deadline: Instant, mut done: impl FnMut(&Call) -> bool) -> bool {
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            let net = self.sim.next_event_time();
            let signal = self.signals.front().map(|s| s.at);
            let next = match (net, signal) {
                (Some(n), Some(s)) => n.min(s),
                (n, s) => match n.or(s) {
                    Some(t) => t,
                    None => {
                        self.sim.run_until(deadline);
                        return false;
                    }
                },
            };
            if next > deadline {
                self.sim.run_until(deadline);
                self.pump();
                return done(self);
            }
            if signal == Some(next) {
                self.sim.run_until(next);
                self.deliver_signals();
            } else {
                self.sim.step();
            }
        }
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.sim.now() + duration;
        self.run_until(deadline, |_| false);
    }

    /// Runs until both agents are `Completed` (a pair selected on both sides), at most
    /// `timeout`; returns the virtual time since the start.
    pub fn connect(&mut self, timeout: Duration) -> Option<Duration> {
        let deadline = self.sim.now() + timeout;
        self.run_until(deadline, |c| c.both(ConnectionState::Completed))
            .then(|| self.elapsed())
    }

    /// The selected pair of a side: (local, remote).
    pub fn selected(&self, i: usize) -> Option<(Candidate, Candidate)> {
        self.agent(i).selected_pair(self.side(i).stream, 1)
    }

    /// The path type as side `i` sees its selected pair.
    pub fn path_seen_by(&self, i: usize) -> Option<PathType> {
        let (local, remote) = self.selected(i)?;
        let own = self.side(i).srflx_addresses();
        let peer = self.side(1 - i).srflx_addresses();
        Some(PathType::of(&local, &remote, &own, &peer))
    }

    /// The path type, if both agents see the same one.
    pub fn path(&self) -> Option<PathType> {
        let a = self.path_seen_by(0)?;
        (self.path_seen_by(1)? == a).then_some(a)
    }

    /// Sends `count` numbered messages each way, one every `interval`, then waits two RTTs
    /// for the last ones. Returns how many distinct messages arrived each way, and how many
    /// came from another address than the receiver's selected remote candidate.
    pub fn exchange(&mut self, tag: &str, count: usize, interval: Duration) -> Exchange {
        let tail = self.spec.profile.rtt * 2 + Duration::from_millis(200);
        self.exchange_with_tail(tag, count, interval, tail)
    }

    /// [`exchange`](Self::exchange), waiting `tail` after the last message (over TCP a lost
    /// segment holds everything behind it until its retransmission).
    pub fn exchange_with_tail(
        &mut self,
        tag: &str,
        count: usize,
        interval: Duration,
        tail: Duration,
    ) -> Exchange {
        let turn_before = self.sim.node(self.turn).server().stats();
        let mut sent = [0usize; 2];
        for n in 0..count {
            for (i, sent) in sent.iter_mut().enumerate() {
                let (node, stream) = (self.side(i).node, self.side(i).stream);
                let now = self.sim.now();
                let payload = format!("{tag} {} #{n}", self.side(i).name);
                let node = self.sim.node_mut(node);
                if node.send(now, stream, 1, payload.as_bytes()).is_ok() {
                    *sent += 1;
                }
            }
            self.run_for(interval);
        }
        self.run_for(tail);
        let mut off_path = 0;
        let received = [0, 1].map(|i| {
            let prefix = format!("{tag} {} #", self.side(1 - i).name);
            let expected_from = self.selected(i).map(|(_, remote)| remote.address);
            let mut seen = std::collections::BTreeSet::new();
            for d in self.sim.node(self.side(i).node).received() {
                let Some(n) = std::str::from_utf8(&d.data)
                    .ok()
                    .and_then(|text| text.strip_prefix(&prefix))
                else {
                    continue;
                };
                if Some(d.from) != expected_from {
                    off_path += 1;
                }
                seen.insert(n.to_owned());
            }
            seen.len()
        });
        let turn_after = self.sim.node(self.turn).server().stats();
        Exchange {
            sent_by_a: sent[0],
            sent_by_b: sent[1],
            received_by_a: received[0],
            received_by_b: received[1],
            off_path,
            relayed_packets: (turn_after.to_peer.packets - turn_before.to_peer.packets)
                + (turn_after.to_client.packets - turn_before.to_client.packets),
        }
    }

    /// Restarts ICE on both agents (RFC 8445 §9) and signals the new credentials; the
    /// re-announced candidates follow through the signalling channel.
    pub fn restart(&mut self) {
        let now = self.sim.now();
        for i in 0..2 {
            let node = self.side(i).node;
            let creds = self
                .sim
                .node_mut(node)
                .command(now, |agent| agent.restart(now))
                .expect("restart");
            self.post(1 - i, Message::Credentials(creds));
        }
    }

    /// Starts an in-memory pcap capture of every host of the scenario (agents, STUN, TURN).
    pub fn capture_all(&mut self) -> Vec<CaptureId> {
        let mut hosts = vec![self.a.host, self.b.host];
        hosts.push(self.sim.node_host(self.stun));
        hosts.push(self.turn_host);
        hosts
            .into_iter()
            .map(|h| self.sim.capture_host(h, CaptureSink::memory()))
            .collect()
    }
}

impl Call {
    /// The transport between the TURN server and the client of the allocation that owns
    /// `relayed`, as the server recorded it (`None`: no allocation has that address).
    pub fn relay_transport(&self, relayed: SocketAddr) -> Option<TransportProtocol> {
        self.sim
            .node(self.turn)
            .events()
            .find_map(|(_, e)| match e {
                ServerEvent::AllocationCreated {
                    five_tuple,
                    relayed: addresses,
                    ..
                } if addresses.contains(&relayed) => Some(five_tuple.transport),
                _ => None,
            })
    }

    /// A candidate in a few words: `relay udp (TURN/TCP)`, `host tcp passive`, `srflx udp`.
    pub fn describe(&self, c: &Candidate) -> String {
        let kind = match c.kind {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relayed => {
                let via = match self.relay_transport(c.address) {
                    Some(TransportProtocol::Tcp) => "TURN/TCP",
                    Some(TransportProtocol::Tls) => "TURN/TLS",
                    Some(_) => "TURN/UDP",
                    None => "TURN/?",
                };
                return format!("relay udp ({via})");
            }
        };
        match c.tcp_type {
            None => format!("{kind} udp"),
            Some(TcpType::Active) => format!("{kind} tcp active"),
            Some(TcpType::Passive) => format!("{kind} tcp passive"),
            Some(TcpType::SimultaneousOpen) => format!("{kind} tcp so"),
        }
    }

    /// Side `i`'s selected pair in a few words: `local → remote`.
    pub fn selected_text(&self, i: usize) -> Option<String> {
        let (local, remote) = self.selected(i)?;
        Some(format!(
            "{} → {}",
            self.describe(&local),
            self.describe(&remote)
        ))
    }
}

impl Side {
    fn agent_credentials(&self, sim: &Sim) -> Credentials {
        sim.node(self.node).agent().local_credentials().clone()
    }
}

/// What [`Call::exchange`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Messages A sent (the agent accepted them).
    pub sent_by_a: usize,
    /// Messages B sent.
    pub sent_by_b: usize,
    /// Distinct messages from B that reached A.
    pub received_by_a: usize,
    /// Distinct messages from A that reached B.
    pub received_by_b: usize,
    /// Messages that came from another address than the receiver's selected remote.
    pub off_path: usize,
    /// Packets the TURN server relayed meanwhile (both directions).
    pub relayed_packets: u64,
}

/// How to build one side.
struct SidePlan {
    name: &'static str,
    role: Role,
    nat: NatKind,
    nat_outside: &'static str,
    private: &'static str,
    public: &'static str,
    v6: &'static str,
    port: u16,
}

impl SidePlan {
    fn build(
        &self,
        sim: &mut Sim,
        spec: &Spec,
        side: usize,
        stun: &[SocketAddr],
        turn: &[IpAddr],
        element: u64,
    ) -> Side {
        let plan = &spec.sides[side];
        let link = spec.profile.access_link();
        let mut sockets = Vec::new();
        let mut nat = None;
        let host = if spec.stack.has_v4() {
            let (realm, addr) = match self.nat.config() {
                Some(mut config) => {
                    config.mapping_lifetime = spec.mapping_lifetime;
                    if plan.udp_blocked {
                        config.firewall = config.firewall.block(Transport::Udp);
                    }
                    let id = sim.add_nat(
                        RealmId::INTERNET,
                        &[ip(self.nat_outside)],
                        config,
                        LinkConfig::default(),
                    );
                    nat = Some(id);
                    (sim.nat(id).inside_realm(), ip(self.private))
                }
                None => {
                    assert!(!plan.udp_blocked, "{}: a firewall needs a NAT", self.name);
                    (RealmId::INTERNET, ip(self.public))
                }
            };
            sockets.push(sock(addr, self.port));
            let host = sim.add_host(realm, &[addr], link.clone());
            if spec.stack.has_v6() {
                sim.add_interface(host, RealmId::INTERNET, &[ip(self.v6)], link);
                sockets.push(sock(ip(self.v6), self.port));
            }
            host
        } else {
            sockets.push(sock(ip(self.v6), self.port));
            sim.add_host(RealmId::INTERNET, &[ip(self.v6)], link)
        };
        // IPv6 first: RFC 8421 preferences follow the order host candidates are added.
        sockets.sort_by_key(|s| s.is_ipv4());

        let mut turn_servers = Vec::new();
        let mut turn_server_names = Vec::new();
        for transport in &plan.turn {
            for turn_ip in turn {
                let port = match transport {
                    TransportProtocol::Tls => TURN_TLS_PORT,
                    _ => TURN_TCP_PORT,
                };
                let server = sock(*turn_ip, port);
                if *transport == TransportProtocol::Tls {
                    turn_server_names.push((server, TURN_TLS_NAME.to_string()));
                }
                turn_servers.push(TurnServer {
                    server,
                    transport: *transport,
                    username: TURN_USER.into(),
                    password: TURN_PASSWORD.into(),
                });
            }
        }
        let config = AgentConfig {
            role: self.role,
            stun_servers: stun.to_vec(),
            turn_servers,
            turn_server_names,
            ..AgentConfig::default()
        };
        let tcp_ip = sockets.iter().find(|s| s.is_ipv4()).map(|s| s.ip());
        let now = sim.now();
        let agent = AgentNode::new(config, derive_seed(spec.seed, element), now);
        let node = sim.add_node(host, &sockets, agent).expect("agent sockets");
        let stream = sim.node_mut(node).command(now, |agent| {
            let stream = agent.add_stream(1).expect("a stream");
            for s in &sockets {
                agent
                    .add_host_candidate(now, stream, 1, *s, TransportProtocol::Udp)
                    .expect("a host candidate");
            }
            for tcp_type in &plan.ice_tcp {
                let ip = tcp_ip.expect("ICE-TCP candidates need an IPv4 address");
                let offset = match tcp_type {
                    TcpType::Passive => 1,
                    TcpType::Active => 2,
                    TcpType::SimultaneousOpen => 3,
                };
                let address = sock(ip, self.port + offset);
                agent
                    .add_tcp_host_candidate(now, stream, 1, address, *tcp_type)
                    .expect("a TCP host candidate");
            }
            agent.finish_host_candidates(now);
            stream
        });
        Side {
            name: self.name,
            node,
            host,
            nat,
            stream,
            sockets,
            log: Vec::new(),
        }
    }
}

/// The outcome of one cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    /// A's NAT (A is controlling).
    pub a: NatKind,
    /// B's NAT.
    pub b: NatKind,
    /// What RFC 4787 predicts.
    pub predicted: PathType,
    /// Virtual time until both agents completed, if they did.
    pub connected_after: Option<Duration>,
    /// The path of the selected pair, if both agents agree on it.
    pub path: Option<PathType>,
    /// The path each agent sees (A, B).
    pub seen: (Option<PathType>, Option<PathType>),
    /// The data exchanged after connecting.
    pub exchange: Option<Exchange>,
    /// Signalling messages an agent refused.
    pub signal_errors: Vec<SignalError>,
}

impl Cell {
    /// The paths that count as right: the prediction; on a lossy network also the relay,
    /// which wins when the checks of the direct pair are lost for longer than the
    /// nomination timeout while the relayed pair got through.
    pub fn acceptable(&self, profile: &Profile) -> Vec<PathType> {
        let mut ok = vec![self.predicted];
        if !profile.is_clean() && self.predicted != PathType::Relay {
            ok.push(PathType::Relay);
        }
        ok
    }
}

/// Messages exchanged each way after connecting, in every cell.
pub const MESSAGES: usize = 20;

/// Runs one cell: build, connect (at most 60 s), exchange [`MESSAGES`] messages each way.
pub fn run_cell(a: NatKind, b: NatKind, profile: &Profile, seed: u64) -> Cell {
    let mut call = Call::new(Spec::v4(a, b, profile.clone(), seed));
    let connected_after = call.connect(Duration::from_secs(60));
    let exchange =
        connected_after.map(|_| call.exchange("data", MESSAGES, Duration::from_millis(50)));
    Cell {
        a,
        b,
        predicted: predicted(a, b),
        connected_after,
        path: call.path(),
        seen: (call.path_seen_by(0), call.path_seen_by(1)),
        exchange,
        signal_errors: call.signal_errors,
    }
}

/// The 15 unordered pairs of NAT kinds, the more permissive NAT on A's side.
pub fn cells() -> Vec<(NatKind, NatKind)> {
    let mut out = Vec::new();
    for (i, a) in NatKind::ALL.iter().enumerate() {
        for b in &NatKind::ALL[i..] {
            out.push((*a, *b));
        }
    }
    out
}

/// The seed of the matrix runs.
pub const MATRIX_SEED: u64 = 0xF10E;

/// Runs the 15 cells under `profile`; cell `k` uses seed `derive_seed(seed, k)`.
pub fn run_matrix(profile: &Profile, seed: u64) -> Vec<Cell> {
    cells()
        .into_iter()
        .enumerate()
        .map(|(k, (a, b))| run_cell(a, b, profile, derive_seed(seed, k as u64)))
        .collect()
}

/// A Markdown table of one profile's cells: outcome, path and connect time.
pub fn markdown_table(profile: &Profile, cells: &[Cell]) -> String {
    let mut out = String::new();
    out.push_str("| A \\ B | ");
    out.push_str(
        &NatKind::ALL
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(NatKind::ALL.len()));
    out.push('\n');
    for a in NatKind::ALL {
        out.push_str(&format!("| **{}** |", a.label()));
        for b in NatKind::ALL {
            let text = match cells.iter().find(|c| c.a == a && c.b == b) {
                Some(c) => cell_text(profile, c),
                None => String::new(),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    out
}

fn cell_text(profile: &Profile, c: &Cell) -> String {
    match (c.connected_after, c.path) {
        (Some(t), Some(p)) => {
            let mark = if p == c.predicted {
                ""
            } else if c.acceptable(profile).contains(&p) {
                " (†)"
            } else {
                " (**unexpected**)"
            };
            format!("{p}{mark}, {} ms", t.as_millis())
        }
        (Some(t), None) => format!(
            "connected, paths disagree ({:?}), {} ms",
            c.seen,
            t.as_millis()
        ),
        (None, _) => "**no connection**".to_string(),
    }
}

/// Why RFC 4787 predicts [`predicted(a, b)`](predicted) for A behind `a` (the more
/// permissive NAT) and B behind `b`.
pub fn reasoning(a: NatKind, b: NatKind) -> &'static str {
    use NatKind::*;
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    match (a, b) {
        (None, None) => "No NAT: the host candidates reach each other.",
        (None, Symmetric) => {
            "B's checks to A leave from a new mapping (address- and port-dependent), not the \
             one the STUN server saw: A learns it as peer-reflexive, and B learns its own \
             mapped address as a local peer-reflexive candidate. A has no filter."
        }
        (FullCone, Symmetric) => {
            "As with no NAT: B's checks come from a new mapping (peer-reflexive); A's \
             endpoint-independent filter lets them in."
        }
        (RestrictedCone, Symmetric) => {
            "B's checks come from a new mapping (peer-reflexive). A's address-dependent \
             filter admits them once A has sent a check to B's server-reflexive address: \
             same IP, and the port does not matter."
        }
        (PortRestricted, Symmetric) => {
            "A's filter admits only the IP and port A sent to, and A cannot know the random \
             port B's NAT picks for the checks it sends A; B's server-reflexive port filters \
             everything but the STUN server. Only the TURN relay works."
        }
        (Symmetric, Symmetric) => {
            "Each side's checks leave from a mapping the other cannot predict, and each \
             side's filter admits only what it sent to. Only the TURN relay works."
        }
        (None, _) => {
            "B's mapping is endpoint-independent: the address the STUN server saw is the \
             address A sees. B's checks to A's host address open B's filter for A."
        }
        (FullCone, FullCone) => {
            "Endpoint-independent mapping and filtering: each server-reflexive address \
             admits anyone."
        }
        _ => {
            "Endpoint-independent mapping on both sides, so each server-reflexive address is \
             the one the peer sees; each side's checks to the other's server-reflexive \
             address open its own filter for exactly that IP and port (hole punching)."
        }
    }
}

/// The three profiles' cells, as [`run_matrix`] computes them with [`MATRIX_SEED`].
pub fn run_all() -> Vec<(Profile, Vec<Cell>)> {
    Profile::matrix()
        .into_iter()
        .map(|p| {
            let cells = run_matrix(&p, MATRIX_SEED);
            (p, cells)
        })
        .collect()
}

/// A scenario over TCP: TURN over TCP and TLS (RFC 8656 §3.1) and ICE-TCP (RFC 6544).
///
/// In each, A (controlling) is behind a port-restricted cone NAT and B (controlled) has a
/// public address; both keep their UDP host candidate, the STUN server and a TURN server
/// over UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpScenario {
    /// A's firewall drops UDP; A also reaches the TURN server over TCP: A's relayed
    /// candidate (allocated over TCP) to B's host candidate.
    TurnOverTcp,
    /// The same over "TLS" (port 5349).
    TurnOverTls,
    /// A's firewall drops UDP; A has an active ICE-TCP candidate and B a passive one: the
    /// TCP host pair.
    IceTcp,
    /// Nothing blocked; both have TURN over UDP, TCP and TLS and active and passive ICE-TCP
    /// candidates: a UDP pair still wins (TCP candidates and relays obtained over TCP rank
    /// below UDP ones).
    UdpAvailable,
}

impl TcpScenario {
    /// Every scenario, in the order of `docs/SIMULATION.md`.
    pub const ALL: [TcpScenario; 4] = [
        TcpScenario::TurnOverTcp,
        TcpScenario::TurnOverTls,
        TcpScenario::IceTcp,
        TcpScenario::UdpAvailable,
    ];

    /// A short description for tables.
    pub fn label(self) -> &'static str {
        match self {
            TcpScenario::TurnOverTcp => "A's UDP blocked, TURN over TCP",
            TcpScenario::TurnOverTls => "A's UDP blocked, TURN over TLS",
            TcpScenario::IceTcp => "A's UDP blocked, ICE-TCP active → passive",
            TcpScenario::UdpAvailable => "UDP open, all of the above configured",
        }
    }

    /// The scenario's spec on `profile`.
    pub fn spec(self, profile: Profile, seed: u64) -> Spec {
        use TransportProtocol::{Tcp, Tls, Udp};
        let spec = Spec::v4(NatKind::PortRestricted, NatKind::None, profile, seed);
        let blocked = |turn: Vec<TransportProtocol>, ice_tcp: Vec<TcpType>| SideSpec {
            udp_blocked: true,
            turn,
            ice_tcp,
        };
        match self {
            TcpScenario::TurnOverTcp => spec.with_side(0, blocked(vec![Udp, Tcp], vec![])),
            TcpScenario::TurnOverTls => spec.with_side(0, blocked(vec![Udp, Tls], vec![])),
            TcpScenario::IceTcp => spec
                .with_side(0, blocked(vec![Udp], vec![TcpType::Active]))
                .with_side(
                    1,
                    SideSpec {
                        ice_tcp: vec![TcpType::Passive],
                        ..SideSpec::default()
                    },
                ),
            TcpScenario::UdpAvailable => {
                let all = SideSpec {
                    udp_blocked: false,
                    turn: vec![Udp, Tcp, Tls],
                    ice_tcp: vec![TcpType::Passive, TcpType::Active],
                };
                spec.with_side(0, all.clone()).with_side(1, all)
            }
        }
    }
}

/// What a [`TcpScenario`] run gave.
#[derive(Clone, Debug)]
pub struct TcpOutcome {
    /// The scenario.
    pub scenario: TcpScenario,
    /// The network profile's name.
    pub profile: &'static str,
    /// Virtual time until both agents were first `Connected` (a valid pair each: data can
    /// flow), if they were.
    pub usable_after: Option<Duration>,
    /// Virtual time until both agents completed (a selected pair each), if they did.
    pub connected_after: Option<Duration>,
    /// The selected pair as A and as B see it ([`Call::selected_text`]).
    pub selected: [Option<String>; 2],
    /// The data exchanged after connecting.
    pub exchange: Option<Exchange>,
}

/// How long [`run_tcp_scenario`] waits for the last messages.
pub const TCP_TAIL: Duration = Duration::from_secs(10);

/// Runs a TCP scenario: build, connect (at most 60 s), exchange [`MESSAGES`] messages each
/// way and wait [`TCP_TAIL`] for the last ones. The call is returned for a closer look.
pub fn run_tcp_scenario(scenario: TcpScenario, profile: &Profile, seed: u64) -> (Call, TcpOutcome) {
    let mut call = Call::new(scenario.spec(profile.clone(), seed));
    let connected_after = call.connect(Duration::from_secs(60));
    let usable_after = (call.a.reached(ConnectionState::Connected))
        .zip(call.b.reached(ConnectionState::Connected))
        .map(|(a, b)| a.max(b));
    let interval = Duration::from_millis(50);
    let exchange =
        connected_after.map(|_| call.exchange_with_tail("data", MESSAGES, interval, TCP_TAIL));
    let outcome = TcpOutcome {
        scenario,
        profile: profile.name,
        usable_after,
        connected_after,
        selected: [call.selected_text(0), call.selected_text(1)],
        exchange,
    };
    (call, outcome)
}

/// The seed of the TCP scenarios in `docs/SIMULATION.md`.
pub const TCP_SEED: u64 = 0x7C9;

/// Every TCP scenario on the clean and the 10% loss profile, as `docs/SIMULATION.md` shows
/// them; scenario `k` uses seed `derive_seed(TCP_SEED, k)`.
pub fn run_tcp_all() -> Vec<TcpOutcome> {
    let profiles = [Profile::clean(), Profile::matrix()[1].clone()];
    let mut out = Vec::new();
    for profile in &profiles {
        for (k, scenario) in TcpScenario::ALL.into_iter().enumerate() {
            let seed = derive_seed(TCP_SEED, k as u64);
            out.push(run_tcp_scenario(scenario, profile, seed).1);
        }
    }
    out
}

fn tcp_section(outcomes: &[TcpOutcome]) -> String {
    let mut out = String::from(TCP_INTRO);
    out.push_str(
        "\n| scenario | network | selected pair (A → B, as A sees it) | both `connected` (virtual ms) | both `completed` (virtual ms) | delivered |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for o in outcomes {
        let delivered = o.exchange.map_or_else(
            || "—".to_string(),
            |e| {
                format!(
                    "{}/{} · {}/{}",
                    e.received_by_b, e.sent_by_a, e.received_by_a, e.sent_by_b
                )
            },
        );
        let ms =
            |t: Option<Duration>| t.map_or_else(|| "—".to_string(), |t| t.as_millis().to_string());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            o.scenario.label(),
            o.profile,
            o.selected[0].as_deref().unwrap_or("—"),
            ms(o.usable_after),
            o.connected_after
                .map_or_else(|| "—".to_string(), |t| t.as_millis().to_string()),
            delivered
        ));
    }
    out.push_str(TCP_OUTRO);
    out
}

const TCP_OUTRO: &str = "
Also in `tcp.rs`: an agent that closes has its ICE-TCP and TURN connections closed with a
FIN, and the peer loses consent at once (the TURN server deletes the allocation: RFC 8656
§3.1); an RFC 6062 TCP allocation made over TCP from behind the UDP-blocking NAT connects to
a TCP peer through the relay and accepts a peer's connection (its early bytes wait for the
bridge), and closing one half of a bridge closes the other; a simultaneous-open candidate
takes the peer's connection when its SYN comes first; and the same seed gives
byte-identical pcaps of a lossy call over TURN/TCP, TURN/TLS and ICE-TCP (another seed,
other bytes).
";

const TCP_INTRO: &str = "
## TCP

Where UDP is blocked, TURN over TCP or TLS (RFC 8656 §3.1) and ICE-TCP (RFC 6544) still get
through (tests in `tests/tests/simulation/tcp.rs`). netsim carries real TCP segments through
the same links and NATs (RFC 5382 behaviour; a handshake is one round trip, loss costs
retransmission time, never bytes), and the adapters frame the byte streams as a driver
does: STUN and ChannelData to and from TURN servers, RFC 4571 on ICE-TCP connections. TLS
is simulated as TCP carrying plaintext (the handshake and the certificate check are a real
driver's job; the cores see plaintext either way), on port 5349.

A (controlling) is behind a port-restricted cone NAT whose firewall, in the first three
scenarios, drops all UDP; B (controlled) has a public address. Both keep their UDP host
candidate, the STUN server and the TURN server over UDP, which A cannot reach: the UDP
gathering times out in the background while the TCP paths connect. Times are from the
start: until both agents are `Connected` (a valid pair each, data can flow), and until both
are `Completed`, as in the matrix. With UDP blocked, A's UDP pairs are still in progress
when the TCP path is valid, so A waits the 1 s nomination timeout for a better pair before
it nominates. *Delivered* counts the 20 messages each way sent after that, waiting 10 s for
the last: over TCP a lost segment holds back everything behind it until its retransmission
(on the lossy profile, seconds: 300 ms RTT and a backed-off retransmission timeout), but
nothing is lost; on the relayed paths, the relay's UDP leg to B can lose messages. On the
ICE-TCP path A's side shows as `prflx`: B's response reported A's NAT mapping of the
connection, which A records as a local peer-reflexive candidate (RFC 8445 §7.2.5.3.1).
";

/// The text of `docs/SIMULATION.md` for the matrix `results` and the `tcp` scenarios.
pub fn simulation_md(results: &[(Profile, Vec<Cell>)], tcp: &[TcpOutcome]) -> String {
    let mut out = String::from(SIMULATION_INTRO);
    out.push_str("\n## Expected path per cell (RFC 4787)\n\n");
    out.push_str(
        "A is the controlling agent, behind the more permissive NAT of the pair (the \
         `simulation` tests also run every cell the other way round, with the same \
         expectations).\n\n",
    );
    out.push_str("| A | B | expected | why |\n|---|---|---|---|\n");
    for (a, b) in cells() {
        out.push_str(&format!(
            "| {a} | {b} | **{}** | {} |\n",
            predicted(a, b),
            reasoning(a, b)
        ));
    }
    out.push_str("\n## Results\n\n");
    out.push_str(
        "Each cell: the path of the selected pair (both agents agree on it in every cell), \
         then the virtual time from the start (agents created, gathering begins, \
         credentials sent) until both agents are `Completed`. After that, every cell sends \
         20 messages each way over the selected pair; the column *delivered* counts the \
         distinct ones that arrived (A→B / B→A), all from the address of the receiver's \
         selected remote candidate.\n",
    );
    for (profile, cells) in results {
        out.push_str(&format!(
            "\n### {} — {} ms RTT, {}% loss{}\n\n",
            profile.name,
            profile.rtt.as_millis(),
            (profile.loss * 100.0).round(),
            if profile.is_clean() {
                String::new()
            } else {
                format!(
                    ", jitter ≤ {} ms, {}% reordered by {} ms and {}% duplicated per access link",
                    profile.jitter.as_millis(),
                    (profile.reorder * 100.0).round(),
                    profile.reorder_delay.as_millis(),
                    (profile.duplicate * 100.0).round()
                )
            }
        ));
        out.push_str(&markdown_table(profile, cells));
        out.push_str("\n| A | B | expected | selected | connect (virtual ms) | delivered |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for c in cells {
            let delivered = c.exchange.map_or_else(
                || "—".to_string(),
                |e| {
                    format!(
                        "{}/{} · {}/{}",
                        e.received_by_b, e.sent_by_a, e.received_by_a, e.sent_by_b
                    )
                },
            );
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                c.a,
                c.b,
                c.predicted,
                c.path.map_or("—", PathType::label),
                c.connected_after
                    .map_or_else(|| "—".to_string(), |t| t.as_millis().to_string()),
                delivered
            ));
        }
    }
    out.push_str(SIMULATION_OUTRO);
    out.push_str(&tcp_section(tcp));
    out
}

const SIMULATION_INTRO: &str = "# Simulation

<!-- Generated by `cargo run -p floe-tests --example matrix`; do not edit by hand. -->

floe's state machines are Sans-IO, so they run unchanged inside `netsim`, a deterministic
simulated network, in virtual time: the STUN Binding server, the TURN server, and two ICE
agents that gather host, server-reflexive and relayed candidates, trickle them to each other
and connect. This page is the end-to-end matrix: every pair of NAT types, on a clean and on
two bad networks, with the path RFC 4787 predicts and the path the agents selected; and,
at the end, the scenarios over TCP (TURN over TCP and TLS, ICE-TCP) where UDP is blocked.

Rerun it with

```sh
cargo run -p floe-tests --example matrix   # rewrites this file
cargo test -p floe-tests --test simulation # asserts it (part of `cargo test --workspace`)
```

The whole matrix takes well under a second of real time: nothing sleeps, the clock is
virtual. Every run is a pure function of its seed (test `determinism`: same seed, byte-identical
pcap captures; another seed, different ones), and the test `simulation_md_is_up_to_date`
fails when this file no longer matches what the code does.

## The model

* **netsim** (`crates/netsim`) moves UDP datagrams between hosts through links (latency,
  jitter, loss, duplication, reordering) and NATs that implement RFC 4787's mapping
  (endpoint-independent, address-dependent, address-and-port-dependent) and filtering
  behaviours, port preservation or random ports, hairpinning and mapping timeouts (2 minutes,
  refreshed by outbound traffic). It also carries TCP (see [TCP](#tcp)). It knows nothing
  about STUN, TURN or ICE.
* **Adapters** (`floe_drivers::sim`, feature `netsim` of `floe-drivers`) make each machine a
  netsim node, as any driver would: `StunServerNode` (`BindingServer`), `TurnServerNode`
  (`turn_proto::server::Server`, owning every port of its relay address and confirming relay
  binds; TCP and TLS listeners), `AgentNode` (`ice_core::Agent`; ICE-TCP connections and
  connections to TURN servers) and `TurnClientNode`.
* **Scenarios** (`tests/src/sim.rs`): a STUN server (192.0.2.1:3478) and a TURN server
  (192.0.2.2: UDP and TCP 3478, TLS 5349; relays on the same IP) on the internet; agent A
  (controlling) at 198.51.100.10 or behind a NAT at 198.51.100.1 (inside 192.168.1.10);
  agent B (controlled) at 203.0.113.10 or behind a NAT at 203.0.113.1 (inside 10.0.0.10).
  NATs are netsim's presets: full cone = EIM + EIF, restricted cone = EIM + ADF,
  port-restricted cone = EIM + APDF, symmetric = APDM + APDF with random ports and no
  hairpinning; cones preserve ports.
  Each agent has one host candidate, the STUN server and the TURN server, and ice-core's
  defaults (Ta 50 ms, nomination after at most 1 s of waiting for a better pair, consent
  every 5 s). The test is the signalling channel: credentials, then trickled candidates and
  end-of-candidates, each delivered 50 ms after it was sent.
* **Links.** Each agent's access link carries a quarter of the RTT one way, and the loss is
  split between the two access links so that a datagram from A to B is lost with the stated
  probability: `1 - sqrt(1 - loss)` per link, which is also what a datagram between an agent
  and a server meets. NAT uplinks and the servers' links are perfect.
* **Path type** of the selected pair: `relay` if either candidate is relayed, else `prflx` if
  either is peer-reflexive, else `srflx` if either is server-reflexive, else `host`. (A
  peer-reflexive candidate at an address the agent also learnt as server-reflexive counts as
  `srflx`: same NAT mapping, found in another order.) Both agents must see the same type.
* **Seeds.** Every random choice (netsim's links and NAT ports, the agents' credentials and
  transaction IDs, the TURN server's nonces) derives from one seed per cell.
";

const SIMULATION_OUTRO: &str = "
(†) On a lossy network the relay can win a cell where a direct path exists: the controlling
agent nominates the best valid pair once it has waited 1 s for a better one, and when the
direct pair's checks keep being lost, the relayed pair is the best it has. The tests accept
the relay in any cell of the lossy profiles, and nothing but the prediction on the clean one.

## Other scenarios (tests in `tests/tests/simulation/`)

* **NAT mapping expiry** (`recovery.rs`): the mapping a call uses on a symmetric NAT expires
  mid-call; the peer's consent checks go nowhere, so it reports `disconnected` within 8 s and
  consent lost / `failed` at 30 s (RFC 7675); an ICE restart (new credentials, new checks)
  selects a new pair on the new mapping and data flows again. On a cone NAT with port
  preservation the same expiry is harmless: the next outbound datagram re-creates the mapping
  on the same port.
* **Relay fallback after a NAT reboot** (`recovery.rs`): a direct call whose NAT reboots into
  symmetric behaviour a minute in recovers through the TURN relay with an ICE restart. Fifteen
  minutes in too: an allocation bound to a 5-tuple the reboot erased gets 437 on its next
  request and expires, and the agent retires that relayed candidate and allocates again from
  the same host candidate before the restart.
* **Long run** (`long_run.rs`): two hours of virtual time on a relayed call and on a direct
  one, data every second: TURN allocation, permission and channel refreshes and consent keep
  it alive, and nothing grows — pairs, candidates, TURN allocations, permissions, channels and
  cached responses, NAT mappings, drops.
* **IPv6** (`ip.rs`): IPv6-only hosts connect host to host; dual-stack hosts (IPv4 behind
  NATs, public IPv6) select the IPv6 host pair (RFC 8421 puts IPv6 first). IPv6-only hosts get
  IPv6 relayed candidates from an IPv6-only TURN server (REQUESTED-ADDRESS-FAMILY, RFC 8656
  §7.1).
* **Determinism** (`determinism.rs`): the same seed gives byte-identical pcap captures of a
  whole scenario; another seed gives different ones.
";
