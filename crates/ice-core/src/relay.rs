//! The agent's TURN clients (RFC 8445 §5.1.1.2, §7.2.1, §12.1): one allocation per host
//! candidate and TURN server, through `turn_proto::client::Client`. Over TCP or TLS (RFC 8656
//! §3.1) the client runs on a connection the driver opens for it and the allocation lives as
//! long as that connection.

use crate::events::TurnConnectionId;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use stun_proto::{Input, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientEvent, ClientState, Received};

/// Where the connection of a TCP or TLS relay stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// The agent asked for it ([`Event::TurnConnect`](crate::Event::TurnConnect)) and gives
    /// up at `deadline`.
    Connecting { deadline: Instant },
    /// Open: the client runs over it.
    Open,
    /// Failed, lost, or closed by the agent: nothing travels on it any more.
    Closed,
}

/// The connection of a TCP or TLS relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RelayConnection {
    pub(crate) id: TurnConnectionId,
    pub(crate) state: ConnState,
}

/// One TURN client and what the agent knows about it.
#[derive(Debug)]
pub(crate) struct Relay {
    /// The client. Over TCP or TLS it exists once its connection is open (its local address
    /// is the connection's).
    pub(crate) client: Option<Client>,
    /// The transport to the server: UDP, TCP or TLS.
    pub(crate) transport: TransportProtocol,
    /// Over TCP or TLS: the connection of the current allocation.
    pub(crate) connection: Option<RelayConnection>,
    pub(crate) stream: u16,
    /// The host candidate the client sends from (over TCP or TLS: whose IP address the
    /// connection leaves from).
    pub(crate) host: u16,
    /// Index into the configured TURN servers.
    pub(crate) server_index: u8,
    /// The relayed candidate, once allocated.
    pub(crate) candidate: Option<u16>,
    /// Allocation finished (allocated or failed): gathering no longer waits for it.
    pub(crate) settled: bool,
    /// New allocations made after earlier ones ended.
    pub(crate) reallocations: u8,
}

impl Relay {
    /// True for a relay over TCP or TLS.
    pub(crate) fn is_stream(&self) -> bool {
        self.transport.is_reliable()
    }

    /// The connection, if it is in this state.
    fn connection_in(&self, wanted: fn(ConnState) -> bool) -> Option<TurnConnectionId> {
        self.connection.filter(|c| wanted(c.state)).map(|c| c.id)
    }

    /// The id of the connection while it is being opened or open: the one to close.
    pub(crate) fn live_connection(&self) -> Option<TurnConnectionId> {
        self.connection_in(|s| s != ConnState::Closed)
    }

    /// The id of the connection while it is being opened.
    pub(crate) fn connecting(&self) -> Option<TurnConnectionId> {
        self.connection_in(|s| matches!(s, ConnState::Connecting { .. }))
    }

    /// Marks the connection closed.
    pub(crate) fn connection_closed(&mut self) {
        if let Some(c) = &mut self.connection {
            c.state = ConnState::Closed;
        }
    }
}

/// The agent's TURN clients, indexed by a `u8` that relayed candidates carry.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    pub(crate) list: Vec<Relay>,
}

impl Relays {
    /// Adds a client; `None` beyond 256 relays.
    pub(crate) fn push(&mut self, relay: Relay) -> Option<u8> {
        let index = u8::try_from(self.list.len()).ok()?;
        self.list.push(relay);
        Some(index)
    }

    /// The index the next relay gets, if there is room.
    pub(crate) fn next_index(&self) -> Option<u8> {
        u8::try_from(self.list.len()).ok()
    }

    pub(crate) fn get(&self, index: u8) -> Option<&Relay> {
        self.list.get(usize::from(index))
    }

    pub(crate) fn get_mut(&mut self, index: u8) -> Option<&mut Relay> {
        self.list.get_mut(usize::from(index))
    }

    /// The relay whose current connection has this id.
    pub(crate) fn by_connection(&self, id: TurnConnectionId) -> Option<u8> {
        let index = id.relay();
        self.get(index)?
            .connection
            .filter(|c| c.id == id)
            .map(|_| index)
    }

    /// True if a relay runs over TCP or TLS.
    pub(crate) fn has_stream(&self) -> bool {
        self.list.iter().any(Relay::is_stream)
    }

    /// The TCP or TLS relay whose live relayed candidate has this address: checks from it
    /// wait in the agent's transactions unwrapped (see `Agent::flush_relayed_checks`).
    pub(crate) fn stream_relay_at(&self, relayed: SocketAddr) -> Option<u8> {
        self.list
            .iter()
            .position(|r| {
                r.is_stream()
                    && r.candidate.is_some()
                    && r.client
                        .as_ref()
                        .is_some_and(|c| c.relayed_addresses().contains(&relayed))
            })
            .and_then(|i| u8::try_from(i).ok())
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.list
            .iter_mut()
            .find_map(|r| r.client.as_mut()?.poll_transmit())
    }

