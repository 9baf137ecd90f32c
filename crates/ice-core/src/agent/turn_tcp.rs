//! TURN over TCP and TLS (RFC 8656 §3.1): the connections the agent's TURN clients run on.
//! The driver opens them when asked ([`Event::TurnConnect`]) and reports back; the client's
//! allocation lives as long as its connection (`Client::connection_lost`), and a lost
//! allocation is retired and made again on a new connection, like a UDP one.
//!
//! Checks from a relayed candidate of such a client are retransmitted like any UDP check:
//! the server relays them to the peer over UDP, where they can be lost. Their transactions
//! hold them unwrapped (from the relayed address, labelled UDP) and each (re)transmission is
//! wrapped by the client when it leaves ([`Agent::flush_relayed_checks`]): a transaction
//! over a TCP transmit would be sent once and time out only after Ti = 39.5 s.

use super::Agent;
use crate::events::{Event, TurnConnectionId};
use crate::relay::{ConnState, RelayConnection};
use crate::stream::Via;
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::{Transmit, TransportProtocol};

impl Agent {
    /// The driver opened the connection asked for with [`Event::TurnConnect`]; `local` is
    /// its local address (the ephemeral port the OS chose): the TURN client starts its
    /// Allocate over it, and the connection's frames arrive as inputs with `destination:
    /// local`. A connection the agent no longer waits for is ignored (the agent has asked
    /// for it to be closed with [`Event::TurnClose`]).
    pub fn turn_connected(&mut self, now: Instant, id: TurnConnectionId, local: SocketAddr) {
        if self.closed {
            return;
        }
        let Some(relay) = self.relays.by_connection(id) else {
            tracing::debug!(%id, "unknown TURN connection ignored");
            return;
        };
        let Some(r) = self
            .relays
            .get(relay)
            .filter(|r| r.connecting() == Some(id))
        else {
            tracing::debug!(%id, "TURN connection no longer awaited");
            return;
        };
        let (transport, server_index) = (r.transport, usize::from(r.server_index));
        let Some(server) = self.config.turn_servers.get(server_index).cloned() else {
            return;
        };
        let Some(base) = self.relay_base(relay) else {
            return;
        };
        tracing::debug!(%id, %local, server = %server.server, ?transport, "TURN connection open");
        let client = self.turn_client(now, &server, base, local, transport);
        if let Some(r) = self.relays.get_mut(relay) {
            r.client = Some(client);
            r.connection = Some(RelayConnection {
                id,
                state: ConnState::Open,
            });
        }
        self.drain_relay_events(now);
        self.update_states(now);
    }

    /// The connection asked for with [`Event::TurnConnect`] could not be opened (refused,
    /// unreachable, TLS handshake or certificate check failed): no relayed candidate comes
    /// from it.
    pub fn turn_connect_failed(&mut self, now: Instant, id: TurnConnectionId) {
        if self.closed {
            return;
        }
        let Some(relay) = self
            .relays
            .by_connection(id)
            .filter(|&r| self.relays.get(r).and_then(|r| r.connecting()) == Some(id))
        else {
            return;
        };
        tracing::debug!(%id, "TURN connection failed");
        self.stats.turn_connect_failures += 1;
        self.give_up_connection(relay);
        self.update_states(now);
    }

    /// An open TURN connection closed (the server closed it, it broke, or its byte stream
    /// could not be framed). Its allocation is gone with it (the server deletes it, RFC 8656
    /// §3.1): the relayed candidate is retired, its pairs fail, and a new allocation is made
    /// on a new connection ([`Event::TurnConnect`]), a bounded number of times. A
    /// connection still being opened counts as failed.
    pub fn turn_closed(&mut self, now: Instant, id: TurnConnectionId) {
        if self.closed {
            return;
        }
        let Some(relay) = self.relays.by_connection(id) else {
            return;
        };
        let Some(state) = self
            .relays
            .get(relay)
            .and_then(|r| r.connection)
            .map(|c| c.state)
        else {
            return;
        };
        match state {
            ConnState::Connecting { .. } => return self.turn_connect_failed(now, id),
            ConnState::Closed => return,
            ConnState::Open => {}
        }
        tracing::debug!(%id, "TURN connection lost");
        self.stats.turn_connections_lost += 1;
        if let Some(r) = self.relays.get_mut(relay) {
            r.connection_closed();
            if let Some(c) = r.client.as_mut() {
                c.connection_lost(now);
            }
        }
        self.drain_relay_events(now);
        self.update_states(now);
    }

    /// The base of the host candidate a relay gathers from.
    fn relay_base(&self, relay: u8) -> Option<SocketAddr> {
        let r = self.relays.get(relay)?;
        let s = self.streams.get(usize::from(r.stream))?;
        s.local.get(usize::from(r.host)).map(|l| l.cand.base)
    }

    pub(super) fn relay_is_stream(&self, relay: u8) -> bool {
        self.relays.get(relay).is_some_and(|r| r.is_stream())
    }

