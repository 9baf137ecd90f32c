//! Simulated networks as just another driver: floe's state machines as [`netsim::Node`]s.
//!
//! [`netsim`] moves datagrams between hosts, through links and RFC 4787 NATs, in virtual
//! time; it knows nothing of STUN, TURN or ICE. The adapters here are the driver side: each
//! turns a netsim [`Datagram`] into the machine's input, drains the machine's transmits back
//! into datagrams (in the Sans-IO order: transmits, then events, then the timeout), and keeps
//! the machine's events for the test to drain. The simulator owns the node; get it back
//! with [`Sim::node`](netsim::Sim::node) and [`Sim::node_mut`](netsim::Sim::node_mut) to read
//! events or issue commands between steps.
//!
//! | adapter | machine | bind it to |
//! |---|---|---|
//! | [`StunServerNode`] | `stun_proto::server::BindingServer` | its listening socket(s) |
//! | [`TurnServerNode`] | `turn_proto::server::Server` | [`TurnServerNode::sockets`]: listening sockets and a whole-IP socket per relay address |
//! | [`AgentNode`] | `ice_core::Agent` | the sockets of its host candidates |
//! | [`TurnClientNode`] | `turn_proto::client::Client` | [`ClientConfig::local`](turn_proto::client::ClientConfig::local) |
//!
//! [`MachineNode`] wraps any [`Machine`] (the trait the blocking runner drives), so the STUN
//! server and the TURN client are the same adapter. The TURN server and the ICE agent have
//! their own, because their data paths do not fit `Machine`: the server relays from a buffer
//! with headroom and confirms relay binds, the agent sends application data by command.
//!
//! Event timestamps are the virtual time of the last call the adapter saw (`handle_*`, or a
//! command that takes `now`). Only UDP is simulated: a transmit over TCP or TLS is dropped
//! (and traced).
//!
//! # Example: a STUN query through a symmetric NAT
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! use floe_drivers::sim::{MachineNode, StunServerNode};
//! use netsim::{LinkConfig, NatConfig, RealmId, Sim};
//! use stun_proto::client::{BindingClient, BindingEvent, BindingRequest};
//! use stun_proto::server::{BindingServer, BindingServerConfig};
//! use stun_proto::TransportProtocol;
//!
//! let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
//! let start = Instant::now(); // the base of virtual time
//! let mut sim = Sim::new(7, start);
//! let nat = sim.add_nat(
//!     RealmId::INTERNET,
//!     &["203.0.113.1".parse()?],
//!     NatConfig::symmetric(),
//!     LinkConfig::with_latency(Duration::from_millis(10)),
//! );
//! let home = sim.nat(nat).inside_realm();
//! let server_host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse()?], LinkConfig::default());
//! let client_host = sim.add_host(home, &["192.168.1.2".parse()?], LinkConfig::default());
//!
//! let (server, local) = (sock("192.0.2.1:3478"), sock("192.168.1.2:5000"));
//! let stun = StunServerNode::new(BindingServer::new(BindingServerConfig::default()), start);
//! sim.add_node(server_host, &[server], stun)?;
//! let client = BindingClient::new(Default::default(), 1, start);
//! let client = sim.add_node(client_host, &[local], MachineNode::new(client, start))?;
//!
//! // A command between steps; its transmit goes out at virtual now.
//! let now = sim.now();
//! let request = BindingRequest::default();
//! sim.node_mut(client).machine_mut().send(now, local, server, TransportProtocol::Udp, request)?;
//! sim.run_for(Duration::from_secs(1));
//!
//! let events = sim.node_mut(client).take_events();
//! let BindingEvent::Success(response) = &events[0].1 else { panic!("{events:?}") };
//! // The server saw the NAT's external address, on a random port.
//! assert_eq!(response.mapped.ip(), "203.0.113.1".parse::<std::net::IpAddr>()?);
//! assert_eq!(response.rtt, Some(Duration::from_millis(20)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use ice_core::{Agent, AgentConfig, Event, Received, SendError as AgentSendError, StreamId};
use netsim::{Datagram, Node, Transport};
use stun_proto::server::BindingServer;
use stun_proto::{Input, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientConfig, SendError as TurnSendError};
use turn_proto::server::{
    ConfigError, RelayBinding, Server, ServerConfig, ServerEvent, ServerInput, ServerOutput,
};

