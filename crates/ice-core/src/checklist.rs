//! A checklist (RFC 8445 §6.1.2): the pairs of one data stream in priority order, its
//! triggered-check queue (§6.1.4.1) and its state (§6.1.2.1).

use crate::pair::{CandidatePair, PairId, PairState};
use std::collections::VecDeque;

/// The state of a checklist (RFC 8445 §6.1.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckListState {
    /// Neither completed nor failed.
    Running,
    /// Every component has a nominated pair.
    Completed,
    /// Some component cannot get a valid pair.
    Failed,
}

/// The pairs of one stream, highest priority first.
#[derive(Debug)]
pub(crate) struct CheckList {
    pub(crate) pairs: Vec<CandidatePair>,
    /// RFC 8445 §6.1.4.1: pairs to check at the next opportunity, first in first out.
    pub(crate) triggered: VecDeque<PairId>,
    pub(crate) state: CheckListState,
    next_id: u32,
}

impl CheckList {
    pub(crate) fn new() -> Self {
        CheckList {
            pairs: Vec::new(),
            triggered: VecDeque::new(),
            state: CheckListState::Running,
            next_id: 0,
        }
    }

    pub(crate) fn allocate_id(&mut self) -> PairId {
        let id = PairId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    pub(crate) fn get(&self, id: PairId) -> Option<&CandidatePair> {
        self.pairs.iter().find(|p| p.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: PairId) -> Option<&mut CandidatePair> {
        self.pairs.iter_mut().find(|p| p.id == id)
    }

    /// The pair of these two candidates.
    pub(crate) fn find(&self, local: u16, remote: u16) -> Option<PairId> {
        self.pairs
            .iter()
            .find(|p| p.local == local && p.remote == remote)
            .map(|p| p.id)
    }

    /// Inserts keeping the order: RFC 8445 §6.1.2.3 sorts by decreasing priority.
    pub(crate) fn insert(&mut self, pair: CandidatePair) {
        let at = self
            .pairs
            .iter()
            .position(|p| p.priority < pair.priority)
            .unwrap_or(self.pairs.len());
        // Checklists are small and long-lived: grow one by one, do not double.
        self.pairs.reserve_exact(1);
        self.pairs.insert(at, pair);
    }

    /// Re-sorts after priorities changed (a role switch, a prflx candidate upgraded).
    pub(crate) fn sort(&mut self) {
        self.pairs.sort_by_key(|p| core::cmp::Reverse(p.priority));
    }

    pub(crate) fn remove(&mut self, id: PairId) -> Option<CandidatePair> {
        self.triggered.retain(|&t| t != id);
        let at = self.pairs.iter().position(|p| p.id == id)?;
        Some(self.pairs.remove(at))
    }

    /// RFC 8445 §7.3.1.4: enqueue unless already queued.
    pub(crate) fn push_triggered(&mut self, id: PairId) {
        if !self.triggered.contains(&id) {
            self.triggered.push_back(id);
        }
    }

    /// Pops the next triggered pair that still exists and is Waiting.
    pub(crate) fn pop_triggered(&mut self) -> Option<PairId> {
        while let Some(id) = self.triggered.pop_front() {
            if self.get(id).is_some_and(|p| p.state == PairState::Waiting) {
                return Some(id);
            }
        }
        None
    }

    /// RFC 8445 §6.1.4.2 step 3: the highest-priority Waiting pair, the lowest component
    /// among equal priorities.
    pub(crate) fn best_waiting(&self) -> Option<PairId> {
        self.pairs
            .iter()
            .filter(|p| p.in_checklist && p.state == PairState::Waiting)
            .min_by_key(|p| (core::cmp::Reverse(p.priority), p.component))
            .map(|p| p.id)
    }

    pub(crate) fn count(&self, state: PairState) -> usize {
        self.pairs
            .iter()
            .filter(|p| p.in_checklist && p.state == state)
            .count()
    }

    /// True when no pair of the checklist can still produce a result (RFC 8445 §7.2.5.4).
    pub(crate) fn all_done(&self) -> bool {
        self.pairs
            .iter()
            .filter(|p| p.in_checklist)
            .all(|p| !p.state.is_pending())
    }

    /// The valid pair with the highest priority for a component.
    pub(crate) fn best_valid(&self, component: u16) -> Option<&CandidatePair> {
        self.pairs
            .iter()
            .filter(|p| p.valid && p.component == component)
            .max_by_key(|p| p.priority)
    }

    /// The valid pair a check of `generator` produced.
    pub(crate) fn valid_generated_by(&self, generator: PairId) -> Option<PairId> {
        self.pairs
            .iter()
            .filter(|p| p.valid && p.generator == generator)
            .max_by_key(|p| p.priority)
            .map(|p| p.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(list: &mut CheckList, priority: u64, component: u16) -> PairId {
        let id = list.allocate_id();
        list.insert(CandidatePair::new(id, 0, id.0 as u16, component, priority));
        id
    }

    #[test]
    fn ordering_and_selection() {
        let mut l = CheckList::new();
        let a = pair(&mut l, 10, 1);
        let b = pair(&mut l, 30, 2);
        let c = pair(&mut l, 30, 1);
        let order: Vec<_> = l.pairs.iter().map(|p| p.priority).collect();
        assert_eq!(order, [30, 30, 10]);
        assert_eq!(l.best_waiting(), None, "all Frozen");
        for id in [a, b, c] {
            l.get_mut(id).unwrap().state = PairState::Waiting;
        }
        assert_eq!(
            l.best_waiting(),
            Some(c),
            "equal priority: lowest component"
        );
        l.push_triggered(a);
        l.push_triggered(a);
        assert_eq!(l.triggered.len(), 1);
        l.get_mut(a).unwrap().state = PairState::Succeeded;
        assert_eq!(l.pop_triggered(), None, "only Waiting pairs are popped");
        assert!(!l.all_done());
        l.remove(b);
        l.remove(c);
        assert!(l.all_done());
    }
}
