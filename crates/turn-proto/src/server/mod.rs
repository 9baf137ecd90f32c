//! The TURN server (RFC 8656), Sans-IO.
//!
//! See [`Server`] for the contract and the run loop. The parts:
//!
//! | module | what |
//! |---|---|
//! | `config` | [`ServerConfig`], relay ranges, quotas |
//! | `auth`, `nonce` | long-term credentials (RFC 8489 §9.2), REST credentials, stateless nonces |
//! | `table`, `allocation` | the 5-tuple table, permissions and channels, the timer heap |
//! | `ports` | the logical relay port pool, EVEN-PORT reservations |
//! | `policy` | which peers may be reached ([`PeerPolicy`]) |
//! | `allocate`, `requests` | the Allocate, Refresh, CreatePermission and ChannelBind handlers |
//! | `relay` | the data path: ChannelData, Send and Data indications |
//! | `tcp` | RFC 6062: Connect, ConnectionAttempt, ConnectionBind, peer data connections |
//! | `stats` | [`ServerStats`] |

mod allocate;
mod allocation;
mod auth;
mod config;
mod dispatch;
mod hasher;
mod io;
mod lifecycle;
mod nonce;
mod policy;
mod ports;
mod relay;
mod requests;
mod response;
mod stats;
mod table;
mod tcp;
mod users;

pub use allocation::FiveTuple;
pub use auth::rest_credentials;
pub use config::{
    CHANNEL_LIFETIME, ConfigError, DEFAULT_LIFETIME, MAX_LIFETIME, PERMISSION_LIFETIME, Quotas,
    RelayBinding, RelayRange, ServerConfig,
};
pub use io::{
    BindFailure, ConnectFailure, Datagram, DeleteReason, IncomingPeer, PeerConnectedError,
    PeerRefusal, RelayBoundError, ServerEvent, ServerInput, ServerOutput,
};
pub use policy::{IpPrefix, PeerPolicy, PrefixParseError};
pub use stats::{Drops, ErrorCounts, ServerStats, TcpStats, Traffic};

use allocate::PendingAllocate;
use auth::{Authenticator, Credentials};
use hasher::{KeyedMap, KeyedState};
use nonce::NonceSigner;
use ports::PortPool;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::credentials::SecurityFeatures;
use stun_proto::server::{BindingServer, BindingServerConfig};
use stun_proto::{ResponseCache, Transmit, TransportProtocol};
use table::Table;
use tcp::TcpConnections;
use users::Users;

/// Milliseconds since the server started: the server's internal clock.
pub(crate) type Millis = u64;

/// Room for any response the server builds (the largest is a 420 listing 64 attributes).
const RESPONSE_BUF: usize = 1024;
/// At most this many types are listed in UNKNOWN-ATTRIBUTES.
const MAX_UNKNOWN_LISTED: usize = 64;

/// Responses to unauthenticated requests (401, 438, 400, 420) are at most this many bytes
/// longer than the request plus the realm: ERROR-CODE, NONCE (40 bytes),
/// PASSWORD-ALGORITHMS, FINGERPRINT and the REALM header. A spoofed request can make the
/// server send no more than this towards its victim. A Binding response is at most 32
/// bytes longer than its request (XOR-MAPPED-ADDRESS of an IPv6 client and FINGERPRINT).
pub const MAX_UNAUTHENTICATED_GROWTH: usize = 100;

