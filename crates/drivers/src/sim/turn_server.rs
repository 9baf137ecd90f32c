//! The TURN server as a netsim node: UDP, TCP and "TLS" listeners, relays, RFC 6062 bridges.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use netsim::{ConnectError, Datagram, Node, TcpCommand, TcpEvent, TcpId, Transport};
use stun_proto::framing::Framing;
use stun_proto::{Transmit, TransportProtocol};
use turn_proto::server::{
    ConfigError, ConnectFailure, IncomingPeer, RelayBinding, Server, ServerConfig, ServerEvent,
    ServerInput, ServerOutput,
};

use super::streams::{Conn, Connect, Read, Reader, Streams};

/// Headroom in front of a relayed peer datagram, so the server writes the ChannelData header
/// in place (see [`ServerInput`]).
const HEADROOM: usize = 4;

/// What a TURN server's connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerConn {
    /// A client's connection to a TCP or TLS listener: a control connection, or an RFC 6062
    /// data connection.
    Client,
    /// An RFC 6062 peer data connection, by CONNECTION-ID.
    Peer(u32),
}

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
/// # TCP and TLS
///
/// [`with_tcp`](Self::with_tcp) and [`with_tls`](Self::with_tls) add stream listeners (TCP
/// ports need no socket binding: netsim's TCP has its own namespace). Every connection they
/// accept is framed (STUN and ChannelData) into [`ServerInput`]s with transport TCP or TLS,
/// the server's transmits and relayed messages for it are written on it, and its close is
/// reported with `connection_closed` (a framing error closes it first). A TLS listener
/// accepts plain TCP carrying plaintext: see [TCP and TLS](super#tcp-and-tls).
///
/// With [`ServerConfig::tcp_allocations`] the node also does RFC 6062: it listens on every
/// port of each relay address (a connection to a port that is no TCP relay is accepted,
/// refused by the core and closed at once, where a real host would reset it), hands
/// incoming peer connections to `incoming_peer_connection`, opens the peer connections a
/// Connect asks for ([`ServerEvent::ConnectPeer`], reported with `peer_connected`), holds
/// peer bytes until the [`ServerEvent::Bridge`] and then copies bytes both ways without the
/// core, and closes each half of a bridge with the other.
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
/// let turn = TurnServerNode::new(config, &["192.0.2.1:3478".parse()?], 42, start)?
///     .with_tcp(&["192.0.2.1:3478".parse()?])
///     .with_tls(&["192.0.2.1:5349".parse()?]);
/// assert_eq!(turn.sockets(), ["192.0.2.1:3478".parse()?, "192.0.2.1:0".parse()?]);
/// let turn = turn.add_to(&mut sim, host)?;
/// assert_eq!(sim.node(turn).server().allocation_count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TurnServerNode {
    server: Server,
    sockets: Vec<SocketAddr>,
    tcp_listeners: Vec<SocketAddr>,
    tls_listeners: Vec<SocketAddr>,
    /// The relay addresses, when they take RFC 6062 peer connections.
    tcp_relays: Vec<IpAddr>,
    confirm_binds: bool,
    outbox: VecDeque<Datagram>,
    streams: Streams<ServerConn>,
    events: VecDeque<(Instant, ServerEvent)>,
    buf: Vec<u8>,
    now: Instant,
}

