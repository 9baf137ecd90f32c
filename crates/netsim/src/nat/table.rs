//! The mapping table of one NAT: mappings indexed by the key the mapping behaviour looks them
//! up with, and by external endpoint (the key inbound traffic looks them up with). TCP
//! mappings also track the connections through them (RFC 5382 §5).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::config::{FilteringBehavior, MappingBehavior};
use crate::datagram::Transport;
use crate::tcp::Flags;

/// How long NAT state lives without traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// A mapping (and each filtering permission) after the last outbound packet.
    pub(crate) mapping: Duration,
    /// A TCP connection that saw SYNs both ways and no FIN or RST (RFC 5382 REQ-5).
    pub(crate) tcp_established: Duration,
    /// A TCP connection being opened or closed (RFC 5382 REQ-5).
    pub(crate) tcp_transitory: Duration,
}

/// One TCP connection through a mapping, as the NAT sees it from the flags going by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    syn_out: bool,
    syn_in: bool,
    closing: bool,
    last: Instant,
}

impl Session {
    fn new(now: Instant) -> Self {
        Session {
            syn_out: false,
            syn_in: false,
            closing: false,
            last: now,
        }
    }

    /// SYNs have gone both ways and neither FIN nor RST has.
    pub(crate) fn established(&self) -> bool {
        self.syn_out && self.syn_in && !self.closing
    }

    fn is_live(&self, now: Instant, t: &Timeouts) -> bool {
        let timeout = if self.established() {
            t.tcp_established
        } else {
            t.tcp_transitory
        };
        alive(self.last, now, timeout)
    }

    /// A segment went through: activity in either direction keeps the session (RFC 5382 §5
    /// counts idleness of the connection, not of one direction).
    fn observe(&mut self, flags: Flags, outbound: bool, now: Instant) {
        if flags.contains(Flags::SYN) {
            if outbound {
                self.syn_out = true;
            } else {
                self.syn_in = true;
            }
        }
        if flags.contains(Flags::FIN) || flags.contains(Flags::RST) {
            self.closing = true;
        }
        self.last = now;
    }

