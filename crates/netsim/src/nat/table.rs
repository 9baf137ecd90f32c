//! The mapping table of one NAT: mappings indexed by the key the mapping behaviour looks them
//! up with, and by external endpoint (the key inbound traffic looks them up with).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::config::{FilteringBehavior, MappingBehavior};
use crate::datagram::Transport;

/// The part of the destination that selects a mapping, by mapping behaviour (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DestKey {
    /// Endpoint-independent: one mapping whatever the destination.
    Any,
    /// Address-dependent: one mapping per destination IP address.
    Address(IpAddr),
    /// Address-and-port-dependent: one mapping per destination endpoint.
    Endpoint(SocketAddr),
}

/// What an outbound datagram looks its mapping up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MappingKey {
    transport: Transport,
    internal: SocketAddr,
    dest: DestKey,
}

impl MappingKey {
    pub(crate) fn new(
        behavior: MappingBehavior,
        transport: Transport,
        internal: SocketAddr,
        destination: SocketAddr,
    ) -> Self {
        let dest = match behavior {
            MappingBehavior::EndpointIndependent => DestKey::Any,
            MappingBehavior::AddressDependent => DestKey::Address(destination.ip()),
            MappingBehavior::AddressAndPortDependent => DestKey::Endpoint(destination),
        };
        MappingKey {
            transport,
            internal,
            dest,
        }
    }
}

/// One NAT mapping: an internal endpoint bound to an external endpoint, with the remote
/// endpoints the internal side has sent to (what address- and port-dependent filtering admit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    key: MappingKey,
    external: SocketAddr,
    created: Instant,
    refreshed: Instant,
    /// Remote endpoint -> last outbound datagram to it.
    remotes: BTreeMap<SocketAddr, Instant>,
}

impl Mapping {
    /// The internal (private) endpoint.
    #[must_use]
    pub fn internal(&self) -> SocketAddr {
        self.key.internal
    }

    /// The external (public) endpoint the NAT assigned.
    #[must_use]
    pub fn external(&self) -> SocketAddr {
        self.external
    }

    /// The transport the mapping is for.
    #[must_use]
    pub fn transport(&self) -> Transport {
        self.key.transport
    }

    /// When the mapping was created.
    #[must_use]
    pub fn created(&self) -> Instant {
        self.created
    }

    /// When traffic last refreshed the mapping (RFC 4787 §4.3).
    #[must_use]
    pub fn refreshed(&self) -> Instant {
        self.refreshed
    }

    /// The remote endpoints the internal side has sent to through this mapping.
    pub fn remotes(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.remotes.keys().copied()
    }

    pub(crate) fn is_live(&self, now: Instant, lifetime: Duration) -> bool {
        alive(self.refreshed, now, lifetime)
    }

    /// RFC 4787 §5: whether `filtering` lets `remote` send in through this mapping. Each
    /// permission lives as long as a mapping would, counted from its last outbound use.
    pub(crate) fn admits(
        &self,
        filtering: FilteringBehavior,
        remote: SocketAddr,
        now: Instant,
        lifetime: Duration,
    ) -> bool {
        let live = |t: &Instant| alive(*t, now, lifetime);
        match filtering {
            FilteringBehavior::EndpointIndependent => true,
            FilteringBehavior::AddressDependent => self
                .remotes
                .iter()
                .any(|(r, t)| r.ip() == remote.ip() && live(t)),
            FilteringBehavior::AddressAndPortDependent => {
                self.remotes.get(&remote).is_some_and(live)
            }
        }
    }

    /// Outbound traffic to `remote` refreshes the mapping (RFC 4787 §4.3 REQ-6) and opens or
    /// refreshes the permission for `remote`; expired permissions are dropped on the way.
    pub(crate) fn refresh_outbound(
        &mut self,
        remote: SocketAddr,
        now: Instant,
        lifetime: Duration,
    ) {
        self.refreshed = now;
        self.remotes.retain(|_, t| alive(*t, now, lifetime));
        self.remotes.insert(remote, now);
    }

    /// Inbound refresh (optional, RFC 4787 §4.3 REQ-6 "MAY"): refreshes the mapping and the
    /// permissions that admitted `remote`, so the conversation keeps working both ways.
    pub(crate) fn refresh_inbound(
        &mut self,
        filtering: FilteringBehavior,
        remote: SocketAddr,
        now: Instant,
    ) {
        self.refreshed = now;
        for (r, t) in &mut self.remotes {
            let matches = match filtering {
                FilteringBehavior::AddressAndPortDependent => *r == remote,
                _ => r.ip() == remote.ip(),
            };
            if matches {
                *t = now;
            }
        }
    }
}

/// Whether state last used at `since` is still alive at `now` (a lifetime too long to add to
/// an `Instant` never expires).
fn alive(since: Instant, now: Instant, lifetime: Duration) -> bool {
    since.checked_add(lifetime).is_none_or(|end| now < end)
}

/// All mappings of one NAT.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_external: BTreeMap<(Transport, SocketAddr), Mapping>,
    by_key: BTreeMap<MappingKey, SocketAddr>,
}

