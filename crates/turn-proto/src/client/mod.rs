//! The TURN client (RFC 8656 §7–§12), Sans-IO: one allocation on one server.
//!
//! * [`config`](ClientConfig): what to ask for.
//! * `auth`: the long-term credential exchange (401 challenge, 438 Stale Nonce, MD5 or
//!   SHA-256 keys, PASSWORD-ALGORITHMS, USERHASH, integrity checks).
//! * `allocation`: Allocate, Refresh, delete, redirect, expiry.
//! * `permissions`, `channels`: CreatePermission and ChannelBind, refreshed on time.
//! * `data`: Send/Data indications and ChannelData.
//! * `tcp`: RFC 6062 TCP allocations: Connect, ConnectionAttempt, data connections and
//!   ConnectionBind.
//! * [`events`](ClientEvent): what the client reports.

mod allocation;
mod auth;
mod channels;
mod config;
mod data;
mod events;
mod permissions;
mod request;
mod response;
mod tcp;

pub use config::{ClientConfig, DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_LIFETIME};
pub use events::{
    AllocationFailure, AuthFailure, ClientError, ClientEvent, ClientState, ClientStats,
    DataConnectionFailure, ErrorKind, ExpiryReason, Received, RefusedFamily, RequestFailure,
    SendError, ServerError,
};
pub use stun_proto::attributes::AddressFamily;

use allocation::Allocation;
use auth::Auth;
use channels::Channels;
use core::fmt;
use permissions::Permissions;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use request::{Encoder, Pending, Request};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use stun_proto::transaction::{ClientTransactions, StartError, TransactionEvent};
use stun_proto::{Input, TransactionId, Transmit};
use tcp::DataConnections;

