//! RFC 6062 TCP allocations on the server: Connect (§5.2), peer connections arriving on a
//! relayed address (§5.3), ConnectionBind (§5.4), and the end of data connections (§5.5).
//!
//! A peer data connection is named by its CONNECTION-ID from the moment the core knows of
//! it, and goes through three states:
//!
//! * **connecting**: a Connect asked the driver to open it (`ConnectPeer`); the response
//!   waits for [`Server::peer_connected`] or the connect timeout (447);
//! * **unbound**: open (made by a Connect, or accepted from a peer and announced with a
//!   ConnectionAttempt indication); the driver buffers what the peer sends; the client has
//!   [`connection_bind_timeout`](super::ServerConfig::connection_bind_timeout) (30 s) to
//!   send a ConnectionBind on a new connection;
//! * **bridged**: after the ConnectionBind the driver copies bytes between the two
//!   connections (`Bridge`). The core keeps the record until one side is reported closed,
//!   to answer 446 to a second Connect towards the same peer and to close the pair when
//!   the allocation ends.
//!
//! The records live in their own table, apart from the allocations: UDP allocations pay
//! nothing for them, and the relay hot path does not see them.

use super::allocation::{FiveTuple, same_addr};
use super::auth::AuthContext;
use super::hasher::{KeyedMap, KeyedState};
use super::io::{ConnectFailure, IncomingPeer, PeerConnectedError, PeerRefusal, ServerEvent};
use super::response::{Answer, Signing, Success};
use super::table::NEVER;
use super::{Millis, Server};
use core::cmp::Reverse;
use rand_core::Rng;
use smallvec::SmallVec;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::attributes::{ConnectionId, XorPeerAddress};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
    TransportProtocol,
};

/// Where a peer data connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A Connect waits for the driver's report; its response is signed like the request.
    Connecting { tid: TransactionId, sha256: bool },
    /// Open, waiting for the client's ConnectionBind.
    Unbound,
    /// Bridged with the client data connection on `data`.
    Bridged { data: FiveTuple },
}

#[derive(Clone, Copy, Debug)]
struct PeerConnection {
    /// The allocation's slot.
    alloc: u32,
    relayed: SocketAddr,
    peer: SocketAddr,
    state: State,
    /// When connecting or waiting for a ConnectionBind gives up; `NEVER` once bridged.
    deadline: Millis,
}

/// The peer data connections of every TCP allocation, by CONNECTION-ID, by allocation and
/// by client data connection, with their deadlines.
#[derive(Debug)]
pub(crate) struct TcpConnections {
    conns: KeyedMap<u32, PeerConnection>,
    by_alloc: KeyedMap<u32, SmallVec<[u32; 4]>>,
    by_data: KeyedMap<FiveTuple, u32>,
    /// `(deadline, id)`, lazily deleted: an entry whose connection is gone or has another
    /// deadline is skipped.
    timers: BinaryHeap<Reverse<(Millis, u32)>>,
    unbound: usize,
}

impl TcpConnections {
    pub(crate) fn new(hasher: KeyedState) -> TcpConnections {
        TcpConnections {
            conns: KeyedMap::with_hasher(hasher),
            by_alloc: KeyedMap::with_hasher(hasher),
            by_data: KeyedMap::with_hasher(hasher),
            timers: BinaryHeap::new(),
            unbound: 0,
        }
    }

    /// Peer connections now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Of them, those not bridged yet.
    pub(crate) fn unbound(&self) -> usize {
        self.unbound
    }

    fn insert(&mut self, id: u32, c: PeerConnection) {
        self.by_alloc.entry(c.alloc).or_default().push(id);
        self.unbound += 1;
        self.timers.push(Reverse((c.deadline, id)));
        self.conns.insert(id, c);
    }

