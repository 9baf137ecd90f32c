//! One allocation (RFC 8656 §6): its 5-tuple, relayed address(es) with their
//! time-to-expiry, authentication information, permissions (§9) and channel bindings (§12).
//!
//! Expiry is lazy on the data path — every lookup compares the deadline with `now`, so a
//! permission is never used a millisecond past its lifetime — and eager in the timer
//! (`expire`), which frees the state.

use super::Millis;
use super::ports::Token;
use core::hash::{Hash, Hasher};
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};
use stun_proto::attributes::AddressFamily;
use stun_proto::credentials::LongTermKey;
use stun_proto::{TransactionId, TransportProtocol};

/// The 5-tuple that identifies an allocation (RFC 8656 §2): client address, server
/// address, and the transport between them. The transport is part of the key, so a client
/// may hold one allocation over UDP and another over TCP from the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    /// The client's address as the server sees it (its server-reflexive address).
    pub client: SocketAddr,
    /// The server address the client talks to.
    pub server: SocketAddr,
    /// The transport between them.
    pub transport: TransportProtocol,
}

impl Hash for FiveTuple {
    /// Hashes the addresses as two or three machine words rather than field by field:
    /// this is the one hash on the client-to-peer hot path.
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_addr(self.client, h);
        hash_addr(self.server, h);
        h.write_u8(match self.transport {
            TransportProtocol::Udp => 0,
            TransportProtocol::Tcp => 1,
            TransportProtocol::Tls => 2,
            _ => 3,
        });
    }
}

fn hash_addr<H: Hasher>(a: SocketAddr, h: &mut H) {
    match a {
        SocketAddr::V4(a) => h.write_u64((u64::from(a.ip().to_bits()) << 16) | u64::from(a.port())),
        SocketAddr::V6(a) => {
            h.write_u128(a.ip().to_bits());
            h.write_u16(a.port());
        }
    }
}

/// True if two transport addresses have the same IP and port (IPv6 flow info and scope
/// are not part of a peer's identity).
#[inline]
pub(crate) fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip() == b.ip()
}

/// Index of a family in [`Allocation::relays`].
#[inline]
pub(crate) fn family_index(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

/// A relayed transport address and its time-to-expiry (RFC 8656 §6: one per address in a
/// dual allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    /// While the allocation waits for its bind, this is the bind deadline.
    pub(crate) expires: Millis,
}

/// A permission (RFC 8656 §9): a peer IP, ports ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permission {
    pub(crate) ip: IpAddr,
    pub(crate) expires: Millis,
}

/// A channel binding (RFC 8656 §12): a number and a peer transport address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChannelBinding {
    pub(crate) peer: SocketAddr,
    pub(crate) number: u16,
    pub(crate) expires: Millis,
}

/// What [`Allocation::expire`] removed.
#[derive(Debug, Default)]
pub(crate) struct Expired {
    pub(crate) permissions: usize,
    pub(crate) channels: usize,
    pub(crate) relays: SmallVec<[SocketAddr; 2]>,
}

/// The allocation state.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) five_tuple: FiveTuple,
    /// Indexed by [`family_index`]: IPv4 then IPv6.
    pub(crate) relays: [Option<Relay>; 2],
    /// The user id in [`Users`](super::users::Users).
    pub(crate) user: u32,
    /// The long-term key the allocation was created with (RFC 8656 §6: the key, never the
    /// password). 33 bytes, where a prepared HMAC state would take hundreds.
    pub(crate) key: LongTermKey,
    /// The Allocate's transaction ID, to recognise a retransmission (RFC 8656 §5).
    pub(crate) allocate_tid: TransactionId,
    /// The reservation token returned in the Allocate success response, if any.
    pub(crate) reservation_token: Option<Token>,
    /// A family asked for but not granted in a dual allocation, and why.
    pub(crate) address_error: Option<(AddressFamily, u16)>,
    /// False while waiting for the driver to bind the relay socket(s).
    pub(crate) active: bool,
    /// The transport towards peers: UDP, or TCP for an RFC 6062 allocation.
    pub(crate) relay_transport: TransportProtocol,
    /// The deadline of this allocation's live timer entry (`NEVER` when none).
    pub(crate) timer: Millis,
    pub(crate) permissions: SmallVec<[Permission; 1]>,
    pub(crate) channels: SmallVec<[ChannelBinding; 1]>,
}

