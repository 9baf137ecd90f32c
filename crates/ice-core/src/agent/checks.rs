//! Our side of the checks: pacing (RFC 8445 §6.1.4.2, §14), sending (§7.2.4), responses
//! (§7.2.5), timeouts, and the gathering transactions that share the Ta pace (§5.1.1.2).

use super::{Agent, CheckContext, TxContext};
use crate::candidate::{Candidate, CandidateType, TcpType, is_redundant};
use crate::check::{self, CheckRequest, CheckResponse};
use crate::checklist::CheckListState;
use crate::config::Role;
use crate::gathering::GatherJob;
use crate::pacer::Pacer;
use crate::pair::{CandidatePair, PairId, PairState};
use crate::priority::{candidate_priority, check_priority, local_preference};
use crate::stream::{LocalCandidate, Via};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::{MappedAddress, XorMappedAddress};
use stun_proto::transaction::TransactionEvent;
use stun_proto::{Class, Message, TransactionId, Transmit, TransportProtocol};

/// Cancelled checks whose late responses still count (RFC 8445 §7.3.1.4: "will wait the
/// duration of the transaction timeout for a response").
pub(super) const CANCELLED_KEPT: usize = 32;

impl Agent {
    /// When the next paced transaction is due, if any is waiting.
    pub(super) fn paced_timeout(&self) -> Option<Instant> {
        if !self.has_paced_work() {
            return None;
        }
        Some(match self.pacer_wait {
            Some(w) => w.max(self.next_paced),
            None => self.next_paced,
        })
    }

    fn has_paced_work(&self) -> bool {
        !self.gathering.queue.is_empty() || self.has_check_work()
    }

    /// Mirrors [`pick_pair`](Self::pick_pair): true if a Ta tick would send a check.
    fn has_check_work(&self) -> bool {
        if self.config.lite || self.current.remote.is_none() {
            return false;
        }
        self.streams.iter().any(|s| {
            let list = &s.checklist;
            let triggered = list
                .triggered
                .iter()
                .any(|&id| list.get(id).is_some_and(|p| p.state == PairState::Waiting));
            (triggered && list.state != CheckListState::Failed)
                || list.state == CheckListState::Running
                    && (list.best_waiting().is_some()
                        || list.pairs.iter().any(|p| {
                            p.in_checklist
                                && p.state == PairState::Frozen
                                && Agent::pair_foundation(s, p)
                                    .is_some_and(|f| !self.foundation_active(f))
                        }))
        })
    }

    /// One paced transaction if Ta (and the shared pacer) allows.
    pub(super) fn run_paced(&mut self, now: Instant, pacer: Option<&mut Pacer>) {
        if now < self.next_paced || !self.has_paced_work() {
            return;
        }
        if let Some(p) = pacer {
            if !p.try_acquire(now) {
                self.pacer_wait = p.next_slot();
                return;
            }
        }
        self.pacer_wait = None;
        if self.paced_action(now) {
            self.next_paced = now + self.ta;
        }
    }

    /// Gathering and checks take turns, so that gathering never holds checks back.
    fn paced_action(&mut self, now: Instant) -> bool {
        let gather_first = self.gather_turn;
        for step in 0..2 {
            let gather = (step == 0) == gather_first;
            let done = if gather {
                self.start_gather(now)
            } else {
                self.start_next_check(now)
            };
            if done {
                self.gather_turn = !gather;
                return true;
            }
        }
        false
    }

    /// RFC 8445 §6.1.4.2: round robin over the Running checklists; the first that has a
    /// check to send sends it.
    fn start_next_check(&mut self, now: Instant) -> bool {
        if self.config.lite || self.current.remote.is_none() {
            return false;
        }
        let n = self.streams.len();
        for k in 0..n {
            let i = (self.next_checklist + k) % n;
            // A completed checklist still sends triggered checks: a peer using aggressive
            // nomination may nominate a better pair later (RFC 8445 §8.1.1).
            if self.streams[i].checklist.state == CheckListState::Failed {
                continue;
            }
            if let Some(id) = self.pick_pair(i) {
                self.next_checklist = (i + 1) % n;
                self.send_check(now, i, id);
                return true;
            }
        }
        false
    }