/// A TURN client for one allocation on one server.
///
/// # The Sans-IO contract
/// The client never touches a socket or a clock. The driver owns one socket bound to
/// [`ClientConfig::local`] and:
///
/// * passes every datagram that arrives on it to [`handle_input`](Self::handle_input)
///   (over TCP/TLS: every frame cut by `stun_proto::framing::StreamFramer`);
/// * sends what [`poll_transmit`](Self::poll_transmit) returns, from `Transmit::source`;
/// * calls [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
///   is reached (early or repeated calls are harmless);
/// * after any `handle_*` call or command, drains `poll_transmit`, then
///   [`poll_event`](Self::poll_event), then reads `poll_timeout`.
///
/// Time comes only from the `now` arguments and randomness (transaction IDs, channel
/// numbers) only from the seed, so the same inputs and seed give byte-identical output.
/// Network input never panics and never returns an error: what is not valid is dropped and
/// counted in [`stats`](Self::stats).
///
/// # Methods
/// * Construction: [`new`](Self::new) (the first Allocate is queued at once).
/// * Input: [`handle_input`](Self::handle_input), [`handle_timeout`](Self::handle_timeout),
///   [`connection_lost`](Self::connection_lost),
///   [`data_connection_opened`](Self::data_connection_opened),
///   [`data_connection_failed`](Self::data_connection_failed).
/// * Output: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
/// * Commands: [`create_permission`](Self::create_permission),
///   [`remove_permission`](Self::remove_permission), [`bind_channel`](Self::bind_channel),
///   [`send_to`](Self::send_to), [`connect`](Self::connect), [`delete`](Self::delete).
/// * Getters: [`state`](Self::state), [`relayed_addresses`](Self::relayed_addresses),
///   [`mapped_address`](Self::mapped_address), [`server`](Self::server),
///   [`local`](Self::local), [`has_permission`](Self::has_permission),
///   [`channel`](Self::channel), [`dont_fragment`](Self::dont_fragment),
///   [`stats`](Self::stats).
///
/// # Stream transports (TCP, TLS)
///
/// With [`ClientConfig::transport`] TCP or TLS the driver opens one connection, the
/// *control connection*, from [`ClientConfig::local`] to the server, and then:
///
/// * cuts what it reads into messages with `stun_proto::framing::StreamFramer` and passes
///   each as one [`Input`] (`source`: the server, `destination`: the connection's local
///   address); the framer strips ChannelData padding;
/// * writes every [`Transmit`] as it is on the connection named by (`source`,
///   `destination`); ChannelData is already padded to 4 bytes (RFC 8656 §12.5), and
///   requests are sent once (RFC 8489 §6.2.2, timeout Ti = 39.5 s);
/// * when the connection closes or cannot be framed any more, closes it and calls
///   [`connection_lost`](Self::connection_lost): the allocation lives as long as the
///   connection (the server deletes it too), and ends with [`ClientEvent::Expired`] (or
///   [`ClientEvent::AllocationFailed`], [`ClientEvent::Deleted`]).
///
/// A UDP relay (the default [`ClientConfig::relay_transport`]) works the same over a TCP
/// or TLS control connection: Send indications, channels and ChannelData all travel on it.
///
/// # RFC 6062 TCP allocations
///
/// With [`ClientConfig::relay_transport`] TCP the relay speaks TCP to peers, one connection
/// per peer, each joined by the server to a *data connection* of its own between client
/// and server:
///
/// 1. **Outgoing**: [`connect`](Self::connect)`(now, peer)` sends a Connect on the control
///    connection (after a CreatePermission if none was asked for). The server connects to
///    the peer; then comes [`ClientEvent::OpenDataConnection`]` { connection_id, peer }`,
///    or [`ClientEvent::ConnectFailed`] (446 if a connection with the peer exists, 447 if
///    the server could not connect).
/// 2. **Incoming**: a peer with a permission connects to the relayed address; the server
///    sends a ConnectionAttempt indication and the client emits the same
///    [`ClientEvent::OpenDataConnection`].
/// 3. The driver opens a new connection (same transport as the control connection) to
///    [`server`](Self::server) from a new local address and calls
///    [`data_connection_opened`](Self::data_connection_opened)`(now, connection_id, local)`,
///    or [`data_connection_failed`](Self::data_connection_failed) (within 30 s: the server
///    does not wait longer).
/// 4. The client sends a ConnectionBind with the CONNECTION-ID on it (a [`Transmit`] whose
///    `source` is that local address). The driver passes what it reads there to
///    [`handle_input`](Self::handle_input), cutting the response off with
///    [`stream::first_message_len`](crate::stream::first_message_len) rather than a
///    `StreamFramer`: peer bytes may follow the response in the same read.
/// 5. [`ClientEvent::PeerConnection`]` { connection_id, peer, local }`: the data connection
///    now carries the peer's bytes as they are. The driver hands it, and any bytes it read
///    after the response, to the application; the client forgets it. Or
///    [`ClientEvent::DataConnectionFailed`]: close it.
///
/// Closing a peer connection is closing its data connection (the server closes the peer
/// side). When the allocation ends the server closes all of them (RFC 6062 §5.5).
///
/// # The run loop
/// ```
/// # #![allow(clippy::disallowed_methods)]
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
/// use turn_proto::{Input, TransportProtocol};
/// use turn_proto::client::{Client, ClientConfig, ClientEvent, Received};
///
/// let server = "192.0.2.1:3478".parse()?;
/// let local = "10.0.0.2:50000".parse()?;
/// let mut now = Instant::now();
/// let mut client = Client::new(ClientConfig::new(server, local, "user", "secret"), 7, now);
/// let peer: SocketAddr = "198.51.100.7:4000".parse()?;
///
/// for _round in 0..3 {
///     while let Some(t) = client.poll_transmit() {
///         // socket.send_to(&t.payload, t.destination) from t.source
///         assert_eq!((t.source, t.destination), (local, server));
///     }
///     while let Some(event) = client.poll_event() {
///         match event {
///             ClientEvent::Allocated { relayed, .. } => {
///                 println!("relayed at {relayed:?}");
///                 client.create_permission(now, &[peer.ip()])?;
///             }
///             ClientEvent::AllocationFailed { reason } => println!("failed: {reason}"),
///             _ => {}
///         }
///     }
///     let Some(deadline) = client.poll_timeout() else { break };
///     // Wait for a datagram or the deadline. Datagrams go in like this one:
///     let datagram = [0x80, 0x60, 0, 0]; // RTP from someone else
///     let source = "203.0.113.9:5004".parse()?;
///     let input = Input { transport: TransportProtocol::Udp, source, destination: local, data: &datagram };
///     match client.handle_input(now, input) {
///         Received::PeerData { peer, data } => println!("{} bytes from {peer}", data.len()),
///         Received::NotMine => {} // hand it to the next protocol on the socket
///         Received::Consumed => {}
///     }
///     now = deadline.max(now + Duration::from_millis(1));
///     client.handle_timeout(now);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    config: ClientConfig,
    /// The server in use (the configured one, or an alternate after a redirect).
    server: SocketAddr,
    /// Servers tried, to bound redirects and refuse loops.
    visited: Vec<SocketAddr>,
    state: ClientState,
    rng: ChaCha20Rng,
    auth: Auth,
    transactions: ClientTransactions<Pending>,
    /// Transactions that got responses with bad integrity (RFC 8489 §9.2.5: if nothing else
    /// comes, their timeout is reported as an integrity violation).
    integrity_failed: Vec<TransactionId>,
    allocation: Option<Allocation>,
    permissions: Permissions,
    channels: Channels,
    /// RFC 6062 data connections in progress.
    data_connections: DataConnections,
    /// DONT-FRAGMENT still offered (false after a 420 listing it).
    dont_fragment: bool,
    events: VecDeque<ClientEvent>,
    stats: ClientStats,
    /// When the next keepalive is due: the keepalive interval after the last datagram sent
    /// to the server while allocated.
    keepalive_at: Option<Instant>,
    /// Keepalives waiting for `poll_transmit` (they are not transactions).
    keepalives: VecDeque<Transmit>,
}