impl TurnServerNode {
    /// A server with `config` listening on `listen` (UDP), randomness from `seed`, started
    /// at `now`.
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
        let mut streams = Streams::default();
        let mut tcp_relays = Vec::new();
        if config.tcp_allocations {
            for relay in &config.relays {
                // Every port, as for UDP: the most specific listener (a TCP listening port
                // on the same address) still wins.
                streams.listen(SocketAddr::new(relay.ip, 0));
                tcp_relays.push(relay.ip);
            }
        }
        let confirm_binds = config.relay_binding == RelayBinding::Driver;
        Ok(TurnServerNode {
            server: Server::new(config, seed, now)?,
            sockets,
            tcp_listeners: Vec::new(),
            tls_listeners: Vec::new(),
            tcp_relays,
            confirm_binds,
            outbox: VecDeque::new(),
            streams,
            events: VecDeque::new(),
            buf: Vec::with_capacity(HEADROOM + 1500),
            now,
        })
    }

    /// Also listens for TURN over TCP on `listen` (RFC 8656 §3.1; 3478 by convention).
    #[must_use]
    pub fn with_tcp(mut self, listen: &[SocketAddr]) -> Self {
        for local in listen {
            self.streams.listen(*local);
            self.tcp_listeners.push(*local);
        }
        self
    }

    /// Also listens for TURN over TLS on `listen` (5349 or 443 by convention). In the
    /// simulation these are TCP listeners whose connections carry plaintext, labelled TLS
    /// (see [TCP and TLS](super#tcp-and-tls)).
    #[must_use]
    pub fn with_tls(mut self, listen: &[SocketAddr]) -> Self {
        for local in listen {
            self.streams.listen(*local);
            self.tls_listeners.push(*local);
        }
        self
    }

    /// The sockets to bind the node to: the UDP listening sockets, then one whole-IP socket
    /// (port 0) per relay address. (TCP and TLS listeners need no binding.)
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

    /// Open TCP (and TLS) connections: clients' and, for RFC 6062, peers'.
    pub fn tcp_connections(&self) -> usize {
        self.streams.len()
    }

    /// Drains the server: transmits out, then events (confirming relay binds, which queues
    /// the held Allocate responses: drain again).
    fn drain(&mut self) {
        loop {
            while let Some(t) = self.server.poll_transmit() {
                self.transmit(t);
            }
            let mut confirmed = false;
            while let Some(e) = self.server.poll_event() {
                confirmed |= self.on_event(&e);
                self.events.push_back((self.now, e));
            }
            if !confirmed {
                return;
            }
        }
    }

    /// A message for a client or a peer: a datagram, or bytes on a connection.
    fn transmit(&mut self, t: Transmit) {
        if t.transport == TransportProtocol::Udp {
            self.outbox
                .push_back(Datagram::udp(t.source, t.destination, t.payload));
        } else if self
            .streams
            .write(t.source, t.destination, t.payload)
            .is_err()
        {
            tracing::debug!(?t.destination, "netsim adapter: no connection; transmit dropped");
        }
    }

    /// Does what an event asks; true if it confirmed a relay bind.
    fn on_event(&mut self, e: &ServerEvent) -> bool {
        match *e {
            ServerEvent::BindRelay { relayed, .. } if self.confirm_binds => {
                // The node owns every port of the relay addresses (`sockets`, and the
                // whole-IP TCP listeners): the "socket" is bound already.
                if let Err(error) = self.server.relay_bound(self.now, relayed, Ok(())) {
                    tracing::debug!(%error, "netsim adapter: relay bind not pending");
                }
                true
            }
            ServerEvent::ConnectPeer {
                connection_id,
                relayed,
                peer,
            } => {
                self.streams.connect(Connect {
                    from: relayed,
                    to: peer,
                    name: None,
                    transport: TransportProtocol::Tcp,
                    reader: Reader::Held(Vec::new()),
                    tag: ServerConn::Peer(connection_id),
                });
                false
            }
            ServerEvent::Bridge {
                connection_id,
                client: (local, remote),
                ..
            } => {
                self.bridge(connection_id, local, remote);
                false
            }
            ServerEvent::ClosePeerConnection { connection_id } => {
                let peer = ServerConn::Peer(connection_id);
                let found = self.streams.find(|c| c.tag == peer).map(|c| c.id);
                match found {
                    Some(id) => self.close_pair(id),
                    None => {
                        self.streams
                            .close_where(|_| false, |_, _, tag| *tag == peer);
                    }
                }
                false
            }
            _ => false,
        }
    }

    /// RFC 6062 §5.4: the client data connection `(local, remote)` and peer connection
    /// `connection_id` are now one pipe, beginning with what the peer sent meanwhile.
    fn bridge(&mut self, connection_id: u32, local: SocketAddr, remote: SocketAddr) {
        let peer = ServerConn::Peer(connection_id);
        let Some(peer_id) = self.streams.find(|c| c.tag == peer).map(|c| c.id) else {
            // The peer left before the bridge: the client half goes too.
            if let Some(id) = self.client_conn(local, remote) {
                self.close_client(id);
            }
            return;
        };
        let Some(client_id) = self.client_conn(local, remote) else {
            return self.close_pair(peer_id);
        };
        if let Some(c) = self.streams.get(client_id) {
            if let Reader::Framed(framer) = &c.reader {
                if framer.buffered() > 0 {
                    tracing::debug!(
                        buffered = framer.buffered(),
                        "netsim adapter: client bytes behind the ConnectionBind dropped"
                    );
                }
            }
            c.reader = Reader::Pipe(peer_id);
        }
        let held = match self.streams.get(peer_id) {
            Some(c) => std::mem::replace(&mut c.reader, Reader::Pipe(client_id)),
            None => Reader::Held(Vec::new()),
        };
        if let Reader::Held(bytes) = held {
            self.streams.send(client_id, bytes);
        }
    }

    fn client_conn(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<TcpId> {
        (self.streams)
            .find(|c| c.tag == ServerConn::Client && c.local == local && c.remote == remote)
            .map(|c| c.id)
    }

    /// Closes connection `id` and the other half of its bridge, if any; a client half is
    /// reported to the core (a peer half the core asked to close, or knows is gone).
    fn close_pair(&mut self, id: TcpId) {
        let Some(c) = self.streams.close(id) else {
            return;
        };
        if c.tag == ServerConn::Client {
            self.report_closed(&c);
        }
        if let Reader::Pipe(other) = c.reader {
            if let Some(o) = self.streams.close(other) {
                if o.tag == ServerConn::Client {
                    self.report_closed(&o);
                }
            }
        }
    }

    fn close_client(&mut self, id: TcpId) {
        if let Some(c) = self.streams.close(id) {
            self.report_closed(&c);
        }
    }

    fn report_closed(&mut self, c: &Conn<ServerConn>) {
        (self.server).connection_closed(self.now, c.transport, c.remote, c.local);
    }

    /// One datagram or stream message from a client or a peer, into the server, and the
    /// relayed message it makes out.
    fn input(&mut self, transport: TransportProtocol, source: SocketAddr, local: SocketAddr) {
        let input = ServerInput {
            transport,
            source,
            destination: local,
            buf: &mut self.buf,
            headroom: HEADROOM,
        };
        if let ServerOutput::Send(d) = self.server.handle_input(self.now, input) {
            let t = Transmit {
                transport: d.transport,
                source: d.source,
                destination: d.destination,
                payload: d.data.to_vec(),
            };
            self.transmit(t);
        }
    }

    fn fill_buf(&mut self, payload: &[u8]) {
        self.buf.clear();
        self.buf.resize(HEADROOM, 0);
        self.buf.extend_from_slice(payload);
    }

    /// A connection accepted on a listener or, for RFC 6062, on a relay address.
    fn accepted(&mut self, id: TcpId, local: SocketAddr, remote: SocketAddr) {
        let (transport, tag, reader) = if self.tcp_listeners.contains(&local) {
            let reader = Reader::framed(Framing::StunAndChannelData);
            (TransportProtocol::Tcp, ServerConn::Client, reader)
        } else if self.tls_listeners.contains(&local) {
            let reader = Reader::framed(Framing::StunAndChannelData);
            (TransportProtocol::Tls, ServerConn::Client, reader)
        } else if self.tcp_relays.contains(&local.ip()) {
            match self
                .server
                .incoming_peer_connection(self.now, local, remote)
            {
                IncomingPeer::Accepted { connection_id } => {
                    let reader = Reader::Held(Vec::new());
                    let tag = ServerConn::Peer(connection_id);
                    (TransportProtocol::Tcp, tag, reader)
                }
                refused => {
                    tracing::debug!(?refused, %local, %remote, "netsim adapter: peer connection refused");
                    return self.streams.refuse(id);
                }
            }
        } else {
            return self.streams.refuse(id);
        };
        self.streams.accepted(Conn {
            id,
            local,
            remote,
            transport,
            reader,
            tag,
        });
    }

    /// Bytes arrived on connection `id`.
    fn data(&mut self, id: TcpId, bytes: &[u8]) {
        let Some(c) = self.streams.get(id) else {
            return;
        };
        let (local, remote, transport) = (c.local, c.remote, c.transport);
        let Read::Frames(frames, error) = self.streams.read(id, bytes) else {
            return;
        };
        for frame in &frames {
            self.fill_buf(frame);
            self.input(transport, remote, local);
        }
        if let Some(error) = error {
            tracing::debug!(%local, %remote, %error, "netsim adapter: stream broken; closed");
            self.close_client(id);
        }
    }

    /// Connection `id` ended on the far side.
    fn closed(&mut self, id: TcpId) {
        let Some(c) = self.streams.closed(id) else {
            return;
        };
        match c.tag {
            ServerConn::Client => self.report_closed(&c),
            ServerConn::Peer(connection_id) => {
                self.server.peer_connection_closed(self.now, connection_id);
            }
        }
        // RFC 6062 §5.5: the other half of a bridge goes with it.
        if let Reader::Pipe(other) = c.reader {
            self.close_pair(other);
        }
    }
}