    /// Steps 1–3 of RFC 8445 §6.1.4.2 for one checklist.
    fn pick_pair(&mut self, stream: usize) -> Option<PairId> {
        if let Some(id) = self.streams[stream].checklist.pop_triggered() {
            return Some(id);
        }
        if self.streams[stream].checklist.state != CheckListState::Running {
            return None;
        }
        if self.streams[stream].checklist.best_waiting().is_none() {
            self.unfreeze_one_per_foundation(stream);
        }
        self.streams[stream].checklist.best_waiting()
    }

    /// RFC 8445 §6.1.4.2 step 2: for each foundation with no Waiting or In-Progress pair in
    /// any checklist, unfreeze this checklist's best Frozen pair of that foundation.
    fn unfreeze_one_per_foundation(&mut self, stream: usize) {
        let s = &self.streams[stream];
        let frozen: Vec<(PairId, super::pairing::PairFoundation)> = s
            .checklist
            .pairs
            .iter()
            .filter(|p| p.in_checklist && p.state == PairState::Frozen)
            .filter_map(|p| Some((p.id, Agent::pair_foundation(s, p)?)))
            .collect();
        for (id, foundation) in frozen {
            if !self.foundation_active(foundation) {
                if let Some(p) = self.streams[stream].checklist.get_mut(id) {
                    p.state = PairState::Waiting;
                }
            }
        }
    }

    /// RFC 8445 §14.3 allows other formulas than `Ta * N * (Waiting + In-Progress)`, whose
    /// quadratic growth gives RTOs of minutes with a full checklist. We space
    /// retransmissions so that every pending first transmission goes out before them:
    /// `max(500 ms, Ta * (Waiting + In-Progress))`.
    fn check_rto(&self) -> Duration {
        let (waiting, in_progress) = self.pair_state_counts();
        let n = u32::try_from(waiting + in_progress).unwrap_or(u32::MAX);
        self.config.min_rto.max(self.ta.saturating_mul(n))
    }

    /// Sends a check for a pair (RFC 8445 §7.2.4): from the base of the local candidate to
    /// the remote candidate. Over TCP the connection comes first (RFC 6544 §7.1): without
    /// one the pair waits, In-Progress, until it opens.
    fn send_check(&mut self, now: Instant, stream: usize, id: PairId) {
        let Some((ctx, _)) = self.check_context(stream, id) else {
            return;
        };
        if ctx.via == Via::Tcp && !self.tcp_ready_for_check(now, stream, id, &ctx) {
            return;
        }
        self.start_check(now, stream, id);
    }

    /// Starts the STUN transaction of a check whose path is ready.
    pub(super) fn start_check(&mut self, now: Instant, stream: usize, id: PairId) {
        let rto = self.check_rto();
        let Some((ctx, payload_args)) = self.check_context(stream, id) else {
            return;
        };
        let tid = self.random_transaction_id();
        let Some(remote) = self.current.remote.as_ref() else {
            return;
        };
        let request = CheckRequest {
            username: &remote.username,
            priority: ctx.priority,
            role: self.role,
            tie_breaker: self.tie_breaker,
            use_candidate: payload_args,
            key: &remote.key,
        };
        let stream_relay = ctx.via.relay().filter(|&r| self.relay_is_stream(r));
        let transmit = check::build_request(tid, &request)
            .ok()
            .and_then(|payload| match stream_relay {
                Some(r) => self.unwrapped_relayed_check(r, ctx.socket, ctx.remote, payload),
                None => self.wrap(now, ctx.socket, ctx.remote, ctx.via, payload),
            });
        let started = transmit.is_some_and(|t| {
            self.transactions
                .start_with_rto(now, tid, t, TxContext::Check(ctx), rto)
                .is_ok()
        });
        if started && stream_relay.is_some() {
            self.flush_relayed_checks(now);
        }
        let Some(p) = self.streams[stream].checklist.get_mut(id) else {
            return;
        };
        if started {
            tracing::trace!(%tid, remote = %ctx.remote, use_candidate = ctx.use_candidate, "check sent");
            p.state = PairState::InProgress;
            p.transaction = Some(tid);
            self.stats.checks_sent += 1;
        } else {
            // No route (a relay without allocation) or no room: the check fails.
            p.state = PairState::Failed;
        }
    }

