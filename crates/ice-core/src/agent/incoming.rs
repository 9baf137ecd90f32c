//! Datagrams from the network: checks from the peer (RFC 8445 §7.3), responses, keepalives
//! and application data. Nothing here panics or returns an error; what is refused is
//! answered with a STUN error or dropped, and counted.

use super::{Agent, DataRoute, TxContext};
use crate::candidate::{Candidate, CandidateType};
use crate::check::{self, IncomingCheck, Refusal};
use crate::checklist::CheckListState;
use crate::config::Role;
use crate::events::{Event, Received};
use crate::pair::{CandidatePair, PairState};
use crate::stream::{RemoteCandidate, Via};
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::{Class, Input, IntegrityKey, Message, Method, TransportProtocol};

/// Which generation's credentials authenticated a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gen {
    Current,
    Previous,
}

/// The outcome of the role-conflict test (RFC 8445 §7.3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conflict {
    None,
    /// Answer 487 and keep the role.
    Reject,
}

impl Agent {
    /// A datagram arrived on local socket `input.destination` from `input.source`.
    ///
    /// ICE and TURN traffic is consumed; application data from a pair the agent vouches for
    /// comes back as [`Received::Data`], a sub-slice of `input.data`.
    pub fn handle_input<'a>(&mut self, now: Instant, input: Input<'a>) -> Received<'a> {
        if let Some(r) = self
            .relays
            .find(input.source, input.destination, input.transport)
        {
            if self.closed {
                // Only the deletion of the allocations is still going on.
                return match self.relays.handle_input(r, now, input) {
                    turn_proto::client::Received::NotMine => Received::NotMine,
                    _ => Received::Consumed,
                };
            }
            return self.handle_relay_input(now, r, input);
        }
        self.handle_direct(now, input)
    }

    /// Input that is not from one of our TURN servers: on a host candidate's socket, or on
    /// an ICE-TCP connection.
    pub(super) fn handle_direct<'a>(&mut self, now: Instant, input: Input<'a>) -> Received<'a> {
        if self.closed {
            return Received::NotMine;
        }
        let via = match input.transport {
            TransportProtocol::Udp => Via::Udp,
            // One RFC 4571 frame from an open connection (RFC 6544 §3).
            TransportProtocol::Tcp => {
                if !self.tcp.is_connected(input.destination, input.source) {
                    self.stats.tcp_frames_dropped += 1;
                    return Received::NotMine;
                }
                Via::Tcp
            }
            _ => return Received::NotMine,
        };
        self.handle_datagram(now, input.destination, input.source, via, input.data)
    }

    /// Handles what arrived on `socket` (a host base, the local name of a TCP connection, or
    /// a relayed address) from `from`, travelling `via`.
    pub(super) fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        data: &'a [u8],
    ) -> Received<'a> {
        // RFC 7983: first byte 0-3 is STUN.
        if data.first().is_some_and(|&b| b < 4) {
            return match Message::parse(data) {
                Ok(msg) if msg.method() == Method::BINDING => {
                    let r = self.handle_binding(now, socket, from, via, &msg);
                    self.update_states(now);
                    r
                }
                Ok(_) => Received::NotMine,
                Err(error) => {
                    if !self.owns_socket(socket, via) {
                        return Received::NotMine;
                    }
                    tracing::debug!(%error, %from, "malformed STUN dropped");
                    self.stats.malformed += 1;
                    Received::Consumed
                }
            };
        }
        self.handle_data(socket, from, via, data)
    }

    fn handle_binding(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
    ) -> Received<'static> {
        match msg.class() {
            Class::Request => self.handle_request(now, socket, from, via, msg),
            Class::Indication => {
                if !self.owns_socket(socket, via) {
                    return Received::NotMine;
                }
                // RFC 8445 §11: keepalives only keep NAT bindings; nothing to do.
                self.stats.indications_received += 1;
                Received::Consumed
            }
            Class::Success | Class::Error => self.handle_response(now, socket, from, via, msg),
        }
    }

    fn owns_socket(&self, socket: SocketAddr, via: Via) -> bool {
        self.socket_owner(socket, via).is_some()
    }

    /// The stream and local candidate that own a socket.
    fn socket_owner(&self, socket: SocketAddr, via: Via) -> Option<(usize, u16)> {
        self.streams
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.local_for_socket(socket, via).map(|l| (i, l)))
    }

    fn key_for(&self, ufrag: &str) -> Option<(&IntegrityKey, Gen)> {
        if ufrag == self.current.local.creds.ufrag {
            return Some((&self.current.local.key, Gen::Current));
        }
        self.previous
            .as_ref()
            .filter(|p| p.local.creds.ufrag == ufrag)
            .map(|p| (&p.local.key, Gen::Previous))
    }

    /// RFC 8445 §7.3: a Binding request from the peer.
    fn handle_request(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
    ) -> Received<'static> {
        let Some((stream, local)) = self.socket_owner(socket, via) else {
            return Received::NotMine;
        };
        let tid = msg.transaction_id();
        match check::authenticate(msg, |u| self.key_for(u)) {
            Ok((check, generation)) => {
                self.on_check(now, stream, local, socket, from, via, check, generation)
            }
            Err((refusal, generation)) => {
                self.refuse(now, socket, from, via, msg, tid, refusal, generation);
                Received::Consumed
            }
        }
    }

    /// Answers a refused request (RFC 8489 §9.1.3) and counts it; no state changes.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
        tid: stun_proto::TransactionId,
        refusal: Refusal,
        generation: Option<Gen>,
    ) {
        tracing::debug!(?refusal, %from, "check refused");
        let (code, unknown): (u16, Vec<_>) = match refusal {
            Refusal::Drop => {
                self.stats.malformed += 1;
                return;
            }
            Refusal::BadRequest => {
                self.stats.bad_requests += 1;
                (400, Vec::new())
            }
            Refusal::Unauthenticated => {
                self.stats.unauthenticated += 1;
                (401, Vec::new())
            }
            Refusal::UnknownAttributes => {
                self.stats.unknown_attributes += 1;
                (420, msg.unknown_comprehension_required().take(16).collect())
            }
        };
        let key = match generation {
            Some(Gen::Current) => Some(self.current.local.key.clone()),
            Some(Gen::Previous) => self.previous.as_ref().map(|p| p.local.key.clone()),
            None => None,
        };
        if let Ok(payload) = check::build_error(tid, code, &unknown, key.as_ref()) {
            self.reply(now, socket, from, via, payload);
        }
    }

    fn reply(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        to: SocketAddr,
        via: Via,
        payload: Vec<u8>,
    ) {
        if let Some(t) = self.wrap(now, socket, to, via, payload) {
            self.transmits.push_back(t);
        }
    }

    /// An authenticated check.
    #[allow(clippy::too_many_arguments)]
    fn on_check(
        &mut self,
        now: Instant,
        stream: usize,
        local: u16,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        check: IncomingCheck<'_>,
        generation: Gen,
    ) -> Received<'static> {
        if generation == Gen::Previous {
            // The peer keeps consent on the previous generation's path during a restart.
            self.answer(now, socket, from, via, check, Gen::Previous);
            self.refresh_inbound(now, stream, socket, from, true);
            return Received::Consumed;
        }
        if !self.config.lite && self.role_conflict(&check) == Conflict::Reject {
            self.stats.role_conflicts_answered += 1;
            let key = self.current.local.key.clone();
            if let Ok(payload) = check::build_error(check.tid, 487, &[], Some(&key)) {
                self.reply(now, socket, from, via, payload);
            }
            return Received::Consumed;
        }
        self.answer(now, socket, from, via, check, Gen::Current);
        // RFC 8838 §9: a check of another remote generation gets its answer, nothing more.
        if self
            .current
            .remote
            .as_ref()
            .is_some_and(|r| r.creds.ufrag != check.remote_ufrag)
        {
            return Received::Consumed;
        }
        let local_cand = self.streams[stream].local[usize::from(local)].cand;
        let Some(remote) = self.remote_for_check(stream, &local_cand, from, check.priority) else {
            return Received::Consumed;
        };
        if self.config.lite {
            self.lite_check(now, stream, local, remote, check.use_candidate);
        } else {
            self.triggered_check(now, stream, local, remote, check.use_candidate);
        }
        self.refresh_inbound(now, stream, socket, from, false);
        Received::Consumed
    }

    /// RFC 8445 §7.3, §7.3.1.2: a success response mapping the source as we saw it (for a
    /// relayed candidate, as the TURN server saw it).
    fn answer(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        check: IncomingCheck<'_>,
        generation: Gen,
    ) {
        let key = match generation {
            Gen::Current => &self.current.local.key,
            Gen::Previous => match &self.previous {
                Some(p) => &p.local.key,
                None => return,
            },
        };
        if let Ok(payload) = check::build_success(check.tid, from, key) {
            self.stats.checks_answered += 1;
            self.reply(now, socket, from, via, payload);
        }
    }

    /// RFC 8445 §7.3.1.1: detect and repair role conflicts.
    fn role_conflict(&mut self, check: &IncomingCheck<'_>) -> Conflict {
        match (self.role, check.controlling, check.controlled) {
            (Role::Controlling, Some(theirs), _) => {
                if self.tie_breaker >= theirs {
                    Conflict::Reject
                } else {
                    self.set_role(Role::Controlled);
                    Conflict::None
                }
            }
            (Role::Controlled, _, Some(theirs)) => {
                if self.tie_breaker >= theirs {
                    self.set_role(Role::Controlling);
                    Conflict::None
                } else {
                    Conflict::Reject
                }
            }
            _ => Conflict::None,
        }
    }

    /// RFC 8445 §7.3.1.3: the remote candidate the check came from, learnt as peer-reflexive
    /// if new. The number learnt is capped. Over TCP (RFC 6544 §7.2) the learnt candidate
    /// has the TCP type that pairs with the local candidate's: a check on a passive
    /// candidate's connection comes from an active one (from its ephemeral port).
    fn remote_for_check(
        &mut self,
        stream: usize,
        local: &Candidate,
        from: SocketAddr,
        priority: u32,
    ) -> Option<u16> {
        let (component, transport) = (local.component, local.transport);
        let (max_prflx, max_remote) = (
            self.config.max_peer_reflexive,
            self.config.max_remote_candidates,
        );
        let s = self.streams.get(stream)?;
        if let Some(i) = s.remote_index(component, transport, from) {
            return Some(i);
        }
        if s.prflx_learnt >= max_prflx || s.remote.len() >= max_remote {
            self.stats.prflx_capped += 1;
            return None;
        }
        let foundation = self.prflx_remote_foundation();
        let cand = Candidate {
            kind: CandidateType::PeerReflexive,
            transport,
            tcp_type: local.tcp_type.map(|t| t.peer_of()),
            component,
            address: from,
            base: from,
            related: None,
            priority,
            foundation,
        };
        let s = self.streams.get_mut(stream)?;
        s.remote.reserve_exact(1);
        s.remote.push(RemoteCandidate { cand, learnt: true });
        s.prflx_learnt += 1;
        let index = (s.remote.len() - 1) as u16;
        self.emit(Event::PeerReflexiveCandidate {
            stream: Agent::stream_id(stream),
            candidate: cand,
        });
        Some(index)
    }

    /// RFC 8445 §7.3.1.4 and §7.3.1.5: the pair of the check gets a triggered check (unless
    /// it already succeeded), and a nomination of the controlling peer is honoured.
    fn triggered_check(
        &mut self,
        now: Instant,
        stream: usize,
        local: u16,
        remote: u16,
        use_candidate: bool,
    ) {
        let nominate = use_candidate && self.role == Role::Controlled;
        let existing = self.streams[stream].checklist.find(local, remote);
        let Some(id) = existing.or_else(|| self.add_pair(stream, local, remote, true)) else {
            return;
        };
        let s = &mut self.streams[stream];
        let tcp = s
            .local
            .get(usize::from(local))
            .is_some_and(|l| l.via() == Via::Tcp);
        let Some(p) = s.checklist.get_mut(id) else {
            return;
        };
        p.inbound = true;
        let (state, old_tid) = (p.state, p.transaction);
        match state {
            PairState::Succeeded => {
                if nominate {
                    let valid = s
                        .checklist
                        .valid_generated_by(id)
                        .or_else(|| s.checklist.get(id).filter(|p| p.valid).map(|p| p.id));
                    if let Some(v) = valid {
                        if let Some(vp) = s.checklist.get_mut(v) {
                            vp.nominated = true;
                        }
                        self.on_nominated(now, stream, v);
                    }
                }
                return;
            }
            // Over TCP the request in flight will arrive (RFC 8489 §6.2.2): a triggered check
            // would only repeat it. A nomination rides on its success instead.
            PairState::InProgress if tcp && old_tid.is_some() => {
                p.nominate_on_success |= nominate;
                return;
            }
            PairState::InProgress => {
                p.transaction = None;
                if let Some(tid) = old_tid {
                    self.cancel_check(tid);
                }
            }
            PairState::Waiting | PairState::Frozen | PairState::Failed => {}
        }
        let s = &mut self.streams[stream];
        if let Some(p) = s.checklist.get_mut(id) {
            p.state = PairState::Waiting;
            p.nominate_on_success |= nominate;
        }
        s.checklist.push_triggered(id);
        // A Failed pair waiting again revives a Failed checklist (RFC 8445 §7.3.1.4).
        if s.checklist.state == CheckListState::Failed {
            s.checklist.state = CheckListState::Running;
        }
    }

    /// RFC 8445 §7.3.2: a lite agent keeps the pair of each authenticated check, and a
    /// USE-CANDIDATE check puts it in the valid list, nominated.
    fn lite_check(
        &mut self,
        now: Instant,
        stream: usize,
        local: u16,
        remote: u16,
        use_candidate: bool,
    ) {
        let s = &mut self.streams[stream];
        let id = match s.checklist.find(local, remote) {
            Some(id) => id,
            None => {
                let (Some(l), Some(r)) = (
                    s.local.get(usize::from(local)),
                    s.remote.get(usize::from(remote)),
                ) else {
                    return;
                };
                let component = l.cand.component;
                let priority = crate::priority::pair_priority(r.cand.priority, l.cand.priority);
                let id = s.checklist.allocate_id();
                let mut pair = CandidatePair::new(id, local, remote, component, priority);
                pair.in_checklist = false;
                pair.state = PairState::Succeeded;
                s.checklist.insert(pair);
                id
            }
        };
        let Some(p) = s.checklist.get_mut(id) else {
            return;
        };
        p.inbound = true;
        if use_candidate && !p.nominated {
            p.valid = true;
            p.nominated = true;
            self.on_nominated(now, stream, id);
        }
    }

    /// An authenticated check over a path in use: for a lite agent, that is its sign of the
    /// peer's liveness (it sends no consent checks of its own).
    fn refresh_inbound(
        &mut self,
        now: Instant,
        stream: usize,
        socket: SocketAddr,
        from: SocketAddr,
        previous: bool,
    ) {
        if !self.config.lite {
            return;
        }
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        for c in &mut s.components {
            let path = if previous {
                c.previous.as_mut()
            } else {
                c.selected.as_mut()
            };
            if let Some(p) = path.filter(|p| p.socket() == socket && p.remote.address == from) {
                p.consent.refresh(now);
            }
        }
    }

    /// A Binding response: to a check, a gathering request or a consent check.
    fn handle_response(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
    ) -> Received<'static> {
        let tid = msg.transaction_id();
        match self.context_of(&tid) {
            Some(TxContext::Check(ctx)) => {
                self.on_check_response(now, socket, from, via, msg, ctx);
                Received::Consumed
            }
            Some(TxContext::Gather(job)) => {
                self.on_gather_response(now, from, msg, job);
                Received::Consumed
            }
            None => {
                if self.on_consent_response(now, socket, from, via, msg) {
                    return Received::Consumed;
                }
                if self.owns_socket(socket, via) {
                    self.stats.responses_dropped += 1;
                    Received::Consumed
                } else {
                    Received::NotMine
                }
            }
        }
    }

    /// Application data: accepted from pairs the agent vouches for.
    fn handle_data<'a>(
        &mut self,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        data: &'a [u8],
    ) -> Received<'a> {
        let route = match self.data_route {
            Some(r) if r.socket == socket && r.from == from && r.via == via => Some(r),
            _ => self.find_route(socket, from, via),
        };
        match route {
            Some(r) => {
                self.data_route = Some(r);
                Received::Data {
                    stream: Agent::stream_id(usize::from(r.stream)),
                    component: r.component,
                    from,
                    data,
                }
            }
            None => {
                if self.owns_socket(socket, via) {
                    tracing::debug!(%from, len = data.len(), "data from an unvouched address dropped");
                    self.stats.data_dropped += 1;
                }
                Received::NotMine
            }
        }
    }

    /// Where data from `from` on `socket` belongs: a pair that is valid, succeeded or
    /// carried an authenticated check, or a path in use (also of the previous generation).
    pub(super) fn find_route(
        &self,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
    ) -> Option<DataRoute> {
        let route = |stream: usize, component: u16| DataRoute {
            socket,
            from,
            via,
            stream: stream as u16,
            component,
        };
        for (i, s) in self.streams.iter().enumerate() {
            let vouched = s.checklist.pairs.iter().find(|p| {
                (p.valid || p.inbound || p.state == PairState::Succeeded)
                    && s.remote
                        .get(usize::from(p.remote))
                        .is_some_and(|r| r.cand.address == from)
                    && s.local
                        .get(usize::from(p.local))
                        .is_some_and(|l| l.cand.base == socket && l.via() == via)
            });
            if let Some(p) = vouched {
                return Some(route(i, p.component));
            }
            for (c, comp) in s.components.iter().enumerate() {
                let on_path = [comp.selected.as_ref(), comp.previous.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|p| p.socket() == socket && p.remote.address == from && p.via == via);
                if on_path {
                    return Some(route(i, c as u16 + 1));
                }
            }
        }
        None
    }
}