    fn remove(&mut self, id: u32) -> Option<PeerConnection> {
        let c = self.conns.remove(&id)?;
        match c.state {
            State::Bridged { data } => {
                self.by_data.remove(&data);
            }
            _ => self.unbound = self.unbound.saturating_sub(1),
        }
        if let Some(ids) = self.by_alloc.get_mut(&c.alloc) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_alloc.remove(&c.alloc);
            }
        }
        Some(c)
    }

    /// A Connect succeeded: the connection waits for its ConnectionBind until `deadline`.
    fn opened(&mut self, id: u32, deadline: Millis) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.state = State::Unbound;
            c.deadline = deadline;
            self.timers.push(Reverse((deadline, id)));
        }
    }

    fn bridge(&mut self, id: u32, data: FiveTuple) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.state = State::Bridged { data };
            c.deadline = NEVER;
            self.unbound = self.unbound.saturating_sub(1);
            self.by_data.insert(data, id);
        }
    }

    /// True if `tuple` is a client data connection handed to the driver.
    #[inline]
    pub(crate) fn is_bridged(&self, tuple: &FiveTuple) -> bool {
        !self.by_data.is_empty() && self.by_data.contains_key(tuple)
    }

    fn of_alloc(&self, alloc: u32) -> SmallVec<[u32; 4]> {
        self.by_alloc.get(&alloc).cloned().unwrap_or_default()
    }

    fn count_of(&self, alloc: u32) -> usize {
        self.by_alloc.get(&alloc).map_or(0, |ids| ids.len())
    }

    /// True if the allocation has a connection (in any state) with `peer`.
    fn has_peer(&self, alloc: u32, peer: SocketAddr) -> bool {
        self.by_alloc.get(&alloc).is_some_and(|ids| {
            ids.iter()
                .filter_map(|id| self.conns.get(id))
                .any(|c| same_addr(c.peer, peer))
        })
    }

    /// The next connection whose deadline is due, skipping stale entries.
    fn pop_due(&mut self, now: Millis) -> Option<u32> {
        while let Some(&Reverse((deadline, id))) = self.timers.peek() {
            if deadline > now {
                return None;
            }
            self.timers.pop();
            if self.conns.get(&id).is_some_and(|c| c.deadline == deadline) {
                return Some(id);
            }
        }
        None
    }

    /// The earliest deadline (possibly stale: waking early is harmless).
    pub(crate) fn next_timer(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
}

impl Server {
    /// RFC 6062 §5.2: a Connect on the allocation `id` (found on the request's 5-tuple and
    /// owned by its user). The checks, then `ConnectPeer`; the answer waits for the driver.
    pub(super) fn handle_connect(
        &mut self,
        now: Millis,
        id: u32,
        msg: &Message<'_>,
        sha256: bool,
    ) -> Answer {
        let Some(alloc) = self.table.get(id) else {
            return Answer::Error(437);
        };
        // Connect belongs to TCP allocations only.
        if alloc.relay_transport != TransportProtocol::Tcp {
            return Answer::Error(400);
        }
        // "If the request does not contain an XOR-PEER-ADDRESS attribute, or if such
        // attribute is invalid, the server MUST return a 400".
        let peer = match msg.get::<XorPeerAddress>() {
            Ok(Some(XorPeerAddress(p))) if p.port() != 0 => p,
            _ => return Answer::Error(400),
        };
        // A family without a relayed address: 443; denied by policy: 403 ("forbidden by
        // local policy").
        if let Err(code) = self.check_peers(alloc, now, &[peer.ip()]) {
            return Answer::Error(code);
        }
        // floe: permissions apply to TCP peers as to UDP ones (RFC 8656 §9); connecting
        // to a peer without one is forbidden by local policy.
        if !alloc.has_permission(peer.ip(), now) {
            return Answer::Error(403);
        }
        // A Connect in progress, or a connection pending or active, with this peer: 446.
        if self.tcp.has_peer(id, peer) {
            return Answer::Error(446);
        }
        if self.tcp_quota_reached(id) {
            return Answer::Error(508);
        }
        let Some(relayed) = alloc.relay_for(peer.ip(), now).map(|r| r.addr) else {
            return Answer::Error(443);
        };
        let connection_id = self.new_connection_id();
        let deadline = now + self.config.tcp_connect_timeout.as_millis() as Millis;
        let conn = PeerConnection {
            alloc: id,
            relayed,
            peer,
            state: State::Connecting {
                tid: msg.transaction_id(),
                sha256,
            },
            deadline,
        };
        self.tcp.insert(connection_id, conn);
        self.stats.tcp.connects += 1;
        self.events.push_back(ServerEvent::ConnectPeer {
            connection_id,
            relayed,
            peer,
        });
        Answer::Deferred
    }