    /// What a check of this pair is sent with: the context and whether it nominates.
    pub(super) fn check_context(&self, stream: usize, id: PairId) -> Option<(CheckContext, bool)> {
        let s = self.streams.get(stream)?;
        let p = s.checklist.get(id)?;
        let l = s.local.get(usize::from(p.local))?;
        let r = s.remote.get(usize::from(p.remote))?;
        // RFC 8445 §7.1.2: USE-CANDIDATE only from the controlling agent.
        let use_candidate = p.use_candidate && self.role == Role::Controlling;
        let ctx = CheckContext {
            stream: stream as u16,
            pair: id,
            generation: self.current.id,
            role: self.role,
            use_candidate,
            nominate_on_success: p.nominate_on_success,
            // RFC 8445 §7.1.1: the local candidate's formula with the prflx type preference.
            priority: check_priority(&l.cand),
            socket: l.cand.base,
            remote: r.cand.address,
            via: l.via(),
        };
        Some((ctx, use_candidate))
    }

    /// A datagram from a local socket (or through a TURN client) to a remote address; over
    /// TCP an RFC 4571 frame on the open connection `(socket, remote)`, or nothing without
    /// one.
    pub(super) fn wrap(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        remote: SocketAddr,
        via: Via,
        payload: Vec<u8>,
    ) -> Option<Transmit> {
        match via {
            Via::Udp => Some(Transmit {
                transport: TransportProtocol::Udp,
                source: socket,
                destination: remote,
                payload,
            }),
            Via::Tcp => {
                if !self.tcp.is_connected(socket, remote) {
                    return None;
                }
                // RFC 6544 §3: STUN and data alike are framed with RFC 4571.
                let mut framed = Vec::with_capacity(payload.len() + 2);
                stun_proto::framing::encode_rfc4571(&payload, &mut framed).ok()?;
                Some(Transmit {
                    transport: TransportProtocol::Tcp,
                    source: socket,
                    destination: remote,
                    payload: framed,
                })
            }
            Via::Relay(r) => self.relays.send_to(r, now, remote, &payload),
        }
    }

    /// Timeouts of checks (RFC 8445 §7.2.5.2.3) and gathering transactions.
    pub(super) fn drain_transaction_events(&mut self, now: Instant) {
        while let Some(TransactionEvent::TimedOut { context, .. }) = self.transactions.poll_event()
        {
            match context {
                TxContext::Check(ctx) => {
                    tracing::debug!(remote = %ctx.remote, "check timed out");
                    self.check_failed(now, ctx);
                }
                TxContext::Gather(_) => self.gathering.finished(),
            }
        }
    }

    /// Handles a response whose transaction is a check of ours.
    pub(super) fn on_check_response(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
        ctx: CheckContext,
    ) {
        let tid = msg.transaction_id();
        let authentic = ctx.generation == self.current.id
            && self
                .current
                .remote
                .as_ref()
                .is_some_and(|r| msg.verify(&r.key).is_ok());
        if !authentic {
            // RFC 8489 §9.1.4 (UDP): an unauthenticated response is ignored; retransmissions
            // go on.
            tracing::debug!(%tid, %from, "check response fails authentication");
            self.stats.responses_dropped += 1;
            return;
        }
        let matched = self.transactions.match_response(now, &tid, from).is_some()
            || self.take_cancelled(&tid);
        if !matched {
            self.stats.responses_dropped += 1;
            return;
        }
        self.stats.responses_received += 1;
        // RFC 8445 §7.2.5.2.1: the response must come from where the request went, to where
        // it came from (RFC 6544 §7.1: over TCP, on the same connection).
        if from != ctx.remote || socket != ctx.socket || via != ctx.via {
            tracing::debug!(%from, expected = %ctx.remote, "non-symmetric response");
            self.check_failed(now, ctx);
            return;
        }
        match check::read_response(msg) {
            CheckResponse::Success(mapped) => self.on_check_success(now, ctx, mapped),
            CheckResponse::RoleConflict => self.on_role_conflict(ctx),
            CheckResponse::Failure(code) => {
                tracing::debug!(code, remote = %ctx.remote, "check failed");
                self.check_failed(now, ctx);
            }
        }
    }