    /// The earliest client timer or connection deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|r| {
                let connect = match r.connection {
                    Some(RelayConnection {
                        state: ConnState::Connecting { deadline },
                        ..
                    }) => Some(deadline),
                    _ => None,
                };
                [r.client.as_ref().and_then(Client::poll_timeout), connect]
            })
            .flatten()
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for c in self.list.iter_mut().filter_map(|r| r.client.as_mut()) {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
    }

    /// Connection attempts whose deadline has passed: closed, and returned.
    pub(crate) fn take_expired_connections(&mut self, now: Instant) -> Vec<(u8, TurnConnectionId)> {
        let mut out = Vec::new();
        for (i, r) in self.list.iter_mut().enumerate() {
            if let Some(c) = &mut r.connection {
                if matches!(c.state, ConnState::Connecting { deadline } if deadline <= now) {
                    c.state = ConnState::Closed;
                    out.push((i as u8, c.id));
                }
            }
        }
        out
    }

    /// The next event of any client.
    pub(crate) fn poll_event(&mut self) -> Option<(u8, ClientEvent)> {
        self.list
            .iter_mut()
            .enumerate()
            .find_map(|(i, r)| r.client.as_mut()?.poll_event().map(|e| (i as u8, e)))
    }

    /// Releases the allocations (RFC 8656 §7.3: a Refresh with lifetime 0). Over TCP or TLS
    /// closing the connection releases the allocation (the server deletes it, §3.1): the
    /// connections to close are returned and their clients dropped.
    pub(crate) fn close(&mut self, now: Instant) -> Vec<TurnConnectionId> {
        let mut close = Vec::new();
        for r in &mut self.list {
            if r.is_stream() {
                close.extend(r.live_connection());
                r.connection_closed();
                r.client = None;
                continue;
            }
            if let Some(c) = r.client.as_mut() {
                if c.state() == ClientState::Allocated {
                    c.delete(now);
                }
            }
        }
        close
    }

    /// True while an allocation is pending.
    pub(crate) fn busy(&self) -> bool {
        self.list.iter().any(|r| !r.settled)
    }

    /// The relay whose server sends to this local socket over this transport.
    pub(crate) fn find(
        &self,
        server: SocketAddr,
        local: SocketAddr,
        transport: TransportProtocol,
    ) -> Option<u8> {
        self.list
            .iter()
            .position(|r| {
                r.transport == transport
                    && r.client
                        .as_ref()
                        .is_some_and(|c| c.server() == server && c.local() == local)
            })
            .and_then(|i| u8::try_from(i).ok())
    }

    /// Hands a datagram from the TURN server to its client.
    pub(crate) fn handle_input<'a>(
        &mut self,
        index: u8,
        now: Instant,
        input: Input<'a>,
    ) -> Received<'a> {
        match self.client_mut(index) {
            Some(c) => c.handle_input(now, input),
            None => Received::NotMine,
        }
    }

    fn client_mut(&mut self, index: u8) -> Option<&mut Client> {
        self.list.get_mut(usize::from(index))?.client.as_mut()
    }

    /// RFC 8445 §7.2.1: a permission towards a peer before checking it (kept while the
    /// client refreshes it).
    pub(crate) fn permit(&mut self, index: u8, now: Instant, peer: IpAddr) {
        let Some(c) = self.client_mut(index) else {
            return;
        };
        if c.state() == ClientState::Allocated && !c.has_permission(peer) {
            if let Err(error) = c.create_permission(now, &[peer]) {
                tracing::debug!(%error, %peer, "permission not requested");
            }
        }
    }

    /// RFC 8445 §12.1: a channel towards the selected peer, for the smaller ChannelData.
    pub(crate) fn bind_channel(&mut self, index: u8, now: Instant, peer: SocketAddr) {
        let Some(c) = self.client_mut(index) else {
            return;
        };
        if c.state() == ClientState::Allocated && c.channel(peer).is_none() {
            if let Err(error) = c.bind_channel(now, peer) {
                tracing::debug!(%error, %peer, "channel not bound");
            }
        }
    }

    /// Wraps data for `peer` through relay `index`, asking for a permission first if
    /// there is none.
    pub(crate) fn send_to(
        &mut self,
        index: u8,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Option<Transmit> {
        self.permit(index, now, peer.ip());
        match self.client_mut(index)?.send_to(now, peer, data) {
            Ok(t) => Some(t),
            Err(error) => {
                tracing::debug!(%error, %peer, "relay cannot send");
                None
            }
        }
    }
}
