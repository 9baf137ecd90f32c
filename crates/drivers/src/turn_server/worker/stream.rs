//! The worker's TCP side: accepting clients and peers, reading connections into the core
//! (framed) or across a bridge (raw), writing their queues, closing them, and the core's
//! TCP events. The flows are the ones documented on `turn_proto::server::Server` ("Stream
//! transports", "RFC 6062 TCP allocations"); nothing here reads a TURN message.
//!
//! Each ready entry gets one bounded turn per round ([`READ_BUDGET`] bytes, [`ACCEPT_BUDGET`]
//! connections) and is served again in the next round if it has more, so a busy connection
//! cannot starve the others or the UDP sockets.
//!
//! Closing a connection reports it to the core (`connection_closed` for client connections,
//! `peer_connection_closed` for peer connections), closes its bridge partner with it (RFC
//! 6062 §5.5), and lingers: what is queued is written, then FIN is sent and the connection
//! is read (and discarded) until the other side's FIN or [`LINGER`], so that a close does
//! not reset data still in flight.

use super::super::conn::{BRIDGE_BUFFER, Conn, HOLD_LIMIT, Mode, ReadOutcome, Role};
use super::super::streams::Entry;
use super::super::tcp;
use super::{Worker, deliver};
use rustls::ServerConnection;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::{Transmit, TransportProtocol};
use turn_proto::server::{
    BindFailure, ConnectFailure, FiveTuple, IncomingPeer, ServerInput, ServerOutput,
};

/// Bytes read from a connection at once.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one connection per round.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted from one listener per round.
const ACCEPT_BUDGET: usize = 64;
/// How long a closing connection may take to write what is queued and see the other side
/// close.
const LINGER: Duration = Duration::from_secs(5);

/// Why a connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// In order (the other side closed, the core or a timer closed it): write what is
    /// queued first.
    Orderly,
    /// Failed (reset, bad bytes, too slow): drop it now.
    Abort,
}

impl Worker {
    /// Applies the readiness the last poll reported for stream entries.
    pub(super) fn stream_readiness(&mut self, now: Instant) {
        let events = std::mem::take(&mut self.stream_events);
        for &(slot, readable, writable, error) in &events {
            let Some(entry) = self.streams.get_mut(slot) else {
                continue;
            };
            let Entry::Conn(c) = entry else {
                self.streams.mark_ready(slot);
                continue;
            };
            if let Role::Peer {
                connection_id,
                connecting: true,
            } = c.role
            {
                // A failed connect whose error was already taken reports only the error
                // flag; without it, no outcome means the connect is still in progress.
                let outcome = match tcp::connect_result(c.io()) {
                    Some(r) => Some(r),
                    None if error => Some(Err(io::ErrorKind::ConnectionRefused.into())),
                    None => None,
                };
                if let Some(result) = outcome {
                    self.peer_connect_done(now, slot, connection_id, result);
                }
                continue;
            }
            if readable || error {
                c.readable = true;
            }
            if writable || error {
                c.set_writable();
            }
            let read = c.readable && (!c.paused || c.closing);
            let write = c.wants_flush() || c.closing;
            if read {
                self.streams.mark_ready(slot);
            }
            if write {
                self.streams.mark_dirty(slot);
            }
        }
        self.stream_events = events;
        self.stream_events.clear();
    }

    /// Gives every stream entry that was ready at the start one turn.
    pub(super) fn serve_streams(&mut self, now: Instant) {
        for _ in 0..self.streams.ready_len() {
            let Some(slot) = self.streams.pop_ready() else {
                break;
            };
            match self.streams.get_mut(slot) {
                Some(Entry::Listener { transport, .. }) => {
                    let transport = *transport;
                    self.accept_clients(now, slot, transport);
                }
                Some(Entry::RelayListener { relayed, .. }) => {
                    let relayed = *relayed;
                    self.accept_peers(now, slot, relayed);
                }
                Some(Entry::Conn(_)) => self.read_conn(now, slot),
                None => {}
            }
            self.drain_control(now);
        }
    }

