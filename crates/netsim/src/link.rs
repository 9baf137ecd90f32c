//! Links: what happens to a datagram between two points (latency, jitter, loss, duplication,
//! reordering, MTU, rate limit).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use smallvec::SmallVec;

use crate::random;
use crate::stats::{DropReason, Stats};

/// Identifies a link of a [`Sim`](crate::Sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub(crate) usize);

/// How a link treats the datagrams it carries.
///
/// A link is symmetric: both directions use the same configuration but keep their own
/// rate-limit queue. Every datagram takes `latency` plus a uniform random extra delay in
/// `0..=jitter`; because each datagram draws its own jitter, jitter alone can reorder
/// datagrams (as Linux netem does). Probabilities are in `0.0..=1.0`.
///
/// Changing a link's configuration mid-run (for example setting [`down`](Self::down) to cut
/// it) affects datagrams offered afterwards; datagrams already on the wire still arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way base delay.
    pub latency: Duration,
    /// Maximum extra one-way delay, drawn uniformly per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice (the copy draws its own jitter).
    pub duplicate: f64,
    /// Probability that a datagram is held back by [`reorder_delay`](Self::reorder_delay), so
    /// that datagrams sent after it overtake it.
    pub reorder: f64,
    /// Extra delay of a held-back datagram.
    pub reorder_delay: Duration,
    /// Largest IP packet (IP + transport headers + payload) the link carries; larger ones are
    /// dropped, never fragmented.
    pub mtu: usize,
    /// Optional bandwidth limit with a bounded queue.
    pub rate_limit: Option<RateLimit>,
    /// A cut link drops everything offered to it.
    pub down: bool,
}

impl Default for LinkConfig {
    /// A perfect link: no delay, no loss, MTU 1500, no rate limit.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            mtu: 1500,
            rate_limit: None,
            down: false,
        }
    }
}

impl LinkConfig {
    /// A perfect link with a fixed one-way `latency`.
    #[must_use]
    pub fn with_latency(latency: Duration) -> Self {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }
}

/// A bandwidth limit: datagrams are serialised one after another at `bytes_per_second`, and
/// wait in a queue of at most `queue_bytes` (the datagram being serialised included). A
/// datagram that does not fit in the queue is dropped ([`DropReason::QueueFull`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Link capacity in bytes (of IP packets) per second. Must be non-zero.
    pub bytes_per_second: u64,
    /// Queue capacity in bytes.
    pub queue_bytes: usize,
}

impl RateLimit {
    fn serialisation_time(&self, len: usize) -> Duration {
        let nanos = (len as u128 * 1_000_000_000) / u128::from(self.bytes_per_second.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The two directions of a link. `Up` goes from a host towards its realm, or from a NAT
/// towards its parent realm; `Down` goes the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Direction {
    Up,
    Down,
}

/// What a link is attached to; decides where a datagram goes when it comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEnds {
    /// A host's interface (index into the host's interfaces) and that interface's realm.
    Host { host: usize, interface: usize },
    /// A NAT's outside interface and its parent realm.
    NatUplink { nat: usize },
}

/// The rate-limit queue of one direction: departure times and sizes of queued datagrams.
#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<(Instant, usize)>,
    bytes: usize,
}

impl Queue {
    /// Offer `len` bytes at `now`; returns when the datagram has been serialised onto the wire,
    /// or `None` when the queue is full.
    fn offer(&mut self, now: Instant, len: usize, limit: &RateLimit) -> Option<Instant> {
        while let Some(&(departure, size)) = self.entries.front() {
            if departure > now {
                break;
            }
            self.entries.pop_front();
            self.bytes -= size;
        }
        if self.bytes + len > limit.queue_bytes {
            return None;
        }
        let start = self.entries.back().map_or(now, |&(d, _)| d.max(now));
        let departure = start + limit.serialisation_time(len);
        self.entries.push_back((departure, len));
        self.bytes += len;
        Some(departure)
    }
}

/// The arrival times of the copies of one datagram (two when duplicated).
pub(crate) type Arrivals = SmallVec<[Instant; 2]>;

/// A link between two points of the topology.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    pub(crate) ends: LinkEnds,
    up: Queue,
    down: Queue,
    rng: ChaCha20Rng,
    pub(crate) stats: Stats,
}

impl Link {
    pub(crate) fn new(config: LinkConfig, ends: LinkEnds, rng: ChaCha20Rng) -> Self {
        Link {
            config,
            ends,
            up: Queue::default(),
            down: Queue::default(),
            rng,
            stats: Stats::default(),
        }
    }

