//! A small in-memory network on a virtual clock: agents and servers exchange datagrams with
//! a configurable delay and loss, optionally through simple NATs, and agents signal their
//! candidates to each other through a delayed signalling channel.
#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

mod tcp;
pub use tcp::*;

use ice_core::{
    Agent, AgentConfig, Candidate, ConnectionState, Event, Input, Received, StreamId, Transmit,
    TransportProtocol,
};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::server::{BindingServer, BindingServerConfig};

/// What runs on a node.
pub enum Machine {
    Agent(Box<Agent>),
    Stun(BindingServer),
    /// A TURN server (relay addresses are on the node's IPs).
    Turn(Box<turn_proto::server::Server>),
    /// Many agents behind one demultiplexer.
    Set(ice_core::AgentSet),
    /// Drops everything (a host that went away).
    Sink,
}

/// A host on the network.
pub struct Node {
    pub name: &'static str,
    pub ips: Vec<IpAddr>,
    pub machine: Machine,
    /// Index of the NAT in front of the node.
    pub behind: Option<usize>,
    pub events: Vec<(Duration, Event)>,
    pub data: Vec<(Duration, StreamId, u16, Vec<u8>)>,
    /// Events of an agent set, with their session.
    pub set_events: Vec<(ice_core::SessionId, Event)>,
    /// Data an agent set received, with its session.
    pub set_data: Vec<(ice_core::SessionId, Vec<u8>)>,
}

/// NAT filtering (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtering {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// An endpoint-independent-mapping NAT with configurable filtering.
pub struct Nat {
    pub public: IpAddr,
    pub filtering: Filtering,
    next_port: u16,
    /// internal -> external
    mappings: Vec<(SocketAddr, SocketAddr)>,
    /// (internal, remote) pairs that have sent out.
    permissions: Vec<(SocketAddr, SocketAddr)>,
}

impl Nat {
    fn outbound(&mut self, internal: SocketAddr, remote: SocketAddr) -> SocketAddr {
        let external = match self.mappings.iter().find(|(i, _)| *i == internal) {
            Some(&(_, e)) => e,
            None => {
                let e = SocketAddr::new(self.public, self.next_port);
                self.next_port += 1;
                self.mappings.push((internal, e));
                e
            }
        };
        if !self.permissions.contains(&(internal, remote)) {
            self.permissions.push((internal, remote));
        }
        external
    }

    fn inbound(&self, external: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        let &(internal, _) = self.mappings.iter().find(|(_, e)| *e == external)?;
        let allowed = self.permissions.iter().any(|&(i, r)| {
            i == internal
                && match self.filtering {
                    Filtering::EndpointIndependent => true,
                    Filtering::AddressDependent => r.ip() == remote.ip(),
                    Filtering::AddressAndPortDependent => r == remote,
                }
        });
        allowed.then_some(internal)
    }
}

struct Packet {
    /// Sent inside this NAT's private network (untranslated).
    lan: Option<usize>,
    at: Instant,
    seq: u64,
    transport: TransportProtocol,
    source: SocketAddr,
    destination: SocketAddr,
    payload: Vec<u8>,
}

/// A signalling message between agents.
#[derive(Clone, Debug)]
pub enum Signal {
    Candidate(StreamId, String),
    EndOfCandidates(StreamId, String),
}

struct PendingSignal {
    at: Instant,
    seq: u64,
    to: usize,
    signal: Signal,
}

/// Drops datagrams (source after NAT, destination) for which it returns true.
pub type Filter = Box<dyn Fn(&SocketAddr, &SocketAddr) -> bool>;

