//! A keyed hash for the server's tables.
//!
//! Keys come from the server's seeded generator: lookups cannot be steered into collisions
//! by clients that choose their addresses and usernames (hash flooding), and, unlike
//! `std`'s `RandomState`, nothing is read from the operating system, so the same seed gives
//! the same table layout and the same behaviour.

use core::hash::BuildHasher;
#[allow(deprecated)]
use std::hash::SipHasher;

/// SipHash-2-4 with keys drawn from the server's seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    pub(crate) fn new(k0: u64, k1: u64) -> KeyedState {
        KeyedState { k0, k1 }
    }
}

impl BuildHasher for KeyedState {
    #[allow(deprecated)]
    type Hasher = SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> SipHasher {
        SipHasher::new_with_keys(self.k0, self.k1)
    }
}

/// A `HashMap` with the keyed hash.
pub(crate) type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_the_hash_and_the_same_keys_repeat_it() {
        let a = KeyedState::new(1, 2);
        let b = KeyedState::new(3, 4);
        assert_eq!(a.hash_one("x"), KeyedState::new(1, 2).hash_one("x"));
        assert_ne!(a.hash_one("x"), b.hash_one("x"));
    }
}
