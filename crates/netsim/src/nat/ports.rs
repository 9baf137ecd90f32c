//! External port choice for new mappings (RFC 4787 §4.2.1).

use rand_chacha::ChaCha20Rng;

use super::config::PortAssignment;
use crate::random;

/// Picks external ports; `is_free` tells whether a port is unused on the external address.
#[derive(Debug)]
pub(crate) struct PortAllocator {
    /// Sequential assignment continues after the last port it assigned.
    next: u16,
}

/// How many random draws to try before falling back to a scan (the range is nearly full).
const RANDOM_TRIES: usize = 32;

impl PortAllocator {
    pub(crate) fn new(range: (u16, u16)) -> Self {
        PortAllocator {
            next: normalise(range).0,
        }
    }

    pub(crate) fn allocate(
        &mut self,
        strategy: PortAssignment,
        range: (u16, u16),
        internal_port: u16,
        rng: &mut ChaCha20Rng,
        is_free: impl Fn(u16) -> bool,
    ) -> Option<u16> {
        let range = normalise(range);
        let port = match strategy {
            PortAssignment::Preserving => {
                if internal_port != 0 && is_free(internal_port) {
                    return Some(internal_port);
                }
                scan(range, internal_port.wrapping_add(1), &is_free)
            }
            PortAssignment::Sequential => scan(range, self.next, &is_free),
            PortAssignment::Random => random_port(range, rng, &is_free),
        }?;
        if strategy == PortAssignment::Sequential {
            self.next = if port >= range.1 { range.0 } else { port + 1 };
        }
        Some(port)
    }
}

/// A non-empty range that never includes port 0.
fn normalise((lo, hi): (u16, u16)) -> (u16, u16) {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    (lo.max(1), hi.max(1))
}

fn span((lo, hi): (u16, u16)) -> u32 {
    u32::from(hi) - u32::from(lo) + 1
}

/// The first free port at or after `start`, wrapping within the range.
fn scan(range: (u16, u16), start: u16, is_free: &impl Fn(u16) -> bool) -> Option<u16> {
    let start = if (range.0..=range.1).contains(&start) {
        start
    } else {
        range.0
    };
    let offset = u32::from(start - range.0);
    (0..span(range))
        .map(|i| range.0 + ((offset + i) % span(range)) as u16)
        .find(|p| is_free(*p))
}

fn random_port(
    range: (u16, u16),
    rng: &mut ChaCha20Rng,
    is_free: &impl Fn(u16) -> bool,
) -> Option<u16> {
    let mut draw = || range.0 + random::up_to(rng, u64::from(span(range) - 1)) as u16;
    for _ in 0..RANDOM_TRIES {
        let port = draw();
        if is_free(port) {
            return Some(port);
        }
    }
    scan(range, draw(), is_free)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(5)
    }

    #[test]
    fn preserving_keeps_port_then_falls_back() {
        let mut a = PortAllocator::new((1024, 65535));
        let p = a.allocate(
            PortAssignment::Preserving,
            (1024, 65535),
            5000,
            &mut rng(),
            |_| true,
        );
        assert_eq!(p, Some(5000));
        let p = a.allocate(
            PortAssignment::Preserving,
            (1024, 65535),
            5000,
            &mut rng(),
            |p| p != 5000,
        );
        assert_eq!(p, Some(5001));
    }

    #[test]
    fn sequential_counts_up_and_wraps() {
        let r = (100, 102);
        let mut a = PortAllocator::new(r);
        let mut g = rng();
        let got: Vec<_> = (0..4)
            .map(|_| a.allocate(PortAssignment::Sequential, r, 7, &mut g, |_| true))
            .collect();
        assert_eq!(got, [Some(100), Some(101), Some(102), Some(100)]);
        assert_eq!(
            a.allocate(PortAssignment::Sequential, r, 7, &mut g, |p| p == 102),
            Some(102)
        );
    }

    #[test]
    fn random_stays_in_range_and_exhaustion_is_none() {
        let r = (2000, 2009);
        let mut a = PortAllocator::new(r);
        let mut g = rng();
        for _ in 0..100 {
            let p = a
                .allocate(PortAssignment::Random, r, 7, &mut g, |_| true)
                .unwrap();
            assert!((2000..=2009).contains(&p));
        }
        assert_eq!(
            a.allocate(PortAssignment::Random, r, 7, &mut g, |p| p == 2003),
            Some(2003)
        );
        assert_eq!(
            a.allocate(PortAssignment::Random, r, 7, &mut g, |_| false),
            None
        );
    }
}