    /// Asks for a new connection for relay `relay` (its first, or one for a new allocation
    /// after the last ended): from the IP address of its host candidate to its server.
    pub(super) fn connect_relay(&mut self, now: Instant, relay: u8) {
        let Some(r) = self.relays.get(relay) else {
            return;
        };
        let attempt = r.reallocations;
        let Some(server) = self
            .config
            .turn_servers
            .get(usize::from(r.server_index))
            .cloned()
        else {
            return;
        };
        let Some(base) = self.relay_base(relay) else {
            return;
        };
        let server_name = match server.transport {
            TransportProtocol::Tls => self
                .config
                .turn_server_names
                .iter()
                .find(|(a, _)| *a == server.server)
                .map(|(_, n)| n.clone()),
            _ => None,
        };
        let id = TurnConnectionId::new(relay, attempt);
        if let Some(r) = self.relays.get_mut(relay) {
            r.connection = Some(RelayConnection {
                id,
                state: ConnState::Connecting {
                    deadline: now + self.config.tcp_connect_timeout,
                },
            });
        }
        self.stats.turn_connects += 1;
        tracing::debug!(%id, local = %base, server = %server.server, transport = ?server.transport, "TURN connect");
        self.emit(Event::TurnConnect {
            id,
            local: base,
            server: server.server,
            transport: server.transport,
            server_name,
        });
    }

    /// Asks for the relay's connection to be closed, if it is open or being opened.
    pub(super) fn close_relay_connection(&mut self, relay: u8) {
        let Some(r) = self.relays.get_mut(relay) else {
            return;
        };
        let Some(id) = r.live_connection() else {
            return;
        };
        r.connection_closed();
        tracing::debug!(%id, "closing TURN connection");
        self.emit(Event::TurnClose { id });
    }

    /// Selected (or previous) paths through a relay whose allocation ended can carry nothing
    /// more: consent is lost ([`Event::ConsentLost`]) rather than left to expire.
    pub(super) fn lose_relay_paths(&mut self, relay: u8) {
        let mut lost = Vec::new();
        for (i, s) in self.streams.iter_mut().enumerate() {
            for (c, comp) in s.components.iter_mut().enumerate() {
                for path in [comp.selected.as_mut(), comp.previous.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    if path.via == Via::Relay(relay) && !path.consent.lost {
                        path.consent.lost = true;
                        lost.push((i, c as u16 + 1));
                    }
                }
            }
        }
        for (stream, component) in lost {
            tracing::debug!(
                stream,
                component,
                "selected path lost with its TURN connection"
            );
            self.emit(Event::ConsentLost {
                stream: Agent::stream_id(stream),
                component,
            });
        }
        self.data_route = None;
    }

    /// A connection that never opened: the relay has nothing more to gather.
    fn give_up_connection(&mut self, relay: u8) {
        if let Some(r) = self.relays.get_mut(relay) {
            r.connection_closed();
            r.client = None;
            r.settled = true;
        }
    }

    /// Connection attempts that took longer than `tcp_connect_timeout` are abandoned.
    pub(super) fn turn_connect_timeouts(&mut self, now: Instant) {
        for (relay, id) in self.relays.take_expired_connections(now) {
            tracing::debug!(%id, "TURN connect timed out");
            self.stats.turn_connect_failures += 1;
            self.emit(Event::TurnClose { id });
            self.give_up_connection(relay);
        }
    }

    /// Closes every TURN connection (the agent is closing): over TCP and TLS that releases
    /// the allocations too.
    pub(super) fn close_turn_connections(&mut self, now: Instant) {
        for id in self.relays.close(now) {
            self.emit(Event::TurnClose { id });
        }
    }

    /// The check of a pair from a relayed candidate of a TCP or TLS client, unwrapped: its
    /// transaction retransmits it as a UDP datagram from the relayed address, and
    /// [`flush_relayed_checks`](Self::flush_relayed_checks) wraps every copy on its way out.
    pub(super) fn unwrapped_relayed_check(
        &self,
        relay: u8,
        socket: SocketAddr,
        remote: SocketAddr,
        payload: Vec<u8>,
    ) -> Option<Transmit> {
        let allocated = self.relays.get(relay).is_some_and(|r| {
            r.client
                .as_ref()
                .is_some_and(|c| c.state() == turn_proto::client::ClientState::Allocated)
        });
        allocated.then_some(Transmit {
            transport: TransportProtocol::Udp,
            source: socket,
            destination: remote,
            payload,
        })
    }

    /// Moves the transactions' transmits to the output queue, wrapping the checks of TCP and
    /// TLS relays through their clients (a check whose relay has gone is dropped: its
    /// transaction times out). Without such relays nothing moves.
    pub(super) fn flush_relayed_checks(&mut self, now: Instant) {
        if !self.relays.has_stream() {
            return;
        }
        while let Some(t) = self.transactions.poll_transmit() {
            if !self.owns_relayed_address(t.source) {
                self.transmits.push_back(t);
                continue;
            }
            let wrapped = self
                .relays
                .stream_relay_at(t.source)
                .and_then(|r| self.relays.send_to(r, now, t.destination, &t.payload));
            if let Some(w) = wrapped {
                self.transmits.push_back(w);
            }
        }
    }

    /// True if `address` is (or was) a relayed candidate of a TCP or TLS relay.
    fn owns_relayed_address(&self, address: SocketAddr) -> bool {
        self.streams.iter().flat_map(|s| &s.local).any(|l| {
            l.cand.kind == crate::candidate::CandidateType::Relayed
                && l.cand.address == address
                && l.relay.is_some_and(|r| self.relay_is_stream(r))
        })
    }
}