    fn take_cancelled(&mut self, tid: &TransactionId) -> bool {
        match self.cancelled.iter().position(|(t, _)| t == tid) {
            Some(i) => {
                self.cancelled.remove(i);
                true
            }
            None => false,
        }
    }

    /// The context of a check response: in flight, or recently cancelled.
    pub(super) fn context_of(&self, tid: &TransactionId) -> Option<TxContext> {
        self.transactions.context(tid).copied().or_else(|| {
            self.cancelled
                .iter()
                .find(|(t, _)| t == tid)
                .map(|(_, c)| TxContext::Check(*c))
        })
    }

    /// Stops retransmitting a check but keeps accepting its response.
    pub(super) fn cancel_check(&mut self, tid: TransactionId) {
        if let Some(TxContext::Check(ctx)) = self.transactions.cancel(&tid) {
            if self.cancelled.len() == CANCELLED_KEPT {
                self.cancelled.pop_front();
            }
            self.cancelled.push_back((tid, ctx));
        }
    }

    /// RFC 8445 §7.2.5.1: a 487 switches the role if the request carried the current one;
    /// the pair is checked again.
    fn on_role_conflict(&mut self, ctx: CheckContext) {
        if ctx.role == self.role {
            self.set_role(self.role.opposite());
        }
        let Some(list) = self
            .streams
            .get_mut(usize::from(ctx.stream))
            .map(|s| &mut s.checklist)
        else {
            return;
        };
        if let Some(p) = list.get_mut(ctx.pair) {
            p.state = PairState::Waiting;
            p.transaction = None;
            list.push_triggered(ctx.pair);
        }
    }

    /// RFC 8445 §7.2.5.2: the pair fails; a failed nomination also removes the valid pair and
    /// fails the checklist (§7.2.5.3.4).
    pub(super) fn check_failed(&mut self, now: Instant, ctx: CheckContext) {
        let Some(s) = self.streams.get_mut(usize::from(ctx.stream)) else {
            return;
        };
        let Some(p) = s.checklist.get_mut(ctx.pair) else {
            return;
        };
        // A newer check of this pair is in flight or queued: this result is stale.
        let newer = p
            .transaction
            .is_some_and(|t| self.transactions.is_pending(&t));
        if newer || p.state == PairState::Waiting {
            return;
        }
        p.state = PairState::Failed;
        p.transaction = None;
        if ctx.use_candidate || ctx.nominate_on_success {
            let component = p.component;
            if let Some(v) = s.checklist.valid_generated_by(ctx.pair) {
                if let Some(vp) = s.checklist.get_mut(v) {
                    vp.valid = false;
                    vp.nominated = false;
                }
            }
            s.checklist.state = CheckListState::Failed;
            if let Some(c) = s.component_mut(component) {
                c.nominating = None;
            }
        }
        self.update_states(now);
    }