/// The network.
pub struct Net {
    pub origin: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub nats: Vec<Nat>,
    pub latency: Duration,
    /// Probability of losing a datagram, 0..=1.
    pub loss: f64,
    /// Drops datagrams for which this returns true (after NAT translation on the way out).
    pub filter: Option<Filter>,
    /// Every transmit every node made, in order, with the time and node index.
    pub log: Vec<(Duration, usize, Transmit)>,
    /// Forward candidates and end-of-candidates between these pairs of agents.
    pub signalling: Vec<(usize, usize)>,
    pub signal_delay: Duration,
    /// Signals are held back (not delivered) while this is set.
    pub hold_signals: bool,
    pub held: Vec<(usize, Signal)>,
    in_flight: Vec<Packet>,
    signals: Vec<PendingSignal>,
    seq: u64,
    rng: u64,
    /// Drops every UDP datagram (a network that only lets TCP through).
    pub block_udp: bool,
    /// The emulated TCP connections and what is on their way.
    pub tcp: TcpNet,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Net {
    pub fn new() -> Net {
        let origin = Instant::now();
        Net {
            origin,
            now: origin,
            nodes: Vec::new(),
            nats: Vec::new(),
            latency: Duration::from_millis(10),
            loss: 0.0,
            filter: None,
            log: Vec::new(),
            signalling: Vec::new(),
            signal_delay: Duration::from_millis(20),
            hold_signals: false,
            held: Vec::new(),
            in_flight: Vec::new(),
            signals: Vec::new(),
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            block_udp: false,
            tcp: TcpNet::default(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.origin
    }

    pub fn add_nat(&mut self, public: &str, filtering: Filtering) -> usize {
        self.nats.push(Nat {
            public: ip(public),
            filtering,
            next_port: 40000,
            mappings: Vec::new(),
            permissions: Vec::new(),
        });
        self.nats.len() - 1
    }

    pub fn add_node(
        &mut self,
        name: &'static str,
        ips: &[&str],
        machine: Machine,
        behind: Option<usize>,
    ) -> usize {
        self.nodes.push(Node {
            name,
            ips: ips.iter().map(|s| ip(s)).collect(),
            machine,
            behind,
            events: Vec::new(),
            data: Vec::new(),
            set_events: Vec::new(),
            set_data: Vec::new(),
        });
        self.nodes.len() - 1
    }

    pub fn add_agent(
        &mut self,
        name: &'static str,
        ips: &[&str],
        config: AgentConfig,
        seed: u64,
        behind: Option<usize>,
    ) -> usize {
        let agent = Agent::new(config, seed, self.now);
        self.add_node(name, ips, Machine::Agent(Box::new(agent)), behind)
    }

    /// A TURN server listening on `ip:3478` with relays on the same IP and user
    /// `user`/`secret`; relay binds complete at once.
    pub fn add_turn_server(&mut self, name: &'static str, ip_: &str) -> usize {
        let mut config = turn_proto::server::ServerConfig::new("floe.test");
        config
            .relays
            .push(turn_proto::server::RelayRange::dynamic(ip(ip_)));
        config.relay_binding = turn_proto::server::RelayBinding::Automatic;
        config.add_user("user", "secret");
        let server = turn_proto::server::Server::new(config, 77, self.now).unwrap();
        self.add_node(name, &[ip_], Machine::Turn(Box::new(server)), None)
    }

    pub fn add_stun_server(&mut self, name: &'static str, addr: &str) -> usize {
        let server = BindingServer::new(BindingServerConfig::default());
        self.add_node(name, &[addr], Machine::Stun(server), None)
    }

    pub fn agent(&mut self, node: usize) -> &mut Agent {
        match &mut self.nodes[node].machine {
            Machine::Agent(a) => a,
            _ => panic!("node {node} is not an agent"),
        }
    }

    pub fn agent_ref(&self, node: usize) -> &Agent {
        match &self.nodes[node].machine {
            Machine::Agent(a) => a,
            _ => panic!("node {node} is not an agent"),
        }
    }

    pub fn set(&mut self, node: usize) -> &mut ice_core::AgentSet {
        match &mut self.nodes[node].machine {
            Machine::Set(s) => s,
            _ => panic!("node {node} is not an agent set"),
        }
    }

    pub fn state(&self, node: usize) -> ConnectionState {
        self.agent_ref(node).connection_state()
    }

    /// Exchanges credentials between two agents and forwards their candidates from now on.
    pub fn connect(&mut self, a: usize, b: usize) {
        let ca = self.agent(a).local_credentials().clone();
        let cb = self.agent(b).local_credentials().clone();
        let now = self.now;
        self.agent(a)
            .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
            .unwrap();
        self.agent(b)
            .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
            .unwrap();
        self.signalling.push((a, b));
        self.signalling.push((b, a));
    }

    fn rand(&mut self) -> f64 {
        // xorshift64*: deterministic loss.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn node_for(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.ips.contains(&addr.ip()))
    }

    /// Takes a node's output: transmits onto the wire, events into its log (and into
    /// signalling).
    fn drain(&mut self, node: usize) {
        let mut transmits = Vec::new();
        let mut events = Vec::new();
        let mut set_events = Vec::new();
        match &mut self.nodes[node].machine {
            Machine::Agent(a) => {
                while let Some(t) = a.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(e) = a.poll_event() {
                    events.push(e);
                }
            }
            Machine::Stun(s) => {
                while let Some(t) = s.poll_transmit() {
                    transmits.push(t);
                }
            }
            Machine::Turn(server) => {
                while let Some(t) = server.poll_transmit() {
                    transmits.push(t);
                }
                while server.poll_event().is_some() {}
            }
            Machine::Set(set) => {
                while let Some(t) = set.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(e) = set.poll_event() {
                    set_events.push(e);
                }
            }
            Machine::Sink => {}
        }
        self.nodes[node].set_events.extend(set_events);
        for t in transmits {
            self.send(node, t);
        }
        let elapsed = self.elapsed();
        for e in events {
            self.signal_event(node, &e);
            self.tcp_event(node, &e);
            self.nodes[node].events.push((elapsed, e));
        }
    }

    fn signal_event(&mut self, node: usize, e: &Event) {
        let signal = match e {
            Event::LocalCandidate {
                stream,
                candidate,
                ufrag,
            } => Signal::Candidate(*stream, format!("{} ufrag {ufrag}", candidate.to_sdp())),
            Event::LocalEndOfCandidates { stream, ufrag } => {
                Signal::EndOfCandidates(*stream, ufrag.clone())
            }
            _ => return,
        };
        let peers: Vec<usize> = self
            .signalling
            .iter()
            .filter(|(a, _)| *a == node)
            .map(|&(_, b)| b)
            .collect();
        for to in peers {
            if self.hold_signals {
                self.held.push((to, signal.clone()));
                continue;
            }
            self.seq += 1;
            self.signals.push(PendingSignal {
                at: self.now + self.signal_delay,
                seq: self.seq,
                to,
                signal: signal.clone(),
            });
        }
    }

    /// Releases held signals, all at once (a burst).
    pub fn release_signals(&mut self) {
        self.hold_signals = false;
        for (to, signal) in std::mem::take(&mut self.held) {
            self.seq += 1;
            self.signals.push(PendingSignal {
                at: self.now,
                seq: self.seq,
                to,
                signal,
            });
        }
    }

    fn send(&mut self, node: usize, t: Transmit) {
        let elapsed = self.elapsed();
        self.log.push((elapsed, node, t.clone()));
        if t.transport.is_reliable() {
            self.tcp_write(node, t);
            return;
        }
        if self.block_udp || (self.loss > 0.0 && self.rand() < self.loss) {
            return;
        }
        let mut source = t.source;
        let here = self.nodes[node].behind;
        let there = self
            .node_for(t.destination)
            .and_then(|d| self.nodes[d].behind);
        let lan = here.filter(|_| here == there);
        if let (Some(n), None) = (here, lan) {
            source = self.nats[n].outbound(t.source, t.destination);
        }
        if self
            .filter
            .as_ref()
            .is_some_and(|f| f(&source, &t.destination))
        {
            return;
        }
        self.seq += 1;
        self.in_flight.push(Packet {
            lan,
            at: self.now + self.latency,
            seq: self.seq,
            transport: t.transport,
            source,
            destination: t.destination,
            payload: t.payload,
        });
    }

    fn deliver(&mut self, p: Packet) {
        let mut destination = p.destination;
        if let Some(nat) = self.nats.iter().find(|n| n.public == destination.ip()) {
            match nat.inbound(destination, p.source) {
                Some(internal) => destination = internal,
                None => return,
            }
        }
        let Some(node) = self.node_for(destination) else {
            return;
        };
        // A private address is reachable only from inside its NAT (or through the NAT).
        let translated = destination != p.destination;
        if let Some(n) = self.nodes[node].behind {
            if !translated && p.lan != Some(n) {
                return;
            }
        }
        let input = Input {
            transport: p.transport,
            source: p.source,
            destination,
            data: &p.payload,
        };
        let now = self.now;
        let elapsed = self.elapsed();
        match &mut self.nodes[node].machine {
            Machine::Agent(a) => {
                if let Received::Data {
                    stream,
                    component,
                    data,
                    ..
                } = a.handle_input(now, input)
                {
                    // Zero copy: the data is a sub-slice of the datagram, also through TURN.
                    let range = p.payload.as_ptr_range();
                    assert!(
                        range.contains(&data.as_ptr()) || data.is_empty(),
                        "not a sub-slice"
                    );
                    let data = data.to_vec();
                    self.nodes[node]
                        .data
                        .push((elapsed, stream, component, data));
                }
            }
            Machine::Stun(s) => {
                s.handle_input(now, input);
            }
            Machine::Turn(server) => {
                let mut buf = p.payload.clone();
                let input = turn_proto::server::ServerInput::udp(p.source, destination, &mut buf);
                if let turn_proto::server::ServerOutput::Send(d) = server.handle_input(now, input) {
                    let t = Transmit {
                        transport: d.transport,
                        source: d.source,
                        destination: d.destination,
                        payload: d.data.to_vec(),
                    };
                    self.send(node, t);
                }
            }
            Machine::Set(set) => {
                if let (Some(id), Received::Data { data, .. }) = set.handle_input(now, input) {
                    let data = data.to_vec();
                    self.nodes[node].set_data.push((id, data));
                }
            }
            Machine::Sink => {}
        }
        self.drain(node);
    }

    fn deliver_signal(&mut self, s: PendingSignal) {
        let now = self.now;
        let agent = self.agent(s.to);
        match s.signal {
            Signal::Candidate(stream, line) => {
                let _ = agent.add_remote_candidate_str(now, stream, &line);
            }
            Signal::EndOfCandidates(stream, ufrag) => {
                let _ = agent.end_of_remote_candidates(now, stream, Some(&ufrag));
            }
        }
        self.drain(s.to);
    }

    fn next_time(&self) -> Option<Instant> {
        let packets = self.in_flight.iter().map(|p| p.at);
        let signals = self
            .signals
            .iter()
            .map(|s| s.at)
            .chain(self.tcp.next_time());
        let timers = self.nodes.iter().filter_map(|n| match &n.machine {
            Machine::Agent(a) => a.poll_timeout(),
            Machine::Set(s) => s.poll_timeout(),
            Machine::Turn(s) => s.poll_timeout(),
            _ => None,
        });
        packets.chain(signals).chain(timers).min()
    }

    /// Drains every node's pending output (after commands issued directly on agents).
    pub fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
    }

    /// Advances one step: to the next packet, signal or timer, not beyond `limit`.
    /// Returns false when nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let Some(next) = self.next_time() else {
            self.now = self.now.max(limit);
            return false;
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        // Packets due, in send order.
        let (due, rest): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| p.at <= now);
        self.in_flight = rest;
        let mut due = due;
        due.sort_by_key(|p| (p.at, p.seq));
        for p in due {
            self.deliver(p);
        }
        self.tcp_step(now);
        let (due, rest): (Vec<PendingSignal>, Vec<PendingSignal>) =
            std::mem::take(&mut self.signals)
                .into_iter()
                .partition(|s| s.at <= now);
        self.signals = rest;
        let mut due = due;
        due.sort_by_key(|s| (s.at, s.seq));
        for s in due {
            self.deliver_signal(s);
        }
        for i in 0..self.nodes.len() {
            match &mut self.nodes[i].machine {
                Machine::Agent(a) if a.poll_timeout().is_some_and(|t| t <= now) => {
                    a.handle_timeout(now);
                    // The Sans-IO contract: after handle_timeout(now) the next timeout is later
                    // than now (or none), else a driver's loop would spin.
                    if let Some(t) = a.poll_timeout() {
                        assert!(
                            t > now,
                            "poll_timeout {t:?} not after now {now:?} following handle_timeout"
                        );
                    }
                }
                Machine::Set(s) if s.poll_timeout().is_some_and(|t| t <= now) => {
                    s.handle_timeout(now)
                }
                Machine::Turn(s) if s.poll_timeout().is_some_and(|t| t <= now) => {
                    s.handle_timeout(now)
                }
                _ => {}
            }
            self.drain(i);
        }
        true
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        let mut guard = 0u64;
        while self.step(limit) {
            guard += 1;
            assert!(guard < 5_000_000, "simulation does not converge");
        }
    }