    /// Accepts client connections on a TCP or TLS listener.
    fn accept_clients(&mut self, now: Instant, slot: usize, transport: TransportProtocol) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(Entry::Listener { io, .. }) = self.streams.get_mut(slot) else {
                return;
            };
            let (stream, remote) = match io.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if retry_accept(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: the connection waits in the
                    // backlog until the next event.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            if self.streams.connections() >= self.limits.max_connections {
                self.streams.stats.refused += 1;
                continue;
            }
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let tls = match (transport, &self.streams.tls) {
                (TransportProtocol::Tls, Some(config)) => {
                    match ServerConnection::new(config.clone()) {
                        Ok(tls) => Some(tls),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start a TLS connection");
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let role = Role::Client {
                transport,
                allocated: false,
            };
            let generation = self.streams.next_generation();
            let conn = Conn::new(stream, tls, local, remote, role, generation);
            match self.streams.add_conn(self.poll.registry(), conn) {
                Ok(c) => {
                    self.streams.stats.accepted += 1;
                    let deadline = now + self.limits.unallocated_timeout;
                    self.streams.set_deadline(c, Some(deadline));
                    tracing::debug!(%remote, %local, ?transport, "client connected");
                }
                Err(e) => tracing::warn!(error = %e, "cannot register a connection"),
            }
        }
        // More may wait: another turn next round.
        self.streams.mark_ready(slot);
    }

    /// Accepts peer connections on an RFC 6062 relayed address and asks the core about
    /// each (§5.3): kept under its CONNECTION-ID, or closed.
    fn accept_peers(&mut self, now: Instant, slot: usize, relayed: SocketAddr) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(Entry::RelayListener { io, .. }) = self.streams.get_mut(slot) else {
                return;
            };
            let (stream, peer) = match io.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if retry_accept(&e) => continue,
                Err(e) => {
                    tracing::warn!(%relayed, error = %e, "accept failed");
                    return;
                }
            };
            if self.streams.connections() >= self.limits.max_connections {
                self.streams.stats.refused += 1;
                continue;
            }
            let connection_id = match self
                .core
                .server
                .incoming_peer_connection(now, relayed, peer)
            {
                IncomingPeer::Accepted { connection_id } => connection_id,
                IncomingPeer::Refused(reason) => {
                    tracing::debug!(%relayed, %peer, ?reason, "peer connection refused");
                    continue;
                }
                _ => continue,
            };
            let _ = stream.set_nodelay(true);
            let role = Role::Peer {
                connection_id,
                connecting: false,
            };
            let generation = self.streams.next_generation();
            let conn = Conn::new(stream, None, relayed, peer, role, generation);
            if let Err(e) = self.streams.add_conn(self.poll.registry(), conn) {
                tracing::warn!(error = %e, "cannot register a connection");
                self.core.server.peer_connection_closed(now, connection_id);
            }
            self.drain_control(now);
        }
        self.streams.mark_ready(slot);
    }

    /// How many bytes the connection's next read may bring: `None` if it is not to be read
    /// as usual (gone, connecting, closing).
    fn room(&self, slot: usize) -> Option<usize> {
        let c = self.streams.conn(slot)?;
        if c.closing
            || matches!(
                c.role,
                Role::Peer {
                    connecting: true,
                    ..
                }
            )
        {
            return None;
        }
        Some(match c.mode {
            Mode::Framed(_) => READ_CHUNK,
            Mode::Holding => HOLD_LIMIT.saturating_sub(c.held.len()),
            Mode::Bridged(partner) => {
                BRIDGE_BUFFER.saturating_sub(self.streams.conn(partner).map_or(0, Conn::queued))
            }
        })
    }

    /// One turn of reading a connection.
    fn read_conn(&mut self, now: Instant, slot: usize) {
        if self.streams.conn(slot).is_some_and(|c| c.closing) {
            return self.drain_closing(now, slot);
        }
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut budget = READ_BUDGET;
        while let Some(room) = self.room(slot) {
            let Some(c) = self.streams.conn_mut(slot) else {
                break;
            };
            if room == 0 {
                // The bytes have nowhere to go: wait until the other side has room.
                c.paused = true;
                break;
            }
            if budget == 0 {
                self.streams.mark_ready(slot);
                break;
            }
            let n = room.min(budget).min(chunk.len());
            let outcome = c.read(&mut chunk[..n]);
            if c.wants_flush() {
                // A TLS handshake message (or alert) to write.
                self.streams.mark_dirty(slot);
            }
            match outcome {
                ReadOutcome::Data(k) => {
                    budget -= k;
                    self.on_bytes(now, slot, &chunk[..k]);
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof => {
                    self.close_conn(now, slot, Close::Orderly);
                    break;
                }
                ReadOutcome::Failed(e) => {
                    self.conn_failed(now, slot, &e);
                    break;
                }
            }
        }
        self.chunk = chunk;
    }

    /// A closing connection: read and discard until the other side's FIN.
    fn drain_closing(&mut self, _now: Instant, slot: usize) {
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut budget = READ_BUDGET;
        while let Some(c) = self.streams.conn_mut(slot) {
            match c.read(&mut chunk) {
                ReadOutcome::Data(k) if budget > k => budget -= k,
                ReadOutcome::Data(_) => {
                    self.streams.mark_ready(slot);
                    break;
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => {
                    if c.shut || !c.wants_flush() {
                        self.streams.remove(self.poll.registry(), slot);
                    }
                    break;
                }
            }
        }
        self.chunk = chunk;
    }

    /// Bytes read from a connection, by what it is now.
    fn on_bytes(&mut self, now: Instant, slot: usize, data: &[u8]) {
        let Some(c) = self.streams.conn_mut(slot) else {
            return;
        };
        match c.mode {
            Mode::Framed(_) => self.on_framed(now, slot, data),
            Mode::Holding => c.held.extend_from_slice(data),
            Mode::Bridged(partner) => self.forward(partner, data),
        }
    }

    /// Copies bytes across a bridge.
    fn forward(&mut self, to: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(p) = self.streams.conn_mut(to) {
            p.queue(data);
            self.streams.stats.bridged_bytes += data.len() as u64;
            self.streams.mark_dirty(to);
        }
    }

    /// Bytes of a client connection: cut into messages, each handed to the core. A message
    /// can make the connection a bridged data connection (a ConnectionBind): the rest of
    /// this read then goes across the bridge.
    fn on_framed(&mut self, now: Instant, slot: usize, data: &[u8]) {
        self.streams.stats.bytes_in += data.len() as u64;
        let Some(c) = self.streams.conn_mut(slot) else {
            return;
        };
        let (Some(transport), local, remote) = (c.client_transport(), c.local, c.remote) else {
            return;
        };
        let Mode::Framed(framer) = &mut c.mode else {
            return;
        };
        if framer.push(data).is_err() {
            return self.framing_error(now, slot);
        }
        loop {
            let Some(c) = self.streams.conn_mut(slot).filter(|c| !c.closing) else {
                return;
            };
            match &mut c.mode {
                Mode::Framed(framer) => match framer.next_frame() {
                    Ok(Some(frame)) => {
                        self.frame.clear();
                        self.frame.extend_from_slice(frame.data);
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "stream cannot be framed");
                        return self.framing_error(now, slot);
                    }
                },
                Mode::Bridged(partner) => {
                    // RFC 6062 §5.4: what followed the ConnectionBind is the peer's. It is
                    // the tail of this read (the framer held no whole message before it).
                    let partner = *partner;
                    let rest = std::mem::take(&mut c.unframed).min(data.len());
                    return self.forward(partner, &data[data.len() - rest..]);
                }
                Mode::Holding => return,
            }
            self.stream_input(now, transport, remote, local);
            self.drain_control(now);
        }
    }

    /// Hands the message in `self.frame` to the core and relays what it returns.
    fn stream_input(
        &mut self,
        now: Instant,
        transport: TransportProtocol,
        remote: SocketAddr,
        local: SocketAddr,
    ) {
        let Worker {
            core,
            sockets,
            out,
            streams,
            frame,
            ..
        } = self;
        let input = ServerInput {
            transport,
            source: remote,
            destination: local,
            buf: frame.as_mut_slice(),
            headroom: 0,
        };
        if let ServerOutput::Send(d) = core.server.handle_input(now, input) {
            deliver(&d, None, sockets, out, streams);
        }
    }

    fn framing_error(&mut self, now: Instant, slot: usize) {
        self.streams.stats.framing_errors += 1;
        self.close_conn(now, slot, Close::Abort);
    }

    fn conn_failed(&mut self, now: Instant, slot: usize, e: &io::Error) {
        if let Some(c) = self.streams.conn_mut(slot) {
            tracing::debug!(remote = %c.remote, error = %e, "connection failed");
            let tls = c.client_transport() == Some(TransportProtocol::Tls);
            if tls && e.kind() == io::ErrorKind::InvalidData {
                // Best effort: the alert rustls queued.
                let _ = c.flush();
                self.streams.stats.tls_failures += 1;
            }
        }
        self.close_conn(now, slot, Close::Abort);
    }

    /// A STUN message (or stream ChannelData the core built) for a client connection.
    pub(super) fn stream_transmit(&mut self, now: Instant, t: &Transmit) {
        if let Some(slot) = self
            .streams
            .queue_message(t.source, t.destination, &t.payload)
        {
            tracing::debug!(client = %t.destination, "closing a connection that does not read");
            self.streams.stats.closed_slow += 1;
            self.close_conn(now, slot, Close::Abort);
        }
    }

    /// Writes what the connections have queued; drops closing connections that are done.
    pub(super) fn flush_streams(&mut self, now: Instant) {
        let mut dirty = self.streams.take_dirty();
        for &slot in &dirty {
            let Some(c) = self.streams.conn_mut(slot) else {
                continue;
            };
            match c.flush() {
                Ok(true) if c.closing => {
                    // Everything written: FIN, then wait for the other side's.
                    c.shutdown_write();
                    self.streams.mark_ready(slot);
                }
                Ok(_) if c.closing => {}
                Ok(_) => {
                    // Room again on this side of a bridge: read the other side again.
                    if let Mode::Bridged(partner) = c.mode {
                        if c.queued() < BRIDGE_BUFFER / 2 {
                            self.resume(partner);
                        }
                    }
                }
                Err(e) if c.closing => {
                    tracing::trace!(error = %e, "write failed while closing");
                    self.streams.remove(self.poll.registry(), slot);
                }
                Err(e) => self.conn_failed(now, slot, &e),
            }
        }
        dirty.clear();
        self.streams.return_dirty(dirty);
    }

    fn resume(&mut self, slot: usize) {
        if let Some(c) = self.streams.conn_mut(slot) {
            if c.paused {
                c.paused = false;
                self.streams.mark_ready(slot);
            }
        }
    }

    /// Closes a connection and reports it to the core; a bridge partner closes with it.
    fn close_conn(&mut self, now: Instant, slot: usize, how: Close) {
        let Some(c) = self.streams.conn_mut(slot).filter(|c| !c.closing) else {
            return;
        };
        let (role, local, remote) = (c.role, c.local, c.remote);
        let partner = match c.mode {
            Mode::Bridged(p) => Some(p),
            _ => None,
        };
        let linger = how == Close::Orderly
            && !matches!(
                role,
                Role::Peer {
                    connecting: true,
                    ..
                }
            );
        if linger {
            c.send_close_notify();
        }
        self.streams.unlink_conn(slot);
        if linger {
            self.streams.set_deadline(slot, Some(now + LINGER));
            self.streams.mark_dirty(slot);
        } else {
            self.streams.remove(self.poll.registry(), slot);
        }
        match role {
            Role::Client { transport, .. } => {
                tracing::debug!(%remote, "client connection closed");
                self.core
                    .server
                    .connection_closed(now, transport, remote, local);
            }
            Role::Peer { connection_id, .. } => {
                tracing::debug!(%remote, connection_id, "peer connection closed");
                self.core.server.peer_connection_closed(now, connection_id);
            }
        }
        if let Some(p) = partner {
            // RFC 6062 §5.5: the other half goes too, after what it still has to write.
            self.close_conn(now, p, Close::Orderly);
        }
    }

    /// Connection deadlines: clients that made no allocation in time, and lingering closes.
    pub(super) fn stream_timers(&mut self, now: Instant) {
        while let Some(slot) = self.streams.pop_due(now) {
            let Some(c) = self.streams.conn(slot) else {
                continue;
            };
            if c.closing {
                self.streams.remove(self.poll.registry(), slot);
            } else {
                tracing::debug!(remote = %c.remote, "no allocation in time: closing");
                self.streams.stats.closed_idle += 1;
                self.close_conn(now, slot, Close::Orderly);
            }
        }
    }

    /// An allocation was made (or ended) on a client connection: it is exempt from (or
    /// subject again to) the unallocated timeout.
    pub(super) fn allocation_changed(&mut self, now: Instant, tuple: &FiveTuple, made: bool) {
        if !tuple.transport.is_reliable() {
            return;
        }
        let Some(slot) = self.streams.client(tuple.server, tuple.client) else {
            return;
        };
        if let Some(c) = self.streams.conn_mut(slot) {
            if let Role::Client { allocated, .. } = &mut c.role {
                *allocated = made;
            }
        }
        let deadline = (!made).then(|| now + self.limits.unallocated_timeout);
        self.streams.set_deadline(slot, deadline);
    }

    // --- the core's RFC 6062 events ---------------------------------------------------

    /// `BindRelay` with TCP: listen on the relayed address.
    pub(super) fn bind_tcp_relay(&mut self, now: Instant, relayed: SocketAddr) {
        let result = if self.sockets.is_relay_address(relayed) {
            tcp::listen_relay(relayed)
                .and_then(|io| self.streams.add_relay(self.poll.registry(), io, relayed))
                .map_err(|e| {
                    tracing::debug!(%relayed, error = %e, "TCP relay bind failed");
                    match e.kind() {
                        io::ErrorKind::AddrInUse => BindFailure::AddressInUse,
                        _ => BindFailure::Other,
                    }
                })
        } else {
            tracing::warn!(%relayed, "asked to bind a relay address outside this worker's ranges");
            Err(BindFailure::Other)
        };
        if result.is_err() {
            self.out.stats.bind_failures += 1;
        }
        if let Err(e) = self.core.server.relay_bound(now, relayed, result) {
            tracing::debug!(%relayed, error = %e, "relay bind report refused");
            self.release_tcp_relay(relayed);
        }
    }

    /// `ReleaseRelay` with TCP: stop listening.
    pub(super) fn release_tcp_relay(&mut self, relayed: SocketAddr) {
        if let Some(slot) = self.streams.relay(relayed) {
            self.streams.remove(self.poll.registry(), slot);
        }
    }

    /// `ConnectPeer`: connect from the relayed address; the outcome is reported when the
    /// socket says (see [`stream_readiness`](Self::stream_readiness)).
    pub(super) fn connect_peer(
        &mut self,
        now: Instant,
        connection_id: u32,
        relayed: SocketAddr,
        peer: SocketAddr,
    ) {
        if self.streams.connections() >= self.limits.max_connections {
            self.streams.stats.refused += 1;
            return self.report_connect(now, connection_id, Err(ConnectFailure::Other));
        }
        let registered = tcp::connect_from(relayed, peer).and_then(|stream| {
            let role = Role::Peer {
                connection_id,
                connecting: true,
            };
            let generation = self.streams.next_generation();
            let conn = Conn::new(stream, None, relayed, peer, role, generation);
            self.streams.add_conn(self.poll.registry(), conn)
        });
        if let Err(e) = registered {
            tracing::debug!(%relayed, %peer, error = %e, "connect failed at once");
            self.streams.stats.connect_failures += 1;
            self.report_connect(now, connection_id, Err(connect_failure(&e)));
        }
    }

    /// A connect from a relayed address finished.
    fn peer_connect_done(
        &mut self,
        now: Instant,
        slot: usize,
        connection_id: u32,
        result: io::Result<()>,
    ) {
        match result {
            Ok(()) => {
                if let Some(c) = self.streams.conn_mut(slot) {
                    c.role = Role::Peer {
                        connection_id,
                        connecting: false,
                    };
                    c.readable = true;
                    c.set_writable();
                }
                if self
                    .core
                    .server
                    .peer_connected(now, connection_id, Ok(()))
                    .is_err()
                {
                    // The core gave up on it meanwhile.
                    self.streams.remove(self.poll.registry(), slot);
                } else {
                    self.streams.mark_ready(slot);
                }
            }
            Err(e) => {
                tracing::debug!(connection_id, error = %e, "connect to peer failed");
                self.streams.stats.connect_failures += 1;
                self.streams.remove(self.poll.registry(), slot);
                self.report_connect(now, connection_id, Err(connect_failure(&e)));
            }
        }
        self.drain_control(now);
    }

    fn report_connect(&mut self, now: Instant, id: u32, result: Result<(), ConnectFailure>) {
        if let Err(e) = self.core.server.peer_connected(now, id, result) {
            tracing::debug!(error = %e, "connect report refused");
        }
    }

    /// `Bridge`: from now on the client data connection (`local`, `remote`) and the peer
    /// connection copy bytes to each other, beginning with what the peer sent before.
    pub(super) fn bridge(
        &mut self,
        now: Instant,
        connection_id: u32,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let (client, peer) = (
            self.streams.client(local, remote),
            self.streams.peer(connection_id),
        );
        let (Some(a), Some(b)) = (client, peer) else {
            // One half is gone already: the other goes too.
            for slot in [client, peer].into_iter().flatten() {
                self.close_conn(now, slot, Close::Orderly);
            }
            return;
        };
        let held = match self.streams.conn_mut(b) {
            Some(c) => {
                c.mode = Mode::Bridged(a);
                c.paused = false;
                std::mem::take(&mut c.held)
            }
            None => Vec::new(),
        };
        if let Some(c) = self.streams.conn_mut(a) {
            c.unframed = match &c.mode {
                Mode::Framed(framer) => framer.buffered(),
                _ => 0,
            };
            c.mode = Mode::Bridged(b);
        }
        self.streams.set_deadline(a, None);
        self.forward(a, &held);
        self.streams.mark_ready(b);
        tracing::debug!(connection_id, client = %remote, "bridged");
    }

    /// `ClosePeerConnection`: close the peer connection (and its bridge partner), or
    /// abandon the connect.
    pub(super) fn close_peer(&mut self, now: Instant, connection_id: u32) {
        if let Some(slot) = self.streams.peer(connection_id) {
            self.close_conn(now, slot, Close::Orderly);
        }
    }
}

/// Accept errors that concern only the connection being accepted.
fn retry_accept(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

fn connect_failure(e: &io::Error) -> ConnectFailure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
        _ => ConnectFailure::Other,
    }
}
