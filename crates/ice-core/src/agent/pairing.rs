//! Forming pairs (RFC 8445 §6.1.2.2–6.1.2.6) as candidates trickle in (RFC 8838 §10–12).

use super::Agent;
use crate::candidate::Foundation;
use crate::config::Role;
use crate::pair::{CandidatePair, PairId, PairState};
use crate::priority::pair_priority;
use crate::stream::Stream;

/// A pair's foundation: the local and remote candidates' foundations (RFC 8445 §6.1.2.6).
pub(super) type PairFoundation = (Foundation, Foundation);

impl Agent {
    /// RFC 8445 §6.1.2.3: G is the controlling agent's candidate priority.
    pub(super) fn pair_priority_for(&self, local: u32, remote: u32) -> u64 {
        match self.role {
            Role::Controlling => pair_priority(local, remote),
            Role::Controlled => pair_priority(remote, local),
        }
    }

    pub(super) fn pair_foundation(s: &Stream, p: &CandidatePair) -> Option<PairFoundation> {
        Some((
            s.local.get(usize::from(p.local))?.cand.foundation,
            s.remote.get(usize::from(p.remote))?.cand.foundation,
        ))
    }

    /// RFC 8838 §10: a new local candidate is paired with the remote candidates known for
    /// its component; a reflexive one is replaced by its base first (§10 item 4), which
    /// makes it redundant with the base's pairs in the usual case.
    pub(super) fn pair_new_local(&mut self, stream: usize, local: u16) {
        if self.config.lite {
            return; // RFC 8445 §6.2: lite agents form no checklists.
        }
        let Some(s) = self.streams.get(stream) else {
            return;
        };
        let Some(base) = s.base_of(local) else { return };
        let Some(l) = s.local.get(usize::from(base)) else {
            return;
        };
        if !Stream::checkable(&l.cand) {
            return; // RFC 6544 §6.2: pairs of passive candidates are pruned.
        }
        let remotes: Vec<u16> = s
            .remote
            .iter()
            .enumerate()
            .filter(|(_, r)| Stream::can_pair(&l.cand, &r.cand))
            .map(|(i, _)| i as u16)
            .collect();
        for remote in remotes {
            self.add_pair(stream, base, remote, false);
        }
    }

