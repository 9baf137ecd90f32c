//! An in-memory network of TCP/TLS connections between a `turn_proto` client and server,
//! on a virtual clock: the real `StreamFramer` on both ends of every connection, reads cut
//! as the test asks, TCP peers of the relay, and a driver for each side that does what the
//! machines' events say. The drivers here are the reference for real ones: they follow the
//! stream conventions and the RFC 6062 flows documented on `Client` and `Server`.
#![allow(dead_code, clippy::disallowed_methods)] // Instant::now() once, as the clock's origin

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::framing::{Framing, StreamFramer};
use turn_proto::client::{Client, ClientConfig, ClientEvent, Received};
use turn_proto::server::{
    ConnectFailure, IncomingPeer, RelayBinding, RelayRange, Server, ServerConfig, ServerEvent,
    ServerInput, ServerOutput,
};
use turn_proto::stream::first_message_len;
use turn_proto::{Input, TransportProtocol};

pub(crate) const LISTEN: &str = "192.0.2.1:3478";
pub(crate) const LOCAL: &str = "10.0.0.2:5000";
pub(crate) const PEER: &str = "198.51.100.1:7000";
pub(crate) const PEER2: &str = "198.51.100.2:7000";
pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "wonderland";
pub(crate) const REALM: &str = "example.org";

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn server_config(tcp_allocations: bool) -> ServerConfig {
    let mut c = ServerConfig::new(REALM);
    c.relays.push(RelayRange {
        ip: "192.0.2.1".parse().unwrap(),
        ports: 50000..=50999,
    });
    c.add_user(USER, PASSWORD);
    c.add_user("bob", "builder");
    c.relay_binding = RelayBinding::Automatic;
    c.tcp_allocations = tcp_allocations;
    c
}

pub(crate) fn client_config(
    transport: TransportProtocol,
    relay: TransportProtocol,
) -> ClientConfig {
    let mut c = ClientConfig::new(sa(LISTEN), sa(LOCAL), USER, PASSWORD);
    c.transport = transport;
    c.relay_transport = relay;
    c
}

/// How the bytes waiting on one side of a connection are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Everything waiting, in one read (several messages per read when several were
    /// written).
    Whole,
    /// The first `k` bytes of what is waiting, then the rest: a message written alone is
    /// split at offset `k`.
    SplitAt(usize),
    /// Reads of at most this many bytes.
    Chunks(usize),
}

/// What the server-side driver does with `ConnectPeer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectPolicy {
    /// The peer accepts at once.
    Accept,
    /// The connection fails at once.
    Fail(ConnectFailure),
    /// No answer: the attempt hangs (the test may complete it).
    Hold,
}

#[derive(Debug)]
enum ServerSide {
    /// TURN messages, framed.
    Framed(StreamFramer),
    /// A client data connection after its ConnectionBind: raw bytes to peer `id`.
    Bridged(u32),
}

#[derive(Debug)]
enum ClientSide {
    /// The control connection, framed.
    Control(StreamFramer),
    /// A data connection whose ConnectionBind runs: bytes kept, the response cut off with
    /// `first_message_len`.
    Binding { id: u32, buf: Vec<u8> },
    /// A peer connection handed to the application.
    App { id: u32 },
    /// Bytes collected for a test that speaks for itself.
    Raw(Vec<u8>),
}

/// One TCP (or TLS) connection between the client host and the server's listener.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) transport: TransportProtocol,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    at_server: ServerSide,
    at_client: ClientSide,
    pub(crate) closed: bool,
}

/// A TCP connection between the relay and a peer, as the server-side driver holds it.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    pub(crate) relayed: Option<SocketAddr>,
    pub(crate) peer: Option<SocketAddr>,
    /// What reached the peer.
    pub(crate) received: Vec<u8>,
    /// What the peer sent before the bridge (RFC 6062: the server buffers it).
    buffered: Vec<u8>,
    /// The client data connection it is bridged with.
    bridged: Option<(SocketAddr, SocketAddr)>,
    pub(crate) closed: bool,
}

/// Something written on a connection, for transcripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) at: Duration,
    pub(crate) from_client: bool,
    pub(crate) client: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

