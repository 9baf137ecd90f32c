//! The relay port pool: a logical map of every relay port on every relay address to the
//! allocation that owns it. The driver binds the sockets; this only decides which.
//!
//! The map is a flat array per relay address, indexed by port: a datagram arriving at a
//! relayed address finds its allocation with one bounds check and one index — no hashing
//! on the peer-to-client hot path.

use super::Millis;
use super::config::RelayRange;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use stun_proto::attributes::AddressFamily;

/// Port states besides "owned by allocation slot N".
const FREE: u32 = u32::MAX;
const RESERVED: u32 = u32::MAX - 1;
const QUARANTINED: u32 = u32::MAX - 2;

/// A RESERVATION-TOKEN value (RFC 8656 §18.10).
pub(crate) type Token = [u8; 8];

#[derive(Debug)]
struct RangePool {
    ip: IpAddr,
    first: u16,
    owners: Vec<u32>,
}

impl RangePool {
    fn index(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.first)?);
        (i < self.owners.len()).then_some(i)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip, self.first + i as u16)
    }

    /// The first index at or after a random start (wrapping) whose port can be taken:
    /// free, even if `even`, and with a free successor if `pair`.
    fn find(&self, rng: &mut ChaCha20Rng, even: bool, pair: bool) -> Option<usize> {
        let n = self.owners.len();
        let start = (rng.next_u64() % n as u64) as usize;
        (0..n).map(|k| (start + k) % n).find(|&i| {
            let port = self.first + i as u16;
            self.owners[i] == FREE
                && (!even || port % 2 == 0)
                && (!pair || (i + 1 < n && self.owners[i + 1] == FREE))
        })
    }
}

/// What an Allocate asks of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PortRequest {
    /// Any port.
    Any,
    /// An even port (EVEN-PORT, R = 0).
    Even,
    /// An even port N, and N + 1 reserved under a token (EVEN-PORT, R = 1).
    EvenReserveNext,
}

#[derive(Debug)]
struct Reservation {
    addr: SocketAddr,
    expires: Millis,
}

/// The pool, reservations and quarantined ports.
#[derive(Debug)]
pub(crate) struct PortPool {
    ranges: Vec<RangePool>,
    reservations: HashMap<Token, Reservation>,
    /// Reservations in expiry order (all share one lifetime).
    reservation_order: VecDeque<(Millis, Token)>,
    /// Ports whose bind failed, in the order they come back.
    quarantine: VecDeque<(Millis, SocketAddr)>,
}

impl PortPool {
    pub(crate) fn new(ranges: &[RelayRange]) -> PortPool {
        let ranges = ranges
            .iter()
            .map(|r| RangePool {
                ip: r.ip,
                first: *r.ports.start(),
                owners: vec![FREE; usize::from(r.ports.end() - r.ports.start()) + 1],
            })
            .collect();
        PortPool {
            ranges,
            reservations: HashMap::new(),
            reservation_order: VecDeque::new(),
            quarantine: VecDeque::new(),
        }
    }

    fn slot(&self, addr: SocketAddr) -> Option<(usize, usize)> {
        let r = self.ranges.iter().position(|r| r.ip == addr.ip())?;
        Some((r, self.ranges[r].index(addr.port())?))
    }

    /// True if `addr` lies in a relay range: datagrams to it come from peers.
    pub(crate) fn is_relay_address(&self, addr: SocketAddr) -> bool {
        self.slot(addr).is_some()
    }

    /// The allocation slot owning `addr`, if an allocation owns it (the hot-path lookup).
    #[inline]
    pub(crate) fn owner(&self, addr: SocketAddr) -> Option<u32> {
        let (r, i) = self.slot(addr)?;
        let owner = self.ranges[r].owners[i];
        (owner < QUARANTINED).then_some(owner)
    }

    /// True if some relay range has this family.
    pub(crate) fn has_family(&self, family: AddressFamily) -> bool {
        self.ranges
            .iter()
            .any(|r| AddressFamily::of(&r.ip) == family)
    }

