//! Realms (address spaces), hosts and the routing between them.
//!
//! The public internet is the root realm, [`RealmId::INTERNET`]. Each NAT has outside
//! addresses in a parent realm and owns an inside realm. A host has one or more interfaces,
//! each with addresses in one realm and its own access link; a host with two interfaces is
//! multi-homed (say, IPv4 behind a home NAT and IPv6 directly on the internet).
//!
//! Routing a datagram that is in realm R towards address D:
//! 1. D belongs to a host interface in R: down that interface's link to the host;
//! 2. D is the outside address of a NAT whose parent is R: down that NAT's uplink, then
//!    through its inbound filter and translation into its inside realm;
//! 3. otherwise, if R is the inside of a NAT: outbound translation, then up the NAT's uplink
//!    into the parent realm (and route again there);
//! 4. otherwise (R is the internet): no route.

use std::collections::BTreeMap;
use std::net::IpAddr;

use smallvec::SmallVec;

use crate::link::{Link, LinkId};
use crate::nat::{Nat, NatId};
use crate::stats::Stats;

/// Identifies a realm (an address space) of a [`Sim`](crate::Sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealmId(pub(crate) usize);

impl RealmId {
    /// The public internet, the root realm every simulation starts with.
    pub const INTERNET: RealmId = RealmId(0);
}

/// Identifies a host of a [`Sim`](crate::Sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub(crate) usize);

/// Who owns an address inside a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Host { host: usize, interface: usize },
    Nat(usize),
}

/// One address space.
#[derive(Debug, Default)]
pub(crate) struct Realm {
    /// The NAT this realm is the inside of (`None` for the internet).
    pub(crate) gateway: Option<usize>,
    owners: BTreeMap<IpAddr, Owner>,
}

impl Realm {
    pub(crate) fn owner(&self, ip: IpAddr) -> Option<Owner> {
        self.owners.get(&ip).copied()
    }
}

/// One attachment of a host to a realm.
#[derive(Debug, Clone)]
pub struct Interface {
    realm: RealmId,
    addresses: SmallVec<[IpAddr; 2]>,
    link: LinkId,
}

impl Interface {
    /// The realm the interface is attached to.
    #[must_use]
    pub fn realm(&self) -> RealmId {
        self.realm
    }

    /// The interface's addresses.
    #[must_use]
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The access link between the host and the realm.
    #[must_use]
    pub fn link(&self) -> LinkId {
        self.link
    }
}

/// A host: interfaces and counters. Nodes run on hosts.
#[derive(Debug, Default)]
pub struct Host {
    interfaces: Vec<Interface>,
    pub(crate) stats: Stats,
}

impl Host {
    /// The host's interfaces, in the order they were added.
    #[must_use]
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Every address of the host.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().copied())
    }

    /// Counters: packets `sent` by the host's nodes and TCP stack, `delivered` to them; drops
    /// for unbound ports and bad sources; TCP connection counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The index of the interface that owns `ip`.
    pub(crate) fn interface_of(&self, ip: IpAddr) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.addresses.contains(&ip))
    }
}

/// Every element of the network, indexed by the ids handed out.
#[derive(Debug)]
pub(crate) struct Topology {
    pub(crate) realms: Vec<Realm>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) nats: Vec<Nat>,
    pub(crate) links: Vec<Link>,
}

impl Topology {
    pub(crate) fn new() -> Self {
        Topology {
            realms: vec![Realm::default()],
            hosts: Vec::new(),
            nats: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Claim `addresses` in `realm` for `owner`.
    ///
    /// # Panics
    /// If the realm is unknown or an address is already taken in it.
    pub(crate) fn claim(&mut self, realm: RealmId, addresses: &[IpAddr], owner: Owner) {
        let r = self
            .realms
            .get_mut(realm.0)
            .unwrap_or_else(|| panic!("netsim: unknown {realm:?}"));
        for ip in addresses {
            assert!(
                !r.owners.contains_key(ip),
                "netsim: address {ip} is already in use in {realm:?}"
            );
        }
        for ip in addresses {
            r.owners.insert(*ip, owner);
        }
    }

    pub(crate) fn add_realm(&mut self, gateway: usize) -> RealmId {
        self.realms.push(Realm {
            gateway: Some(gateway),
            owners: BTreeMap::new(),
        });
        RealmId(self.realms.len() - 1)
    }

    pub(crate) fn add_interface(
        &mut self,
        host: HostId,
        realm: RealmId,
        addresses: &[IpAddr],
        link: LinkId,
    ) -> usize {
        let interface = self.hosts[host.0].interfaces.len();
        self.claim(
            realm,
            addresses,
            Owner::Host {
                host: host.0,
                interface,
            },
        );
        self.hosts[host.0].interfaces.push(Interface {
            realm,
            addresses: addresses.iter().copied().collect(),
            link,
        });
        interface
    }

    pub(crate) fn nat_id(&self, id: NatId) -> &Nat {
        self.nats
            .get(id.0)
            .unwrap_or_else(|| panic!("netsim: unknown {id:?}"))
    }
}
