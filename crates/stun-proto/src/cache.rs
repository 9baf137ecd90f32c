//! The server-side response cache (RFC 8489 §6.3.1): a retransmitted request gets the
//! identical response, without being processed again.
//!
//! Non-idempotent requests (TURN Allocate, CreatePermission, ...) must not be executed twice
//! when a client retransmits because the first response was lost. The cache is keyed by
//! transaction ID and client address, holds each response for 40 s (just over the 39.5 s a
//! client retransmits for), and is bounded in size so a flood cannot exhaust memory: when
//! full, the oldest entry goes first.

use crate::header::TransactionId;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a response is remembered (RFC 8489 §6.3.1 suggests 40 s).
pub const DEFAULT_RESPONSE_TTL: Duration = Duration::from_secs(40);

type Key = (TransactionId, SocketAddr);

/// A bounded cache of recent responses.
#[derive(Debug)]
pub struct ResponseCache {
    entries: HashMap<Key, Vec<u8>>,
    /// Insertion order with expiry times; all entries share one TTL, so this is also expiry
    /// order.
    order: VecDeque<(Instant, Key)>,
    ttl: Duration,
    capacity: usize,
}

impl ResponseCache {
    /// A cache holding at most `capacity` responses for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ResponseCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            capacity,
        }
    }

    /// The cached response to a request, if any.
    pub fn get(&self, transaction_id: &TransactionId, client: SocketAddr) -> Option<&[u8]> {
        self.entries
            .get(&(*transaction_id, client))
            .map(Vec::as_slice)
    }

    /// Remembers a response.
    pub fn insert(
        &mut self,
        now: Instant,
        transaction_id: TransactionId,
        client: SocketAddr,
        response: Vec<u8>,
    ) {
        if self.capacity == 0 {
            return;
        }
        self.handle_timeout(now);
        let key = (transaction_id, client);
        if self.entries.insert(key, response).is_none() {
            self.order.push_back((now + self.ttl, key));
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Forgets expired responses.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(expires, key)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&key);
        }
    }

    /// When the oldest response expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|&(t, _)| t)
    }

    /// Number of cached responses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_capacity() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1000".parse().unwrap();
        let mut c = ResponseCache::new(2, DEFAULT_RESPONSE_TTL);
        let id = TransactionId::new([1; 12]);
        c.insert(t0, id, a, vec![1]);
        assert_eq!(c.get(&id, a), Some(&[1u8][..]));
        assert_eq!(c.get(&id, b), None, "keyed by client address too");
        c.insert(t0 + Duration::from_secs(1), id, b, vec![2]);
        c.insert(
            t0 + Duration::from_secs(2),
            TransactionId::new([2; 12]),
            a,
            vec![3],
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&id, a), None, "oldest evicted when full");
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(41)));
        c.handle_timeout(t0 + Duration::from_secs(41));
        assert_eq!(c.len(), 1);
        c.handle_timeout(t0 + Duration::from_secs(42));
        assert!(c.is_empty());
    }
}