    /// Takes a port of `family` for allocation slot `owner`. With
    /// [`PortRequest::EvenReserveNext`] also returns the reserved next port.
    pub(crate) fn acquire(
        &mut self,
        rng: &mut ChaCha20Rng,
        family: AddressFamily,
        owner: u32,
        request: PortRequest,
    ) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let even = request != PortRequest::Any;
        let pair = request == PortRequest::EvenReserveNext;
        let candidates: Vec<usize> = (0..self.ranges.len())
            .filter(|&r| AddressFamily::of(&self.ranges[r].ip) == family)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let first = (rng.next_u32() as usize) % candidates.len();
        for k in 0..candidates.len() {
            let r = candidates[(first + k) % candidates.len()];
            let range = &mut self.ranges[r];
            if let Some(i) = range.find(rng, even, pair) {
                range.owners[i] = owner;
                let next = pair.then(|| {
                    range.owners[i + 1] = RESERVED;
                    range.addr(i + 1)
                });
                return Some((range.addr(i), next));
            }
        }
        None
    }

    /// Records a reservation of `addr` (already marked reserved by `acquire`) under `token`.
    pub(crate) fn reserve(&mut self, addr: SocketAddr, token: Token, expires: Millis) {
        self.reservations
            .insert(token, Reservation { addr, expires });
        self.reservation_order.push_back((expires, token));
    }

    /// Hands the address reserved under `token` to `owner`; `None` if the token is unknown
    /// or expired (RFC 8656 §7.2 step 5: 508).
    pub(crate) fn take_reservation(
        &mut self,
        token: &Token,
        owner: u32,
        now: Millis,
    ) -> Option<SocketAddr> {
        let res = self.reservations.get(token)?;
        if res.expires <= now {
            return None;
        }
        let addr = res.addr;
        let (r, i) = self.slot(addr)?;
        if self.ranges[r].owners[i] != RESERVED {
            return None;
        }
        self.reservations.remove(token);
        self.ranges[r].owners[i] = owner;
        Some(addr)
    }

    /// Cancels a reservation that was never handed out (its Allocate failed).
    pub(crate) fn cancel_reservation(&mut self, token: &Token) {
        if let Some(res) = self.reservations.remove(token) {
            self.set_if(res.addr, RESERVED, FREE);
        }
    }

    /// The family of the address reserved under `token`, if the token is known.
    pub(crate) fn reservation_family(&self, token: &Token) -> Option<AddressFamily> {
        self.reservations
            .get(token)
            .map(|r| AddressFamily::of(&r.addr.ip()))
    }

    /// Returns a port to the pool.
    pub(crate) fn release(&mut self, addr: SocketAddr) {
        if let Some((r, i)) = self.slot(addr) {
            self.ranges[r].owners[i] = FREE;
        }
    }

    /// Keeps a port whose bind failed out of the pool until `until`.
    pub(crate) fn quarantine(&mut self, addr: SocketAddr, until: Millis) {
        if let Some((r, i)) = self.slot(addr) {
            self.ranges[r].owners[i] = QUARANTINED;
            self.quarantine.push_back((until, addr));
        }
    }

    fn set_if(&mut self, addr: SocketAddr, from: u32, to: u32) {
        if let Some((r, i)) = self.slot(addr) {
            if self.ranges[r].owners[i] == from {
                self.ranges[r].owners[i] = to;
            }
        }
    }

    /// Frees expired reservations and quarantined ports.
    pub(crate) fn handle_timeout(&mut self, now: Millis) {
        while let Some(&(t, token)) = self.reservation_order.front() {
            if t > now {
                break;
            }
            self.reservation_order.pop_front();
            let expired = self
                .reservations
                .get(&token)
                .is_some_and(|r| r.expires <= now);
            if expired {
                self.cancel_reservation(&token);
            }
        }
        while let Some(&(t, addr)) = self.quarantine.front() {
            if t > now {
                break;
            }
            self.quarantine.pop_front();
            self.set_if(addr, QUARANTINED, FREE);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next.
    pub(crate) fn poll_timeout(&self) -> Option<Millis> {
        let r = self.reservation_order.front().map(|&(t, _)| t);
        let q = self.quarantine.front().map(|&(t, _)| t);
        r.into_iter().chain(q).min()
    }

    /// Free ports of `family`, for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn free_ports(&self, family: AddressFamily) -> usize {
        self.ranges
            .iter()
            .filter(|r| AddressFamily::of(&r.ip) == family)
            .map(|r| r.owners.iter().filter(|&&o| o == FREE).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn pool(ports: core::ops::RangeInclusive<u16>) -> PortPool {
        PortPool::new(&[RelayRange {
            ip: "192.0.2.1".parse().unwrap(),
            ports,
        }])
    }

    #[test]
    fn acquire_release_and_lookup() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut p = pool(50000..=50003);
        let mut got = Vec::new();
        for owner in 0..4 {
            let (a, r) = p
                .acquire(&mut rng, AddressFamily::Ipv4, owner, PortRequest::Any)
                .unwrap();
            assert!(r.is_none());
            assert_eq!(p.owner(a), Some(owner));
            got.push(a);
        }
        assert!(
            p.acquire(&mut rng, AddressFamily::Ipv4, 9, PortRequest::Any)
                .is_none()
        );
        assert!(
            p.acquire(&mut rng, AddressFamily::Ipv6, 9, PortRequest::Any)
                .is_none()
        );
        p.release(got[2]);
        assert_eq!(p.owner(got[2]), None);
        assert!(p.is_relay_address(got[2]));
        assert!(!p.is_relay_address("192.0.2.1:3478".parse().unwrap()));
        assert!(!p.is_relay_address("192.0.2.2:50000".parse().unwrap()));
        let (a, _) = p
            .acquire(&mut rng, AddressFamily::Ipv4, 7, PortRequest::Any)
            .unwrap();
        assert_eq!(a, got[2]);
    }

    #[test]
    fn even_ports_reservations_and_quarantine() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut p = pool(50001..=50010);
        let (a, next) = p
            .acquire(
                &mut rng,
                AddressFamily::Ipv4,
                1,
                PortRequest::EvenReserveNext,
            )
            .unwrap();
        let next = next.unwrap();
        assert_eq!(a.port() % 2, 0);
        assert_eq!(next.port(), a.port() + 1);
        assert_eq!(p.owner(next), None, "reserved, not owned");
        p.reserve(next, [7; 8], 30_000);
        assert_eq!(p.reservation_family(&[7; 8]), Some(AddressFamily::Ipv4));
        assert_eq!(p.take_reservation(&[8; 8], 2, 0), None, "unknown token");
        assert_eq!(p.take_reservation(&[7; 8], 2, 0), Some(next));
        assert_eq!(p.owner(next), Some(2));
        assert_eq!(p.take_reservation(&[7; 8], 3, 0), None, "used once");

        // An unused reservation expires and its port comes back.
        let (b, n2) = p
            .acquire(
                &mut rng,
                AddressFamily::Ipv4,
                4,
                PortRequest::EvenReserveNext,
            )
            .unwrap();
        let n2 = n2.unwrap();
        assert_eq!(b.port() % 2, 0);
        p.reserve(n2, [9; 8], 30_000);
        let free = p.free_ports(AddressFamily::Ipv4);
        assert_eq!(p.poll_timeout(), Some(30_000));
        p.handle_timeout(30_000);
        assert_eq!(p.free_ports(AddressFamily::Ipv4), free + 1);
        assert_eq!(p.take_reservation(&[9; 8], 5, 30_000), None);

        p.release(b);
        p.quarantine(b, 60_000);
        assert_eq!(p.owner(b), None);
        let before = p.free_ports(AddressFamily::Ipv4);
        p.handle_timeout(60_000);
        assert_eq!(p.free_ports(AddressFamily::Ipv4), before + 1);
    }
}
