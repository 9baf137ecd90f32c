//! One worker: a [`Server`], a mio poll, this worker's sockets, and the loop that drives
//! them.
//!
//! The loop: wait for readiness (or the core's next timer, a connection's deadline, or the
//! next stats snapshot); give every ready UDP socket one batched receive in turn, so that a
//! flooded socket cannot starve the others, and every ready TCP entry one bounded turn (see
//! [`stream`]); hand each datagram or framed message to the core and queue what it relays
//! in the GSO batch or on a connection; send the batches; run the timers; send the core's
//! responses and act on its events (bind or close relay sockets and listeners, connect to
//! peers, bridge); then write what the connections have queued.

mod stream;

use super::batch::{HEADROOM, Key, RxBuffers, TxBatch, segments};
use super::sockets::{SocketId, Sockets};
use super::stats::{IoStats, TurnServerStats};
use super::streams::Streams;
use mio::{Events, Poll};
use quinn_udp::{BATCH_SIZE, EcnCodepoint, Transmit};
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stun_proto::server::BindingServer;
use stun_proto::{Input, MessageType, TransportProtocol, peek_header};
use turn_proto::server::{Datagram, Server, ServerEvent, ServerInput, ServerOutput};

/// Readiness events taken per poll.
const EVENTS: usize = 1024;

/// What the workers share with the handle.
#[derive(Debug)]
pub(super) struct Shared {
    /// Set by [`TurnServerHandle::stop`](super::TurnServerHandle::stop).
    pub(super) stop: AtomicBool,
    /// Each worker's last published counters.
    pub(super) stats: Vec<Mutex<TurnServerStats>>,
}

/// The protocol machines of a worker.
struct Core {
    server: Server,
    /// Answers Binding requests on the listeners instead of the TURN core, when configured
    /// (RFC 5780: it knows the alternate address).
    stun: Option<BindingServer>,
}

/// The send side: the GSO batch and the socket counters.
struct Output {
    batch: TxBatch,
    stats: IoStats,
}

/// Where a datagram arrived.
#[derive(Clone, Copy)]
struct Arrival {
    from: SocketAddr,
    /// The local address as the core knows it (see [`Sockets::arrival_address`]).
    local: SocketAddr,
    ecn: Option<EcnCodepoint>,
    listener: bool,
}

/// The limits of a worker's TCP and TLS connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct StreamLimits {
    /// Connections (clients and peers) open at once.
    pub(super) max_connections: usize,
    /// How long a client connection may stay open without an allocation.
    pub(super) unallocated_timeout: Duration,
}

/// One worker thread's state.
pub(super) struct Worker {
    index: usize,
    core: Core,
    poll: Poll,
    events: Events,
    sockets: Sockets,
    rx: RxBuffers,
    out: Output,
    /// Sockets known readable, served one batch each per round until drained.
    ready: Vec<SocketId>,
    /// By token: the socket is in `ready`.
    queued: Vec<bool>,
    /// The TCP side: listeners, relay listeners, connections.
    streams: Streams,
    limits: StreamLimits,
    /// Readiness of stream entries from the last poll: (slot, readable, writable, error).
    stream_events: Vec<(usize, bool, bool, bool)>,
    /// A read from a connection.
    chunk: Vec<u8>,
    /// One framed message, handed to the core.
    frame: Vec<u8>,
    shared: std::sync::Arc<Shared>,
    stats_interval: Duration,
}