    /// Runs until `done` holds or `d` passes; returns whether it held.
    pub fn run_until(&mut self, d: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let limit = self.now + d;
        let mut guard = 0u64;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
            guard += 1;
            assert!(guard < 5_000_000, "simulation does not converge");
        }
    }

    /// When an agent first reached a state.
    pub fn reached(&self, node: usize, state: ConnectionState) -> Option<Duration> {
        self.nodes[node].events.iter().find_map(|(t, e)| match e {
            Event::ConnectionStateChanged(s) if *s == state => Some(*t),
            _ => None,
        })
    }

    pub fn events(&self, node: usize) -> impl Iterator<Item = &Event> {
        self.nodes[node].events.iter().map(|(_, e)| e)
    }

    /// Sends application data from an agent and puts it on the wire.
    pub fn send_data(
        &mut self,
        node: usize,
        stream: StreamId,
        component: u16,
        data: &[u8],
    ) -> Result<(), ice_core::SendError> {
        let now = self.now;
        let t = self.agent(node).send(now, stream, component, data)?;
        self.send(node, t);
        Ok(())
    }

    /// Puts a transmit made outside the run loop on the wire, as sent by `node`.
    pub fn inject(&mut self, node: usize, t: Transmit) {
        self.send(node, t);
    }

    /// Data an agent received, as strings.
    pub fn received(&self, node: usize) -> Vec<String> {
        self.nodes[node]
            .data
            .iter()
            .map(|(_, _, _, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }
}

/// Two agents A (controlling) and B (controlled), each with one host address, one stream
/// with `components` components, signalled to each other.
pub struct Pair {
    pub net: Net,
    pub a: usize,
    pub b: usize,
    pub stream: StreamId,
}

pub fn controlled() -> AgentConfig {
    AgentConfig {
        role: ice_core::Role::Controlled,
        ..AgentConfig::default()
    }
}

/// Adds a stream and one host candidate per component on `ip`, ports from `port`.
pub fn add_hosts(net: &mut Net, node: usize, components: u16, ips: &[&str], port: u16) -> StreamId {
    let now = net.now;
    let agent = net.agent(node);
    let stream = agent.add_stream(components).unwrap();
    for (k, ip) in ips.iter().enumerate() {
        for c in 1..=components {
            let addr = SocketAddr::new(ip.parse().unwrap(), port + (k as u16) * 10 + c - 1);
            agent
                .add_host_candidate(now, stream, c, addr, TransportProtocol::Udp)
                .unwrap();
        }
    }
    agent.finish_host_candidates(now);
    stream
}

pub fn host_pair(components: u16, seed: u64) -> Pair {
    let mut net = Net::new();
    let a = net.add_agent("A", &["198.51.100.1"], AgentConfig::default(), seed, None);
    let b = net.add_agent("B", &["203.0.113.1"], controlled(), seed + 1, None);
    net.connect(a, b);
    let stream = add_hosts(&mut net, a, components, &["198.51.100.1"], 5000);
    add_hosts(&mut net, b, components, &["203.0.113.1"], 6000);
    Pair { net, a, b, stream }
}

/// True once both agents are in `state`.
pub fn both(net: &Net, a: usize, b: usize, state: ConnectionState) -> bool {
    net.state(a) == state && net.state(b) == state
}

/// The selected pair of both agents, as (local, remote) addresses.
pub fn selected(
    net: &Net,
    node: usize,
    stream: StreamId,
    component: u16,
) -> Option<(SocketAddr, SocketAddr)> {
    net.agent_ref(node)
        .selected_pair(stream, component)
        .map(|(l, r): (Candidate, Candidate)| (l.address, r.address))
}

pub fn count_events(net: &Net, node: usize, f: impl Fn(&Event) -> bool) -> usize {
    net.events(node).filter(|e| f(e)).count()
}

/// Prints an agent's pairs and events (for debugging failing tests).
pub fn dump(net: &Net, node: usize, stream: StreamId) {
    let agent = net.agent_ref(node);
    println!(
        "== {} role={:?} state={:?} stats={:?}",
        net.nodes[node].name,
        agent.role(),
        agent.connection_state(),
        agent.stats()
    );
    for p in agent.pairs(stream) {
        println!(
            "  {} ({:?}) -> {} ({:?}) {:?} prio={} valid={} nom={}",
            p.local.address,
            p.local.kind,
            p.remote.address,
            p.remote.kind,
            p.state,
            p.priority,
            p.valid,
            p.nominated
        );
    }
    for (t, e) in &net.nodes[node].events {
        println!("  {t:?} {e:?}");
    }
}

/// The STUN message of a transmit: its payload, without the RFC 4571 prefix over TCP.
pub fn message_of(t: &Transmit) -> &[u8] {
    match t.transport {
        TransportProtocol::Tcp => t.payload.get(2..).unwrap_or(&[]),
        _ => &t.payload,
    }
}

/// True for a STUN Binding request (a check) with USE-CANDIDATE or not.
pub fn is_check(payload: &[u8]) -> bool {
    stun_proto::Message::parse(payload).is_ok_and(|m| {
        m.message_type() == stun_proto::MessageType::BINDING_REQUEST
            && m.has(stun_proto::attributes::AttributeType::USERNAME)
    })
}

/// When `node` sent new checks (first transmissions, not retransmissions), in order.
pub fn check_times(net: &Net, node: usize) -> Vec<Duration> {
    let mut seen = Vec::new();
    let mut times = Vec::new();
    for (at, n, t) in &net.log {
        if *n == node && is_check(message_of(t)) {
            let tid = stun_proto::Message::parse(message_of(t))
                .unwrap()
                .transaction_id();
            if !seen.contains(&tid) {
                seen.push(tid);
                times.push(*at);
            }
        }
    }
    times
}