    /// RFC 8445 §7.2.5.3: peer-reflexive discovery, the valid pair, state updates and the
    /// nominated flag.
    fn on_check_success(&mut self, now: Instant, ctx: CheckContext, mapped: SocketAddr) {
        let stream = usize::from(ctx.stream);
        let Some(generator) = self
            .streams
            .get(stream)
            .and_then(|s| s.checklist.get(ctx.pair))
            .cloned()
        else {
            return;
        };
        let Some(local) = self.local_for_mapped(stream, &generator, mapped, ctx.priority) else {
            return;
        };
        let Some(valid_id) = self.valid_pair_for(stream, &generator, local, ctx.priority) else {
            return;
        };
        let foundation = self
            .streams
            .get(stream)
            .and_then(|s| Agent::pair_foundation(s, &generator));
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        // A nomination still pending on the pair (the peer's USE-CANDIDATE arrived while an
        // older check was in flight) is honoured by this success too; our own pending
        // USE-CANDIDATE is not, since the peer has not seen it: the pair is checked again.
        let mut nominate = ctx.use_candidate || ctx.nominate_on_success;
        let mut recheck = false;
        if let Some(g) = s.checklist.get_mut(ctx.pair) {
            g.state = PairState::Succeeded;
            g.transaction = None;
            nominate |= g.nominate_on_success;
            g.nominate_on_success = false;
            if ctx.use_candidate {
                g.use_candidate = false;
            } else if g.use_candidate {
                g.state = PairState::Waiting;
                recheck = true;
            }
        }
        if recheck {
            s.checklist.push_triggered(ctx.pair);
        }
        if let Some(v) = s.checklist.get_mut(valid_id) {
            v.valid = true;
            if v.id != ctx.pair {
                v.state = PairState::Succeeded;
                v.generator = ctx.pair;
            }
            v.nominated |= nominate;
        }
        if let Some(c) = s.component_mut(generator.component) {
            c.first_valid.get_or_insert(now);
            // A check on the selected pair is as good a sign of consent as a consent check.
            if let Some(path) = c.selected.as_mut().filter(|p| p.pair == Some(valid_id)) {
                path.consent.refresh(now);
            }
        }
        // RFC 8445 §7.2.5.3.3: unfreeze the foundation everywhere.
        if let Some(f) = foundation {
            self.unfreeze_foundation(f);
        }
        if nominate {
            self.on_nominated(now, stream, valid_id);
        }
        self.update_states(now);
    }

    /// RFC 8445 §7.2.5.3.1: the local candidate whose address is the mapped address; a new
    /// peer-reflexive one if none is (base: the local candidate of the checked pair;
    /// priority: the PRIORITY we sent).
    fn local_for_mapped(
        &mut self,
        stream: usize,
        pair: &CandidatePair,
        mapped: SocketAddr,
        priority: u32,
    ) -> Option<u16> {
        let s = self.streams.get(stream)?;
        let base = s.local.get(usize::from(pair.local))?.clone();
        // RFC 6544 §4.5: an active TCP candidate has no port of its own; each connection gets
        // an ephemeral one. A mapping on its own IP address is the candidate itself.
        if base.cand.tcp_type == Some(TcpType::Active) && mapped.ip() == base.cand.base.ip() {
            return Some(pair.local);
        }
        if let Some(i) = s.local.iter().position(|l| {
            l.cand.address == mapped
                && l.cand.component == pair.component
                && l.cand.transport == base.cand.transport
                && l.cand.tcp_type == base.cand.tcp_type
        }) {
            return Some(i as u16);
        }
        let learnt = s
            .local
            .iter()
            .filter(|l| l.cand.kind == CandidateType::PeerReflexive)
            .count();
        if learnt >= self.config.max_peer_reflexive {
            self.stats.prflx_capped += 1;
            return Some(pair.local); // use the checked pair itself as the valid pair
        }
        let foundation = self.foundation_for(
            CandidateType::PeerReflexive,
            base.cand.base.ip(),
            None,
            base.cand.transport,
        );
        let cand = Candidate {
            kind: CandidateType::PeerReflexive,
            address: mapped,
            related: Some(base.cand.base),
            priority,
            foundation,
            ..base.cand
        };
        Some(self.push_local(stream, LocalCandidate { cand, ..base }))
    }

    /// RFC 8445 §7.2.5.3.2: the valid pair is the checked pair, another pair of the
    /// checklist, or a new pair outside it.
    fn valid_pair_for(
        &mut self,
        stream: usize,
        generator: &CandidatePair,
        local: u16,
        priority: u32,
    ) -> Option<PairId> {
        if local == generator.local {
            return Some(generator.id);
        }
        let s = self.streams.get(stream)?;
        if let Some(id) = s.checklist.find(local, generator.remote) {
            return Some(id);
        }
        let l = s.local.get(usize::from(local))?;
        let r = s.remote.get(usize::from(generator.remote))?;
        let local_priority = if l.cand.kind == CandidateType::PeerReflexive {
            priority
        } else {
            l.cand.priority
        };
        let pair_priority = self.pair_priority_for(local_priority, r.cand.priority);
        let s = self.streams.get_mut(stream)?;
        let id = s.checklist.allocate_id();
        let mut pair = CandidatePair::new(
            id,
            local,
            generator.remote,
            generator.component,
            pair_priority,
        );
        pair.in_checklist = false;
        pair.generator = generator.id;
        s.checklist.insert(pair);
        Some(id)
    }

