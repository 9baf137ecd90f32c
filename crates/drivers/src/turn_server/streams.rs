//! A worker's TCP side: stream listeners, RFC 6062 relay listeners and connections, by mio
//! token, with the lookups the core's outputs need, the work lists of the loop, and the
//! connection timers.
//!
//! Tokens: the UDP sockets use `0..base` (see [`Sockets`](super::sockets::Sockets)); stream
//! entries use `base + slot`, slots reused after a close. Lookups: a client connection by
//! (local, remote) — the (source, destination) of a transmit, or the `client` of a 5-tuple
//! — a peer connection by CONNECTION-ID, a relay listener by relayed address.

use super::conn::{Conn, QUEUE_HARD_LIMIT, QUEUE_LIMIT, Role};
use super::stats::StreamStats;
use core::cmp::Reverse;
use mio::{Interest, Registry, Token};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use stun_proto::TransportProtocol;

/// One stream entry.
#[derive(Debug)]
pub(super) enum Entry {
    /// A TCP or TLS listener for clients.
    Listener {
        io: mio::net::TcpListener,
        transport: TransportProtocol,
    },
    /// An RFC 6062 TCP relayed address, listening for peers.
    RelayListener {
        io: mio::net::TcpListener,
        relayed: SocketAddr,
    },
    /// A connection.
    Conn(Box<Conn>),
}

/// The stream entries of one worker.
#[derive(Debug)]
pub(super) struct Streams {
    base: usize,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// Client connections by (local, remote).
    clients: HashMap<(SocketAddr, SocketAddr), usize>,
    /// Peer connections by CONNECTION-ID.
    peers: HashMap<u32, usize>,
    /// Relay listeners by relayed address.
    relays: HashMap<SocketAddr, usize>,
    /// Slots to serve (readable, or with work left over from an earlier round).
    pending: VecDeque<usize>,
    /// Connections with bytes to write.
    dirty: Vec<usize>,
    /// By slot: in `pending`, in `dirty`.
    flags: Vec<(bool, bool)>,
    /// `(deadline, slot, generation)`, lazily deleted.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    generation: u64,
    /// The TLS configuration of the TLS listeners.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open (clients and peers), for the limit.
    connections: usize,
    /// The counters.
    pub(super) stats: StreamStats,
}

impl Streams {
    /// No entries yet; tokens from `base` up.
    pub(super) fn new(base: usize, tls: Option<Arc<rustls::ServerConfig>>) -> Streams {
        Streams {
            base,
            entries: Vec::new(),
            free: Vec::new(),
            clients: HashMap::new(),
            peers: HashMap::new(),
            relays: HashMap::new(),
            pending: VecDeque::new(),
            dirty: Vec::new(),
            flags: Vec::new(),
            timers: BinaryHeap::new(),
            generation: 0,
            tls,
            connections: 0,
            stats: StreamStats::default(),
        }
    }

    /// The slot a token names, if it is a stream token.
    pub(super) fn slot(&self, token: Token) -> Option<usize> {
        token
            .0
            .checked_sub(self.base)
            .filter(|&s| s < self.entries.len())
    }

    fn token(&self, slot: usize) -> Token {
        Token(self.base + slot)
    }

    /// A new generation number, for a connection's timers.
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Connections open now (clients and peers, closing ones included).
    pub(super) fn connections(&self) -> usize {
        self.connections
    }

