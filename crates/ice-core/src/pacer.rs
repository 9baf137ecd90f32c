//! One pacing clock shared by many agents (RFC 8445 §14.2).

use std::time::{Duration, Instant};

/// The global pace for new STUN transactions of all agents in a process.
///
/// RFC 8445 §14.2: "the combination of all transactions from all agents (if a given
/// implementation runs several concurrent agents) MUST NOT be sent more often than once
/// every 5 ms". Pass one `Pacer` to [`Agent::handle_timeout_paced`](crate::Agent::handle_timeout_paced)
/// of every agent (or let [`AgentSet`](crate::AgentSet) do it): each new check or gathering
/// transaction takes a slot; an agent refused a slot waits for the next one.
#[derive(Clone, Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
    granted: u64,
}

impl Default for Pacer {
    /// The RFC's 5 ms.
    fn default() -> Self {
        Pacer::new(Duration::from_millis(5))
    }
}

impl Pacer {
    /// A pacer granting one slot per `interval`.
    pub fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            next: None,
            granted: 0,
        }
    }

    /// Takes a slot if one is free at `now`.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if self.next.is_some_and(|n| now < n) {
            return false;
        }
        self.next = Some(now + self.interval);
        self.granted += 1;
        true
    }

    /// When the next slot frees up; `None` if one is free now or never was taken.
    pub fn next_slot(&self) -> Option<Instant> {
        self.next
    }

    /// Slots granted so far.
    pub fn granted(&self) -> u64 {
        self.granted
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_per_interval() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert!(p.try_acquire(t0));
        assert!(!p.try_acquire(t0 + Duration::from_millis(4)));
        assert_eq!(p.next_slot(), Some(t0 + Duration::from_millis(5)));
        assert!(p.try_acquire(t0 + Duration::from_millis(5)));
        assert_eq!(p.granted(), 2);
    }
}