    /// Starts the next queued gathering transaction (RFC 8445 §5.1.1.2).
    fn start_gather(&mut self, now: Instant) -> bool {
        while let Some(job) = self.gathering.queue.pop_front() {
            let server = self
                .config
                .stun_servers
                .get(usize::from(job.server))
                .copied();
            let local = self
                .streams
                .get(usize::from(job.stream))
                .and_then(|s| s.local.get(usize::from(job.local)))
                .map(|l| l.cand.base);
            let (Some(server), Some(local)) = (server, local) else {
                continue;
            };
            let tid = self.random_transaction_id();
            let Ok(payload) = check::build_gather_request(tid) else {
                continue;
            };
            // RFC 8445 §14.3: RTO = MAX(500 ms, Ta * Num-Of-Cands).
            let n = u32::try_from(self.gathering.expected).unwrap_or(u32::MAX);
            let rto = self.config.min_rto.max(self.ta.saturating_mul(n));
            let transmit = Transmit {
                transport: TransportProtocol::Udp,
                source: local,
                destination: server,
                payload,
            };
            if self
                .transactions
                .start_with_rto(now, tid, transmit, TxContext::Gather(job), rto)
                .is_ok()
            {
                self.gathering.in_flight += 1;
                return true;
            }
        }
        false
    }

    /// A STUN server answered a gathering request: a server-reflexive candidate, unless it
    /// is redundant (RFC 8838 §9: regardless of priority).
    pub(super) fn on_gather_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        job: GatherJob,
    ) {
        let tid = msg.transaction_id();
        let server = self
            .config
            .stun_servers
            .get(usize::from(job.server))
            .copied();
        if server != Some(from) || self.transactions.match_response(now, &tid, from).is_none() {
            self.stats.responses_dropped += 1;
            return;
        }
        self.gathering.finished();
        if msg.class() != Class::Success {
            return;
        }
        // RFC 8445 §5.1.1.2: support the RFC 3489 backwards-compatible MAPPED-ADDRESS.
        let mapped = match msg.get::<XorMappedAddress>() {
            Ok(Some(a)) => Some(a.0),
            _ => msg.get::<MappedAddress>().ok().flatten().map(|a| a.0),
        };
        if let (Some(mapped), Some(server)) = (mapped, server) {
            self.add_srflx(now, job, server, mapped);
        }
    }

    fn add_srflx(&mut self, now: Instant, job: GatherJob, server: SocketAddr, mapped: SocketAddr) {
        let stream = usize::from(job.stream);
        let Some(base) = self
            .streams
            .get(stream)
            .and_then(|s| s.local.get(usize::from(job.local)))
            .cloned()
        else {
            return;
        };
        self.push_server_reflexive(stream, &base, server, job.server.saturating_add(1), mapped);
        self.update_states(now);
    }
}

impl Agent {
    /// A server-reflexive candidate for `mapped`, as `server` saw `base` (RFC 8445
    /// §5.1.1.1), with the local preference of `slot` (one per STUN server, then one per
    /// TURN server, §5.1.2.1); dropped when redundant (§5.1.3).
    pub(super) fn push_server_reflexive(
        &mut self,
        stream: usize,
        base: &LocalCandidate,
        server: SocketAddr,
        slot: u8,
        mapped: SocketAddr,
    ) {
        let lp = local_preference(base.rank, slot);
        let foundation = self.foundation_for(
            CandidateType::ServerReflexive,
            base.cand.base.ip(),
            Some(server.ip()),
            base.cand.transport,
        );
        let cand = Candidate {
            kind: CandidateType::ServerReflexive,
            address: mapped,
            related: Some(base.cand.base),
            priority: candidate_priority(CandidateType::ServerReflexive, lp, base.cand.component),
            foundation,
            ..base.cand
        };
        let redundant = self
            .streams
            .get(stream)
            .is_some_and(|s| s.local.iter().any(|l| is_redundant(&l.cand, &cand)));
        if !redundant {
            self.push_local(
                stream,
                LocalCandidate {
                    cand,
                    ..base.clone()
                },
            );
        }
    }
}
