//! RFC 6062 TCP allocations on the client: Connect (§4.3), ConnectionAttempt indications
//! (§4.4), and the data connections bound to peers with ConnectionBind (§4.3).
//!
//! A data connection is tracked from the moment the client asks the driver to open it
//! ([`ClientEvent::OpenDataConnection`]) until its ConnectionBind succeeds
//! ([`ClientEvent::PeerConnection`]: the stream is the application's from then on, and the
//! client forgets it) or fails ([`ClientEvent::DataConnectionFailed`]).

use super::Client;
use super::events::{
    ClientError, ClientEvent, ClientState, DataConnectionFailure, Received, RequestFailure,
};
use super::request::{Pending, Request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::{ConnectionId, XorPeerAddress};
use stun_proto::{Message, TransactionId, TransportProtocol};

/// Data connections in progress (and Connects in flight) at most: each costs the server a
/// peer connection and its buffer, and the driver a socket.
const MAX_IN_PROGRESS: usize = 64;
/// How long the driver has to open a data connection: the server closes a peer connection
/// nobody bound after 30 s (RFC 6062 §5.2, §5.3).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the driver to open the connection.
    Opening { deadline: Instant },
    /// The ConnectionBind (transaction `tid`) runs on the connection from `local`.
    Binding {
        local: SocketAddr,
        tid: TransactionId,
    },
}

#[derive(Clone, Copy, Debug)]
struct DataConnection {
    id: u32,
    peer: SocketAddr,
    phase: Phase,
}

/// The client's data connections in progress.
#[derive(Clone, Debug, Default)]
pub(super) struct DataConnections {
    entries: Vec<DataConnection>,
    /// Connect requests in flight.
    connects: usize,
}

impl DataConnections {
    fn in_progress(&self) -> usize {
        self.entries.len() + self.connects
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    /// True if a ConnectionBind runs on the data connection from `local`.
    pub(super) fn is_binding(&self, local: SocketAddr) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.phase, Phase::Binding { local: l, .. } if l == local))
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| match e.phase {
                Phase::Opening { deadline } => Some(deadline),
                Phase::Binding { .. } => None,
            })
            .min()
    }
}

impl Client {
    /// RFC 6062 §4.3: asks the server to open a TCP connection from the relayed address to
    /// `peer` (a Connect request on the control connection). If no permission for the
    /// peer's IP was asked for, one is asked for first (CreatePermission, then Connect, in
    /// that order on the same connection) and kept: the server accepts TCP peers only with
    /// a permission, as it does UDP ones.
    ///
    /// On success comes [`ClientEvent::OpenDataConnection`]; on failure
    /// [`ClientEvent::ConnectFailed`] (446 if a connection with this peer exists, 447 if
    /// the server could not reach it).
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> Result<(), ClientError> {
        if self.state != ClientState::Allocated {
            return Err(ClientError::NotAllocated);
        }
        if self.config.relay_transport != TransportProtocol::Tcp {
            return Err(ClientError::RelayTransportMismatch);
        }
        if !self.has_relay_for(peer.ip()) {
            return Err(ClientError::PeerFamilyMismatch(peer.ip()));
        }
        if self.data_connections.in_progress() >= MAX_IN_PROGRESS {
            return Err(ClientError::TooManyPending);
        }
        if !self.permissions.is_permitted(peer.ip()) {
            self.create_permission(now, &[peer.ip()])?;
        }
        self.start_request(now, Pending::new(Request::Connect { peer }, now))?;
        self.data_connections.connects += 1;
        Ok(())
    }

    /// The driver opened the data connection asked for by
    /// [`ClientEvent::OpenDataConnection`], from local address `local`. The client sends the
    /// ConnectionBind on it (RFC 6062 §4.3); inputs on it go to
    /// [`handle_input`](Self::handle_input) as usual until [`ClientEvent::PeerConnection`]
    /// or [`ClientEvent::DataConnectionFailed`].
    pub fn data_connection_opened(
        &mut self,
        now: Instant,
        connection_id: u32,
        local: SocketAddr,
    ) -> Result<(), ClientError> {
        let i = self
            .data_connections
            .find(connection_id)
            .filter(|&i| {
                matches!(
                    self.data_connections.entries[i].phase,
                    Phase::Opening { .. }
                )
            })
            .ok_or(ClientError::UnknownConnection(connection_id))?;
        let request = Request::ConnectionBind {
            connection_id,
            local,
        };
        match self.start_request(now, Pending::new(request, now)) {
            Ok(tid) => {
                self.data_connections.entries[i].phase = Phase::Binding { local, tid };
                Ok(())
            }
            Err(e) => {
                let failure = DataConnectionFailure::Bind(RequestFailure::NotSent(e));
                self.fail_data_connection(connection_id, failure);
                Err(e)
            }
        }
    }