use crate::machine::Machine;
use crate::turn::ClientMachine;

/// A datagram as a machine's [`Input`]; `None` for a transport floe does not speak.
fn input(datagram: &Datagram) -> Option<Input<'_>> {
    let transport = match datagram.transport {
        Transport::Udp => TransportProtocol::Udp,
        _ => return None,
    };
    Some(Input {
        transport,
        source: datagram.source,
        destination: datagram.destination,
        data: &datagram.payload,
    })
}

/// A machine's [`Transmit`] as a datagram; `None` (traced) for a transport the simulator
/// does not emulate.
fn datagram(t: Transmit) -> Option<Datagram> {
    if t.transport != TransportProtocol::Udp {
        tracing::debug!(
            ?t,
            "netsim adapter: only UDP is simulated; transmit dropped"
        );
        return None;
    }
    Some(Datagram::udp(t.source, t.destination, t.payload))
}

/// Pops transmits until one can be simulated.
fn next_datagram(mut pop: impl FnMut() -> Option<Transmit>) -> Option<Datagram> {
    loop {
        if let Some(d) = datagram(pop()?) {
            return Some(d);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Any Machine
// ---------------------------------------------------------------------------------------

/// Any [`Machine`] as a [`Node`]: datagrams in, transmits out, events kept for the test.
///
/// Transmits made outside the run loop (a command that returns a [`Transmit`]) go out with
/// [`send`](Self::send). Events are collected after the machine's transmits are drained, as
/// the Sans-IO contract asks, and wait in [`events`](Self::events) until the test takes them
/// with [`take_events`](Self::take_events).
///
/// See the [module example](self) for a STUN client and server.
#[derive(Debug)]
pub struct MachineNode<M: Machine> {
    machine: M,
    outbox: VecDeque<Transmit>,
    events: VecDeque<(Instant, M::Event)>,
    now: Instant,
}

/// A STUN Binding server (RFC 8489 §6.3, RFC 5780 when configured) in a simulation. Bind it
/// to its listening sockets (all four address/port combinations for RFC 5780).
pub type StunServerNode = MachineNode<BindingServer>;

/// A TURN client (one allocation on one server) in a simulation. Bind it to
/// [`ClientConfig::local`]; peer data comes out as
/// [`TurnOutput::PeerData`](crate::turn::TurnOutput::PeerData) events.
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
///
/// use floe_drivers::sim::{TurnClientNode, TurnServerNode};
/// use floe_drivers::turn::TurnOutput;
/// use netsim::nodes::Probe;
/// use netsim::{LinkConfig, RealmId, Sim};
/// use turn_proto::client::{ClientConfig, ClientEvent};
/// use turn_proto::server::{RelayRange, ServerConfig};
///
/// let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
/// let start = Instant::now();
/// let mut sim = Sim::new(1, start);
/// let link = LinkConfig::with_latency(Duration::from_millis(5));
/// let server_host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse()?], link.clone());
/// let client_host = sim.add_host(RealmId::INTERNET, &["198.51.100.2".parse()?], link.clone());
/// let peer_host = sim.add_host(RealmId::INTERNET, &["203.0.113.3".parse()?], link);
///
/// let mut config = ServerConfig::new("sim.test");
/// config.relays.push(RelayRange::dynamic("192.0.2.1".parse()?));
/// config.add_user("user", "pass");
/// let turn = TurnServerNode::new(config, &[sock("192.0.2.1:3478")], 1, start)?;
/// turn.add_to(&mut sim, server_host)?;
///
/// let local = sock("198.51.100.2:5000");
/// let config = ClientConfig::new(sock("192.0.2.1:3478"), local, "user", "pass");
/// let client = sim.add_node(client_host, &[local], TurnClientNode::turn_client(config, 2, start))?;
/// let peer = sim.add_node(peer_host, &[sock("203.0.113.3:4000")], Probe::new(sock("203.0.113.3:4000")))?;
/// sim.run_for(Duration::from_secs(1));
///
/// let relayed = sim.node_mut(client).client_mut().relayed_addresses()[0];
/// let now = sim.now();
/// sim.node_mut(client).client_mut().create_permission(now, &[sock("203.0.113.3:4000").ip()])?;
/// sim.run_for(Duration::from_secs(1));
/// let now = sim.now();
/// sim.node_mut(client).send_to(now, sock("203.0.113.3:4000"), b"hello")?;
/// sim.run_for(Duration::from_secs(1));
/// let got = &sim.node(peer).received()[0].datagram;
/// assert_eq!((got.source, &got.payload[..]), (relayed, &b"hello"[..]));
///
/// // The peer answers the relayed address; the client hands the data over as an event.
/// sim.node_mut(peer).send(relayed, b"hi".to_vec());
/// sim.run_for(Duration::from_secs(1));
/// let events = sim.node_mut(client).take_events();
/// assert!(events.iter().any(|(_, e)| matches!(e, TurnOutput::Event(ClientEvent::Allocated { .. }))));
/// assert!(events.iter().any(|(_, e)| matches!(
///     e,
///     TurnOutput::PeerData { peer, data } if *peer == sock("203.0.113.3:4000") && data == b"hi"
/// )));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type TurnClientNode = MachineNode<ClientMachine>;

impl<M: Machine> MachineNode<M> {
    /// Wraps a machine created at `now`.
    pub fn new(machine: M, now: Instant) -> Self {
        MachineNode {
            machine,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            now,
        }
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The machine, for commands. Transmits it queues go out when the simulator next polls
    /// the node (right after [`Sim::node_mut`](netsim::Sim::node_mut)).
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// Runs a command at `now`: the events it causes are stamped `now`.
    pub fn command<R>(&mut self, now: Instant, command: impl FnOnce(&mut M) -> R) -> R {
        self.now = now;
        command(&mut self.machine)
    }

    /// Sends a transmit a command returned (it goes out before the machine's own).
    pub fn send(&mut self, transmit: Transmit) {
        self.outbox.push_back(transmit);
    }

    /// Events not taken yet, each with the virtual time it was collected at.
    pub fn events(&self) -> impl Iterator<Item = &(Instant, M::Event)> + '_ {
        self.events.iter()
    }

    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<(Instant, M::Event)> {
        self.events.drain(..).collect()
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.machine.poll_event() {
            self.events.push_back((self.now, e));
        }
    }
}

impl MachineNode<ClientMachine> {
    /// A TURN client that starts allocating at `now` (bind the node to `config.local`).
    pub fn turn_client(config: ClientConfig, seed: u64, now: Instant) -> Self {
        MachineNode::new(ClientMachine::new(Client::new(config, seed, now)), now)
    }

    /// The TURN client, for commands (`create_permission`, `bind_channel`, `delete`...).
    pub fn client_mut(&mut self) -> &mut Client {
        self.machine.client()
    }

    /// Sends `data` to `peer` through the relay (ChannelData once a channel is bound, a Send
    /// indication otherwise).
    ///
    /// # Errors
    /// As [`Client::send_to`]: no allocation, no permission for the peer, too large.
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Result<(), TurnSendError> {
        self.now = now;
        let t = self.machine.client().send_to(now, peer, data)?;
        self.send(t);
        Ok(())
    }
}

impl<M: Machine> Node for MachineNode<M>
where
    M::Event: 'static,
{
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = now;
        if let Some(input) = input(&datagram) {
            self.machine.handle_input(now, input);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.machine.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        let d = next_datagram(|| {
            self.outbox
                .pop_front()
                .or_else(|| self.machine.poll_transmit())
        });
        if d.is_none() {
            // Transmits drained: now the events (the Sans-IO order).
            self.collect_events();
        }
        d
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }
}

// ---------------------------------------------------------------------------------------
// TURN server
// ---------------------------------------------------------------------------------------

/// Headroom in front of a relayed peer datagram, so the server writes the ChannelData header
/// in place (see [`ServerInput`]).
const HEADROOM: usize = 4;

/// A TURN server (RFC 8656) in a simulation.
///
/// It listens on the sockets given to [`new`](Self::new) and owns every port of each relay
/// address: bind it to [`sockets`](Self::sockets) (or let [`add_to`](Self::add_to) do it),
/// which lists the listening sockets and `relay-ip:0` for each relay range. Relay binds are
/// confirmed at once: with [`RelayBinding::Driver`] the adapter answers every
/// [`ServerEvent::BindRelay`] with `relay_bound(Ok)`, and with [`RelayBinding::Automatic`]
/// there is nothing to confirm. Keep the listening ports outside the relay port ranges, as
/// the server requires.
///
/// Peer datagrams are handed over with 4 bytes of headroom, so channel data is relayed the
/// way a real driver does it. Server events ([`ServerEvent::AllocationCreated`] and the
/// like) wait in [`events`](Self::events); [`server`](Self::server) gives the stats.
///
/// ```
/// use std::time::Instant;
/// use floe_drivers::sim::TurnServerNode;
/// use netsim::{LinkConfig, RealmId, Sim};
/// use turn_proto::server::{RelayRange, ServerConfig};
///
/// let start = Instant::now();
/// let mut sim = Sim::new(3, start);
/// let host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse()?], LinkConfig::default());
/// let mut config = ServerConfig::new("sim.test");
/// config.relays.push(RelayRange::dynamic("192.0.2.1".parse()?));
/// config.add_user("user", "pass");
/// let turn = TurnServerNode::new(config, &["192.0.2.1:3478".parse()?], 42, start)?;
/// assert_eq!(turn.sockets(), ["192.0.2.1:3478".parse()?, "192.0.2.1:0".parse()?]);
/// let turn = turn.add_to(&mut sim, host)?;
/// assert_eq!(sim.node(turn).server().allocation_count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TurnServerNode {
    server: Server,
    sockets: Vec<SocketAddr>,
    confirm_binds: bool,
    outbox: VecDeque<Datagram>,
    events: VecDeque<(Instant, ServerEvent)>,
    buf: Vec<u8>,
    now: Instant,
}

impl TurnServerNode {
    /// A server with `config` listening on `listen`, randomness from `seed`, started at
    /// `now`.
    ///
    /// # Errors
    /// When [`Server::new`] refuses the configuration.
    pub fn new(
        config: ServerConfig,
        listen: &[SocketAddr],
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let mut sockets = listen.to_vec();
        for relay in &config.relays {
            sockets.push(SocketAddr::new(relay.ip, 0));
        }
        let confirm_binds = config.relay_binding == RelayBinding::Driver;
        Ok(TurnServerNode {
            server: Server::new(config, seed, now)?,
            sockets,
            confirm_binds,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            buf: Vec::with_capacity(HEADROOM + 1500),
            now,
        })
    }

    /// The sockets to bind the node to: the listening sockets, then one whole-IP socket
    /// (port 0) per relay address.
    pub fn sockets(&self) -> &[SocketAddr] {
        &self.sockets
    }

    /// Adds the node to `sim` on `host`, bound to [`sockets`](Self::sockets).
    ///
    /// # Errors
    /// If an address is not the host's or a socket is taken.
    pub fn add_to(
        self,
        sim: &mut netsim::Sim,
        host: netsim::HostId,
    ) -> Result<netsim::NodeId<Self>, netsim::BindError> {
        let sockets = self.sockets.clone();
        sim.add_node(host, &sockets, self)
    }

    /// The server (stats, allocation count).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The server, for commands. Transmits and events it queues are collected when the
    /// simulator next polls the node.
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// Events not taken yet, with the virtual time they were collected at.
    pub fn events(&self) -> impl Iterator<Item = &(Instant, ServerEvent)> + '_ {
        self.events.iter()
    }

    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<(Instant, ServerEvent)> {
        self.events.drain(..).collect()
    }

    /// Drains the server: transmits into the outbox, then events (confirming relay binds,
    /// which queues the held Allocate responses: drain again).
    fn drain(&mut self) {
        loop {
            while let Some(t) = self.server.poll_transmit() {
                self.outbox.extend(datagram(t));
            }
            let mut confirmed = false;
            while let Some(e) = self.server.poll_event() {
                if let (true, ServerEvent::BindRelay { relayed, .. }) = (self.confirm_binds, &e) {
                    // The node owns every port of the relay addresses (`sockets`): the
                    // "socket" is bound already.
                    if let Err(error) = self.server.relay_bound(self.now, *relayed, Ok(())) {
                        tracing::debug!(%error, "netsim adapter: relay bind not pending");
                    }
                    confirmed = true;
                }
                self.events.push_back((self.now, e));
            }
            if !confirmed {
                return;
            }
        }
    }
}

impl Node for TurnServerNode {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = now;
        let transport = match datagram.transport {
            Transport::Udp => TransportProtocol::Udp,
            _ => return,
        };
        self.buf.clear();
        self.buf.resize(HEADROOM, 0);
        self.buf.extend_from_slice(&datagram.payload);
        let input = ServerInput {
            transport,
            source: datagram.source,
            destination: datagram.destination,
            buf: &mut self.buf,
            headroom: HEADROOM,
        };
        if let ServerOutput::Send(d) = self.server.handle_input(now, input) {
            if d.transport == TransportProtocol::Udp {
                self.outbox
                    .push_back(Datagram::udp(d.source, d.destination, d.data.to_vec()));
            }
        }
        self.drain();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.server.handle_timeout(now);
        self.drain();
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        if self.outbox.is_empty() {
            // After a command through `server_mut`.
            self.drain();
        }
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.server.poll_timeout()
    }
}