pub(crate) struct World {
    start: Instant,
    pub(crate) now: Instant,
    pub(crate) server: Server,
    pub(crate) client: Client,
    pub(crate) reads: Reads,
    /// The framers' limit (a driver's choice).
    pub(crate) max_frame: usize,
    pub(crate) conns: BTreeMap<(SocketAddr, SocketAddr), Conn>,
    pub(crate) peers: BTreeMap<u32, Peer>,
    pub(crate) connect_policy: ConnectPolicy,
    pub(crate) held_connects: Vec<u32>,
    /// Whether the client-side driver opens the data connections it is asked for.
    pub(crate) open_data_connections: bool,
    pub(crate) client_events: Vec<(Duration, ClientEvent)>,
    pub(crate) server_events: Vec<(Duration, ServerEvent)>,
    pub(crate) wire: Vec<Wire>,
    /// Datagrams the relay sent to UDP peers: (peer, relayed, bytes).
    pub(crate) udp_to_peers: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Peer data the client handed over (UDP relay): (peer, bytes).
    pub(crate) peer_data: Vec<(SocketAddr, Vec<u8>)>,
    /// What the application read on each peer connection (TCP relay).
    pub(crate) app_received: BTreeMap<u32, Vec<u8>>,
    /// Connections closed because their stream could not be framed: (client, error).
    pub(crate) framing_errors: Vec<(SocketAddr, String)>,
    next_port: u16,
}

impl World {
    pub(crate) fn new(server: ServerConfig, client: ClientConfig, reads: Reads) -> World {
        World::with_seeds(server, client, reads, 11, 22)
    }

