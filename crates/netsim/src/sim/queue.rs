//! The event queue: events ordered by time, then by the order they were scheduled in.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::link::Direction;
use crate::packet::Packet;

/// Something that happens at an instant.
#[derive(Debug)]
pub(crate) enum Event {
    /// A node's `poll_timeout` deadline.
    Timer { node: usize },
    /// A packet comes out of one end of a link.
    LinkExit {
        link: usize,
        dir: Direction,
        packet: Packet,
    },
    /// A TCP connection's deadline (retransmission, keepalive, TIME-WAIT).
    TcpTimer { conn: u64 },
}

#[derive(Debug)]
pub(crate) struct Scheduled {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) event: Event,
}

// Ordered by (at, seq) only: the sequence number is unique, so this is a total order and
// two events at the same instant run in the order they were scheduled. Determinism rests on it.
impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
}

impl EventQueue {
    /// Schedule `event` at `at`; returns its sequence number.
    pub(crate) fn push(&mut self, at: Instant, event: Event) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Scheduled { at, seq, event }));
        seq
    }

    pub(crate) fn peek(&self) -> Option<&Scheduled> {
        self.heap.peek().map(|r| &r.0)
    }

    pub(crate) fn pop(&mut self) -> Option<Scheduled> {
        self.heap.pop().map(|r| r.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn orders_by_time_then_sequence() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut q = EventQueue::default();
        let later = q.push(t0 + Duration::from_millis(5), Event::Timer { node: 0 });
        let first = q.push(t0, Event::Timer { node: 1 });
        let second = q.push(t0, Event::Timer { node: 2 });
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|s| s.seq)).collect();
        assert_eq!(order, [first, second, later]);
    }
}