/// A Sans-IO TURN server (RFC 8656) with any number of allocations.
///
/// It owns no sockets and reads no clock: the driver feeds it datagrams and the time, and
/// does what it says.
///
/// # Methods, by group
///
/// * **Construct**: [`new`](Self::new) with a [`ServerConfig`], a seed (all randomness —
///   nonce secret, relay port choice, reservation tokens, hash keys — comes from a
///   ChaCha20 generator seeded with it: same inputs and seed, same outputs) and `now`.
/// * **Input**: [`handle_input`](Self::handle_input) for every datagram that arrives on a
///   listening socket (from clients) or on a relay socket (from peers; recognised by its
///   destination lying in a [`RelayRange`] — keep the listening ports outside the relay
///   ranges); [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
///   is due (early or repeated calls are harmless); [`relay_bound`](Self::relay_bound) to
///   report a relay socket bind asked for by [`ServerEvent::BindRelay`];
///   [`handle_icmp`](Self::handle_icmp) for ICMP errors read from a relay socket;
///   [`connection_closed`](Self::connection_closed) for closed TCP/TLS client connections;
///   and for RFC 6062, [`peer_connected`](Self::peer_connected),
///   [`incoming_peer_connection`](Self::incoming_peer_connection) and
///   [`peer_connection_closed`](Self::peer_connection_closed).
/// * **Output**: the return value of `handle_input` — a datagram to relay now, borrowing
///   the input buffer or the server's scratch buffer — then
///   [`poll_transmit`](Self::poll_transmit) (STUN responses, owned),
///   [`poll_event`](Self::poll_event) and [`poll_timeout`](Self::poll_timeout): after every
///   `handle_*` call or command, drain the transmits, then the events, then read the
///   timeout.
/// * **Inspect**: [`stats`](Self::stats), [`allocation_count`](Self::allocation_count).
///
/// # The data path
///
/// A client's ChannelData is relayed from the input buffer as is (the returned slice points
/// into it). A peer's datagram for a bound channel becomes ChannelData by writing the
/// 4-byte header into the input's headroom: receive into `buf[4..]` and pass
/// `headroom: 4`. Without a channel (or without headroom) the server builds a Data
/// indication (or the ChannelData) in its reusable scratch buffer: one copy. No allocation,
/// one hash lookup (client to peer: the 5-tuple) or none (peer to client: the relay port
/// indexes a flat array).
///
/// # Stream transports (TCP and TLS listeners)
///
/// Every connection accepted on a TCP or TLS listener is one client 5-tuple (the transport
/// is part of the key). The driver:
///
/// * cuts each connection's bytes into messages with `stun_proto::framing::StreamFramer`
///   and passes each as one [`ServerInput`] with transport TCP or TLS (`source`: the
///   connection's remote address, `destination`: its local one); the framer strips
///   ChannelData padding;
/// * writes [`poll_transmit`](Self::poll_transmit)'s transmits and the
///   [`ServerOutput::Send`] datagrams whose transport is TCP or TLS as they are on the
///   connection (`source` local, `destination` remote); ChannelData to stream clients is
///   already padded to 4 bytes (RFC 8656 §12.5);
/// * closes a connection that cannot be framed, and reports every closed client
///   connection with [`connection_closed`](Self::connection_closed)`(now, transport,
///   client, local)`: an allocation made on it is deleted ([`DeleteReason::ConnectionClosed`]).
///
/// A UDP relay (REQUESTED-TRANSPORT UDP) over a TCP or TLS control connection needs
/// nothing more: peers talk UDP to the relayed address, the client TCP to the listener.
///
/// # RFC 6062 TCP allocations
///
/// With [`ServerConfig::tcp_allocations`], an Allocate with REQUESTED-TRANSPORT TCP over a
/// TCP or TLS control connection creates a TCP relayed address, and:
///
/// * **Relay socket**: [`ServerEvent::BindRelay`] with transport TCP: bind and listen on
///   `relayed`, report with [`relay_bound`](Self::relay_bound) (as for UDP);
///   [`ServerEvent::ReleaseRelay`] with TCP: stop listening.
/// * **Connect (client-initiated)**: a Connect that passes its checks (permission, policy,
///   446 for a peer already connected or connecting, quotas) becomes
///   [`ServerEvent::ConnectPeer`]` { connection_id, relayed, peer }`. The driver connects
///   from `relayed` to `peer` and reports [`peer_connected`](Self::peer_connected)`(now,
///   connection_id, Ok(()))` or `Err(ConnectFailure)`; the Connect is then answered with
///   CONNECTION-ID, or 447 (also after
///   [`tcp_connect_timeout`](ServerConfig::tcp_connect_timeout), 30 s). The driver buffers
///   what the peer sends until the bridge.
/// * **Incoming (peer-initiated)**: for every connection accepted on a TCP relayed address
///   the driver calls [`incoming_peer_connection`](Self::incoming_peer_connection)`(now,
///   relayed, peer)`. [`IncomingPeer::Accepted`]` { connection_id }`: keep it and buffer
///   its bytes (a ConnectionAttempt indication went to the client);
///   [`IncomingPeer::Refused`]: close it (no allocation, no permission, policy, quota).
/// * **ConnectionBind**: the client opens a new connection to the listener and sends a
///   ConnectionBind with the CONNECTION-ID on it; it reaches [`handle_input`](Self::handle_input)
///   like any request. On success the response is queued and then
///   [`ServerEvent::Bridge`]` { connection_id, transport, client: (local, remote), peer:
///   (relayed, peer) }` follows: write the response, then copy bytes both ways between the
///   two connections (the buffered peer bytes first) without the core, which reads nothing
///   more from either. A wrong or expired CONNECTION-ID gets 400 (close that connection if
///   the client does not).
/// * **Closing**: when either half of a pair closes, the driver closes the other and
///   reports [`connection_closed`](Self::connection_closed) or
///   [`peer_connection_closed`](Self::peer_connection_closed) (a peer connection that dies
///   before it is bound is reported with the latter too).
///   [`ServerEvent::ClosePeerConnection`]` { connection_id }` asks the driver to close a
///   peer connection (and its client half once bridged, or to abandon a connect in
///   progress): no ConnectionBind within
///   [`connection_bind_timeout`](ServerConfig::connection_bind_timeout) (30 s), or the
///   allocation ended (RFC 6062 §5.5).
///
/// # Example: the run loop
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Instant;
/// use turn_proto::server::{Server, ServerConfig, RelayRange, ServerEvent, ServerInput, ServerOutput};
///
/// # #[allow(clippy::disallowed_methods)]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = ServerConfig::new("example.org");
/// config.relays.push(RelayRange::dynamic("203.0.113.1".parse()?));
/// config.add_user("alice", "secret");
/// let now = Instant::now();
/// let mut server = Server::new(config, 42, now)?;
///
/// // One turn of the driver's loop: a datagram arrived (here a Binding request).
/// let listen: SocketAddr = "203.0.113.1:3478".parse()?;
/// let client: SocketAddr = "198.51.100.7:40000".parse()?;
/// let mut buf = [0u8; 4 + 1500];
/// let request = [0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
/// buf[4..4 + request.len()].copy_from_slice(&request);
/// let input = ServerInput::udp_with_headroom(client, listen, &mut buf[..4 + request.len()], 4);
/// match server.handle_input(now, input) {
///     ServerOutput::Send(d) => { /* socket(d.source).send_to(d.data, d.destination) */ }
///     ServerOutput::Handled => {}
///     _ => {}
/// }
/// while let Some(t) = server.poll_transmit() {
///     // socket(t.source).send_to(&t.payload, t.destination)
///     assert_eq!(t.destination, client);
/// }
/// while let Some(event) = server.poll_event() {
///     if let ServerEvent::BindRelay { relayed, .. } = event {
///         // bind a UDP socket on `relayed`, then:
///         server.relay_bound(now, relayed, Ok(()))?;
///     }
/// }
/// let _sleep_until = server.poll_timeout();
/// # Ok(())
/// # }
/// ```
pub struct Server {
    config: ServerConfig,
    start: Instant,
    rng: ChaCha20Rng,
    auth: Authenticator,
    table: Table,
    users: Users,
    ports: PortPool,
    pending: KeyedMap<u32, PendingAllocate>,
    /// RFC 6062 peer data connections.
    tcp: TcpConnections,
    binding: BindingServer,
    cache: ResponseCache,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
    /// Reused for Data indications and ChannelData that cannot be built in place.
    scratch: Vec<u8>,
    /// The server's own listening addresses, learnt from the 5-tuples of its allocations
    /// (a handful; bounded): never a peer.
    listening: SmallVec<[SocketAddr; 4]>,
}