    pub(crate) fn last(&self) -> Instant {
        self.last
    }
}

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
    /// TCP only: remote endpoint -> the connection with it.
    sessions: BTreeMap<SocketAddr, Session>,
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

    /// A mapping lives for the mapping lifetime after its last refresh, and (TCP) as long as
    /// one of its connections does.
    pub(crate) fn is_live(&self, now: Instant, t: &Timeouts) -> bool {
        alive(self.refreshed, now, t.mapping) || self.sessions.values().any(|s| s.is_live(now, t))
    }

    /// The TCP connections through the mapping alive at `now`, by remote endpoint.
    pub(crate) fn sessions(
        &self,
        now: Instant,
        t: Timeouts,
    ) -> impl Iterator<Item = (SocketAddr, &Session)> + '_ {
        self.sessions
            .iter()
            .filter(move |(_, s)| s.is_live(now, &t))
            .map(|(r, s)| (*r, s))
    }

    /// RFC 4787 §5 (RFC 5382 §4.3 for TCP SYNs): whether `filtering` lets `remote` send in
    /// through this mapping. Each permission lives as long as a mapping would, counted from
    /// its last outbound use; a live TCP connection with a remote is a permission too.
    pub(crate) fn admits(
        &self,
        filtering: FilteringBehavior,
        remote: SocketAddr,
        now: Instant,
        t: &Timeouts,
    ) -> bool {
        let live = |at: &Instant| alive(*at, now, t.mapping);
        let matches = |r: &SocketAddr| match filtering {
            FilteringBehavior::EndpointIndependent => true,
            FilteringBehavior::AddressDependent => r.ip() == remote.ip(),
            FilteringBehavior::AddressAndPortDependent => *r == remote,
        };
        filtering == FilteringBehavior::EndpointIndependent
            || self.remotes.iter().any(|(r, at)| matches(r) && live(at))
            || self
                .sessions
                .iter()
                .any(|(r, s)| matches(r) && s.is_live(now, t))
    }

    /// A TCP segment between the internal endpoint and `remote` wants through. It passes if
    /// it belongs to a live connection, or if it is a SYN that may open one (`may_open`:
    /// outbound, or admitted by the filter); returns whether it passes.
    pub(crate) fn track(
        &mut self,
        remote: SocketAddr,
        flags: Flags,
        outbound: bool,
        may_open: bool,
        now: Instant,
        t: &Timeouts,
    ) -> bool {
        self.sessions.retain(|_, s| s.is_live(now, t));
        let opening = flags.contains(Flags::SYN) && !flags.contains(Flags::ACK);
        let session = match self.sessions.get_mut(&remote) {
            // A new connection on the four-tuple of one that is closing.
            Some(s) if opening && s.closing && may_open => {
                *s = Session::new(now);
                s
            }
            Some(s) => s,
            None if opening && may_open => self.sessions.entry(remote).or_insert(Session::new(now)),
            None => return false,
        };
        session.observe(flags, outbound, now);
        true
    }

    /// Outbound traffic to `remote` refreshes the mapping (RFC 4787 §4.3 REQ-6) and opens or
    /// refreshes the permission for `remote`; expired permissions are dropped on the way.
    /// `lifetime` is the mapping lifetime.
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
            sessions: BTreeMap::new(),
        };
        self.by_key.insert(key, external);
        self.by_external.insert((key.transport, external), mapping);
    }

    /// The mapping for `key` if it exists and has not expired; an expired one is removed.
    pub(crate) fn by_key(
        &mut self,
        key: &MappingKey,
        now: Instant,
        t: &Timeouts,
    ) -> Option<&mut Mapping> {
        let external = *self.by_key.get(key)?;
        self.by_external(key.transport, external, now, t)
    }

    /// The mapping at `external` if it exists and has not expired; an expired one is removed.
    pub(crate) fn by_external(
        &mut self,
        transport: Transport,
        external: SocketAddr,
        now: Instant,
        t: &Timeouts,
    ) -> Option<&mut Mapping> {
        let live = self
            .by_external
            .get(&(transport, external))?
            .is_live(now, t);
        if !live {
            self.remove(transport, external);
            return None;
        }
        self.by_external.get_mut(&(transport, external))
    }

    /// Remove every expired mapping, so that its external port can be reused.
    pub(crate) fn purge(&mut self, now: Instant, t: &Timeouts) {
        let expired: Vec<_> = self
            .by_external
            .iter()
            .filter(|(_, m)| !m.is_live(now, t))
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
    const T: Timeouts = Timeouts {
        mapping: LIFE,
        tcp_established: Duration::from_secs(7440),
        tcp_transitory: Duration::from_secs(240),
    };

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
            t.by_key(&key, t0 + LIFE - Duration::from_nanos(1), &T)
                .is_some()
        );
        assert!(t.by_key(&key, t0 + LIFE, &T).is_none());
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
        let m = t.by_external(Transport::Udp, ext, t0, &T).unwrap();
        m.refresh_outbound(sa("1.1.1.1:1"), t0, LIFE);
        let check = |f, r: &str| m.admits(f, sa(r), t0, &T);
        use FilteringBehavior::*;
        assert!(check(EndpointIndependent, "9.9.9.9:9"));
        assert!(check(AddressDependent, "1.1.1.1:2"));
        assert!(!check(AddressDependent, "2.2.2.2:1"));
        assert!(check(AddressAndPortDependent, "1.1.1.1:1"));
        assert!(!check(AddressAndPortDependent, "1.1.1.1:2"));
        // A permission expires with the mapping lifetime.
        assert!(!m.admits(AddressAndPortDependent, sa("1.1.1.1:1"), t0 + LIFE, &T));
    }

    #[test]
    fn tcp_sessions_open_on_syn_and_keep_the_mapping_alive() {
        let t0 = base();
        let mut t = Table::default();
        let key = MappingKey::new(
            MappingBehavior::EndpointIndependent,
            Transport::Tcp,
            sa("10.0.0.1:5000"),
            sa("1.1.1.1:443"),
        );
        let ext = sa("203.0.113.1:5000");
        t.insert(key, ext, t0);
        let m = t.by_external(Transport::Tcp, ext, t0, &T).unwrap();
        let remote = sa("1.1.1.1:443");
        // Only a SYN opens a connection; only an admitted one from outside.
        assert!(!m.track(remote, Flags::ACK, true, true, t0, &T));
        assert!(!m.track(remote, Flags::SYN, false, false, t0, &T));
        assert!(m.track(remote, Flags::SYN, true, true, t0, &T));
        assert!(m.track(remote, Flags::SYN | Flags::ACK, false, false, t0, &T));
        let (r, s) = m.sessions(t0, T).next().unwrap();
        assert_eq!(r, remote);
        assert!(s.established());
        // An established connection outlives the mapping lifetime...
        let later = t0 + Duration::from_secs(7000);
        assert!(t.by_external(Transport::Tcp, ext, later, &T).is_some());
        // ...but not the established idle timeout.
        let m = t.by_external(Transport::Tcp, ext, later, &T).unwrap();
        assert!(m.track(remote, Flags::FIN | Flags::ACK, true, true, later, &T));
        assert!(!m.sessions(later, T).next().unwrap().1.established());
        let after = later + Duration::from_secs(240);
        assert!(t.by_external(Transport::Tcp, ext, after, &T).is_none());
    }
}
