//! The allocation table: a slab of allocations, the 5-tuple index, and the expiry timers.
//!
//! # Timers
//!
//! One binary heap of `(deadline, slot, generation)` serves every allocation, with lazy
//! deletion: each allocation remembers the deadline of its one live entry
//! ([`Allocation::timer`]). Moving a deadline *earlier* pushes a new entry; moving it later
//! (a refresh) pushes nothing — the old entry fires early, finds nothing expired, and
//! pushes the next deadline. An entry whose slot was freed (generation changed) or whose
//! deadline is no longer the allocation's is skipped when popped. So the heap holds about
//! one entry per allocation, refreshes cost nothing, and 100,000 allocations cost
//! `O(log n)` per expiry.

use super::Millis;
use super::allocation::{Allocation, FiveTuple};
use super::hasher::{KeyedMap, KeyedState};
use core::cmp::Reverse;
use std::collections::BinaryHeap;

/// No timer scheduled.
pub(crate) const NEVER: Millis = Millis::MAX;

#[derive(Debug)]
struct Slot {
    generation: u32,
    alloc: Option<Allocation>,
}

/// Allocations by slot and by 5-tuple, with their timers.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tuple: KeyedMap<FiveTuple, u32>,
    timers: BinaryHeap<Reverse<(Millis, u32, u32)>>,
}

impl Table {
    pub(crate) fn new(hasher: KeyedState) -> Table {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: KeyedMap::with_hasher(hasher),
            timers: BinaryHeap::new(),
        }
    }

    /// Number of allocations.
    pub(crate) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// The slot the next [`insert`](Self::insert) will use, so the relay ports can be
    /// marked with it first.
    pub(crate) fn next_slot(&self) -> u32 {
        match self.free.last() {
            Some(&id) => id,
            None => self.slots.len() as u32,
        }
    }

    /// Adds an allocation; returns its slot. The caller has checked that the 5-tuple is
    /// free.
    pub(crate) fn insert(&mut self, alloc: Allocation) -> u32 {
        let tuple = alloc.five_tuple;
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize].alloc = Some(alloc);
                id
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    alloc: Some(alloc),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_tuple.insert(tuple, id);
        self.schedule(id);
        id
    }

    /// Removes an allocation; its timer entries become stale.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Allocation> {
        let slot = self.slots.get_mut(id as usize)?;
        let alloc = slot.alloc.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.by_tuple.remove(&alloc.five_tuple);
        self.free.push(id);
        Some(alloc)
    }

    /// The slot of the allocation on `tuple` (one hash lookup).
    #[inline]
    pub(crate) fn find(&self, tuple: &FiveTuple) -> Option<u32> {
        self.by_tuple.get(tuple).copied()
    }

    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&Allocation> {
        self.slots.get(id as usize)?.alloc.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Allocation> {
        self.slots.get_mut(id as usize)?.alloc.as_mut()
    }

    /// Makes sure a timer entry exists at the allocation's earliest deadline, pushing one
    /// only if that deadline is earlier than the live entry's.
    pub(crate) fn schedule(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let generation = slot.generation;
        let Some(alloc) = slot.alloc.as_mut() else {
            return;
        };
        let deadline = alloc.next_deadline();
        if deadline < alloc.timer {
            alloc.timer = deadline;
            self.timers.push(Reverse((deadline, id, generation)));
        }
    }

    /// Pops the next allocation whose live timer is due at `now`, skipping stale entries.
    /// The allocation's timer is cleared; call [`schedule`](Self::schedule) after
    /// processing it.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<u32> {
        while let Some(&Reverse((deadline, id, generation))) = self.timers.peek() {
            if deadline > now {
                return None;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(id as usize) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            if let Some(alloc) = slot.alloc.as_mut().filter(|a| a.timer == deadline) {
                alloc.timer = NEVER;
                return Some(id);
            }
        }
        None
    }

    /// The earliest timer entry (possibly stale: waking early is harmless).
    pub(crate) fn next_timer(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Timer entries held, for tests of the lazy deletion.
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::allocation::Relay;
    use super::*;
    use smallvec::SmallVec;
    use stun_proto::credentials::LongTermKey;
    use stun_proto::{TransactionId, TransportProtocol};

    fn alloc(port: u16, expires: Millis) -> Allocation {
        Allocation {
            five_tuple: FiveTuple {
                client: format!("192.0.2.1:{port}").parse().unwrap(),
                server: "192.0.2.100:3478".parse().unwrap(),
                transport: TransportProtocol::Udp,
            },
            relays: [
                Some(Relay {
                    addr: "192.0.2.100:50000".parse().unwrap(),
                    expires,
                }),
                None,
            ],
            user: 0,
            key: LongTermKey::from_bytes(&[0; 16]).unwrap(),
            allocate_tid: TransactionId::default(),
            reservation_token: None,
            address_error: None,
            active: true,
            relay_transport: TransportProtocol::Udp,
            timer: NEVER,
            permissions: SmallVec::new(),
            channels: SmallVec::new(),
        }
    }

    #[test]
    fn timers_fire_in_order_and_skip_stale_entries() {
        let mut t = Table::new(KeyedState::new(0, 0));
        let a = t.insert(alloc(1, 1000));
        let b = t.insert(alloc(2, 500));
        assert_eq!(t.next_timer(), Some(500));
        assert_eq!(t.pop_due(499), None);
        assert_eq!(t.pop_due(500), Some(b));
        // Refresh `a` later: no new entry; the old one fires, the owner reschedules.
        t.get_mut(a).unwrap().relays[0].as_mut().unwrap().expires = 5000;
        t.schedule(a);
        assert_eq!(t.timer_entries(), 1);
        assert_eq!(t.pop_due(1000), Some(a));
        t.schedule(a);
        assert_eq!(t.next_timer(), Some(5000));
        // Moving a deadline earlier pushes an entry; the later one goes stale.
        t.get_mut(a).unwrap().relays[0].as_mut().unwrap().expires = 2000;
        t.schedule(a);
        assert_eq!(t.timer_entries(), 2);
        assert_eq!(t.pop_due(10_000), Some(a));
        assert_eq!(t.pop_due(10_000), None, "the 5000 entry is stale");
        // A removed allocation's entries are skipped, and the slot is reused.
        t.schedule(a);
        let removed = t.remove(a).unwrap();
        assert_eq!(removed.five_tuple.client.port(), 1);
        assert_eq!(t.find(&removed.five_tuple), None);
        assert_eq!(t.pop_due(u64::MAX - 1), None);
        assert_eq!(t.next_slot(), a);
        assert_eq!(t.insert(alloc(3, 10)), a);
        assert_eq!(t.len(), 2);
    }
}