impl Table {
    pub(crate) fn is_free(&self, transport: Transport, external: SocketAddr) -> bool {
        !self.by_external.contains_key(&(transport, external))
    }

    pub(crate) fn insert(&mut self, key: MappingKey, external: SocketAddr, now: Instant) {
        let mapping = Mapping {
            key,
            external,
            created: now,
            refreshed: now,
            remotes: BTreeMap::new(),
        };
        self.by_key.insert(key, external);
        self.by_external.insert((key.transport, external), mapping);
    }

    /// The mapping for `key` if it exists and has not expired; an expired one is removed.
    pub(crate) fn by_key(
        &mut self,
        key: &MappingKey,
        now: Instant,
        lifetime: Duration,
    ) -> Option<&mut Mapping> {
        let external = *self.by_key.get(key)?;
        self.by_external(key.transport, external, now, lifetime)
    }

    /// The mapping at `external` if it exists and has not expired; an expired one is removed.
    pub(crate) fn by_external(
        &mut self,
        transport: Transport,
        external: SocketAddr,
        now: Instant,
        lifetime: Duration,
    ) -> Option<&mut Mapping> {
        let live = self
            .by_external
            .get(&(transport, external))?
            .is_live(now, lifetime);
        if !live {
            self.remove(transport, external);
            return None;
        }
        self.by_external.get_mut(&(transport, external))
    }

    /// Remove every expired mapping, so that its external port can be reused.
    pub(crate) fn purge(&mut self, now: Instant, lifetime: Duration) {
        let expired: Vec<_> = self
            .by_external
            .iter()
            .filter(|(_, m)| !m.is_live(now, lifetime))
            .map(|(k, _)| *k)
            .collect();
        for (transport, external) in expired {
            self.remove(transport, external);
        }
    }

    pub(crate) fn remove(&mut self, transport: Transport, external: SocketAddr) -> bool {
        match self.by_external.remove(&(transport, external)) {
            Some(m) => {
                self.by_key.remove(&m.key);
                true
            }
            None => false,
        }
    }

    pub(crate) fn clear(&mut self) -> usize {
        let n = self.by_external.len();
        self.by_external.clear();
        self.by_key.clear();
        n
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.by_external.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    const LIFE: Duration = Duration::from_secs(30);

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn key_follows_mapping_behaviour() {
        let i = sa("10.0.0.1:5000");
        let (d1, d2, d3) = (sa("1.1.1.1:1"), sa("1.1.1.1:2"), sa("2.2.2.2:1"));
        let k = |b, d| MappingKey::new(b, Transport::Udp, i, d);
        let eim = MappingBehavior::EndpointIndependent;
        let adm = MappingBehavior::AddressDependent;
        let apdm = MappingBehavior::AddressAndPortDependent;
        assert_eq!(k(eim, d1), k(eim, d3));
        assert_eq!(k(adm, d1), k(adm, d2));
        assert_ne!(k(adm, d1), k(adm, d3));
        assert_ne!(k(apdm, d1), k(apdm, d2));
    }

    #[test]
    fn expired_mapping_is_removed_on_lookup() {
        let t0 = base();
        let mut t = Table::default();
        let key = MappingKey::new(
            MappingBehavior::EndpointIndependent,
            Transport::Udp,
            sa("10.0.0.1:5000"),
            sa("1.1.1.1:1"),
        );
        let ext = sa("203.0.113.1:5000");
        t.insert(key, ext, t0);
        assert!(
            t.by_key(&key, t0 + LIFE - Duration::from_nanos(1), LIFE)
                .is_some()
        );
        assert!(t.by_key(&key, t0 + LIFE, LIFE).is_none());
        assert!(t.is_free(Transport::Udp, ext));
    }

    #[test]
    fn filtering_admits_by_behaviour() {
        let t0 = base();
        let mut t = Table::default();
        let key = MappingKey::new(
            MappingBehavior::EndpointIndependent,
            Transport::Udp,
            sa("10.0.0.1:5000"),
            sa("1.1.1.1:1"),
        );
        let ext = sa("203.0.113.1:5000");
        t.insert(key, ext, t0);
        let m = t.by_external(Transport::Udp, ext, t0, LIFE).unwrap();
        m.refresh_outbound(sa("1.1.1.1:1"), t0, LIFE);
        let check = |f, r: &str| m.admits(f, sa(r), t0, LIFE);
        use FilteringBehavior::*;
        assert!(check(EndpointIndependent, "9.9.9.9:9"));
        assert!(check(AddressDependent, "1.1.1.1:2"));
        assert!(!check(AddressDependent, "2.2.2.2:1"));
        assert!(check(AddressAndPortDependent, "1.1.1.1:1"));
        assert!(!check(AddressAndPortDependent, "1.1.1.1:2"));
        // A permission expires with the mapping lifetime.
        assert!(!m.admits(AddressAndPortDependent, sa("1.1.1.1:1"), t0 + LIFE, LIFE));
    }
}