/// At most this many listening addresses are remembered for the self-relay check.
const MAX_LISTENING: usize = 64;

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("realm", &self.config.realm)
            .field("relays", &self.config.relays)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with `config`, randomness from `seed`, started at `now`.
    ///
    /// Static users' keys are derived here; their passwords and the REST secret are not
    /// kept in plain form.
    pub fn new(mut config: ServerConfig, seed: u64, now: Instant) -> Result<Server, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let hasher = KeyedState::new(rng.next_u64(), rng.next_u64());
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut features = SecurityFeatures::PASSWORD_ALGORITHMS;
        if config.userhash {
            features = features.union(SecurityFeatures::USERNAME_ANONYMITY);
        }
        let auth = Authenticator {
            credentials: Credentials::new(&config, hasher),
            nonces: NonceSigner::new(&secret, features),
        };
        config.users.clear();
        config.rest_secret = None;
        let binding = BindingServer::new(BindingServerConfig {
            software: None,
            mapped_address: false,
            fingerprint: true,
            alternate: None,
            max_padding: 0,
        });
        Ok(Server {
            ports: PortPool::new(&config.relays),
            cache: ResponseCache::new(
                config.response_cache_capacity,
                stun_proto::DEFAULT_RESPONSE_TTL,
            ),
            config,
            start: now,
            rng,
            auth,
            table: Table::new(hasher),
            users: Users::new(hasher),
            pending: KeyedMap::with_hasher(hasher),
            tcp: TcpConnections::new(hasher),
            binding,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
            scratch: Vec::new(),
            listening: SmallVec::new(),
        })
    }

    /// Handles one datagram from a client (on a listening address) or from a peer (on a
    /// relayed address). Returns a datagram to relay now, if any; STUN responses are queued
    /// for [`poll_transmit`](Self::poll_transmit). Never fails: what cannot be handled is
    /// dropped and counted in [`stats`](Self::stats).
    pub fn handle_input<'a>(
        &'a mut self,
        now: Instant,
        input: ServerInput<'a>,
    ) -> ServerOutput<'a> {
        let ServerInput {
            transport,
            source,
            destination,
            buf,
            headroom,
        } = input;
        if headroom > buf.len() {
            self.stats.drops.not_turn += 1;
            return ServerOutput::Handled;
        }
        let now_ms = self.millis(now);
        if self.ports.is_relay_address(destination) {
            if transport != TransportProtocol::Udp {
                self.stats.drops.not_turn += 1;
                return ServerOutput::Handled;
            }
            return self.relay_from_peer(now_ms, source, destination, buf, headroom);
        }
        let buf: &'a [u8] = buf;
        let data = &buf[headroom..];
        let tuple = FiveTuple {
            client: source,
            server: destination,
            transport,
        };
        // RFC 6062 §5.4: after its ConnectionBind a client data connection carries raw
        // bytes that the driver copies; nothing on it is the core's any more.
        if transport.is_reliable() && self.tcp.is_bridged(&tuple) {
            self.stats.drops.bridged += 1;
            return ServerOutput::Handled;
        }
        // RFC 7983 / RFC 8656 §12: 0-3 STUN, 64-79 ChannelData, anything else is not ours.
        match data.first() {
            Some(0..=3) => self.handle_stun(now, tuple, data),
            Some(0x40..=0x4f) => self.relay_channel_data(now_ms, &tuple, data),
            _ => {
                self.stats.drops.not_turn += 1;
                ServerOutput::Handled
            }
        }
    }

    /// Runs the timers: expires permissions, channels and allocations, gives up on relay
    /// binds not reported in time, forgets old cached responses and reservations.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.millis(now);
        while let Some(id) = self.table.pop_due(now_ms) {
            if self.pending.contains_key(&id) {
                self.finish_pending(now_ms, id);
            } else {
                self.expire(now_ms, id);
            }
        }
        self.tcp_timers(now_ms);
        self.cache.handle_timeout(now);
        self.ports.handle_timeout(now_ms);
    }

    /// The next STUN message to send (responses to requests).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = [
            self.table.next_timer(),
            self.ports.poll_timeout(),
            self.tcp.next_timer(),
        ]
        .into_iter()
        .flatten()
        .min()
        .and_then(|ms| self.start.checked_add(Duration::from_millis(ms)));
        [own, self.cache.poll_timeout()].into_iter().flatten().min()
    }

    /// Counters, and the allocations, permissions and channels that exist now.
    pub fn stats(&self) -> ServerStats {
        let mut tcp = self.stats.tcp;
        tcp.connections = self.tcp.len();
        tcp.unbound = self.tcp.unbound();
        ServerStats {
            allocations: self.table.len(),
            cached_responses: self.cache.len(),
            tcp,
            ..self.stats
        }
    }

    /// Allocations now (active and waiting for their relay bind).
    pub fn allocation_count(&self) -> usize {
        self.table.len()
    }

    fn millis(&self, now: Instant) -> Millis {
        now.saturating_duration_since(self.start).as_millis() as Millis
    }

    fn instant(&self, at: Millis) -> Instant {
        self.start
            .checked_add(Duration::from_millis(at))
            .unwrap_or(self.start)
    }
}

impl Server {
    /// Remembers a listening address of the server (the local side of a 5-tuple).
    fn learn_listening_address(&mut self, local: SocketAddr) {
        let local = canonical(local);
        if !self.listening.contains(&local) && self.listening.len() < MAX_LISTENING {
            self.listening.push(local);
        }
    }

    /// True if `peer` is one of the server's own listening addresses. Relaying there would
    /// feed the server its own traffic (TURN over TURN, loops), so it is refused whatever
    /// the peer policy allows; other ports on the same IP (another allocation's relayed
    /// address, a test peer on loopback) stay ordinary peers.
    pub(super) fn is_own_listening_address(&self, peer: SocketAddr) -> bool {
        self.listening.contains(&canonical(peer))
    }
}

/// An address with an IPv4-mapped IPv6 IP written as IPv4, for comparisons.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}
