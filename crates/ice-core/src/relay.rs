//! The agent's TURN clients (RFC 8445 §5.1.1.2, §7.2.1, §12.1): one allocation per host
//! candidate and TURN server, through `turn_proto::client::Client`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use stun_proto::{Input, Transmit};
use turn_proto::client::{Client, ClientEvent, ClientState, Received};

/// One TURN client and what the agent knows about it.
#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) client: Client,
    pub(crate) stream: u16,
    /// The host candidate the client sends from.
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

    pub(crate) fn get(&self, index: u8) -> Option<&Relay> {
        self.list.get(usize::from(index))
    }

    pub(crate) fn get_mut(&mut self, index: u8) -> Option<&mut Relay> {
        self.list.get_mut(usize::from(index))
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.list.iter_mut().find_map(|r| r.client.poll_transmit())
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.list
            .iter()
            .filter_map(|r| r.client.poll_timeout())
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for r in &mut self.list {
            if r.client.poll_timeout().is_some_and(|t| t <= now) {
                r.client.handle_timeout(now);
            }
        }
    }

    /// The next event of any client.
    pub(crate) fn poll_event(&mut self) -> Option<(u8, ClientEvent)> {
        self.list
            .iter_mut()
            .enumerate()
            .find_map(|(i, r)| r.client.poll_event().map(|e| (i as u8, e)))
    }

    /// Releases the allocations (RFC 8656 §7.3: a Refresh with lifetime 0).
    pub(crate) fn close(&mut self, now: Instant) {
        for r in &mut self.list {
            if r.client.state() == ClientState::Allocated {
                r.client.delete(now);
            }
        }
    }

    /// True while an allocation is pending.
    pub(crate) fn busy(&self) -> bool {
        self.list.iter().any(|r| !r.settled)
    }

    /// The relay whose server sends to this local socket.
    pub(crate) fn find(&self, server: SocketAddr, local: SocketAddr) -> Option<u8> {
        self.list
            .iter()
            .position(|r| r.client.server() == server && r.client.local() == local)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// Hands a datagram from the TURN server to its client.
    pub(crate) fn handle_input<'a>(
        &mut self,
        index: u8,
        now: Instant,
        input: Input<'a>,
    ) -> Received<'a> {
        match self.list.get_mut(usize::from(index)) {
            Some(r) => r.client.handle_input(now, input),
            None => Received::NotMine,
        }
    }

    /// RFC 8445 §7.2.1: a permission towards a peer before checking it (kept while the
    /// client refreshes it).
    pub(crate) fn permit(&mut self, index: u8, now: Instant, peer: IpAddr) {
        let Some(r) = self.list.get_mut(usize::from(index)) else {
            return;
        };
        if r.client.state() == ClientState::Allocated && !r.client.has_permission(peer) {
            if let Err(error) = r.client.create_permission(now, &[peer]) {
                tracing::debug!(%error, %peer, "permission not requested");
            }
        }
    }

    /// RFC 8445 §12.1: a channel towards the selected peer, for the smaller ChannelData.
    pub(crate) fn bind_channel(&mut self, index: u8, now: Instant, peer: SocketAddr) {
        let Some(r) = self.list.get_mut(usize::from(index)) else {
            return;
        };
        if r.client.state() == ClientState::Allocated && r.client.channel(peer).is_none() {
            if let Err(error) = r.client.bind_channel(now, peer) {
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
        let r = self.list.get_mut(usize::from(index))?;
        match r.client.send_to(now, peer, data) {
            Ok(t) => Some(t),
            Err(error) => {
                tracing::debug!(%error, %peer, "relay cannot send");
                None
            }
        }
    }
}
