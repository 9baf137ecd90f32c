//! Any [`Machine`] as a netsim node: the STUN server and client, and the TURN client with its
//! control connection and RFC 6062 data connections.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use netsim::{Datagram, Node, TcpCommand, TcpEvent, TcpId};
use stun_proto::framing::Framing;
use stun_proto::server::BindingServer;
use stun_proto::{Input, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientConfig, ClientEvent, SendError as TurnSendError};
use turn_proto::stream::first_message_len;

use super::input;
use super::streams::{Connect, Read, Reader, Streams};
use crate::machine::Machine;
use crate::turn::{ClientMachine, TurnOutput};

/// What a [`MachineNode`]'s connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MachineConn {
    /// Opened for the machine's own stream transmits (a TURN control connection).
    Control,
    /// An RFC 6062 data connection whose ConnectionBind runs: its bytes are held, and the
    /// response cut off with `first_message_len` (peer bytes may follow it).
    Binding(u32),
    /// An RFC 6062 peer connection: the application's ([`PeerConnection`]).
    Peer(u32),
}

/// What an event of the machine asks of the adapter's TCP.
#[derive(Clone, Copy, Debug)]
enum Request {
    /// RFC 6062 §4.3: open a data connection to the server for this CONNECTION-ID.
    OpenData(u32),
    /// The data connection from `local` is now the peer connection `connection_id`.
    PeerConnection {
        connection_id: u32,
        peer: SocketAddr,
        local: SocketAddr,
    },
    /// The data connection failed: close it.
    DataFailed(u32),
}

/// How a [`MachineNode`] tells its machine about TCP beyond bytes, and learns what its
/// events ask: no-ops unless the machine's constructor sets them (the TURN client does).
struct Hooks<M: Machine> {
    /// A control connection ended or never opened.
    lost: fn(&mut M, Instant),
    /// What an event asks of the adapter.
    request: fn(&M::Event) -> Option<Request>,
    /// A data connection opened from this local address; false if the machine no longer
    /// wants it.
    opened: fn(&mut M, Instant, u32, SocketAddr) -> bool,
    /// A data connection failed, or closed before it became a peer connection.
    failed: fn(&mut M, Instant, u32),
}

impl<M: Machine> Hooks<M> {
    fn none() -> Self {
        Hooks {
            lost: |_, _| {},
            request: |_| None,
            opened: |_, _, _, _| false,
            failed: |_, _, _| {},
        }
    }
}

/// An RFC 6062 peer connection of a [`TurnClientNode`]: a TCP connection of the relay with
/// a peer, carried on a data connection to the server, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerConnection {
    /// The peer.
    pub peer: SocketAddr,
    /// Everything the peer sent so far, bytes read behind the ConnectionBind response
    /// included.
    pub received: Vec<u8>,
    /// The connection closed (by either side).
    pub closed: bool,
}

/// Any [`Machine`] as a [`Node`]: datagrams in, transmits out, events kept for the test.
///
/// Transmits made outside the run loop (a command that returns a [`Transmit`]) go out with
/// [`send`](Self::send). Events are collected after the machine's transmits are drained, as
/// the Sans-IO contract asks, and wait in [`events`](Self::events) until the test takes them
/// with [`take_events`](Self::take_events).
///
/// A transmit over TCP or TLS opens a connection from its `source` to its `destination`
/// unless one is open (see [TCP and TLS](super#tcp-and-tls)); what comes back is framed as
/// STUN and ChannelData. When such a connection closes or cannot be opened, a TURN client
/// is told with `Client::connection_lost`.
///
/// See the [module example](super) for a STUN client and server.
pub struct MachineNode<M: Machine> {
    machine: M,
    outbox: VecDeque<Transmit>,
    events: VecDeque<(Instant, M::Event)>,
    streams: Streams<MachineConn>,
    hooks: Hooks<M>,
    peers: BTreeMap<u32, PeerConnection>,
    now: Instant,
}

impl<M: Machine + fmt::Debug> fmt::Debug for MachineNode<M>
where
    M::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineNode")
            .field("machine", &self.machine)
            .field("outbox", &self.outbox)
            .field("events", &self.events)
            .field("streams", &self.streams)
            .field("peers", &self.peers)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A STUN Binding server (RFC 8489 §6.3, RFC 5780 when configured) in a simulation. Bind it
/// to its listening sockets (all four address/port combinations for RFC 5780).
pub type StunServerNode = MachineNode<BindingServer>;