impl Allocation {
    /// The live relay for a peer of `ip`'s family.
    #[inline]
    pub(crate) fn relay_for(&self, ip: IpAddr, now: Millis) -> Option<&Relay> {
        self.relays[family_index(ip)]
            .as_ref()
            .filter(|r| r.expires > now)
    }

    /// True if a live permission covers `ip` (RFC 8656 §9: addresses only, not ports).
    #[inline]
    pub(crate) fn has_permission(&self, ip: IpAddr, now: Millis) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    /// The live channel with `number`.
    #[inline]
    pub(crate) fn channel_by_number(&self, number: u16, now: Millis) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
    }

    /// The live channel bound to `peer`.
    #[inline]
    pub(crate) fn channel_by_peer(&self, peer: SocketAddr, now: Millis) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| same_addr(c.peer, peer) && c.expires > now)
    }

    /// Live permissions.
    pub(crate) fn live_permissions(&self, now: Millis) -> usize {
        self.permissions.iter().filter(|p| p.expires > now).count()
    }

    /// Live channels.
    pub(crate) fn live_channels(&self, now: Millis) -> usize {
        self.channels.iter().filter(|c| c.expires > now).count()
    }

    /// Installs or refreshes the permission for `ip` (RFC 8656 §9). Returns true if a new
    /// entry was added (an expired entry for the same IP is reused).
    pub(crate) fn install_permission(&mut self, ip: IpAddr, expires: Millis) -> bool {
        match self.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => {
                p.expires = expires;
                false
            }
            None => {
                self.permissions.push(Permission { ip, expires });
                true
            }
        }
    }

    /// Binds or refreshes `number` to `peer` (RFC 8656 §12.2); the caller has checked that
    /// no live binding conflicts. Expired bindings of the same number or peer are dropped
    /// first. Returns how many entries were dropped and whether one was added.
    pub(crate) fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        now: Millis,
        expires: Millis,
    ) -> (usize, bool) {
        let before = self.channels.len();
        self.channels.retain(|c| {
            let conflicts = c.number == number || same_addr(c.peer, peer);
            !conflicts || c.expires > now
        });
        let dropped = before - self.channels.len();
        let live = self
            .channels
            .iter_mut()
            .find(|c| c.number == number && same_addr(c.peer, peer));
        match live {
            Some(c) => {
                c.expires = expires;
                (dropped, false)
            }
            None => {
                self.channels.push(ChannelBinding {
                    peer,
                    number,
                    expires,
                });
                (dropped, true)
            }
        }
    }

    /// The earliest deadline in the allocation: a relay's time-to-expiry, a permission's
    /// or a channel's.
    pub(crate) fn next_deadline(&self) -> Millis {
        let relays = self.relays.iter().flatten().map(|r| r.expires);
        let perms = self.permissions.iter().map(|p| p.expires);
        let chans = self.channels.iter().map(|c| c.expires);
        relays
            .chain(perms)
            .chain(chans)
            .min()
            .unwrap_or(Millis::MAX)
    }

    /// Removes everything that has expired at `now`, including permissions and channels of
    /// a family whose relayed address is gone (RFC 8656 §9, §12: they expire with it).
    pub(crate) fn expire(&mut self, now: Millis) -> Expired {
        let mut out = Expired::default();
        for slot in &mut self.relays {
            if let Some(r) = slot.filter(|r| r.expires <= now) {
                out.relays.push(r.addr);
                *slot = None;
            }
        }
        let relays = self.relays;
        let alive = |ip: IpAddr| relays[family_index(ip)].is_some();
        let before = self.permissions.len();
        self.permissions.retain(|p| p.expires > now && alive(p.ip));
        out.permissions = before - self.permissions.len();
        let before = self.channels.len();
        self.channels
            .retain(|c| c.expires > now && alive(c.peer.ip()));
        out.channels = before - self.channels.len();
        out
    }

    /// True if no relayed address is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.relays.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> Allocation {
        Allocation {
            five_tuple: FiveTuple {
                client: "192.0.2.1:1000".parse().unwrap(),
                server: "192.0.2.100:3478".parse().unwrap(),
                transport: TransportProtocol::Udp,
            },
            relays: [
                Some(Relay {
                    addr: "192.0.2.100:50000".parse().unwrap(),
                    expires: 600_000,
                }),
                Some(Relay {
                    addr: "[2001:db8::100]:50000".parse().unwrap(),
                    expires: 100_000,
                }),
            ],
            user: 0,
            key: LongTermKey::from_bytes(&[0; 16]).unwrap(),
            allocate_tid: TransactionId::default(),
            reservation_token: None,
            address_error: None,
            active: true,
            relay_transport: TransportProtocol::Udp,
            timer: Millis::MAX,
            permissions: SmallVec::new(),
            channels: SmallVec::new(),
        }
    }

    #[test]
    fn permissions_channels_and_expiry() {
        let mut a = alloc();
        let v4: IpAddr = "198.51.100.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(a.install_permission(v4, 300_000));
        assert!(!a.install_permission(v4, 310_000), "refresh");
        assert!(a.install_permission(v6, 300_000));
        let peer = SocketAddr::new(v4, 9);
        assert_eq!(a.bind_channel(0x4000, peer, 0, 600_000), (0, true));
        assert_eq!(a.bind_channel(0x4000, peer, 0, 650_000), (0, false));
        // An expired binding of the same number to another peer is replaced.
        let other = SocketAddr::new(v4, 10);
        assert_eq!(a.bind_channel(0x4001, other, 0, 1000), (0, true));
        assert_eq!(
            a.bind_channel(0x4001, SocketAddr::new(v4, 11), 1000, 2000),
            (1, true)
        );
        assert!(a.channel_by_peer(other, 0).is_none());
        a.channels.retain(|c| c.number == 0x4000);
        assert!(a.has_permission(v4, 309_999));
        assert!(!a.has_permission(v4, 310_000));
        assert_eq!(a.channel_by_number(0x4000, 0).unwrap().peer, peer);
        assert!(a.channel_by_peer(peer, 0).is_some());
        let v6_peer: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "2001:db8::1".parse().unwrap(),
            9,
            7,
            3,
        ));
        assert!(
            same_addr(v6_peer, scoped),
            "flow info and scope are ignored"
        );
        assert_eq!(a.next_deadline(), 100_000);

        // The IPv6 relay expires: the IPv6 permission goes with it.
        let e = a.expire(100_000);
        assert_eq!(e.relays.len(), 1);
        assert_eq!(e.permissions, 1);
        assert!(!a.is_empty());
        assert_eq!(a.next_deadline(), 310_000);
        let e = a.expire(310_000);
        assert_eq!((e.permissions, e.channels), (1, 0));
        let e = a.expire(650_000);
        assert_eq!((e.channels, e.relays.len()), (1, 1));
        assert!(a.is_empty());
    }

    #[test]
    fn five_tuple_hash_distinguishes_transport() {
        use core::hash::BuildHasher;
        let s = std::hash::RandomState::new();
        let mut t = alloc().five_tuple;
        let h1 = s.hash_one(t);
        t.transport = TransportProtocol::Tcp;
        assert_ne!(h1, s.hash_one(t));
    }
}

#[cfg(test)]
mod size {
    /// The memory budget (1 KiB per allocation with a permission and a channel, table
    /// overhead included) leaves room only if the allocation itself stays this small.
    #[test]
    fn allocation_with_one_permission_and_one_channel_inline_is_320_bytes() {
        assert!(core::mem::size_of::<super::Allocation>() <= 320);
        assert_eq!(core::mem::size_of::<super::Permission>(), 32);
        assert_eq!(core::mem::size_of::<super::ChannelBinding>(), 48);
    }
}
