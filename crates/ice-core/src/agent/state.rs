//! Nomination (RFC 8445 §8.1) and the states that follow from it: checklists (§6.1.2.1,
//! §7.2.5.4, RFC 8838 §8), the connection state (W3C names) and gathering completion.

use super::Agent;
use crate::checklist::CheckListState;
use crate::config::Role;
use crate::events::{ConnectionState, Event, GatheringState, StreamId};
use crate::pair::{PairId, PairState};
use crate::stream::Path;
use std::time::Instant;

impl Agent {
    /// The controlling agent's nomination policy (RFC 8445 §8.1.1 leaves it to us): nominate
    /// the best valid pair of a component once no better pair can still succeed, or once
    /// `nomination_timeout` has passed since the component's first valid pair.
    pub(super) fn run_nomination(&mut self, now: Instant) {
        if self.config.lite || self.role != Role::Controlling || self.current.remote.is_none() {
            return;
        }
        let timeout = self.config.nomination_timeout;
        for s in &mut self.streams {
            if s.checklist.state != CheckListState::Running {
                continue;
            }
            for component in 1..=s.effective_components() {
                let Some(c) = s.component(component) else {
                    continue;
                };
                if c.selected.is_some() || c.nominating.is_some() {
                    continue;
                }
                let Some(best) = s.checklist.best_valid(component) else {
                    // No valid pair (the one there was failed its nomination): the wait for
                    // a better pair starts again with the next valid one.
                    if let Some(c) = s.component_mut(component) {
                        c.first_valid = None;
                    }
                    continue;
                };
                let better_pending = s.checklist.pairs.iter().any(|p| {
                    p.in_checklist
                        && p.component == component
                        && p.priority > best.priority
                        && p.state.is_pending()
                });
                let waited = c.first_valid.is_some_and(|t| now >= t + timeout);
                if better_pending && !waited {
                    continue;
                }
                let (valid, generator) = (best.id, best.generator);
                // RFC 8445 §8.1.1: repeat the check that produced the valid pair, with
                // USE-CANDIDATE.
                let target = match s.checklist.get(generator) {
                    Some(g) if g.in_checklist => Some(generator),
                    _ => s
                        .checklist
                        .get(valid)
                        .filter(|v| v.in_checklist)
                        .map(|v| v.id),
                };
                let Some(target) = target else {
                    // Nothing to repeat: wait for another valid pair.
                    if let Some(c) = s.component_mut(component) {
                        c.first_valid = None;
                    }
                    continue;
                };
                if let Some(p) = s.checklist.get_mut(target) {
                    p.use_candidate = true;
                    if p.state != PairState::InProgress {
                        p.state = PairState::Waiting;
                    }
                }
                s.checklist.push_triggered(target);
                if let Some(c) = s.component_mut(component) {
                    c.nominating = Some(valid);
                }
                tracing::debug!(component, "nominating");
            }
        }
    }

