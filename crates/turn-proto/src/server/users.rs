//! Per-user data shared by allocations, and the allocation quotas (RFC 8656 §7.2 step 10).
//!
//! An allocation holds a 4-byte user id instead of its own copy of the username; the name
//! and the quota counters live here once per user.

use super::config::Quotas;
use super::hasher::{KeyedMap, KeyedState};
use std::net::IpAddr;

#[derive(Debug)]
struct Entry {
    name: Box<str>,
    quota_key: Box<str>,
    /// Allocations using this entry.
    refs: u32,
}

/// Interned usernames and allocation counts per user and per client IP.
#[derive(Debug)]
pub(crate) struct Users {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_name: KeyedMap<Box<str>, u32>,
    per_quota_key: KeyedMap<Box<str>, u32>,
    per_ip: KeyedMap<IpAddr, u32>,
}

impl Users {
    pub(crate) fn new(hasher: KeyedState) -> Users {
        Users {
            entries: Vec::new(),
            free: Vec::new(),
            by_name: KeyedMap::with_hasher(hasher),
            per_quota_key: KeyedMap::with_hasher(hasher),
            per_ip: KeyedMap::with_hasher(hasher),
        }
    }

    /// True if one more allocation for `quota_key` from `ip` would exceed a quota.
    pub(crate) fn over_quota(&self, quotas: &Quotas, quota_key: &str, ip: IpAddr) -> bool {
        let user = self.per_quota_key.get(quota_key).copied().unwrap_or(0);
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        quotas.per_user.is_some_and(|q| user >= q)
            || quotas.per_client_ip.is_some_and(|q| from_ip >= q)
    }

    /// Counts a new allocation for `name` from `ip`; returns the user id it will hold.
    pub(crate) fn acquire(&mut self, name: &str, quota_key: &str, ip: IpAddr) -> u32 {
        *self.per_quota_key.entry(quota_key.into()).or_insert(0) += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        if let Some(&id) = self.by_name.get(name) {
            if let Some(Some(e)) = self.entries.get_mut(id as usize) {
                e.refs += 1;
                return id;
            }
        }
        let entry = Entry {
            name: name.into(),
            quota_key: quota_key.into(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.by_name.insert(name.into(), id);
        id
    }

    /// Uncounts an allocation of user `id` from `ip`.
    pub(crate) fn release(&mut self, id: u32, ip: IpAddr) {
        decrement(&mut self.per_ip, &ip);
        let Some(slot) = self.entries.get_mut(id as usize) else {
            return;
        };
        let Some(entry) = slot else { return };
        decrement(&mut self.per_quota_key, &entry.quota_key);
        entry.refs -= 1;
        if entry.refs == 0 {
            self.by_name.remove(&entry.name);
            *slot = None;
            self.free.push(id);
        }
    }

    /// The username of user `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        match self.entries.get(id as usize) {
            Some(Some(e)) => &e.name,
            _ => "",
        }
    }
}

fn decrement<K: core::hash::Hash + Eq + ?Sized, Q>(map: &mut KeyedMap<Q, u32>, key: &K)
where
    Q: core::borrow::Borrow<K> + core::hash::Hash + Eq,
{
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_and_quotas() {
        let mut u = Users::new(KeyedState::new(1, 2));
        let q = Quotas {
            per_user: Some(2),
            per_client_ip: Some(3),
            ..Quotas::default()
        };
        let ip1: IpAddr = "192.0.2.1".parse().unwrap();
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        let a = u.acquire("100:alice", "alice", ip1);
        assert!(!u.over_quota(&q, "alice", ip1));
        let b = u.acquire("200:alice", "alice", ip2);
        assert_ne!(a, b, "distinct usernames, one quota identity");
        assert!(
            u.over_quota(&q, "alice", ip2),
            "per-user quota counts the user part"
        );
        assert!(!u.over_quota(&q, "bob", ip1));
        let c = u.acquire("bob", "bob", ip1);
        let d = u.acquire("bob", "bob", ip1);
        assert_eq!(c, d, "same username shares one entry");
        assert!(u.over_quota(&q, "carol", ip1), "per-IP quota");
        assert_eq!(u.name(c), "bob");
        u.release(c, ip1);
        u.release(d, ip1);
        assert_eq!(u.name(c), "");
        assert!(!u.over_quota(&q, "carol", ip1));
        u.release(a, ip1);
        assert!(!u.over_quota(&q, "alice", ip1));
        let e = u.acquire("eve", "eve", ip1);
        assert_eq!(e, a.min(c), "slots are reused");
    }
}