/// Leaves out the generator state (it would reveal future transaction IDs) and the password.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state)
            .field("server", &self.server)
            .field("local", &self.config.local)
            .field("auth", &self.auth)
            .field("allocation", &self.allocation)
            .field("permissions", &self.permissions)
            .field("channels", &self.channels)
            .field("data_connections", &self.data_connections)
            .field("in_flight", &self.transactions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that starts allocating at once: the first Allocate (without credentials,
    /// RFC 8489 §9.2.3) is ready in [`poll_transmit`](Self::poll_transmit). A configuration
    /// that RFC 8656 §7.2 would reject ends at once in
    /// [`AllocationFailure::InvalidConfig`].
    pub fn new(config: ClientConfig, seed: u64, now: Instant) -> Self {
        let mut client = Client {
            server: config.server,
            visited: vec![config.server],
            state: ClientState::Allocating,
            rng: ChaCha20Rng::seed_from_u64(seed),
            auth: Auth::new(config.username.clone(), config.password.clone()),
            transactions: ClientTransactions::new(config.transactions.clone()),
            integrity_failed: Vec::new(),
            allocation: None,
            permissions: Permissions::default(),
            channels: Channels::default(),
            data_connections: DataConnections::default(),
            dont_fragment: config.dont_fragment,
            events: VecDeque::new(),
            stats: ClientStats::default(),
            keepalive_at: None,
            keepalives: VecDeque::new(),
            config,
        };
        match client.config.validate() {
            Ok(()) => client.start_allocate(now),
            Err(why) => client.fail_allocation(AllocationFailure::InvalidConfig(why)),
        }
        client
    }

    /// Handles a datagram (or stream frame). Returns what it was: not for this client,
    /// consumed, or peer data borrowed from `input.data`.
    pub fn handle_input<'a>(&mut self, now: Instant, input: Input<'a>) -> Received<'a> {
        if input.source != self.server
            || input.transport != self.config.transport
            || (self.state.is_final() && self.transactions.is_empty())
        {
            return Received::NotMine;
        }
        if input.destination != self.config.local {
            // RFC 6062 §4.3: a data connection carries the ConnectionBind exchange, then
            // belongs to the application.
            if self.data_connections.is_binding(input.destination) {
                return self.handle_data_connection(now, input);
            }
            return Received::NotMine;
        }
        // RFC 7983 / RFC 8656 §12: STUN starts with 0–3, ChannelData with 64–79.
        match input.data.first() {
            Some(0..=3) => self.handle_stun(now, input),
            Some(0x40..=0x4F) => self.on_channel_data(input.data),
            _ => Received::NotMine,
        }
    }

    /// Retransmits, times out, refreshes and expires what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        while let Some(event) = self.transactions.poll_event() {
            if let TransactionEvent::TimedOut {
                transaction_id,
                context,
                ..
            } = event
            {
                let failure = match self.take_integrity_failure(&transaction_id) {
                    true => RequestFailure::IntegrityViolation,
                    false => RequestFailure::Timeout,
                };
                self.on_request_failed(now, context, failure);
            }
        }
        self.run_timers(now);
        self.keepalive(now);
    }

    /// The control connection to the server is gone (TCP/TLS): the allocation ends at once
    /// (the server deletes an allocation whose connection closed), with
    /// [`AllocationFailure::ConnectionLost`], [`ExpiryReason::ConnectionLost`] or, while
    /// deleting, [`ClientEvent::Deleted`]. RFC 6062 data connections still being bound fail
    /// with [`DataConnectionFailure::AllocationEnded`]. (A data connection that closes is
    /// reported with [`data_connection_failed`](Self::data_connection_failed) instead.)
    pub fn connection_lost(&mut self, _now: Instant) {
        match self.state {
            ClientState::Allocating => self.fail_allocation(AllocationFailure::ConnectionLost),
            ClientState::Allocated => self.expire(ExpiryReason::ConnectionLost),
            ClientState::Deleting => self.finish_delete(),
            _ => {}
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.keepalives
            .pop_front()
            .or_else(|| self.transactions.poll_transmit())
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` once nothing more
    /// can happen without input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timers = match (&self.allocation, self.state) {
            (Some(a), ClientState::Allocated) => [
                a.next_timeout(),
                self.permissions.next_timeout(),
                self.channels.next_timeout(),
                self.data_connections.next_timeout(),
            ],
            _ => [None; 4],
        };
        let keepalive = self
            .keepalive_at
            .filter(|_| self.state == ClientState::Allocated);
        timers
            .into_iter()
            .chain([self.transactions.poll_timeout(), keepalive])
            .flatten()
            .min()
    }

    /// Where the client is.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The relayed transport addresses (empty unless allocated).
    pub fn relayed_addresses(&self) -> &[SocketAddr] {
        self.allocation.as_ref().map_or(&[], |a| &a.relayed)
    }

    /// The client's address as the server saw it, once allocated.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.allocation.as_ref().and_then(|a| a.mapped)
    }

    /// The server in use (differs from the configured one after a redirect).
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The local address the client sends from.
    pub fn local(&self) -> SocketAddr {
        self.config.local
    }

    /// True if Send indications carry DONT-FRAGMENT: configured and not refused by the
    /// server with 420 (RFC 8656 §7.4).
    pub fn dont_fragment(&self) -> bool {
        self.config.dont_fragment && self.dont_fragment
    }

    /// Counters of what was received and dropped.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// True if a relayed address has the family of `ip`.
    fn has_relay_for(&self, ip: IpAddr) -> bool {
        self.relayed_addresses()
            .iter()
            .any(|r| r.is_ipv4() == ip.is_ipv4())
    }

    /// A datagram from the local address to the server.
    fn transmit(&self, payload: Vec<u8>) -> Transmit {
        self.transmit_from(self.config.local, payload)
    }

    /// A datagram (or stream message) from `source` (the control connection's local
    /// address, or a data connection's) to the server.
    fn transmit_from(&self, source: SocketAddr, payload: Vec<u8>) -> Transmit {
        Transmit {
            transport: self.config.transport,
            source,
            destination: self.server,
            payload,
        }
    }

    /// Encodes and starts a request transaction with a fresh transaction ID.
    /// Something goes to the server now: the NAT mapping is fresh, the next keepalive can wait.
    fn sent_to_server(&mut self, now: Instant) {
        self.keepalive_at = self.config.keepalive_interval.map(|i| now + i);
    }

    /// Sends a Binding indication when the client has been silent towards the server for the
    /// keepalive interval (RFC 8445 §11 uses the same indication for the same purpose). It
    /// needs no answer and no credentials; servers treat it as a keepalive.
    fn keepalive(&mut self, now: Instant) {
        if self.state != ClientState::Allocated || self.keepalive_at.is_none_or(|t| t > now) {
            return;
        }
        let tid = TransactionId::random(&mut self.rng);
        let mut buf = [0u8; 28];
        let built = stun_proto::MessageBuilder::new(
            &mut buf,
            stun_proto::MessageType::BINDING_INDICATION,
            tid,
        )
        .and_then(|mut b| {
            b.add_fingerprint()?;
            Ok(b.finish().to_vec())
        });
        if let Ok(payload) = built {
            let transmit = self.transmit(payload);
            self.keepalives.push_back(transmit);
            self.stats.keepalives_sent += 1;
        }
        self.sent_to_server(now);
    }

    fn start_request(
        &mut self,
        now: Instant,
        mut pending: Pending,
    ) -> Result<TransactionId, ClientError> {
        let tid = TransactionId::random(&mut self.rng);
        let encoder = Encoder {
            config: &self.config,
            auth: &self.auth,
            dont_fragment: self.dont_fragment,
        };
        let payload = encoder.encode(tid, &pending.request).map_err(|e| {
            tracing::debug!(error = %e, "request could not be encoded");
            ClientError::Encode
        })?;
        pending.authenticated = self.auth.is_ready();
        pending.sent_at = now;
        let source = pending.request.source(self.config.local);
        if source == self.config.local {
            self.sent_to_server(now);
        }
        let transmit = self.transmit_from(source, payload);
        // A fresh 96-bit random ID colliding is as unlikely as it is harmless to refuse.
        self.transactions
            .start(now, tid, transmit, pending)
            .map_err(|_: StartError| ClientError::TooManyPending)?;
        Ok(tid)
    }

    /// Restarts a request after a 401 or 438, with a new transaction ID.
    fn retry(&mut self, now: Instant, pending: Pending) {
        match self.start_request(now, pending.clone()) {
            Ok(tid) => {
                if let Request::ConnectionBind { connection_id, .. } = pending.request {
                    self.rebound_transaction(connection_id, tid);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "retry not sent");
                let failure = RequestFailure::NotSent(e);
                self.on_request_failed(now, pending, failure);
            }
        }
    }

    /// Abandons every transaction in flight; RFC 6062 data connections in progress fail
    /// with them.
    fn cancel_all(&mut self) {
        self.transactions = ClientTransactions::new(self.config.transactions.clone());
        self.integrity_failed.clear();
        self.end_data_connections();
    }

    fn take_integrity_failure(&mut self, tid: &TransactionId) -> bool {
        let before = self.integrity_failed.len();
        self.integrity_failed.retain(|t| t != tid);
        self.integrity_failed.len() != before
    }
}