    pub(crate) fn with_seeds(
        server: ServerConfig,
        client: ClientConfig,
        reads: Reads,
        server_seed: u64,
        client_seed: u64,
    ) -> World {
        let now = Instant::now();
        World {
            start: now,
            now,
            server: Server::new(server, server_seed, now).unwrap(),
            client: Client::new(client, client_seed, now),
            reads,
            max_frame: stun_proto::framing::MAX_FRAME_LEN,
            conns: BTreeMap::new(),
            peers: BTreeMap::new(),
            connect_policy: ConnectPolicy::Accept,
            held_connects: Vec::new(),
            open_data_connections: true,
            client_events: Vec::new(),
            server_events: Vec::new(),
            wire: Vec::new(),
            udp_to_peers: Vec::new(),
            peer_data: Vec::new(),
            app_received: BTreeMap::new(),
            framing_errors: Vec::new(),
            next_port: 6000,
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn framer(&self) -> StreamFramer {
        StreamFramer::with_max_frame(Framing::StunAndChannelData, self.max_frame)
    }

    /// Opens a connection from `client` to the listener.
    pub(crate) fn open(&mut self, client: SocketAddr, transport: TransportProtocol, raw: bool) {
        let at_client = if raw {
            ClientSide::Raw(Vec::new())
        } else {
            ClientSide::Control(self.framer())
        };
        let conn = Conn {
            transport,
            to_server: Vec::new(),
            to_client: Vec::new(),
            at_server: ServerSide::Framed(self.framer()),
            at_client,
            closed: false,
        };
        self.conns.insert((client, sa(LISTEN)), conn);
    }

    pub(crate) fn conn(&self, client: SocketAddr) -> Option<&Conn> {
        self.conns.get(&(client, sa(LISTEN)))
    }

    /// Bytes a test writes on a connection as the client host.
    pub(crate) fn write_as_client(&mut self, client: SocketAddr, bytes: &[u8]) {
        let at = self.elapsed();
        if let Some(c) = self.conns.get_mut(&(client, sa(LISTEN))) {
            if !c.closed {
                c.to_server.extend_from_slice(bytes);
                self.wire.push(Wire {
                    at,
                    from_client: true,
                    client,
                    bytes: bytes.to_vec(),
                });
            }
        }
    }

    fn write_as_server(&mut self, client: SocketAddr, bytes: &[u8]) {
        let at = self.elapsed();
        if let Some(c) = self.conns.get_mut(&(client, sa(LISTEN))) {
            if !c.closed {
                c.to_client.extend_from_slice(bytes);
                self.wire.push(Wire {
                    at,
                    from_client: false,
                    client,
                    bytes: bytes.to_vec(),
                });
            }
        }
    }

    /// What a raw connection received so far (taken).
    pub(crate) fn take_raw(&mut self, client: SocketAddr) -> Vec<u8> {
        match self
            .conns
            .get_mut(&(client, sa(LISTEN)))
            .map(|c| &mut c.at_client)
        {
            Some(ClientSide::Raw(buf)) => std::mem::take(buf),
            _ => Vec::new(),
        }
    }

    /// Delivers everything until nothing moves.
    pub(crate) fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                let key = (t.source, t.destination);
                if key == (self.client.local(), self.client.server())
                    && !self.conns.contains_key(&key)
                {
                    // The client-side driver opens the control connection on first use.
                    self.open(t.source, t.transport, false);
                }
                self.write_as_client(t.source, &t.payload);
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                if t.transport.is_reliable() {
                    self.write_as_server(t.destination, &t.payload);
                }
            }
            while let Some(e) = self.server.poll_event() {
                moved = true;
                self.on_server_event(e);
            }
            moved |= self.client_events_now();
            let keys: Vec<_> = self.conns.keys().copied().collect();
            for key in keys {
                moved |= self.deliver_to_server(key);
                moved |= self.deliver_to_client(key);
            }
            if !moved {
                return;
            }
        }
        panic!("the network does not settle");
    }

    fn client_events_now(&mut self) -> bool {
        let mut moved = false;
        while let Some(e) = self.client.poll_event() {
            moved = true;
            self.on_client_event(e);
        }
        moved
    }

    /// Runs both machines' timers up to `now + d`.
    pub(crate) fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.pump();
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
        self.client.handle_timeout(until);
        self.server.handle_timeout(until);
        self.pump();
    }

    /// The next read from `pending`.
    fn cut(reads: Reads, pending: &mut Vec<u8>) -> Vec<u8> {
        let n = match reads {
            Reads::Whole => pending.len(),
            Reads::SplitAt(k) if k > 0 && k < pending.len() => k,
            Reads::SplitAt(_) => pending.len(),
            Reads::Chunks(n) => n.min(pending.len()),
        };
        pending.drain(..n).collect()
    }

    fn deliver_to_server(&mut self, key: (SocketAddr, SocketAddr)) -> bool {
        let mut moved = false;
        // A read at a time: the connection's mode may change between reads.
        loop {
            let reads = self.reads;
            let Some(c) = self
                .conns
                .get_mut(&key)
                .filter(|c| !c.closed && !c.to_server.is_empty())
            else {
                return moved;
            };
            moved = true;
            let transport = c.transport;
            let chunk = World::cut(reads, &mut c.to_server);
            // With `SplitAt`, only the first read of a burst is split.
            let rest_whole = matches!(reads, Reads::SplitAt(_));
            let frames = match &mut c.at_server {
                ServerSide::Bridged(id) => {
                    let id = *id;
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.received.extend_from_slice(&chunk);
                    }
                    continue;
                }
                ServerSide::Framed(f) => {
                    let mut frames = Vec::new();
                    let mut error = None;
                    match f.push(&chunk) {
                        Err(e) => error = Some(e),
                        Ok(()) => loop {
                            match f.next_frame() {
                                Ok(Some(frame)) => frames.push(frame.data.to_vec()),
                                Ok(None) => break,
                                Err(e) => {
                                    error = Some(e);
                                    break;
                                }
                            }
                        },
                    }
                    (frames, error)
                }
            };
            let (frames, error) = frames;
            for frame in frames {
                self.server_input(transport, key.0, key.1, frame);
            }
            if let Some(e) = error {
                self.framing_errors.push((key.0, e.to_string()));
                self.close(key.0);
                return true;
            }
            if rest_whole {
                // The rest of this burst in one read.
                let saved = self.reads;
                self.reads = Reads::Whole;
                self.deliver_to_server(key);
                self.reads = saved;
                return true;
            }
        }
    }

    fn server_input(
        &mut self,
        transport: TransportProtocol,
        client: SocketAddr,
        local: SocketAddr,
        mut frame: Vec<u8>,
    ) {
        let input = ServerInput {
            transport,
            source: client,
            destination: local,
            buf: &mut frame,
            headroom: 0,
        };
        let out = match self.server.handle_input(self.now, input) {
            ServerOutput::Send(d) => Some((d.transport, d.source, d.destination, d.data.to_vec())),
            _ => None,
        };
        if let Some(out) = out {
            self.route(out);
        }
    }

    /// A datagram the relay sends at once.
    fn route(
        &mut self,
        (transport, source, destination, data): (
            TransportProtocol,
            SocketAddr,
            SocketAddr,
            Vec<u8>,
        ),
    ) {
        if transport.is_reliable() {
            self.write_as_server(destination, &data);
        } else {
            self.udp_to_peers.push((destination, source, data));
        }
    }

    fn deliver_to_client(&mut self, key: (SocketAddr, SocketAddr)) -> bool {
        let mut moved = false;
        loop {
            let reads = self.reads;
            let Some(c) = self.conns.get_mut(&key).filter(|c| !c.closed) else {
                return moved;
            };
            let transport = c.transport;
            // A data connection may hold a whole message already.
            if let ClientSide::Binding { buf, .. } = &mut c.at_client {
                match first_message_len(buf) {
                    Ok(Some(n)) => {
                        let message: Vec<u8> = buf.drain(..n).collect();
                        moved = true;
                        self.client_input(transport, key.0, &message);
                        // ConnectionBind answered: PeerConnection moves the rest to the app.
                        self.client_events_now();
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.framing_errors.push((key.0, e.to_string()));
                        self.close(key.0);
                        return true;
                    }
                }
            }
            let Some(c) = self.conns.get_mut(&key) else {
                return moved;
            };
            if c.to_client.is_empty() {
                return moved;
            }
            moved = true;
            let chunk = World::cut(reads, &mut c.to_client);
            let mut frames = Vec::new();
            let mut error = None;
            match &mut c.at_client {
                ClientSide::Control(f) => match f.push(&chunk) {
                    Err(e) => error = Some(e.to_string()),
                    Ok(()) => loop {
                        match f.next_frame() {
                            Ok(Some(frame)) => frames.push(frame.data.to_vec()),
                            Ok(None) => break,
                            Err(e) => {
                                error = Some(e.to_string());
                                break;
                            }
                        }
                    },
                },
                ClientSide::Binding { buf, .. } => buf.extend_from_slice(&chunk),
                ClientSide::App { id } => {
                    let id = *id;
                    self.app_received
                        .entry(id)
                        .or_default()
                        .extend_from_slice(&chunk);
                }
                ClientSide::Raw(buf) => buf.extend_from_slice(&chunk),
            }
            for frame in frames {
                self.client_input(transport, key.0, &frame);
            }
            if let Some(e) = error {
                self.framing_errors.push((key.0, e));
                self.close(key.0);
                return true;
            }
        }
    }

    fn client_input(&mut self, transport: TransportProtocol, local: SocketAddr, data: &[u8]) {
        let input = Input {
            transport,
            source: sa(LISTEN),
            destination: local,
            data,
        };
        if let Received::PeerData { peer, data } = self.client.handle_input(self.now, input) {
            self.peer_data.push((peer, data.to_vec()));
        }
    }

    /// Closes the connection from `client` (both ends learn it): the server-side driver
    /// reports it, the client-side driver tells the client what it was.
    pub(crate) fn close(&mut self, client: SocketAddr) {
        let key = (client, sa(LISTEN));
        let Some(c) = self.conns.get_mut(&key).filter(|c| !c.closed) else {
            return;
        };
        c.closed = true;
        let transport = c.transport;
        let bridged = match c.at_server {
            ServerSide::Bridged(id) => Some(id),
            ServerSide::Framed(_) => None,
        };
        let side = match &c.at_client {
            ClientSide::Control(_) => Some(None),
            ClientSide::Binding { id, .. } => Some(Some(*id)),
            _ => None,
        };
        self.server
            .connection_closed(self.now, transport, client, sa(LISTEN));
        if let Some(id) = bridged {
            // RFC 6062 §5.5: the driver closes the peer half of the pair too.
            if let Some(p) = self.peers.get_mut(&id) {
                p.closed = true;
            }
        }
        match side {
            Some(None) if client == self.client.local() => self.client.connection_lost(self.now),
            Some(Some(id)) => self.client.data_connection_failed(self.now, id),
            _ => {}
        }
    }

    fn on_server_event(&mut self, e: ServerEvent) {
        self.server_events.push((self.elapsed(), e.clone()));
        match e {
            ServerEvent::ConnectPeer {
                connection_id,
                relayed,
                peer,
            } => match self.connect_policy {
                ConnectPolicy::Accept => {
                    self.peers.insert(
                        connection_id,
                        Peer {
                            relayed: Some(relayed),
                            peer: Some(peer),
                            ..Peer::default()
                        },
                    );
                    self.server
                        .peer_connected(self.now, connection_id, Ok(()))
                        .unwrap();
                }
                ConnectPolicy::Fail(f) => {
                    self.server
                        .peer_connected(self.now, connection_id, Err(f))
                        .unwrap();
                }
                ConnectPolicy::Hold => self.held_connects.push(connection_id),
            },
            ServerEvent::Bridge {
                connection_id,
                client: (local, remote),
                ..
            } => {
                let key = (remote, local);
                let buffered = match self.peers.get_mut(&connection_id) {
                    Some(p) => {
                        p.bridged = Some(key);
                        std::mem::take(&mut p.buffered)
                    }
                    None => Vec::new(),
                };
                if let Some(c) = self.conns.get_mut(&key) {
                    c.at_server = ServerSide::Bridged(connection_id);
                }
                // The bridge starts with what the peer sent before it.
                self.write_as_server(remote, &buffered);
            }
            ServerEvent::ClosePeerConnection { connection_id } => {
                self.held_connects.retain(|id| *id != connection_id);
                if let Some(p) = self.peers.get_mut(&connection_id) {
                    p.closed = true;
                    if let Some((client, _)) = p.bridged {
                        self.close(client);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_client_event(&mut self, e: ClientEvent) {
        self.client_events.push((self.elapsed(), e.clone()));
        match e {
            ClientEvent::OpenDataConnection { connection_id, .. } if self.open_data_connections => {
                self.open_data_connection(connection_id);
            }
            ClientEvent::PeerConnection {
                connection_id,
                local,
                ..
            } => {
                if let Some(c) = self.conns.get_mut(&(local, sa(LISTEN))) {
                    let rest = match std::mem::replace(
                        &mut c.at_client,
                        ClientSide::App { id: connection_id },
                    ) {
                        ClientSide::Binding { buf, .. } => buf,
                        _ => Vec::new(),
                    };
                    // Bytes read behind the ConnectionBind response are the application's.
                    self.app_received
                        .entry(connection_id)
                        .or_default()
                        .extend_from_slice(&rest);
                }
            }
            ClientEvent::DataConnectionFailed { connection_id, .. } => {
                let key = self.conns.iter().find_map(|(k, c)| {
                    matches!(c.at_client, ClientSide::Binding { id, .. } if id == connection_id)
                        .then_some(k.0)
                });
                if let Some(client) = key {
                    self.close(client);
                }
            }
            _ => {}
        }
    }

    /// What the client-side driver does on `OpenDataConnection`: a new connection from a
    /// new local port, reported to the client. Returns the local address.
    pub(crate) fn open_data_connection(&mut self, connection_id: u32) -> SocketAddr {
        let local = SocketAddr::new(self.client.local().ip(), self.next_port);
        self.next_port += 1;
        let transport = self
            .conn(self.client.local())
            .map_or(TransportProtocol::Tcp, |c| c.transport);
        self.open(local, transport, false);
        if let Some(c) = self.conns.get_mut(&(local, sa(LISTEN))) {
            c.at_client = ClientSide::Binding {
                id: connection_id,
                buf: Vec::new(),
            };
        }
        self.client
            .data_connection_opened(self.now, connection_id, local)
            .unwrap();
        local
    }

    /// Bytes the server host writes on a connection, as if the core had sent them.
    pub(crate) fn inject_to_client(&mut self, client: SocketAddr, bytes: &[u8]) {
        self.write_as_server(client, bytes);
        self.pump();
    }

    // --- the peers' side -------------------------------------------------------------

    /// A TCP peer connects to `relayed`; returns the core's decision (the driver keeps or
    /// closes the connection accordingly).
    pub(crate) fn peer_connects(&mut self, peer: SocketAddr, relayed: SocketAddr) -> IncomingPeer {
        let decision = self
            .server
            .incoming_peer_connection(self.now, relayed, peer);
        if let IncomingPeer::Accepted { connection_id } = decision {
            self.peers.insert(
                connection_id,
                Peer {
                    relayed: Some(relayed),
                    peer: Some(peer),
                    ..Peer::default()
                },
            );
        }
        self.pump();
        decision
    }

    /// A held Connect completes.
    pub(crate) fn complete_connect(&mut self, id: u32, result: Result<(), ConnectFailure>) {
        self.held_connects.retain(|h| *h != id);
        if result.is_ok() {
            self.peers.insert(id, Peer::default());
        }
        let _ = self.server.peer_connected(self.now, id, result);
        self.pump();
    }

    /// The TCP peer of connection `id` sends bytes.
    pub(crate) fn peer_sends(&mut self, id: u32, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(&id).filter(|p| !p.closed) else {
            return;
        };
        match p.bridged {
            Some((client, _)) => self.write_as_server(client, bytes),
            None => p.buffered.extend_from_slice(bytes),
        }
        self.pump();
    }

    /// The TCP peer of connection `id` closes it.
    pub(crate) fn peer_closes(&mut self, id: u32) {
        let Some(p) = self.peers.get_mut(&id).filter(|p| !p.closed) else {
            return;
        };
        p.closed = true;
        let bridged = p.bridged;
        self.server.peer_connection_closed(self.now, id);
        if let Some((client, _)) = bridged {
            self.close(client);
        }
        self.pump();
    }

    /// The application writes on its peer connection `id`.
    pub(crate) fn app_sends(&mut self, id: u32, bytes: &[u8]) {
        let client = self.conns.iter().find_map(|(k, c)| {
            matches!(c.at_client, ClientSide::App { id: i } if i == id).then_some(k.0)
        });
        if let Some(client) = client {
            self.write_as_client(client, bytes);
        }
        self.pump();
    }

    /// The application closes its peer connection `id`.
    pub(crate) fn app_closes(&mut self, id: u32) {
        let client = self.conns.iter().find_map(|(k, c)| {
            matches!(c.at_client, ClientSide::App { id: i } if i == id).then_some(k.0)
        });
        if let Some(client) = client {
            self.close(client);
        }
        self.pump();
    }

    /// A UDP datagram from `peer` to `relayed`, received with 4 bytes of headroom.
    pub(crate) fn udp_from_peer(&mut self, peer: SocketAddr, relayed: SocketAddr, payload: &[u8]) {
        let mut buf = vec![0u8; 4 + payload.len()];
        buf[4..].copy_from_slice(payload);
        let input = ServerInput::udp_with_headroom(peer, relayed, &mut buf, 4);
        let out = match self.server.handle_input(self.now, input) {
            ServerOutput::Send(d) => Some((d.transport, d.source, d.destination, d.data.to_vec())),
            _ => None,
        };
        if let Some(out) = out {
            self.route(out);
        }
        self.pump();
    }

    /// Runs a client command, then delivers.
    pub(crate) fn command<T>(&mut self, f: impl FnOnce(&mut Client, Instant) -> T) -> T {
        let r = f(&mut self.client, self.now);
        self.pump();
        r
    }

    // --- inspection ------------------------------------------------------------------

    pub(crate) fn count_client(&self, f: impl Fn(&ClientEvent) -> bool) -> usize {
        self.client_events.iter().filter(|(_, e)| f(e)).count()
    }

    pub(crate) fn count_server(&self, f: impl Fn(&ServerEvent) -> bool) -> usize {
        self.server_events.iter().filter(|(_, e)| f(e)).count()
    }

    /// The CONNECTION-IDs of the peer connections the application got, in order.
    pub(crate) fn peer_connections(&self) -> Vec<(u32, SocketAddr)> {
        self.client_events
            .iter()
            .filter_map(|(_, e)| match e {
                ClientEvent::PeerConnection {
                    connection_id,
                    peer,
                    ..
                } => Some((*connection_id, *peer)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn relayed(&self) -> SocketAddr {
        self.client.relayed_addresses()[0]
    }
}

/// Everything observable of a run: what was written on the wire and when, both machines'
/// events, and what was delivered (to peers or to the application).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Transcript<T> {
    pub(crate) wire: Vec<Wire>,
    pub(crate) client_events: Vec<String>,
    pub(crate) server_events: Vec<String>,
    pub(crate) delivered: T,
}

impl World {
    pub(crate) fn transcript<T>(self, delivered: impl FnOnce(&World) -> T) -> Transcript<T> {
        let delivered = delivered(&self);
        Transcript {
            client_events: self
                .client_events
                .iter()
                .map(|e| format!("{e:?}"))
                .collect(),
            server_events: self
                .server_events
                .iter()
                .map(|e| format!("{e:?}"))
                .collect(),
            wire: self.wire,
            delivered,
        }
    }
}

/// Read helpers shared by tests that speak STUN by hand.
pub(crate) fn messages(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some(n)) = first_message_len(bytes) {
        out.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    out
}

/// A queue of scripted bytes, for tests that need one.
pub(crate) type Script = VecDeque<Vec<u8>>;