    /// When the nomination policy next needs to run.
    pub(super) fn nomination_timeout(&self) -> Option<Instant> {
        if self.config.lite || self.role != Role::Controlling {
            return None;
        }
        // Only components that have a valid pair to nominate: a deadline for one whose valid
        // pair has since failed would stay in the past and make drivers spin.
        self.streams
            .iter()
            .filter(|s| s.checklist.state == CheckListState::Running)
            .flat_map(|s| {
                s.components
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| s.checklist.best_valid(*i as u16 + 1).is_some())
                    .map(|(_, c)| c)
            })
            .filter(|c| c.selected.is_none() && c.nominating.is_none())
            .filter_map(|c| c.first_valid)
            .map(|t| t + self.config.nomination_timeout)
            .min()
    }

    /// A valid pair got the nominated flag (RFC 8445 §7.2.5.3.4, §7.3.1.5, §7.3.2). The
    /// selected pair is the nominated pair of highest priority (§8.1.1: a peer using
    /// aggressive nomination may nominate several).
    pub(super) fn on_nominated(&mut self, now: Instant, stream: usize, id: PairId) {
        let Some(s) = self.streams.get(stream) else {
            return;
        };
        let Some(p) = s.checklist.get(id) else { return };
        let component = p.component;
        let Some(best) = s
            .checklist
            .pairs
            .iter()
            .filter(|p| p.valid && p.nominated && p.component == component)
            .max_by_key(|p| p.priority)
        else {
            return;
        };
        let current = s
            .component(component)
            .and_then(|c| c.selected.as_ref())
            .and_then(|p| p.pair);
        if current == Some(best.id) {
            return;
        }
        let (Some(l), Some(r)) = (
            s.local.get(usize::from(best.local)),
            s.remote.get(usize::from(best.remote)),
        ) else {
            return;
        };
        let (local, remote, via, best_id) = (l.cand, r.cand, l.via(), best.id);
        let consent = self.new_consent(now);
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        if let Some(c) = s.component_mut(component) {
            c.selected = Some(Box::new(Path {
                local,
                remote,
                via,
                pair: Some(best_id),
                consent,
            }));
            c.previous = None;
            c.nominating = None;
        }
        self.remove_other_pairs(stream, component);
        // RFC 8445 §12.1: data from a relayed candidate goes over a channel.
        if let Some(r) = via.relay() {
            self.relays.bind_channel(r, now, remote.address);
        }
        if self
            .streams
            .iter()
            .all(|s| s.components.iter().all(|c| c.previous.is_none()))
        {
            self.previous = None;
        }
        tracing::debug!(%local.address, %remote.address, component, "selected pair");
        self.emit(Event::SelectedPair {
            stream: Agent::stream_id(stream),
            component,
            local,
            remote,
        });
    }

    /// RFC 8445 §8.1.2: once a component has a nominated pair, its pairs still to be checked
    /// leave the checklist and the triggered-check queue; checks in flight are cancelled.
    /// Succeeded and Failed pairs stay: checks over them are still answered.
    fn remove_other_pairs(&mut self, stream: usize, component: u16) {
        let Some(s) = self.streams.get(stream) else {
            return;
        };
        let doomed: Vec<(PairId, Option<stun_proto::TransactionId>)> = s
            .checklist
            .pairs
            .iter()
            .filter(|p| {
                p.component == component && p.in_checklist && !p.valid && p.state.is_pending()
            })
            .map(|p| (p.id, p.transaction))
            .collect();
        for (id, tid) in doomed {
            if let Some(tid) = tid {
                self.cancel_check(tid);
            }
            if let Some(s) = self.streams.get_mut(stream) {
                s.checklist.remove(id);
            }
        }
    }

    /// Updates gathering, checklist and connection states, emitting what changed.
    pub(super) fn update_states(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.run_nomination(now);
        self.update_gathering();
        self.update_checklists(now);
        self.release_check_buffers();
        let state = self.compute_state();
        self.set_state(state);
        if state == ConnectionState::Completed {
            self.sweep_tcp();
        }
    }

    /// Once no checklist runs, the buffers of the checking phase go: an agent that lives
    /// for hours keeps only what it needs for consent.
    fn release_check_buffers(&mut self) {
        let running = self
            .streams
            .iter()
            .any(|s| s.checklist.state == CheckListState::Running);
        if running || self.streams.is_empty() {
            return;
        }
        if !self.cancelled.is_empty() || self.cancelled.capacity() > 0 {
            self.cancelled = std::collections::VecDeque::new();
        }
        if self.transactions.is_empty() {
            let config = self.transactions.config().clone();
            self.transactions = stun_proto::transaction::ClientTransactions::new(config);
        }
    }

    fn update_gathering(&mut self) {
        let done = self.gathering.hosts_done && !self.gathering.busy() && !self.relays.busy();
        if !done {
            return;
        }
        self.set_gathering_state(GatheringState::Complete);
        // RFC 8838 §13: end-of-candidates once gathering is over, for each stream, once per
        // generation.
        let ufrag = self.current.local.creds.ufrag.clone();
        for i in 0..self.streams.len() {
            if !self.streams[i].local_eoc {
                self.streams[i].local_eoc = true;
                self.emit(Event::LocalEndOfCandidates {
                    stream: Agent::stream_id(i),
                    ufrag: ufrag.clone(),
                });
            }
        }
    }

    /// RFC 8445 §6.1.2.1, §7.2.5.4 with RFC 8838 §8: Completed when every component has a
    /// nominated pair; Failed when nothing is left to check, some component has no valid
    /// pair, our gathering is over, the peer sent end-of-candidates and none of its mDNS
    /// names is still being resolved; and, when the peer
    /// may still connect to a passive TCP candidate (RFC 6544 §6.2), `tcp_accept_wait` later.
    fn update_checklists(&mut self, now: Instant) {
        let gathered = self.gathering.state == GatheringState::Complete;
        let lite = self.config.lite;
        let accept_wait = self.config.tcp_accept_wait;
        // A candidate whose mDNS name is still being resolved may yet give a pair.
        let resolving: Vec<StreamId> = self.pending_mdns.iter().map(|(s, _)| *s).collect();
        for (i, s) in self.streams.iter_mut().enumerate() {
            if s.checklist.state != CheckListState::Running {
                continue;
            }
            let components = s.effective_components();
            let all_selected =
                (1..=components).all(|c| s.component(c).is_some_and(|c| c.selected.is_some()));
            if all_selected {
                s.checklist.state = CheckListState::Completed;
                continue;
            }
            if lite
                || !gathered
                || !s.remote_eoc
                || !s.checklist.all_done()
                || resolving.contains(&Agent::stream_id(i))
            {
                continue;
            }
            let all_valid = (1..=components).all(|c| s.checklist.best_valid(c).is_some());
            if !all_valid && s.awaits_inbound() {
                let deadline = *s.accept_deadline.get_or_insert(now + accept_wait);
                if now < deadline {
                    continue;
                }
            }
            if !all_valid {
                tracing::debug!("checklist failed");
                s.checklist.state = CheckListState::Failed;
            }
        }
    }

    fn compute_state(&self) -> ConnectionState {
        if self.closed {
            return ConnectionState::Closed;
        }
        let (mut failed, mut disconnected, mut activity) = (false, false, false);
        let (mut all_completed, mut all_connected) =
            (!self.streams.is_empty(), !self.streams.is_empty());
        for s in &self.streams {
            failed |= s.checklist.state == CheckListState::Failed;
            activity |= !s.remote.is_empty() || !s.checklist.pairs.is_empty();
            for component in 1..=s.effective_components() {
                let Some(c) = s.component(component) else {
                    continue;
                };
                // A previous generation's path whose consent was lost is what the restart is
                // replacing: it no longer makes the agent failed (W3C: a restart from failed
                // goes back to checking), it just no longer counts as a path.
                // A restart in progress is checking, not new, even before the peer's new
                // candidates arrive.
                activity |= c.previous.is_some();
                let previous = c.previous.as_ref().filter(|p| !p.consent.lost);
                let path = c.selected.as_ref().or(previous);
                if let Some(p) = path {
                    failed |= p.consent.lost;
                    disconnected |= p.consent.disconnected;
                }
                all_completed &= c.selected.is_some();
                all_connected &= path.is_some() || s.checklist.best_valid(component).is_some();
            }
        }
        if failed {
            ConnectionState::Failed
        } else if disconnected {
            ConnectionState::Disconnected
        } else if all_completed {
            ConnectionState::Completed
        } else if all_connected {
            ConnectionState::Connected
        } else if activity {
            ConnectionState::Checking
        } else {
            ConnectionState::New
        }
    }

    pub(super) fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            tracing::debug!(from = ?self.state, to = ?state, "connection state");
            self.state = state;
            self.emit(Event::ConnectionStateChanged(state));
        }
    }
}