// ---------------------------------------------------------------------------------------
// ICE agent
// ---------------------------------------------------------------------------------------

/// Application data an [`AgentNode`] received from its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentData {
    /// Virtual time of arrival.
    pub at: Instant,
    /// The stream.
    pub stream: StreamId,
    /// The component.
    pub component: u16,
    /// The peer's transport address (for relayed paths, as the TURN server saw it).
    pub from: SocketAddr,
    /// The local socket it arrived on (for relayed paths, the socket towards the TURN
    /// server).
    pub socket: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// An ICE [`Agent`] in a simulation.
///
/// Bind the node to the sockets of the host candidates you add (its transmits leave from
/// host bases only: relayed traffic is wrapped by the agent's own TURN clients). Issue
/// commands through [`agent_mut`](Self::agent_mut) — `add_stream`, `add_host_candidate`,
/// `set_remote_credentials`, `add_remote_candidate_str`, `restart`... — and application
/// data through [`send`](Self::send). Events (local candidates to signal, state changes,
/// selected pairs) wait in [`events`](Self::events); data from the peer in
/// [`received`](Self::received).
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
///
/// use floe_drivers::sim::AgentNode;
/// use ice_core::{AgentConfig, ConnectionState, Event, Role, TransportProtocol};
/// use netsim::{LinkConfig, RealmId, Sim};
///
/// let start = Instant::now();
/// let mut sim = Sim::new(5, start);
/// let link = LinkConfig::with_latency(Duration::from_millis(20));
/// let (la, lb): (SocketAddr, SocketAddr) = ("198.51.100.1:5000".parse()?, "203.0.113.1:6000".parse()?);
/// let ha = sim.add_host(RealmId::INTERNET, &[la.ip()], link.clone());
/// let hb = sim.add_host(RealmId::INTERNET, &[lb.ip()], link);
/// let controlled = AgentConfig { role: Role::Controlled, ..AgentConfig::default() };
/// let a = sim.add_node(ha, &[la], AgentNode::new(AgentConfig::default(), 1, start))?;
/// let b = sim.add_node(hb, &[lb], AgentNode::new(controlled, 2, start))?;
///
/// // Signalling: the test is the signalling channel.
/// let (ca, cb) = (sim.node(a).agent().local_credentials().clone(), sim.node(b).agent().local_credentials().clone());
/// for (id, local, creds) in [(a, la, &cb), (b, lb, &ca)] {
///     let agent = sim.node_mut(id).agent_mut();
///     agent.set_remote_credentials(start, &creds.ufrag, &creds.pwd)?;
///     let stream = agent.add_stream(1)?;
///     agent.add_host_candidate(start, stream, 1, local, TransportProtocol::Udp)?;
///     agent.finish_host_candidates(start);
/// }
/// let deadline = start + Duration::from_secs(5);
/// while sim.node(a).agent().connection_state() != ConnectionState::Completed && sim.now() < deadline {
///     for (from, to) in [(a, b), (b, a)] {
///         for (_, event) in sim.node_mut(from).take_events() {
///             if let Event::LocalCandidate { stream, candidate, .. } = event {
///                 let now = sim.now();
///                 sim.node_mut(to).agent_mut().add_remote_candidate_str(now, stream, &candidate.to_sdp())?;
///             }
///         }
///     }
///     sim.step();
/// }
/// assert_eq!(sim.node(a).agent().connection_state(), ConnectionState::Completed);
///
/// let (now, stream) = (sim.now(), sim.node(a).agent().streams().next().unwrap());
/// sim.node_mut(a).send(now, stream, 1, b"hello")?;
/// sim.run_for(Duration::from_millis(100));
/// assert_eq!(sim.node(b).received()[0].data, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AgentNode {
    agent: Agent,
    outbox: VecDeque<Transmit>,
    events: VecDeque<(Instant, Event)>,
    received: Vec<AgentData>,
    now: Instant,
}