    /// The driver reports the TCP connection asked for by [`ServerEvent::ConnectPeer`]:
    /// opened, or failed. The Connect is answered: success with CONNECTION-ID (the client
    /// then has [`connection_bind_timeout`](super::ServerConfig::connection_bind_timeout)
    /// to bind it), or 447 Connection Timeout or Failure (RFC 6062 §5.2). An `Err` means
    /// the core no longer waits for this connection (timed out, or its allocation ended):
    /// close it if it was opened.
    pub fn peer_connected(
        &mut self,
        now: Instant,
        connection_id: u32,
        result: Result<(), ConnectFailure>,
    ) -> Result<(), PeerConnectedError> {
        let now = self.millis(now);
        let Some(c) = self.tcp.conns.get(&connection_id).copied() else {
            return Err(PeerConnectedError::NotPending(connection_id));
        };
        let State::Connecting { tid, sha256 } = c.state else {
            return Err(PeerConnectedError::NotPending(connection_id));
        };
        let answer = match result {
            Ok(()) => {
                let deadline = now + self.config.connection_bind_timeout.as_millis() as Millis;
                self.tcp.opened(connection_id, deadline);
                Answer::Success(Success::ConnectionId(connection_id))
            }
            Err(failure) => {
                tracing::debug!(connection_id, peer = %c.peer, ?failure, "Connect failed");
                self.tcp.remove(connection_id);
                self.stats.tcp.connect_failures += 1;
                Answer::Error(447)
            }
        };
        self.answer_connect(now, c.alloc, tid, sha256, &answer);
        Ok(())
    }

    /// RFC 6062 §5.3: a peer opened a TCP connection to the relayed address `relayed`
    /// (accepted by the driver). The core checks that an active TCP allocation owns the
    /// address, the peer policy, the allocation's permission for the peer's IP, and the
    /// quotas; if all pass it names the connection, sends a ConnectionAttempt indication
    /// (XOR-PEER-ADDRESS, CONNECTION-ID) to the client over the control connection, and
    /// gives the client [`connection_bind_timeout`](super::ServerConfig::connection_bind_timeout)
    /// to bind it. Otherwise the driver must close the connection, and nothing is sent.
    pub fn incoming_peer_connection(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
    ) -> IncomingPeer {
        let now = self.millis(now);
        let decision = self.check_incoming(now, relayed, peer);
        let id = match decision {
            Ok(id) => id,
            Err(reason) => {
                tracing::debug!(%relayed, %peer, ?reason, "peer connection refused");
                self.stats.tcp.refused += 1;
                return IncomingPeer::Refused(reason);
            }
        };
        let Some(control) = self.table.get(id).map(|a| a.five_tuple) else {
            return IncomingPeer::Refused(PeerRefusal::NoAllocation);
        };
        let connection_id = self.new_connection_id();
        let deadline = now + self.config.connection_bind_timeout.as_millis() as Millis;
        self.tcp.insert(
            connection_id,
            PeerConnection {
                alloc: id,
                relayed,
                peer,
                state: State::Unbound,
                deadline,
            },
        );
        self.stats.tcp.attempts += 1;
        self.connection_attempt(control, peer, connection_id);
        IncomingPeer::Accepted { connection_id }
    }

