//! Consent freshness (RFC 7675) and keepalives (RFC 8445 §11) on a path in use.
//!
//! A full agent sends a consent check (a Binding request like any check, with a new
//! transaction ID) at intervals drawn from 0.8 to 1.2 times the basic period (RFC 7675
//! §5.1). Consent lasts 30 s from the last authenticated response; when it expires, sending
//! stops. An ICE-lite agent sends no checks: for it the peer's authenticated checks are the
//! sign of life, measured the same way. Keepalives (Binding indications) go out when nothing
//! else was sent on the path for Tr (§11).

use crate::config::ConsentConfig;
use smallvec::SmallVec;
use std::time::{Duration, Instant};
use stun_proto::TransactionId;

/// Consent checks whose responses we still accept. Older ones are forgotten: a response
/// older than several intervals cannot matter any more.
const OUTSTANDING: usize = 6;

/// What changed after a timer check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsentChange {
    None,
    /// No response for `disconnected_after`.
    Disconnected,
    /// A response came back after a disconnection.
    Reconnected,
    /// No response for `timeout`: consent expired.
    Lost,
}

/// Consent and keepalive state of one path.
#[derive(Clone, Debug)]
pub(crate) struct Consent {
    /// Last authenticated response (full) or authenticated request (lite).
    pub(crate) last_seen: Instant,
    /// When to send the next consent check (full agents).
    pub(crate) next_check: Instant,
    /// When something was last sent on the path, for keepalives.
    pub(crate) last_sent: Instant,
    outstanding: SmallVec<[TransactionId; OUTSTANDING]>,
    pub(crate) disconnected: bool,
    pub(crate) lost: bool,
}

impl Consent {
    /// Consent starts fresh: the path was validated just now (RFC 7675 §5: the successful
    /// check that produced the pair grants the first consent).
    pub(crate) fn new(now: Instant, first_interval: Duration) -> Self {
        Consent {
            last_seen: now,
            next_check: now + first_interval,
            last_sent: now,
            outstanding: SmallVec::new(),
            disconnected: false,
            lost: false,
        }
    }

    /// RFC 7675 §5.1: each interval is drawn from 0.8 to 1.2 times the basic period;
    /// `random` is a uniform draw.
    pub(crate) fn interval(config: &ConsentConfig, random: u32) -> Duration {
        let base = config.interval.as_micros() as u64;
        // 0.8 + 0.4 * random / 2^32, in micro-units.
        let factor = 800_000 + ((400_000u64 * u64::from(random)) >> 32);
        Duration::from_micros(base.saturating_mul(factor) / 1_000_000)
    }

    pub(crate) fn record_check(&mut self, now: Instant, tid: TransactionId, next: Duration) {
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.remove(0);
        }
        self.outstanding.push(tid);
        self.next_check = now + next;
        self.last_sent = now;
    }

    /// True if `tid` is an outstanding consent check.
    pub(crate) fn is_outstanding(&self, tid: &TransactionId) -> bool {
        self.outstanding.contains(tid)
    }

    /// True if `tid` is an outstanding consent check (it is then forgotten).
    pub(crate) fn take(&mut self, tid: &TransactionId) -> bool {
        match self.outstanding.iter().position(|t| t == tid) {
            Some(i) => {
                self.outstanding.remove(i);
                true
            }
            None => false,
        }
    }

    /// Fresh evidence of consent (an authenticated response or, for lite, request).
    pub(crate) fn refresh(&mut self, now: Instant) -> ConsentChange {
        if self.lost {
            return ConsentChange::None;
        }
        self.last_seen = now;
        if std::mem::take(&mut self.disconnected) {
            ConsentChange::Reconnected
        } else {
            ConsentChange::None
        }
    }

    /// Applies the deadlines.
    pub(crate) fn check(&mut self, now: Instant, config: &ConsentConfig) -> ConsentChange {
        if self.lost {
            return ConsentChange::None;
        }
        let silent = now.saturating_duration_since(self.last_seen);
        if silent >= config.timeout {
            self.lost = true;
            return ConsentChange::Lost;
        }
        if silent >= config.disconnected_after && !self.disconnected {
            self.disconnected = true;
            return ConsentChange::Disconnected;
        }
        ConsentChange::None
    }

    /// The next deadline: expiry or disconnection.
    pub(crate) fn deadline(&self, config: &ConsentConfig) -> Option<Instant> {
        if self.lost {
            return None;
        }
        Some(if self.disconnected {
            self.last_seen + config.timeout
        } else {
            self.last_seen + config.disconnected_after.min(config.timeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_within_rfc7675_bounds() {
        let c = ConsentConfig::default();
        assert_eq!(Consent::interval(&c, 0), Duration::from_secs(4));
        let max = Consent::interval(&c, u32::MAX);
        assert!(max < Duration::from_secs(6) && max > Duration::from_millis(5999));
        assert_eq!(Consent::interval(&c, 1 << 31), Duration::from_secs(5));
    }

    #[test]
    fn expiry_sequence() {
        let c = ConsentConfig::default();
        let t0 = Instant::now();
        let mut s = Consent::new(t0, Duration::from_secs(5));
        assert_eq!(
            s.check(t0 + Duration::from_secs(7), &c),
            ConsentChange::None
        );
        assert_eq!(s.deadline(&c), Some(t0 + Duration::from_secs(8)));
        assert_eq!(
            s.check(t0 + Duration::from_secs(8), &c),
            ConsentChange::Disconnected
        );
        assert_eq!(
            s.refresh(t0 + Duration::from_secs(9)),
            ConsentChange::Reconnected
        );
        assert_eq!(
            s.check(t0 + Duration::from_secs(38), &c),
            ConsentChange::Disconnected
        );
        assert_eq!(
            s.check(t0 + Duration::from_secs(39), &c),
            ConsentChange::Lost
        );
        assert_eq!(s.refresh(t0 + Duration::from_secs(40)), ConsentChange::None);
        assert!(s.lost);
        assert_eq!(s.deadline(&c), None);
    }

    #[test]
    fn outstanding_checks_are_bounded() {
        let t0 = Instant::now();
        let mut s = Consent::new(t0, Duration::from_secs(5));
        for i in 0..10u8 {
            s.record_check(t0, TransactionId::new([i; 12]), Duration::from_secs(5));
        }
        assert!(!s.take(&TransactionId::new([0; 12])), "oldest forgotten");
        assert!(s.take(&TransactionId::new([9; 12])));
        assert!(!s.take(&TransactionId::new([9; 12])), "taken once");
    }
}