impl AgentNode {
    /// An agent with `config`, randomness from `seed`, created at `now` (see [`Agent::new`]).
    pub fn new(config: AgentConfig, seed: u64, now: Instant) -> Self {
        AgentNode::from_agent(Agent::new(config, seed, now), now)
    }

    /// Wraps an agent; `now` is the virtual time of the adapter's first call.
    pub fn from_agent(agent: Agent, now: Instant) -> Self {
        AgentNode {
            agent,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            received: Vec::new(),
            now,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The agent, for commands. What they queue goes out when the simulator next polls the
    /// node (right after [`Sim::node_mut`](netsim::Sim::node_mut)); their events are
    /// stamped with the time of the adapter's last call.
    pub fn agent_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }

    /// Runs a command at `now` (`restart`, `set_remote_credentials`, ...): the events it
    /// causes are stamped `now`.
    pub fn command<R>(&mut self, now: Instant, command: impl FnOnce(&mut Agent) -> R) -> R {
        self.now = now;
        command(&mut self.agent)
    }

    /// Sends application data on a component's selected (or best valid) pair.
    ///
    /// # Errors
    /// As [`Agent::send`]: no usable pair, consent expired, closed.
    pub fn send(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        data: &[u8],
    ) -> Result<(), AgentSendError> {
        self.now = now;
        let t = self.agent.send(now, stream, component, data)?;
        self.outbox.push_back(t);
        Ok(())
    }

    /// Events not taken yet, with the virtual time they were collected at.
    pub fn events(&self) -> impl Iterator<Item = &(Instant, Event)> + '_ {
        self.events.iter()
    }

    /// Whether events are waiting.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<(Instant, Event)> {
        self.events.drain(..).collect()
    }

    /// Application data received so far, oldest first.
    pub fn received(&self) -> &[AgentData] {
        &self.received
    }

    /// Takes the application data received so far.
    pub fn take_received(&mut self) -> Vec<AgentData> {
        std::mem::take(&mut self.received)
    }
}

impl Node for AgentNode {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = now;
        let Some(input) = input(&datagram) else {
            return;
        };
        if let Received::Data {
            stream,
            component,
            from,
            data,
        } = self.agent.handle_input(now, input)
        {
            self.received.push(AgentData {
                at: now,
                stream,
                component,
                from,
                socket: datagram.destination,
                data: data.to_vec(),
            });
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.agent.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        let d = next_datagram(|| {
            self.outbox
                .pop_front()
                .or_else(|| self.agent.poll_transmit())
        });
        if d.is_none() {
            // Transmits drained: now the events (the Sans-IO order).
            while let Some(e) = self.agent.poll_event() {
                self.events.push_back((self.now, e));
            }
        }
        d
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.agent.poll_timeout()
    }
}