    fn insert(&mut self, registry: &Registry, mut entry: Entry) -> io::Result<usize> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(None);
                self.flags.push((false, false));
                self.entries.len() - 1
            }
        };
        let token = self.token(slot);
        let registered = match &mut entry {
            Entry::Listener { io, .. } | Entry::RelayListener { io, .. } => {
                registry.register(io, token, Interest::READABLE)
            }
            Entry::Conn(c) => {
                registry.register(c.io(), token, Interest::READABLE.add(Interest::WRITABLE))
            }
        };
        if let Err(e) = registered {
            self.free.push(slot);
            return Err(e);
        }
        match &entry {
            Entry::Listener { .. } => {}
            Entry::RelayListener { relayed, .. } => {
                self.relays.insert(*relayed, slot);
            }
            Entry::Conn(c) => {
                self.connections += 1;
                match c.role {
                    Role::Client { .. } => {
                        self.clients.insert((c.local, c.remote), slot);
                    }
                    Role::Peer { connection_id, .. } => {
                        self.peers.insert(connection_id, slot);
                    }
                }
            }
        }
        self.entries[slot] = Some(entry);
        Ok(slot)
    }

    /// Adds a client listener.
    pub(super) fn add_listener(
        &mut self,
        registry: &Registry,
        listener: std::net::TcpListener,
        transport: TransportProtocol,
    ) -> io::Result<()> {
        let io = mio::net::TcpListener::from_std(listener);
        self.insert(registry, Entry::Listener { io, transport })
            .map(|_| ())
    }

    /// Adds a relay listener on `relayed`.
    pub(super) fn add_relay(
        &mut self,
        registry: &Registry,
        io: mio::net::TcpListener,
        relayed: SocketAddr,
    ) -> io::Result<()> {
        self.insert(registry, Entry::RelayListener { io, relayed })
            .map(|_| ())
    }

    /// Adds a connection; it is served at once (a socket may be readable before its first
    /// event is read).
    pub(super) fn add_conn(&mut self, registry: &Registry, conn: Conn) -> io::Result<usize> {
        let slot = self.insert(registry, Entry::Conn(Box::new(conn)))?;
        self.mark_ready(slot);
        Ok(slot)
    }

    /// Removes an entry (the socket closes when it is dropped).
    pub(super) fn remove(&mut self, registry: &Registry, slot: usize) -> Option<Entry> {
        let mut entry = self.entries.get_mut(slot)?.take()?;
        let _ = match &mut entry {
            Entry::Listener { io, .. } | Entry::RelayListener { io, .. } => registry.deregister(io),
            Entry::Conn(c) => registry.deregister(c.io()),
        };
        match &entry {
            Entry::Listener { .. } => {}
            Entry::RelayListener { relayed, .. } => {
                self.relays.remove(relayed);
            }
            Entry::Conn(c) => {
                self.connections -= 1;
                self.forget(slot, c.role, c.local, c.remote);
            }
        }
        self.flags[slot] = (false, false);
        self.free.push(slot);
        Some(entry)
    }

    /// Forgets a connection's names, if they still name it.
    fn forget(&mut self, slot: usize, role: Role, local: SocketAddr, remote: SocketAddr) {
        match role {
            Role::Client { .. } => {
                if self.clients.get(&(local, remote)) == Some(&slot) {
                    self.clients.remove(&(local, remote));
                }
            }
            Role::Peer { connection_id, .. } => {
                if self.peers.get(&connection_id) == Some(&slot) {
                    self.peers.remove(&connection_id);
                }
            }
        }
    }

    /// Marks a connection as closing: it loses its names (nothing more reaches it) and is
    /// dropped once its queue is written.
    pub(super) fn unlink_conn(&mut self, slot: usize) {
        let Some(Some(Entry::Conn(c))) = self.entries.get_mut(slot) else {
            return;
        };
        c.closing = true;
        let (role, local, remote) = (c.role, c.local, c.remote);
        self.forget(slot, role, local, remote);
    }

    /// An entry.
    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut Entry> {
        self.entries.get_mut(slot)?.as_mut()
    }

    /// A connection.
    pub(super) fn conn(&self, slot: usize) -> Option<&Conn> {
        match self.entries.get(slot)? {
            Some(Entry::Conn(c)) => Some(c),
            _ => None,
        }
    }

    /// A connection, mutably.
    pub(super) fn conn_mut(&mut self, slot: usize) -> Option<&mut Conn> {
        match self.entries.get_mut(slot)? {
            Some(Entry::Conn(c)) => Some(c),
            _ => None,
        }
    }

    /// The client connection (local, remote), if open.
    pub(super) fn client(&self, local: SocketAddr, remote: SocketAddr) -> Option<usize> {
        self.clients.get(&(local, remote)).copied()
    }

    /// The peer connection `connection_id`, if open.
    pub(super) fn peer(&self, connection_id: u32) -> Option<usize> {
        self.peers.get(&connection_id).copied()
    }

    /// The relay listener on `relayed`, if open.
    pub(super) fn relay(&self, relayed: SocketAddr) -> Option<usize> {
        self.relays.get(&relayed).copied()
    }

    /// Queues a relayed datagram (ChannelData or a Data indication) on the client connection
    /// (`local`, `remote`), unless its queue is over [`QUEUE_LIMIT`] (then it is dropped and
    /// counted).
    #[inline]
    pub(super) fn queue_datagram(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let Some(slot) = self.client(local, remote) else {
            tracing::trace!(%remote, "relayed datagram for a closed connection");
            return;
        };
        let Some(c) = self.conn_mut(slot) else {
            return;
        };
        if c.queued() > QUEUE_LIMIT {
            self.stats.dropped_datagrams += 1;
            return;
        }
        c.queue(data);
        self.stats.bytes_out += data.len() as u64;
        self.mark_dirty(slot);
    }

    /// Queues a STUN message on the client connection (`local`, `remote`). Returns the slot
    /// of a connection that has [`QUEUE_HARD_LIMIT`] bytes waiting already and must be
    /// closed: it does not read.
    pub(super) fn queue_message(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        message: &[u8],
    ) -> Option<usize> {
        let Some(slot) = self.client(local, remote) else {
            tracing::trace!(%remote, "message for a closed connection");
            return None;
        };
        let c = self.conn_mut(slot)?;
        if c.queued() > QUEUE_HARD_LIMIT {
            return Some(slot);
        }
        c.queue(message);
        self.stats.bytes_out += message.len() as u64;
        self.mark_dirty(slot);
        None
    }

    /// Queues a slot to be served.
    pub(super) fn mark_ready(&mut self, slot: usize) {
        if let Some(f) = self.flags.get_mut(slot) {
            if !f.0 {
                f.0 = true;
                self.pending.push_back(slot);
            }
        }
    }

    /// The next slot to serve.
    pub(super) fn pop_ready(&mut self) -> Option<usize> {
        let slot = self.pending.pop_front()?;
        self.flags[slot].0 = false;
        Some(slot)
    }

    /// Slots waiting to be served.
    pub(super) fn has_ready(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How many slots wait to be served now.
    pub(super) fn ready_len(&self) -> usize {
        self.pending.len()
    }

    /// Connections marked to be written since the last [`take_dirty`](Self::take_dirty).
    pub(super) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Marks a connection as having bytes to write.
    pub(super) fn mark_dirty(&mut self, slot: usize) {
        if let Some(f) = self.flags.get_mut(slot) {
            if !f.1 {
                f.1 = true;
                self.dirty.push(slot);
            }
        }
    }

    /// The connections with bytes to write, taken.
    pub(super) fn take_dirty(&mut self) -> Vec<usize> {
        for &slot in &self.dirty {
            self.flags[slot].1 = false;
        }
        std::mem::take(&mut self.dirty)
    }

    /// Gives back the (emptied) list from [`take_dirty`](Self::take_dirty) for reuse.
    pub(super) fn return_dirty(&mut self, mut list: Vec<usize>) {
        if self.dirty.is_empty() {
            list.clear();
            self.dirty = list;
        }
    }

    /// Sets (or clears) a connection's deadline.
    pub(super) fn set_deadline(&mut self, slot: usize, at: Option<Instant>) {
        let Some(c) = self.conn_mut(slot) else {
            return;
        };
        c.deadline = at;
        let generation = c.generation;
        if let Some(at) = at {
            self.timers.push(Reverse((at, slot, generation)));
        }
    }

    /// The next connection whose deadline has passed.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > now {
                return None;
            }
            self.timers.pop();
            let live = self
                .conn(slot)
                .is_some_and(|c| c.generation == generation && c.deadline == Some(at));
            if live {
                return Some(slot);
            }
        }
        None
    }

    /// The earliest deadline (possibly of a connection gone since: waking early is
    /// harmless).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The counters, with the numbers of open connections, bridges and relay listeners.
    pub(super) fn snapshot(&self) -> StreamStats {
        let mut s = self.stats;
        s.tcp_connections = 0;
        s.tls_connections = 0;
        s.peer_connections = 0;
        s.bridges = 0;
        for entry in self.entries.iter().flatten() {
            let Entry::Conn(c) = entry else { continue };
            if c.closing {
                continue;
            }
            match c.role {
                Role::Client {
                    transport: TransportProtocol::Tls,
                    ..
                } => s.tls_connections += 1,
                Role::Client { .. } => s.tcp_connections += 1,
                Role::Peer { .. } => {
                    s.peer_connections += 1;
                    if matches!(c.mode, super::conn::Mode::Bridged(_)) {
                        s.bridges += 1;
                    }
                }
            }
        }
        s.tcp_relays = self.relays.len();
        s
    }
}