    /// The driver could not open the data connection (or it closed before its
    /// ConnectionBind was answered). Reported back as [`ClientEvent::DataConnectionFailed`].
    pub fn data_connection_failed(&mut self, _now: Instant, connection_id: u32) {
        if let Some(i) = self.data_connections.find(connection_id) {
            if let Phase::Binding { tid, .. } = self.data_connections.entries[i].phase {
                self.transactions.cancel(&tid);
            }
            self.fail_data_connection(connection_id, DataConnectionFailure::OpenFailed);
        }
    }

    /// RFC 6062 §4.4: a peer connected to the relayed address. The client accepts every
    /// attempt from a peer it has a permission for (the server sends none for others) by
    /// asking the driver for a data connection.
    pub(super) fn on_connection_attempt<'a>(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
    ) -> Received<'a> {
        let attempt = match (msg.get::<XorPeerAddress>(), msg.get::<ConnectionId>()) {
            (Ok(Some(XorPeerAddress(peer))), Ok(Some(ConnectionId(id)))) => Some((peer, id)),
            _ => None,
        };
        let usable = attempt.filter(|(peer, id)| {
            self.state == ClientState::Allocated
                && self.config.relay_transport == TransportProtocol::Tcp
                && self.permissions.is_permitted(peer.ip())
                && self.data_connections.find(*id).is_none()
                && self.data_connections.in_progress() < MAX_IN_PROGRESS
        });
        match usable {
            Some((peer, id)) => self.open_data_connection(now, id, peer),
            None => {
                tracing::debug!(?attempt, "ConnectionAttempt dropped");
                self.stats.dropped_connection_attempts += 1;
            }
        }
        Received::Consumed
    }

    /// A Connect succeeded: its CONNECTION-ID names the data connection to open.
    pub(super) fn on_connect_success(&mut self, now: Instant, peer: SocketAddr, msg: &Message<'_>) {
        self.data_connections.connects = self.data_connections.connects.saturating_sub(1);
        match msg.get::<ConnectionId>() {
            Ok(Some(ConnectionId(id))) if self.data_connections.find(id).is_none() => {
                self.open_data_connection(now, id, peer)
            }
            _ => {
                let reason = RequestFailure::MalformedResponse("no usable CONNECTION-ID");
                self.events
                    .push_back(ClientEvent::ConnectFailed { peer, reason });
            }
        }
    }

    pub(super) fn on_connect_failed(&mut self, peer: SocketAddr, reason: RequestFailure) {
        self.data_connections.connects = self.data_connections.connects.saturating_sub(1);
        self.events
            .push_back(ClientEvent::ConnectFailed { peer, reason });
    }

    /// The ConnectionBind succeeded: the connection is the application's now.
    pub(super) fn on_connection_bound(&mut self, connection_id: u32, local: SocketAddr) {
        let Some(i) = self.data_connections.find(connection_id) else {
            return;
        };
        let e = self.data_connections.entries.swap_remove(i);
        self.events.push_back(ClientEvent::PeerConnection {
            connection_id,
            peer: e.peer,
            local,
        });
    }

    pub(super) fn on_connection_bind_failed(&mut self, connection_id: u32, reason: RequestFailure) {
        self.fail_data_connection(connection_id, DataConnectionFailure::Bind(reason));
    }

    /// A 401 or 438 made the ConnectionBind start again under a new transaction ID.
    pub(super) fn rebound_transaction(&mut self, connection_id: u32, new: TransactionId) {
        if let Some(i) = self.data_connections.find(connection_id) {
            if let Phase::Binding { tid, .. } = &mut self.data_connections.entries[i].phase {
                *tid = new;
            }
        }
    }

    /// Data connections the driver did not open in time.
    pub(super) fn data_connection_timers(&mut self, now: Instant) {
        while let Some(e) = self
            .data_connections
            .entries
            .iter()
            .find(|e| matches!(e.phase, Phase::Opening { deadline } if deadline <= now))
            .copied()
        {
            self.fail_data_connection(e.id, DataConnectionFailure::OpenTimeout);
        }
    }

    /// The allocation ended: every data connection in progress fails.
    pub(super) fn end_data_connections(&mut self) {
        self.data_connections.connects = 0;
        while let Some(e) = self.data_connections.entries.first().copied() {
            self.fail_data_connection(e.id, DataConnectionFailure::AllocationEnded);
        }
    }

    fn open_data_connection(&mut self, now: Instant, connection_id: u32, peer: SocketAddr) {
        self.data_connections.entries.push(DataConnection {
            id: connection_id,
            peer,
            phase: Phase::Opening {
                deadline: now + OPEN_TIMEOUT,
            },
        });
        self.events.push_back(ClientEvent::OpenDataConnection {
            connection_id,
            peer,
        });
    }

    fn fail_data_connection(&mut self, connection_id: u32, reason: DataConnectionFailure) {
        let Some(i) = self.data_connections.find(connection_id) else {
            return;
        };
        let e = self.data_connections.entries.remove(i);
        tracing::debug!(connection_id, peer = %e.peer, %reason, "data connection failed");
        self.events.push_back(ClientEvent::DataConnectionFailed {
            connection_id,
            peer: e.peer,
            reason,
        });
    }
}