impl Worker {
    /// A worker with its core, poll (the listeners registered, the waker installed) and
    /// sockets; it publishes its counters in `shared.stats[index]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        index: usize,
        server: Server,
        stun: Option<BindingServer>,
        poll: Poll,
        sockets: Sockets,
        streams: Streams,
        limits: StreamLimits,
        shared: std::sync::Arc<Shared>,
        stats_interval: Duration,
    ) -> Worker {
        Worker {
            index,
            core: Core { server, stun },
            poll,
            events: Events::with_capacity(EVENTS),
            queued: vec![false; sockets.token_count()],
            sockets,
            rx: RxBuffers::new(),
            out: Output {
                batch: TxBatch::new(),
                stats: IoStats::default(),
            },
            ready: Vec::new(),
            streams,
            limits,
            stream_events: Vec::new(),
            chunk: vec![0; stream::READ_CHUNK],
            frame: Vec::new(),
            shared,
            stats_interval,
        }
    }

    /// Runs until the stop flag is set; publishes the counters one last time.
    pub(super) fn run(mut self) -> io::Result<()> {
        let mut next_publish = Instant::now() + self.stats_interval;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // Work left from the last round (a full batch, a connection's read budget, bytes
            // queued while writing others) is done at once.
            let idle =
                self.ready.is_empty() && !self.streams.has_ready() && !self.streams.has_dirty();
            let timeout = if idle {
                let wake = [
                    self.core.server.poll_timeout(),
                    self.streams.next_deadline(),
                ]
                .into_iter()
                .flatten()
                .fold(next_publish, Instant::min);
                wake.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in self.events.iter() {
                let token = event.token();
                if let Some(id) = self.sockets.id(token) {
                    if !std::mem::replace(&mut self.queued[token.0], true) {
                        self.ready.push(id);
                    }
                } else if let Some(slot) = self.streams.slot(token) {
                    self.stream_events.push((
                        slot,
                        event.is_readable() || event.is_read_closed(),
                        event.is_writable() || event.is_write_closed(),
                        event.is_error(),
                    ));
                }
            }
            let now = Instant::now();
            self.stream_readiness(now);
            self.serve_ready(now);
            self.serve_streams(now);
            self.out.flush(&self.sockets);
            if self.core.server.poll_timeout().is_some_and(|t| t <= now) {
                self.core.server.handle_timeout(now);
            }
            self.stream_timers(now);
            self.drain_control(now);
            self.flush_streams(now);
            if now >= next_publish {
                self.publish();
                next_publish = now + self.stats_interval;
            }
        }
        self.publish();
        Ok(())
    }

    /// One batched receive from each ready socket; the drained ones leave the list.
    fn serve_ready(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.ready.len() {
            let id = self.ready[k];
            if self.serve(id, now) {
                k += 1;
            } else {
                self.queued[self.sockets.token(id).0] = false;
                self.ready.swap_remove(k);
            }
        }
        // Responses and binds right after the batch that asked for them.
        self.drain_control(now);
    }

    /// Receives one batch from `id` and hands every datagram to the core. Returns whether
    /// more may be waiting: a full batch. A short one means the queue was empty when read,
    /// and anything arriving since raises a new (edge-triggered) event.
    fn serve(&mut self, id: SocketId, now: Instant) -> bool {
        let Worker {
            core,
            sockets,
            rx,
            out,
            streams,
            ..
        } = self;
        let Some(socket) = sockets.get(id) else {
            return false;
        };
        let n = match rx.recv(|bufs, meta| socket.recv(bufs, meta)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                tracing::debug!(local = %socket.local(), error = %e, "receive failed");
                return false;
            }
        };
        out.stats.recv_calls += 1;
        let listener = matches!(id, SocketId::Listener(_));
        for i in 0..n {
            let (buf, meta) = rx.get(i);
            let meta = *meta;
            let arrival = Arrival {
                from: meta.addr,
                local: sockets.arrival_address(id, meta.dst_ip),
                ecn: meta.ecn,
                listener,
            };
            if meta.len > meta.stride {
                out.stats.gro_buffers += 1;
            }
            for (start, len) in segments(&meta) {
                out.stats.datagrams_received += 1;
                // The 4 bytes before the datagram are headroom: spare room for the first,
                // the handled tail of the one before for the other GRO segments.
                let frame = &mut buf[start..HEADROOM + start + len];
                core.handle(now, arrival, frame, sockets, out, streams);
            }
        }
        n == BATCH_SIZE
    }

    /// Sends the core's responses and acts on its events, until neither is left (a
    /// reported bind can answer an Allocate and create an allocation).
    fn drain_control(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(t) = self.core.server.poll_transmit() {
                if t.transport.is_reliable() {
                    self.stream_transmit(now, &t);
                } else {
                    self.out.control(&self.sockets, &t);
                }
                busy = true;
            }
            if let Some(stun) = &mut self.core.stun {
                while let Some(t) = stun.poll_transmit() {
                    self.out.control(&self.sockets, &t);
                }
            }
            while let Some(event) = self.core.server.poll_event() {
                self.on_event(now, event);
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: ServerEvent) {
        let worker = self.index;
        match event {
            ServerEvent::BindRelay {
                relayed,
                transport: TransportProtocol::Tcp,
            } => self.bind_tcp_relay(now, relayed),
            ServerEvent::ReleaseRelay {
                relayed,
                transport: TransportProtocol::Tcp,
            } => self.release_tcp_relay(relayed),
            ServerEvent::ConnectPeer {
                connection_id,
                relayed,
                peer,
            } => self.connect_peer(now, connection_id, relayed, peer),
            ServerEvent::Bridge {
                connection_id,
                client: (local, remote),
                ..
            } => self.bridge(now, connection_id, local, remote),
            ServerEvent::ClosePeerConnection { connection_id } => {
                self.close_peer(now, connection_id)
            }
            ServerEvent::BindRelay { relayed, .. } => {
                let result = self.sockets.bind_relay(self.poll.registry(), relayed);
                if result.is_err() {
                    self.out.stats.bind_failures += 1;
                }
                if let Err(e) = self.core.server.relay_bound(now, relayed, result) {
                    // The core no longer waits for it: the socket is not wanted.
                    tracing::debug!(%relayed, error = %e, "relay bind report refused");
                    if result.is_ok() {
                        self.sockets.release_relay(self.poll.registry(), relayed);
                    }
                }
            }
            ServerEvent::ReleaseRelay { relayed, .. } => {
                self.sockets.release_relay(self.poll.registry(), relayed);
            }
            ServerEvent::AllocationCreated {
                five_tuple,
                username,
                relayed,
            } => {
                tracing::info!(
                    worker,
                    client = %five_tuple.client,
                    server = %five_tuple.server,
                    transport = ?five_tuple.transport,
                    user = %username,
                    ?relayed,
                    "allocation created"
                );
                self.allocation_changed(now, &five_tuple, true);
            }
            ServerEvent::AllocationDeleted { five_tuple, reason } => {
                tracing::info!(
                    worker,
                    client = %five_tuple.client,
                    ?reason,
                    "allocation deleted"
                );
                self.allocation_changed(now, &five_tuple, false);
            }
            other => tracing::debug!(worker, ?other, "server event"),
        }
    }

    fn publish(&mut self) {
        self.out.stats.relay_sockets = self.sockets.relay_count();
        let snapshot = TurnServerStats::new(
            self.core.server.stats(),
            self.out.stats,
            self.streams.snapshot(),
        );
        if let Ok(mut slot) = self.shared.stats[self.index].lock() {
            *slot = snapshot;
        }
    }
}

