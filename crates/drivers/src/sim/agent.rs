//! The ICE agent as a netsim node: UDP host sockets, ICE-TCP connections (RFC 6544), and
//! connections to TCP and TLS TURN servers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use ice_core::{
    Agent, AgentConfig, CandidateType, Event, Received, SendError as AgentSendError, StreamId,
    TcpType, TurnConnectionId,
};
use netsim::{Datagram, Node, TcpCommand, TcpEvent, TcpId};
use stun_proto::framing::Framing;
use stun_proto::{Input, Transmit, TransportProtocol};

use super::input;
use super::streams::{Conn, Connect, Read, Reader, Streams};

/// What an agent's connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AgentConn {
    /// An ICE-TCP connection (RFC 6544), framed with RFC 4571.
    Ice,
    /// A connection to a TCP or TLS TURN server, framed as STUN and ChannelData.
    Turn(TurnConnectionId),
}

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
/// # TCP
///
/// The node carries out the agent's TCP requests (see [TCP and TLS](super#tcp-and-tls)):
///
/// * **ICE-TCP** (RFC 6544): it listens on the base of every passive and simultaneous-open
///   TCP host candidate the agent announces and reports what it accepts with
///   `tcp_accepted` (closing what the agent refuses); it opens the connections of
///   [`Event::TcpConnect`] (active: from an ephemeral port of the base's IP;
///   simultaneous-open: from the base itself, crossing the peer's SYN or reaching its
///   listener) and reports `tcp_connected` or `tcp_connect_failed`; the connections' bytes
///   are cut with RFC 4571.
/// * **TURN over TCP and TLS**: it opens the connections of [`Event::TurnConnect`] from an
///   ephemeral port of the host candidate's IP and reports `turn_connected` with the local
///   address netsim chose, or `turn_connect_failed`; their bytes are cut as STUN and
///   ChannelData. TLS is carried as plain TCP (the SNI name is not used).
/// * Connections that close or break are reported with `tcp_closed` or `turn_closed`; those
///   of [`Event::TcpClose`] and [`Event::TurnClose`] are closed (or, still opening, closed
///   as soon as they open). The events stay in [`events`](Self::events) for the test.
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
    streams: Streams<AgentConn>,
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
            streams: Streams::default(),
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

    /// Open TCP (and TLS) connections: ICE-TCP and to TURN servers.
    pub fn tcp_connections(&self) -> usize {
        self.streams.len()
    }

    /// Collects the agent's events, doing what its TCP requests ask.
    fn collect_events(&mut self) {
        while let Some(e) = self.agent.poll_event() {
            self.on_event(&e);
            self.events.push_back((self.now, e));
        }
    }

    fn on_event(&mut self, e: &Event) {
        match *e {
            Event::LocalCandidate { ref candidate, .. }
                if candidate.kind == CandidateType::Host
                    && matches!(
                        candidate.tcp_type,
                        Some(TcpType::Passive | TcpType::SimultaneousOpen)
                    ) =>
            {
                // RFC 6544 §5.1: a passive candidate is a listening socket. A
                // simultaneous-open one listens too, so that the peer's SYN finds a socket
                // when it comes before ours (the agent takes the connection as the pair's).
                self.streams.listen(candidate.base);
            }
            Event::TcpConnect {
                local,
                remote,
                tcp_type,
            } => {
                let from = match tcp_type {
                    TcpType::SimultaneousOpen => local,
                    _ => SocketAddr::new(local.ip(), 0),
                };
                self.streams.connect(Connect {
                    from,
                    to: remote,
                    name: Some(local),
                    transport: TransportProtocol::Tcp,
                    reader: Reader::framed(Framing::Rfc4571),
                    tag: AgentConn::Ice,
                });
            }
            Event::TcpClose { local, remote } => {
                let ice = |l: SocketAddr, r: SocketAddr, tag: &AgentConn| {
                    *tag == AgentConn::Ice && l == local && r == remote
                };
                self.streams
                    .close_where(|c| ice(c.local, c.remote, &c.tag), ice);
            }
            Event::TurnConnect {
                id,
                local,
                server,
                transport,
                ..
            } => {
                self.streams.connect(Connect {
                    from: SocketAddr::new(local.ip(), 0),
                    to: server,
                    name: None,
                    transport,
                    reader: Reader::framed(Framing::StunAndChannelData),
                    tag: AgentConn::Turn(id),
                });
            }
            Event::TurnClose { id } => {
                let turn = AgentConn::Turn(id);
                self.streams
                    .close_where(|c| c.tag == turn, |_, _, tag| *tag == turn);
            }
            _ => {}
        }
    }

    /// Tells the agent that a connection ended.
    fn report_closed(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        tag: AgentConn,
    ) {
        match tag {
            AgentConn::Ice => self.agent.tcp_closed(now, local, remote),
            AgentConn::Turn(id) => self.agent.turn_closed(now, id),
        }
    }

    /// A connection accepted on a passive candidate's listener.
    fn accepted(&mut self, now: Instant, id: TcpId, local: SocketAddr, remote: SocketAddr) {
        if !self.agent.tcp_accepted(now, local, remote) {
            return self.streams.refuse(id);
        }
        self.streams.accepted(Conn {
            id,
            local,
            remote,
            transport: TransportProtocol::Tcp,
            reader: Reader::framed(Framing::Rfc4571),
            tag: AgentConn::Ice,
        });
    }

    /// Bytes arrived on connection `id`.
    fn data(&mut self, now: Instant, id: TcpId, bytes: &[u8]) {
        let Some(c) = self.streams.get(id) else {
            return;
        };
        let (local, remote, transport, tag) = (c.local, c.remote, c.transport, c.tag);
        let Read::Frames(frames, error) = self.streams.read(id, bytes) else {
            return;
        };
        for frame in &frames {
            let input = Input {
                transport,
                source: remote,
                destination: local,
                data: frame,
            };
            self.input(now, input);
        }
        if let Some(error) = error {
            tracing::debug!(%local, %remote, %error, "netsim adapter: stream broken; closed");
            self.streams.close(id);
            self.report_closed(now, local, remote, tag);
        }
    }

    /// A datagram or stream message into the agent; application data kept.
    fn input(&mut self, now: Instant, input: Input<'_>) {
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
                socket: input.destination,
                data: data.to_vec(),
            });
        }
    }
}