impl Node for TurnServerNode {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = now;
        if datagram.transport != Transport::Udp {
            return;
        }
        self.fill_buf(&datagram.payload);
        self.input(
            TransportProtocol::Udp,
            datagram.source,
            datagram.destination,
        );
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

    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        self.now = now;
        match event {
            TcpEvent::Accepted { id, local, remote } => self.accepted(id, local, remote),
            TcpEvent::Connected { id, local, remote } => {
                let Some(c) = self.streams.connected(id, local, remote) else {
                    return;
                };
                if let ServerConn::Peer(connection_id) = c.tag {
                    if self
                        .server
                        .peer_connected(now, connection_id, Ok(()))
                        .is_err()
                    {
                        // The core gave up on it meanwhile.
                        self.streams.close(id);
                    }
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
                if let ServerConn::Peer(connection_id) = f.tag {
                    let failure = match error {
                        ConnectError::Refused => ConnectFailure::Refused,
                        ConnectError::TimedOut => ConnectFailure::TimedOut,
                        _ => ConnectFailure::Other,
                    };
                    let _ = self.server.peer_connected(now, connection_id, Err(failure));
                }
            }
            TcpEvent::Data { id, bytes } => self.data(id, &bytes),
            TcpEvent::Closed { id, .. } => self.closed(id),
            other => tracing::debug!(?other, "netsim adapter: TCP event ignored"),
        }
        self.drain();
    }

    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.streams.poll_command()
    }
}