    /// RFC 8838 §11: a new remote candidate is paired with the local candidates known for
    /// its component (their bases, §11 item 3).
    pub(super) fn pair_new_remote(&mut self, stream: usize, remote: u16) {
        if self.config.lite {
            return;
        }
        let Some(s) = self.streams.get(stream) else {
            return;
        };
        let Some(r) = s.remote.get(usize::from(remote)) else {
            return;
        };
        let locals: Vec<u16> = s
            .local
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                !l.cand.kind.is_reflexive()
                    && Stream::checkable(&l.cand)
                    && Stream::can_pair(&l.cand, &r.cand)
            })
            .map(|(i, _)| i as u16)
            .collect();
        for local in locals {
            self.add_pair(stream, local, remote, false);
        }
    }

    /// Adds a pair to a checklist. Redundant pairs are pruned (RFC 8445 §6.1.2.4), the pair
    /// limit is enforced (§6.1.2.5, RFC 8838 §10 item 6), and the initial state follows RFC
    /// 8838 §12. With `triggered` the pair is Waiting and queued for a triggered check
    /// instead (RFC 8445 §7.3.1.4). Returns the pair, new or existing.
    pub(super) fn add_pair(
        &mut self,
        stream: usize,
        local: u16,
        remote: u16,
        triggered: bool,
    ) -> Option<PairId> {
        let s = self.streams.get(stream)?;
        if let Some(id) = s.checklist.find(local, remote) {
            return Some(id);
        }
        let l = s.local.get(usize::from(local)).filter(|l| !l.retired)?.cand;
        let r = s.remote.get(usize::from(remote))?.cand;
        let priority = self.pair_priority_for(l.priority, r.priority);
        if !self.make_room(stream, priority) {
            self.stats.pairs_capped += 1;
            return None;
        }
        let state = if triggered {
            PairState::Waiting
        } else {
            self.initial_state(stream, (l.foundation, r.foundation), l.component, priority)
        };
        let s = self.streams.get_mut(stream)?;
        let id = s.checklist.allocate_id();
        let mut pair = CandidatePair::new(id, local, remote, l.component, priority);
        pair.state = state;
        s.checklist.insert(pair);
        if triggered {
            s.checklist.push_triggered(id);
        }
        Some(id)
    }

    /// RFC 8445 §6.1.2.5 with RFC 8838 §10 item 6: when the checklist set is full, drop a
    /// Failed pair, else a lower-priority pair not yet checked. False if neither exists.
    fn make_room(&mut self, stream: usize, priority: u64) -> bool {
        let total: usize = self
            .streams
            .iter()
            .map(|s| s.checklist.pairs.iter().filter(|p| p.in_checklist).count())
            .sum();
        if total < self.config.max_pairs {
            return true;
        }
        // Look in this stream first, then in the others: the limit is for the whole set,
        // and discarding "evenly" means taking from where the new pair goes.
        let order = std::iter::once(stream).chain((0..self.streams.len()).filter(|&i| i != stream));
        for i in order.clone() {
            let list = &self.streams[i].checklist;
            if let Some(p) = list
                .pairs
                .iter()
                .rfind(|p| p.in_checklist && p.state == PairState::Failed && !p.valid)
            {
                let id = p.id;
                self.streams[i].checklist.remove(id);
                return true;
            }
        }
        for i in order {
            let list = &self.streams[i].checklist;
            if let Some(p) = list
                .pairs
                .iter()
                .filter(|p| {
                    p.in_checklist
                        && matches!(p.state, PairState::Frozen | PairState::Waiting)
                        && p.priority < priority
                })
                .min_by_key(|p| p.priority)
            {
                let id = p.id;
                self.streams[i].checklist.remove(id);
                return true;
            }
        }
        false
    }

    /// RFC 8838 §12: Waiting if a pair of the same foundation has succeeded (rule 2) or the
    /// new pair is the topmost of its foundation — first checklist, lowest component,
    /// highest priority (rule 1); Frozen otherwise (rule 3).
    fn initial_state(
        &self,
        stream: usize,
        foundation: PairFoundation,
        component: u16,
        priority: u64,
    ) -> PairState {
        let new_key = (stream, component, core::cmp::Reverse(priority));
        let mut topmost = true;
        for (i, s) in self.streams.iter().enumerate() {
            for p in s.checklist.pairs.iter().filter(|p| p.in_checklist) {
                if Agent::pair_foundation(s, p) != Some(foundation) {
                    continue;
                }
                if p.state == PairState::Succeeded {
                    return PairState::Waiting;
                }
                if (i, p.component, core::cmp::Reverse(p.priority)) < new_key {
                    topmost = false;
                }
            }
        }
        if topmost {
            PairState::Waiting
        } else {
            PairState::Frozen
        }
    }

    /// RFC 8445 §7.2.5.3.3: a success unfreezes every Frozen pair of the same foundation in
    /// every checklist.
    pub(super) fn unfreeze_foundation(&mut self, foundation: PairFoundation) {
        for s in &mut self.streams {
            let ids: Vec<PairId> = s
                .checklist
                .pairs
                .iter()
                .filter(|p| {
                    p.state == PairState::Frozen && Agent::pair_foundation(s, p) == Some(foundation)
                })
                .map(|p| p.id)
                .collect();
            for id in ids {
                if let Some(p) = s.checklist.get_mut(id) {
                    p.state = PairState::Waiting;
                }
            }
        }
    }

    /// True if some pair of this foundation is Waiting or In-Progress anywhere in the set.
    pub(super) fn foundation_active(&self, foundation: PairFoundation) -> bool {
        self.streams.iter().any(|s| {
            s.checklist.pairs.iter().any(|p| {
                p.in_checklist
                    && matches!(p.state, PairState::Waiting | PairState::InProgress)
                    && Agent::pair_foundation(s, p) == Some(foundation)
            })
        })
    }

    /// Recomputes the pair priorities of a stream (after a role switch or a candidate's
    /// priority changed) and re-sorts its checklist.
    pub(super) fn reprioritize(&mut self, stream: usize) {
        let role = self.role;
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        let (local, remote) = (&s.local, &s.remote);
        for p in &mut s.checklist.pairs {
            let (Some(l), Some(r)) = (
                local.get(usize::from(p.local)),
                remote.get(usize::from(p.remote)),
            ) else {
                continue;
            };
            p.priority = match role {
                Role::Controlling => pair_priority(l.cand.priority, r.cand.priority),
                Role::Controlled => pair_priority(r.cand.priority, l.cand.priority),
            };
        }
        s.checklist.sort();
    }
}