/// A TURN client (one allocation on one server) in a simulation. Bind it to
/// [`ClientConfig::local`]; peer data comes out as [`TurnOutput::PeerData`] events.
///
/// With [`ClientConfig::transport`] TCP or TLS it talks to the server over a control
/// connection from `ClientConfig::local` (see the
/// [module example](super#example-turn-over-tcp-where-udp-is-blocked)). With
/// [`ClientConfig::relay_transport`] TCP as well (RFC 6062), it opens the data connections
/// the client asks for (from an ephemeral port of the same IP, with the control
/// connection's transport), cuts the ConnectionBind response off each, and hands the peer
/// connections to the test: [`peer_connections`](Self::peer_connections),
/// [`send_on_peer_connection`](Self::send_on_peer_connection),
/// [`close_peer_connection`](Self::close_peer_connection).
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
            streams: Streams::default(),
            hooks: Hooks::none(),
            peers: BTreeMap::new(),
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

    /// Open TCP (and TLS) connections.
    pub fn tcp_connections(&self) -> usize {
        self.streams.len()
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.machine.poll_event() {
            if let Some(request) = (self.hooks.request)(&e) {
                self.on_request(request);
            }
            self.events.push_back((self.now, e));
        }
    }

    /// Does what an event asks (RFC 6062 data connections).
    fn on_request(&mut self, request: Request) {
        match request {
            Request::OpenData(connection_id) => {
                let control = self.streams.find(|c| c.tag == MachineConn::Control);
                let Some(c) = control.map(|c| (c.local, c.remote, c.transport)) else {
                    return (self.hooks.failed)(&mut self.machine, self.now, connection_id);
                };
                let (local, server, transport) = c;
                self.streams.connect(Connect {
                    from: SocketAddr::new(local.ip(), 0),
                    to: server,
                    name: None,
                    transport,
                    reader: Reader::Held(Vec::new()),
                    tag: MachineConn::Binding(connection_id),
                });
            }
            Request::PeerConnection {
                connection_id,
                peer,
                local,
            } => {
                let binding = MachineConn::Binding(connection_id);
                let Some(c) = self.streams.find(|c| c.tag == binding && c.local == local) else {
                    return;
                };
                c.tag = MachineConn::Peer(connection_id);
                // Bytes read behind the ConnectionBind response are the application's.
                let received = match std::mem::replace(&mut c.reader, Reader::Held(Vec::new())) {
                    Reader::Held(rest) => rest,
                    _ => Vec::new(),
                };
                let conn = PeerConnection {
                    peer,
                    received,
                    closed: false,
                };
                self.peers.insert(connection_id, conn);
            }
            Request::DataFailed(connection_id) => {
                let binding = MachineConn::Binding(connection_id);
                self.streams
                    .close_where(|c| c.tag == binding, |_, _, tag| *tag == binding);
            }
        }
    }

    /// Writes a stream transmit on its connection, opening it first if needed.
    fn write_stream(&mut self, t: Transmit) {
        let Err(bytes) = self.streams.write(t.source, t.destination, t.payload) else {
            return;
        };
        self.streams.connect(Connect {
            from: t.source,
            to: t.destination,
            name: None,
            transport: t.transport,
            reader: Reader::framed(Framing::StunAndChannelData),
            tag: MachineConn::Control,
        });
        let queued = self.streams.write(t.source, t.destination, bytes);
        debug_assert!(queued.is_ok(), "queued on the connection being opened");
    }

    /// A connection ended or never opened: tell the machine, or the application.
    fn ended(&mut self, now: Instant, tag: MachineConn) {
        match tag {
            MachineConn::Control => (self.hooks.lost)(&mut self.machine, now),
            MachineConn::Binding(id) => (self.hooks.failed)(&mut self.machine, now, id),
            MachineConn::Peer(id) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.closed = true;
                }
            }
        }
    }

    /// Bytes arrived on connection `id`.
    fn data(&mut self, now: Instant, id: TcpId, bytes: &[u8]) {
        let Some(c) = self.streams.get(id) else {
            return;
        };
        let (local, remote, transport, tag) = (c.local, c.remote, c.transport, c.tag);
        if let MachineConn::Peer(connection_id) = tag {
            if let Some(p) = self.peers.get_mut(&connection_id) {
                p.received.extend_from_slice(bytes);
            }
            return;
        }
        let frames = match self.streams.read(id, bytes) {
            Read::Frames(frames, None) => frames,
            Read::Frames(frames, Some(error)) => {
                self.input(now, transport, remote, local, &frames);
                tracing::debug!(%local, %remote, %error, "netsim adapter: stream broken; closed");
                self.streams.close(id);
                return self.ended(now, tag);
            }
            Read::Held => match self.binding_response(id) {
                Ok(message) => message.into_iter().collect(),
                Err(()) => {
                    self.streams.close(id);
                    return self.ended(now, tag);
                }
            },
            Read::Piped | Read::Unknown => return,
        };
        self.input(now, transport, remote, local, &frames);
    }

    /// The ConnectionBind response, once a data connection holds all of it; `Err` if the
    /// connection does not start with STUN.
    fn binding_response(&mut self, id: TcpId) -> Result<Option<Vec<u8>>, ()> {
        let Some(c) = self.streams.get(id) else {
            return Ok(None);
        };
        let Reader::Held(buf) = &mut c.reader else {
            return Ok(None);
        };
        match first_message_len(buf) {
            Ok(Some(n)) => Ok(Some(buf.drain(..n).collect())),
            Ok(None) => Ok(None),
            Err(error) => {
                tracing::debug!(%error, "netsim adapter: data connection broken; closed");
                Err(())
            }
        }
    }

    fn input(
        &mut self,
        now: Instant,
        transport: TransportProtocol,
        remote: SocketAddr,
        local: SocketAddr,
        frames: &[Vec<u8>],
    ) {
        for frame in frames {
            let input = Input {
                transport,
                source: remote,
                destination: local,
                data: frame,
            };
            self.machine.handle_input(now, input);
        }
    }
}