    fn check_incoming(
        &self,
        now: Millis,
        relayed: SocketAddr,
        peer: SocketAddr,
    ) -> Result<u32, PeerRefusal> {
        let id = self.ports.owner(relayed).ok_or(PeerRefusal::NoAllocation)?;
        let alloc = self
            .table
            .get(id)
            .filter(|a| {
                a.active
                    && a.relay_transport == TransportProtocol::Tcp
                    && a.relay_for(relayed.ip(), now)
                        .is_some_and(|r| same_addr(r.addr, relayed))
            })
            .ok_or(PeerRefusal::NoAllocation)?;
        if alloc.relay_for(peer.ip(), now).is_none() || !self.config.peer_policy.allows(peer.ip()) {
            return Err(PeerRefusal::DeniedPeer);
        }
        // "If no permission for this peer has been installed for this allocation, the
        // server MUST close the connection with the peer immediately after it has been
        // accepted."
        if !alloc.has_permission(peer.ip(), now) {
            return Err(PeerRefusal::NoPermission);
        }
        if self.tcp.has_peer(id, peer) {
            return Err(PeerRefusal::AlreadyConnected);
        }
        if self.tcp_quota_reached(id) {
            return Err(PeerRefusal::TooManyConnections);
        }
        Ok(id)
    }

    /// The driver reports that the peer data connection `connection_id` closed (the peer
    /// closed it, or it failed). A Connect still waiting for it is answered 447; a bridged
    /// pair is forgotten (the driver closes the client half itself). Unknown IDs are
    /// ignored.
    pub fn peer_connection_closed(&mut self, now: Instant, connection_id: u32) {
        let is_connecting = self
            .tcp
            .conns
            .get(&connection_id)
            .is_some_and(|c| matches!(c.state, State::Connecting { .. }));
        if is_connecting {
            let _ = self.peer_connected(now, connection_id, Err(ConnectFailure::Other));
        } else {
            self.tcp.remove(connection_id);
        }
    }

    /// A bridged client data connection closed: forget the pair and close its peer half.
    /// Returns false if `tuple` is not a bridged connection.
    pub(super) fn data_connection_closed(&mut self, tuple: &FiveTuple) -> bool {
        let Some(&id) = self.tcp.by_data.get(tuple) else {
            return false;
        };
        self.close_peer_connection(id);
        true
    }

    /// RFC 6062 §5.4: a ConnectionBind on a new connection. The request is authenticated
    /// with the key of the allocation the CONNECTION-ID names ("the same method and
    /// credentials as for the control connection", §4.3), then: not over TCP/TLS, on a
    /// 5-tuple that has an allocation, or without a CONNECTION-ID naming an unbound
    /// connection: 400; another user's connection: 441. On success the response is queued
    /// and then [`ServerEvent::Bridge`] hands the pair to the driver.
    pub(super) fn handle_connection_bind(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        msg: &Message<'_>,
        existing: Option<u32>,
    ) {
        let now_ms = self.millis(now);
        let tid = msg.transaction_id();
        let named = msg
            .get::<ConnectionId>()
            .ok()
            .flatten()
            .and_then(|ConnectionId(id)| Some((id, self.tcp.conns.get(&id)?)))
            .filter(|(_, c)| c.state == State::Unbound)
            .map(|(id, c)| (id, *c));
        let owner = named
            .and_then(|(_, c)| self.table.get(c.alloc))
            .map(|a| (self.users.name(a.user), &a.key));
        let cx = AuthContext {
            client_ip: tuple.client.ip(),
            now_secs: (now_ms / 1000) as u32,
            wall_now: self.config.unix_time_at_start + now_ms / 1000,
            existing: owner,
        };
        let auth = match self.auth.check(msg, cx) {
            Ok(a) => a,
            Err(e) => return self.reply_auth_error(now_ms, tuple, Method::CONNECTION_BIND, tid, e),
        };
        let owner_matches = owner.is_some_and(|(name, _)| name == auth.username);
        let answer = match named {
            _ if !tuple.transport.is_reliable() || existing.is_some() => Answer::Error(400),
            None => Answer::Error(400),
            Some(_) if !owner_matches => Answer::Error(441),
            Some(_) => Answer::Success(Success::Empty),
        };
        let signing = Signing {
            key: &auth.integrity,
            sha256: auth.sha256,
        };
        self.send_answer(
            now_ms,
            tuple,
            Method::CONNECTION_BIND,
            tid,
            &answer,
            signing,
        );
        if let (Answer::Success(_), Some((id, c))) = (&answer, named) {
            self.tcp.bridge(id, tuple);
            self.stats.tcp.bridged += 1;
            self.events.push_back(ServerEvent::Bridge {
                connection_id: id,
                transport: tuple.transport,
                client: (tuple.server, tuple.client),
                peer: (c.relayed, c.peer),
            });
        }
    }

