//! Small helpers over the seeded generator.
//!
//! Every random element of a run (each link, each NAT) owns its own `ChaCha20Rng`, seeded
//! from the simulator's generator when the element is created. A run is therefore a pure
//! function of the seed and the scenario, and the draws of one link do not shift when traffic
//! on another link changes.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A child generator whose seed is drawn from `parent`.
pub(crate) fn child(parent: &mut ChaCha20Rng) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    parent.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// A uniform number in `0..=max`.
pub(crate) fn up_to(rng: &mut ChaCha20Rng, max: u64) -> u64 {
    let Some(span) = max.checked_add(1) else {
        return rng.next_u64();
    };
    // Multiply-shift maps 64 random bits onto the span; the bias is below 2^-64 * span,
    // which is far below anything a simulation can observe.
    ((u128::from(rng.next_u64()) * u128::from(span)) >> 64) as u64
}

/// `true` with probability `p` (values outside `0..=1` are clamped).
///
/// Always draws exactly one number, whatever `p` is, so that changing a probability in a
/// scenario does not shift the rest of the random stream.
pub(crate) fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    // 53 random bits give a uniform f64 in [0, 1).
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_stays_in_range_and_covers_it() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = up_to(&mut rng, 4);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(up_to(&mut rng, 0), 0);
    }

    #[test]
    fn chance_extremes() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        assert!((0..1000).all(|_| !chance(&mut rng, 0.0)));
        assert!((0..1000).all(|_| chance(&mut rng, 1.0)));
    }

    #[test]
    fn children_differ_and_are_reproducible() {
        let mut a = ChaCha20Rng::seed_from_u64(3);
        let mut b = ChaCha20Rng::seed_from_u64(3);
        let (mut a1, mut a2) = (child(&mut a), child(&mut a));
        let mut b1 = child(&mut b);
        let x = a1.next_u64();
        assert_eq!(x, b1.next_u64());
        assert_ne!(x, a2.next_u64());
    }
}