    /// The current configuration.
    #[must_use]
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Replace the configuration; applies to datagrams offered from now on.
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// Counters: `sent` = offered, `delivered` = copies that came out.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Offer an IP packet of `len` bytes at `now` in direction `dir`: either the arrival times
    /// of its copies at the far end, or why the link dropped it. Counts `sent` and drops;
    /// `delivered` is counted by the caller when a copy comes out.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        len: usize,
        dir: Direction,
    ) -> Result<Arrivals, DropReason> {
        self.stats.sent += 1;
        let result = self.schedule(now, len, dir);
        match &result {
            Ok(arrivals) => self.stats.duplicated += arrivals.len() as u64 - 1,
            Err(reason) => self.stats.count_drop(*reason),
        }
        result
    }

    fn schedule(
        &mut self,
        now: Instant,
        len: usize,
        dir: Direction,
    ) -> Result<Arrivals, DropReason> {
        // Draw every random number up front, always the same count, so that changing one
        // property (say, loss) does not change the jitter a later datagram gets.
        let lost = random::chance(&mut self.rng, self.config.loss);
        let duplicated = random::chance(&mut self.rng, self.config.duplicate);
        let held_back = random::chance(&mut self.rng, self.config.reorder);
        let jitter = [self.jitter(), self.jitter()];

        if self.config.down {
            return Err(DropReason::LinkDown);
        }
        if len > self.config.mtu {
            return Err(DropReason::Mtu);
        }
        if lost {
            return Err(DropReason::Loss);
        }
        let on_wire = match &self.config.rate_limit {
            Some(limit) => {
                let queue = match dir {
                    Direction::Up => &mut self.up,
                    Direction::Down => &mut self.down,
                };
                queue.offer(now, len, limit).ok_or(DropReason::QueueFull)?
            }
            None => now,
        };
        let mut first = on_wire + self.config.latency + jitter[0];
        if held_back {
            first += self.config.reorder_delay;
        }
        let mut arrivals = Arrivals::new();
        arrivals.push(first);
        if duplicated {
            arrivals.push(on_wire + self.config.latency + jitter[1]);
        }
        Ok(arrivals)
    }

    fn jitter(&mut self) -> Duration {
        let max = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random::up_to(&mut self.rng, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    fn link(config: LinkConfig) -> Link {
        Link::new(
            config,
            LinkEnds::NatUplink { nat: 0 },
            ChaCha20Rng::seed_from_u64(9),
        )
    }

    #[test]
    fn latency_and_jitter_bound_arrival() {
        let t0 = base();
        let mut l = link(LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..LinkConfig::default()
        });
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let a = l.offer(t0, 100, Direction::Up).unwrap();
            assert_eq!(a.len(), 1);
            let d = a[0] - t0;
            assert!(d >= Duration::from_millis(20) && d <= Duration::from_millis(25));
            distinct.insert(d);
        }
        assert!(distinct.len() > 100, "jitter must vary the delay");
    }

    #[test]
    fn mtu_and_down_drop() {
        let t0 = base();
        let mut l = link(LinkConfig {
            mtu: 576,
            ..LinkConfig::default()
        });
        assert!(l.offer(t0, 576, Direction::Up).is_ok());
        assert_eq!(l.offer(t0, 577, Direction::Up), Err(DropReason::Mtu));
        let mut cut = l.config().clone();
        cut.down = true;
        l.set_config(cut);
        assert_eq!(l.offer(t0, 10, Direction::Down), Err(DropReason::LinkDown));
        assert_eq!(l.stats().sent, 3);
        assert_eq!(l.stats().dropped(DropReason::Mtu), 1);
        assert_eq!(l.stats().dropped(DropReason::LinkDown), 1);
    }

    #[test]
    fn rate_limit_serialises_and_bounds_queue() {
        let t0 = base();
        let mut l = link(LinkConfig {
            rate_limit: Some(RateLimit {
                bytes_per_second: 1000,
                queue_bytes: 250,
            }),
            ..LinkConfig::default()
        });
        // 100 bytes at 1000 B/s take 100 ms each.
        let a = l.offer(t0, 100, Direction::Up).unwrap();
        let b = l.offer(t0, 100, Direction::Up).unwrap();
        assert_eq!(a[0] - t0, Duration::from_millis(100));
        assert_eq!(b[0] - t0, Duration::from_millis(200));
        assert_eq!(l.offer(t0, 100, Direction::Up), Err(DropReason::QueueFull));
        // The other direction has its own queue.
        assert!(l.offer(t0, 100, Direction::Down).is_ok());
        // Once the first has left, there is room again; it queues behind the second.
        let t1 = t0 + Duration::from_millis(100);
        let c = l.offer(t1, 100, Direction::Up).unwrap();
        assert_eq!(c[0] - t0, Duration::from_millis(300));
    }

    #[test]
    fn reorder_holds_back() {
        let t0 = base();
        let mut l = link(LinkConfig {
            latency: Duration::from_millis(1),
            reorder: 1.0,
            reorder_delay: Duration::from_millis(7),
            ..LinkConfig::default()
        });
        let a = l.offer(t0, 10, Direction::Up).unwrap();
        assert_eq!(a[0] - t0, Duration::from_millis(8));
    }

    #[test]
    fn duplicate_makes_two_copies() {
        let t0 = base();
        let mut l = link(LinkConfig {
            duplicate: 1.0,
            ..LinkConfig::default()
        });
        let a = l.offer(t0, 10, Direction::Up).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(l.stats().duplicated, 1);
    }
}
