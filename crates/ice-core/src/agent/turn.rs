//! The agent's side of relayed candidates: allocations, permissions and wrapping through
//! the TURN clients (RFC 8445 §5.1.1.2, §7.2.1, §12.1).

use super::Agent;
use crate::candidate::{Candidate, CandidateType};
use crate::events::Received;
use crate::priority::{candidate_priority, relay_local_preference};
use crate::relay::Relay;
use crate::stream::{LocalCandidate, Via};
use rand_core::Rng;
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::Input;
use stun_proto::TransportProtocol;
use stun_proto::transaction::TransactionConfig;
use turn_proto::client::{AddressFamily, Client, ClientConfig, ClientEvent};

/// How many times an agent re-allocates on one TURN server from one host candidate after
/// allocations ended.
const MAX_REALLOCATIONS: u8 = 3;

impl Agent {
    /// A datagram from a TURN server to one of our TURN clients: peer data (a check, a
    /// response or application data) goes on as if it had arrived on the relayed address
    /// (RFC 8445 §7.3.1.2: the source is the peer as the TURN server saw it).
    pub(super) fn handle_relay_input<'a>(
        &mut self,
        now: Instant,
        relay: u8,
        input: Input<'a>,
    ) -> Received<'a> {
        let received = self.relays.handle_input(relay, now, input);
        let result = match received {
            turn_proto::client::Received::PeerData { peer, data } => {
                let relayed = self
                    .relays
                    .get(relay)
                    .and_then(|r| Some((r.stream, r.candidate?)))
                    .and_then(|(s, c)| self.streams.get(usize::from(s))?.local.get(usize::from(c)))
                    .map(|l| l.cand.base);
                match relayed {
                    Some(socket) => {
                        self.handle_datagram(now, socket, peer, Via::Relay(relay), data)
                    }
                    None => Received::Consumed,
                }
            }
            turn_proto::client::Received::Consumed => Received::Consumed,
            // Not the client's (a client whose allocation ended, or a STUN server sharing the
            // TURN server's address): what arrived is handled like any other input.
            turn_proto::client::Received::NotMine => return self.handle_direct(now, input),
        };
        self.drain_relay_events(now);
        self.update_states(now);
        result
    }

    /// Timers of the TURN clients.
    pub(super) fn relays_timeout(&mut self, now: Instant) {
        self.relays.handle_timeout(now);
        self.drain_relay_events(now);
    }

    /// RFC 8445 §5.1.1.2: an allocation from a new host candidate on each TURN server of its
    /// address family. Over UDP the client starts at once; over TCP or TLS the agent first
    /// asks for its connection ([`Event::TurnConnect`](crate::Event::TurnConnect)).
    pub(super) fn start_relays(
        &mut self,
        now: Instant,
        stream: usize,
        host: u16,
        address: SocketAddr,
    ) {
        let servers: Vec<(usize, crate::config::TurnServer)> = self
            .config
            .turn_servers
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, t)| {
                t.server.is_ipv4() == address.is_ipv4()
                    && matches!(
                        t.transport,
                        TransportProtocol::Udp | TransportProtocol::Tcp | TransportProtocol::Tls
                    )
            })
            .take(256)
            .collect();
        for (i, server) in servers {
            let index = self.relays.next_index();
            let stream_transport = server.transport.is_reliable();
            let relay = Relay {
                client: (!stream_transport).then(|| {
                    self.turn_client(now, &server, address, address, TransportProtocol::Udp)
                }),
                transport: server.transport,
                connection: None,
                stream: stream as u16,
                host,
                server_index: i as u8,
                candidate: None,
                settled: false,
                reallocations: 0,
            };
            if self.relays.push(relay).is_some() {
                self.gathering.expected += 1;
                if let (Some(index), true) = (index, stream_transport) {
                    self.connect_relay(now, index);
                }
            }
        }
        self.drain_relay_events(now);
    }

    /// A TURN client sending from `local`: the host base over UDP, the connection's local
    /// address over TCP or TLS. The relayed address is asked for in the family of the host
    /// `base` (RFC 8656 §7.1: without REQUESTED-ADDRESS-FAMILY a server relays over IPv4
    /// only) and is always UDP (REQUESTED-TRANSPORT 17).
    pub(super) fn turn_client(
        &mut self,
        now: Instant,
        server: &crate::config::TurnServer,
        base: SocketAddr,
        local: SocketAddr,
        transport: TransportProtocol,
    ) -> Client {
        let mut config = ClientConfig::new(
            server.server,
            local,
            server.username.clone(),
            server.password.clone(),
        );
        config.transport = transport;
        if base.is_ipv6() {
            config.requested_family = Some(AddressFamily::Ipv6);
        }
        config.transactions = TransactionConfig {
            initial_rto: self.config.min_rto,
            ..TransactionConfig::default()
        };
        // A child seed from our generator keeps the client deterministic.
        let seed = self.rng.next_u64();
        Client::new(config, seed, now)
    }

    /// An allocation ended (it expired, or its refreshes failed, for example because a NAT
    /// between us and the server changed our mapping and the server answered 437): its
    /// relayed candidate is retired and its pairs fail, and a new allocation is made from the
    /// same host candidate, a bounded number of times (RFC 8445 §5.1.1.2 gathers relayed
    /// candidates; nothing may keep using an address the server no longer relays for).
    fn on_relay_lost(&mut self, now: Instant, relay: u8) {
        let Some(r) = self.relays.get_mut(relay) else {
            return;
        };
        let (stream, host, candidate) = (usize::from(r.stream), r.host, r.candidate.take());
        if let Some(c) = candidate {
            self.retire_local(stream, c);
        }
        // Over TCP or TLS the allocation's connection goes with it (if it is still open: a
        // Refresh failed, or the server answered 437), and so does a selected path through
        // it, at once, as over a closed ICE-TCP connection.
        if self.relay_is_stream(relay) {
            self.close_relay_connection(relay);
            self.lose_relay_paths(relay);
        }
        let Some(r) = self.relays.get(relay) else {
            return;
        };
        if r.reallocations >= MAX_REALLOCATIONS || candidate.is_none() {
            return;
        }
        let server_index = usize::from(r.server_index);
        let Some(server) = self.config.turn_servers.get(server_index).cloned() else {
            return;
        };
        let Some(base) = self
            .streams
            .get(stream)
            .and_then(|s| s.local.get(usize::from(host)))
            .map(|l| l.cand.base)
        else {
            return;
        };
        if let Some(r) = self.relays.get_mut(relay) {
            r.settled = false;
            r.reallocations += 1;
        }
        if server.transport.is_reliable() {
            // A new allocation needs a new connection.
            if let Some(r) = self.relays.get_mut(relay) {
                r.client = None;
            }
            self.connect_relay(now, relay);
            return;
        }
        let client = self.turn_client(now, &server, base, base, TransportProtocol::Udp);
        if let Some(r) = self.relays.get_mut(relay) {
            r.client = Some(client);
        }
    }

    /// Retires a local candidate: it stays in the list (indices are shared) but its pairs
    /// fail and it is never used, paired or announced again.
    fn retire_local(&mut self, stream: usize, index: u16) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        if let Some(l) = s.local.get_mut(usize::from(index)) {
            l.retired = true;
        }
        let mut cancelled = Vec::new();
        for p in s.checklist.pairs.iter_mut().filter(|p| p.local == index) {
            if let Some(tid) = p.transaction.take() {
                cancelled.push(tid);
            }
            p.state = crate::pair::PairState::Failed;
            p.valid = false;
        }
        for tid in cancelled {
            self.transactions.cancel(&tid);
        }
    }

    pub(super) fn drain_relay_events(&mut self, now: Instant) {
        while let Some((relay, event)) = self.relays.poll_event() {
            self.on_relay_event(now, relay, event);
        }
    }

    fn on_relay_event(&mut self, now: Instant, relay: u8, event: ClientEvent) {
        match event {
            ClientEvent::Allocated {
                relayed, mapped, ..
            } => self.on_allocated(now, relay, &relayed, mapped),
            ClientEvent::AllocationFailed { reason } => {
                tracing::debug!(%reason, "TURN allocation failed");
                if let Some(r) = self.relays.get_mut(relay) {
                    r.settled = true;
                }
                self.close_relay_connection(relay);
            }
            ClientEvent::Redirected { from, to } if self.relay_is_stream(relay) => {
                // The alternate server would need a connection of its own: this allocation
                // is given up instead.
                tracing::debug!(%from, %to, "TURN redirect over TCP/TLS not followed");
                if let Some(r) = self.relays.get_mut(relay) {
                    r.settled = true;
                    r.client = None;
                }
                self.close_relay_connection(relay);
            }
            ClientEvent::Expired { reason } => {
                tracing::debug!(relay, ?reason, "TURN allocation expired");
                self.on_relay_lost(now, relay);
                self.update_states(now);
            }
            _ => {}
        }
    }

    /// A relayed candidate (its base is itself, its related address the mapped address),
    /// and the server-reflexive candidate the Allocate response reveals (RFC 8445 §5.1.1.2).
    fn on_allocated(
        &mut self,
        now: Instant,
        relay: u8,
        relayed: &[SocketAddr],
        mapped: Option<SocketAddr>,
    ) {
        let Some(r) = self.relays.get_mut(relay) else {
            return;
        };
        r.settled = true;
        let (stream, host, server_index, transport) =
            (usize::from(r.stream), r.host, r.server_index, r.transport);
        let Some(server) = r.client.as_ref().map(Client::server) else {
            return;
        };
        let Some(base) = self
            .streams
            .get(stream)
            .and_then(|s| s.local.get(usize::from(host)))
            .cloned()
        else {
            return;
        };
        let Some(&address) = relayed
            .iter()
            .find(|a| a.is_ipv4() == base.cand.address.is_ipv4())
        else {
            return;
        };
        // RFC 8445 §5.1.1.2: a relayed candidate identical to a host candidate is discarded.
        let duplicate = self
            .streams
            .iter()
            .flat_map(|s| &s.local)
            .any(|l| l.cand.address == address);
        if !duplicate {
            // RFC 8445 §5.1.1.3: candidates obtained over different transports differ in
            // foundation; the relayed candidate itself is UDP whatever reaches the server.
            let foundation = self.foundation_for(
                CandidateType::Relayed,
                address.ip(),
                Some(server.ip()),
                transport,
            );
            let lp = relay_local_preference(base.rank, server_index, transport);
            let cand = Candidate {
                kind: CandidateType::Relayed,
                address,
                base: address,
                related: mapped,
                priority: candidate_priority(CandidateType::Relayed, lp, base.cand.component),
                foundation,
                ..base.cand
            };
            let index = self.push_local(
                stream,
                LocalCandidate {
                    cand,
                    relay: Some(relay),
                    rank: base.rank,
                    retired: false,
                },
            );
            if let Some(r) = self.relays.get_mut(relay) {
                r.candidate = Some(index);
            }
        }
        // The mapped address of a TCP or TLS connection is a TCP mapping: no UDP
        // server-reflexive candidate can be made of it.
        if let (Some(mapped), false) = (mapped, transport.is_reliable()) {
            self.add_turn_srflx(stream, &base, server, server_index, mapped);
        }
        self.update_states(now);
    }

    fn add_turn_srflx(
        &mut self,
        stream: usize,
        base: &LocalCandidate,
        server: SocketAddr,
        server_index: u8,
        mapped: SocketAddr,
    ) {
        // Slots after the STUN servers' (RFC 8445 §5.1.2.1: one local preference each).
        let slot = self
            .config
            .stun_servers
            .len()
            .saturating_add(1 + usize::from(server_index));
        let slot = u8::try_from(slot).unwrap_or(u8::MAX);
        self.push_server_reflexive(stream, base, server, slot, mapped);
    }
}