impl Core {
    /// One datagram in `frame[HEADROOM..]`; what the core relays goes to the send batch.
    #[inline]
    fn handle(
        &mut self,
        now: Instant,
        arrival: Arrival,
        frame: &mut [u8],
        sockets: &Sockets,
        out: &mut Output,
        streams: &mut Streams,
    ) {
        if let (true, Some(stun)) = (arrival.listener, &mut self.stun) {
            let data = &frame[HEADROOM..];
            if peek_header(data).is_some_and(|(t, _)| t == MessageType::BINDING_REQUEST) {
                stun.handle_input(
                    now,
                    Input {
                        transport: TransportProtocol::Udp,
                        source: arrival.from,
                        destination: arrival.local,
                        data,
                    },
                );
                return;
            }
        }
        let input = ServerInput::udp_with_headroom(arrival.from, arrival.local, frame, HEADROOM);
        if let ServerOutput::Send(d) = self.server.handle_input(now, input) {
            deliver(&d, arrival.ecn, sockets, out, streams);
        }
    }
}

/// Sends what the core relays: to a UDP peer or client through the GSO batch, or to a TCP
/// or TLS client through its connection's queue.
#[inline]
fn deliver(
    d: &Datagram<'_>,
    ecn: Option<EcnCodepoint>,
    sockets: &Sockets,
    out: &mut Output,
    streams: &mut Streams,
) {
    if d.transport.is_reliable() {
        streams.queue_datagram(d.source, d.destination, d.data);
    } else {
        out.relay(sockets, d, ecn);
    }
}

impl Output {
    /// Queues a relayed datagram. ECN is carried over from the datagram that brought it
    /// (RFC 8656 §14, preferred behaviour).
    #[inline]
    fn relay(&mut self, sockets: &Sockets, d: &Datagram<'_>, ecn: Option<EcnCodepoint>) {
        let Some((route, socket)) = sockets
            .route(d.source)
            .and_then(|r| Some((r, sockets.get(r.socket)?)))
        else {
            self.stats.no_route += 1;
            tracing::debug!(source = %d.source, "no socket to send from");
            return;
        };
        let key = Key {
            route,
            destination: d.destination,
            ecn,
        };
        let stats = &mut self.stats;
        self.batch.push(
            key,
            d.data,
            socket.max_gso_segments(),
            &mut |k: &Key, data: &[u8], segment: usize| transmit(sockets, stats, k, data, segment),
        );
    }

    /// Sends a STUN response (or RFC 5780 answer) at once, from the socket it names.
    fn control(&mut self, sockets: &Sockets, t: &stun_proto::Transmit) {
        let Some(route) = sockets.route(t.source) else {
            self.stats.no_route += 1;
            tracing::debug!(source = %t.source, "no socket to send from");
            return;
        };
        let key = Key {
            route,
            destination: t.destination,
            ecn: None,
        };
        transmit(sockets, &mut self.stats, &key, &t.payload, t.payload.len());
    }

    /// Sends every open batch.
    fn flush(&mut self, sockets: &Sockets) {
        let stats = &mut self.stats;
        self.batch
            .flush(&mut |k: &Key, data: &[u8], segment: usize| {
                transmit(sockets, stats, k, data, segment)
            });
    }
}

/// One `sendmsg`: `data` is one datagram, or several of `segment` bytes (GSO).
fn transmit(sockets: &Sockets, stats: &mut IoStats, key: &Key, data: &[u8], segment: usize) {
    let segment = segment.max(1);
    let count = data.len().div_ceil(segment).max(1) as u64;
    let Some(socket) = sockets.get(key.route.socket) else {
        // Closed since the datagram was queued (its allocation ended).
        stats.send_errors += count;
        return;
    };
    let t = Transmit {
        destination: key.destination,
        ecn: key.ecn,
        contents: data,
        segment_size: (count > 1).then_some(segment),
        src_ip: key.route.src_ip,
    };
    stats.send_calls += 1;
    match socket.send(&t) {
        Ok(()) => {
            stats.datagrams_sent += count;
            if count > 1 {
                stats.gso_sends += 1;
            }
        }
        Err(e) => {
            stats.send_errors += count;
            tracing::trace!(to = %key.destination, error = %e, "send failed");
        }
    }
}