impl MachineNode<ClientMachine> {
    /// A TURN client that starts allocating at `now` (bind the node to `config.local`).
    pub fn turn_client(config: ClientConfig, seed: u64, now: Instant) -> Self {
        let mut node = MachineNode::new(ClientMachine::new(Client::new(config, seed, now)), now);
        node.hooks = Hooks {
            // The allocation lives as long as the control connection (RFC 8656 §3.1).
            lost: |m, now| m.client().connection_lost(now),
            request: |e| match *e {
                TurnOutput::Event(ClientEvent::OpenDataConnection { connection_id, .. }) => {
                    Some(Request::OpenData(connection_id))
                }
                TurnOutput::Event(ClientEvent::PeerConnection {
                    connection_id,
                    peer,
                    local,
                }) => Some(Request::PeerConnection {
                    connection_id,
                    peer,
                    local,
                }),
                TurnOutput::Event(ClientEvent::DataConnectionFailed { connection_id, .. }) => {
                    Some(Request::DataFailed(connection_id))
                }
                _ => None,
            },
            opened: |m, now, id, local| m.client().data_connection_opened(now, id, local).is_ok(),
            failed: |m, now, id| m.client().data_connection_failed(now, id),
        };
        node
    }

    /// The TURN client, for commands (`create_permission`, `bind_channel`, `connect`,
    /// `delete`...).
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

    /// The RFC 6062 peer connections so far, by CONNECTION-ID (closed ones included).
    pub fn peer_connections(&self) -> &BTreeMap<u32, PeerConnection> {
        &self.peers
    }

    /// Writes `data` on the peer connection `connection_id`; false if it is not open.
    pub fn send_on_peer_connection(&mut self, connection_id: u32, data: &[u8]) -> bool {
        let peer = MachineConn::Peer(connection_id);
        let Some(id) = self.streams.find(|c| c.tag == peer).map(|c| c.id) else {
            return false;
        };
        self.streams.send(id, data.to_vec());
        true
    }

    /// Closes the peer connection `connection_id` (its data connection: the server closes
    /// the peer's side, RFC 6062 §5.5).
    pub fn close_peer_connection(&mut self, connection_id: u32) {
        let peer = MachineConn::Peer(connection_id);
        if let Some(id) = self.streams.find(|c| c.tag == peer).map(|c| c.id) {
            self.streams.close(id);
        }
        if let Some(p) = self.peers.get_mut(&connection_id) {
            p.closed = true;
        }
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
        loop {
            let next = self.outbox.pop_front();
            let Some(t) = next.or_else(|| self.machine.poll_transmit()) else {
                // Transmits drained: now the events (the Sans-IO order).
                self.collect_events();
                return None;
            };
            if t.transport == TransportProtocol::Udp {
                return Some(Datagram::udp(t.source, t.destination, t.payload));
            }
            self.write_stream(t);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }

    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        self.now = now;
        match event {
            TcpEvent::Connected { id, local, remote } => {
                let Some(c) = self.streams.connected(id, local, remote) else {
                    return;
                };
                if let MachineConn::Binding(connection_id) = c.tag {
                    if !(self.hooks.opened)(&mut self.machine, now, connection_id, local) {
                        self.streams.close(id);
                    }
                }
            }
            TcpEvent::ConnectFailed {
                local,
                remote,
                error,
            } => {
                if let Some(f) = self.streams.connect_failed(local, remote) {
                    tracing::debug!(%local, %remote, %error, "netsim adapter: connect failed");
                    self.ended(now, f.tag);
                }
            }
            TcpEvent::Data { id, bytes } => self.data(now, id, &bytes),
            TcpEvent::Closed { id, reason } => {
                if let Some(c) = self.streams.closed(id) {
                    tracing::debug!(local = %c.local, remote = %c.remote, %reason, "netsim adapter: connection closed");
                    self.ended(now, c.tag);
                }
            }
            TcpEvent::Accepted { id, .. } => self.streams.refuse(id),
            other => tracing::debug!(?other, "netsim adapter: TCP event ignored"),
        }
    }

    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.streams.poll_command()
    }
}