    /// Connects that timed out (447) and unbound connections nobody bound (closed).
    pub(super) fn tcp_timers(&mut self, now: Millis) {
        while let Some(id) = self.tcp.pop_due(now) {
            let Some(c) = self.tcp.conns.get(&id).copied() else {
                continue;
            };
            match c.state {
                State::Connecting { tid, sha256 } => {
                    tracing::debug!(connection_id = id, peer = %c.peer, "Connect timed out");
                    self.close_peer_connection(id);
                    self.stats.tcp.connect_failures += 1;
                    self.answer_connect(now, c.alloc, tid, sha256, &Answer::Error(447));
                }
                State::Unbound => {
                    tracing::debug!(connection_id = id, peer = %c.peer, "no ConnectionBind");
                    self.stats.tcp.bind_timeouts += 1;
                    self.close_peer_connection(id);
                }
                State::Bridged { .. } => {}
            }
        }
    }

    /// RFC 6062 §5.5: the allocation ended; so do its peer connections, bridged or not.
    pub(super) fn close_tcp_connections(&mut self, alloc: u32) {
        if self.tcp.len() == 0 {
            return;
        }
        for id in self.tcp.of_alloc(alloc) {
            self.close_peer_connection(id);
        }
    }

    fn close_peer_connection(&mut self, connection_id: u32) {
        if self.tcp.remove(connection_id).is_some() {
            self.events
                .push_back(ServerEvent::ClosePeerConnection { connection_id });
        }
    }

    fn tcp_quota_reached(&self, alloc: u32) -> bool {
        let q = &self.config.quotas;
        self.tcp.count_of(alloc) >= q.tcp_connections_per_allocation
            || self.tcp.unbound() >= q.unbound_tcp_connections
    }

    /// A CONNECTION-ID "uniquely identifying the peer data connection" (RFC 6062 §5.2):
    /// random from the seeded generator, so that IDs do not reveal how many connections the
    /// server relays, and never 0.
    fn new_connection_id(&mut self) -> u32 {
        loop {
            let id = self.rng.next_u32();
            if id != 0 && !self.tcp.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Answers a Connect that waited for the driver, signed with the allocation's key.
    fn answer_connect(
        &mut self,
        now: Millis,
        alloc: u32,
        tid: TransactionId,
        sha256: bool,
        answer: &Answer,
    ) {
        let Some(a) = self.table.get(alloc) else {
            return;
        };
        let tuple = a.five_tuple;
        let integrity = IntegrityKey::new(a.key.as_bytes());
        let signing = Signing {
            key: &integrity,
            sha256,
        };
        self.send_answer(now, tuple, Method::CONNECT, tid, answer, signing);
    }

    /// RFC 6062 §5.3: a ConnectionAttempt indication with XOR-PEER-ADDRESS and
    /// CONNECTION-ID on the control connection. Indications carry no integrity; the
    /// transaction ID comes from the seeded generator.
    fn connection_attempt(&mut self, control: FiveTuple, peer: SocketAddr, connection_id: u32) {
        let tid = TransactionId::random(&mut self.rng);
        let mut buf = [0u8; 96];
        let mtype = MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication);
        let built = MessageBuilder::new(&mut buf, mtype, tid).and_then(|mut b| {
            b.add(&XorPeerAddress(peer))?;
            b.add(&ConnectionId(connection_id))?;
            b.add_fingerprint()?;
            Ok(b.finish().to_vec())
        });
        match built {
            Ok(payload) => self.queue(control, payload),
            Err(error) => tracing::warn!(%error, "could not build a ConnectionAttempt"),
        }
    }
}