impl Node for AgentNode {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = now;
        if let Some(input) = input(&datagram) {
            self.input(now, input);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.agent.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        loop {
            let next = self.outbox.pop_front();
            let Some(t) = next.or_else(|| self.agent.poll_transmit()) else {
                // Transmits drained: now the events (the Sans-IO order).
                self.collect_events();
                return None;
            };
            if t.transport == TransportProtocol::Udp {
                return Some(Datagram::udp(t.source, t.destination, t.payload));
            }
            if let Err(bytes) = self.streams.write(t.source, t.destination, t.payload) {
                tracing::debug!(
                    source = %t.source,
                    destination = %t.destination,
                    len = bytes.len(),
                    "netsim adapter: no such connection; transmit dropped"
                );
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.agent.poll_timeout()
    }

    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        self.now = now;
        match event {
            TcpEvent::Accepted { id, local, remote } => self.accepted(now, id, local, remote),
            TcpEvent::Connected { id, local, remote } => {
                let Some(c) = self.streams.connected(id, local, remote) else {
                    return;
                };
                match c.tag {
                    AgentConn::Ice => {
                        let (local, remote) = (c.local, c.remote);
                        self.agent.tcp_connected(now, local, remote);
                    }
                    AgentConn::Turn(turn) => self.agent.turn_connected(now, turn, local),
                }
            }
            TcpEvent::ConnectFailed {
                local,
                remote,
                error,
            } => {
                let Some(f) = self.streams.connect_failed(local, remote) else {
                    return;
                };
                tracing::debug!(%local, %remote, %error, "netsim adapter: connect failed");
                match f.tag {
                    AgentConn::Ice => self.agent.tcp_connect_failed(now, f.local, f.remote),
                    AgentConn::Turn(turn) => self.agent.turn_connect_failed(now, turn),
                }
            }
            TcpEvent::Data { id, bytes } => self.data(now, id, &bytes),
            TcpEvent::Closed { id, reason } => {
                if let Some(c) = self.streams.closed(id) {
                    tracing::debug!(local = %c.local, remote = %c.remote, %reason, "netsim adapter: connection closed");
                    self.report_closed(now, c.local, c.remote, c.tag);
                }
            }
            other => tracing::debug!(?other, "netsim adapter: TCP event ignored"),
        }
    }

    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.streams.poll_command()
    }
}
