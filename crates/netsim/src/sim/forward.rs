//! The path of a datagram: from a node, over links, through realms and NATs, to a node.

use std::fmt;
use std::net::SocketAddr;

use super::Sim;
use super::capture::Tap;
use super::queue::Event;
use crate::datagram::Datagram;
use crate::link::{Direction, LinkEnds};
use crate::nat::Outbound;
use crate::stats::DropReason;
use crate::topology::{Owner, RealmId};

/// Where a drop happened, for traces.
#[derive(Debug, Clone, Copy)]
enum Place {
    Host(usize),
    Link(usize),
    Nat(usize),
    Realm(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Host(i) => write!(f, "host {i}"),
            Place::Link(i) => write!(f, "link {i}"),
            Place::Nat(i) => write!(f, "nat {i}"),
            Place::Realm(i) => write!(f, "realm {i}"),
        }
    }
}

/// What a drop trace says about the datagram (kept apart so the datagram itself can move on).
#[derive(Debug, Clone, Copy)]
struct Summary {
    source: SocketAddr,
    destination: SocketAddr,
    len: usize,
}

impl From<&Datagram> for Summary {
    fn from(dg: &Datagram) -> Self {
        Summary {
            source: dg.source,
            destination: dg.destination,
            len: dg.payload.len(),
        }
    }
}

/// The largest IP packet the synthesised headers can describe (16-bit length fields).
const MAX_IP_PACKET: usize = 65_535;

impl Sim {
    /// A node handed over `dg`: check its source, record it, put it on the interface's link.
    pub(super) fn send_from_node(&mut self, node: usize, dg: Datagram) {
        let host = self.nodes[node].host;
        if !self.nodes[node].owns(dg.source) {
            return self.host_drop(host, DropReason::BadSource, &dg);
        }
        if !dg.same_family() {
            return self.host_drop(host, DropReason::NoRoute, &dg);
        }
        if dg.ip_len() > MAX_IP_PACKET {
            return self.host_drop(host, DropReason::Mtu, &dg);
        }
        self.topo.hosts[host].stats.sent += 1;
        self.stats.sent += 1;
        self.record(Tap::Host(host), &dg);
        let h = &self.topo.hosts[host];
        // `owns` checked the address is bound, and binding checked it is the host's.
        let Some(interface) = h.interface_of(dg.source.ip()) else {
            return self.host_drop(host, DropReason::BadSource, &dg);
        };
        let link = h.interfaces()[interface].link();
        self.offer(link.0, Direction::Up, dg);
    }

    /// Offer `dg` to a link; schedule the copies that make it through.
    fn offer(&mut self, link: usize, dir: Direction, dg: Datagram) {
        let now = self.now;
        match self.topo.links[link].offer(now, dg.ip_len(), dir) {
            Err(reason) => self.dropped(Place::Link(link), reason, (&dg).into()),
            Ok(arrivals) => {
                let (last, rest) = arrivals
                    .split_last()
                    .expect("a link delivers at least once");
                for at in rest {
                    let datagram = dg.clone();
                    self.queue.push(
                        *at,
                        Event::LinkExit {
                            link,
                            dir,
                            datagram,
                        },
                    );
                }
                let last = *last;
                self.queue.push(
                    last,
                    Event::LinkExit {
                        link,
                        dir,
                        datagram: dg,
                    },
                );
            }
        }
    }

    /// A datagram came out of a link: hand it to whatever is at that end.
    pub(super) fn link_exit(&mut self, link: usize, dir: Direction, dg: Datagram) {
        self.topo.links[link].stats.delivered += 1;
        self.record(Tap::Link(link), &dg);
        match (self.topo.links[link].ends, dir) {
            (LinkEnds::Host { host, interface }, Direction::Up) => {
                let realm = self.topo.hosts[host].interfaces()[interface].realm();
                self.route(realm, dg);
            }
            (LinkEnds::Host { host, .. }, Direction::Down) => self.deliver(host, dg),
            (LinkEnds::NatUplink { nat }, Direction::Up) => {
                let parent = self.topo.nats[nat].parent_realm();
                self.route(parent, dg);
            }
            (LinkEnds::NatUplink { nat }, Direction::Down) => {
                let (now, summary) = (self.now, Summary::from(&dg));
                match self.topo.nats[nat].inbound(now, dg) {
                    Ok(translated) => {
                        let inside = self.topo.nats[nat].inside_realm();
                        self.route(inside, translated);
                    }
                    Err(reason) => self.dropped(Place::Nat(nat), reason, summary),
                }
            }
        }
    }

    /// Forward `dg`, which is in `realm`, one hop towards its destination (see
    /// [`topology`](crate::topology) for the rules).
    fn route(&mut self, realm: RealmId, dg: Datagram) {
        let r = &self.topo.realms[realm.0];
        match r.owner(dg.destination.ip()) {
            Some(Owner::Host { host, interface }) => {
                let link = self.topo.hosts[host].interfaces()[interface].link();
                self.offer(link.0, Direction::Down, dg);
            }
            Some(Owner::Nat(nat)) => {
                let link = self.topo.nats[nat].uplink();
                self.offer(link.0, Direction::Down, dg);
            }
            None => match r.gateway {
                Some(nat) => self.leave_realm(nat, dg),
                None => self.dropped(Place::Realm(realm.0), DropReason::NoRoute, (&dg).into()),
            },
        }
    }

    /// Out through the realm's NAT: translate, then up the uplink (or hairpin back in).
    fn leave_realm(&mut self, nat: usize, dg: Datagram) {
        let (now, summary) = (self.now, Summary::from(&dg));
        match self.topo.nats[nat].outbound(now, dg) {
            Ok(Outbound::Forward(translated)) => {
                let link = self.topo.nats[nat].uplink();
                self.offer(link.0, Direction::Up, translated);
            }
            Ok(Outbound::Hairpin(translated)) => {
                let inside = self.topo.nats[nat].inside_realm();
                self.route(inside, translated);
            }
            Err(reason) => self.dropped(Place::Nat(nat), reason, summary),
        }
    }

    /// The datagram reached its host: record it and hand it to the node bound to the port.
    fn deliver(&mut self, host: usize, dg: Datagram) {
        self.record(Tap::Host(host), &dg);
        let exact = self.sockets.get(&(host, dg.destination));
        let wildcard = || {
            let any_port = SocketAddr::new(dg.destination.ip(), 0);
            self.sockets.get(&(host, any_port))
        };
        let Some(&node) = exact.or_else(wildcard) else {
            return self.host_drop(host, DropReason::UnboundPort, &dg);
        };
        self.topo.hosts[host].stats.delivered += 1;
        self.stats.delivered += 1;
        let now = self.now;
        self.nodes[node].node.handle_datagram(now, dg);
        self.poll_node(node);
    }

    fn host_drop(&mut self, host: usize, reason: DropReason, dg: &Datagram) {
        self.topo.hosts[host].stats.count_drop(reason);
        self.dropped(Place::Host(host), reason, dg.into());
    }

    /// Count a drop in the simulator totals and trace it. (Links and NATs count their own
    /// drops; hosts are counted by `host_drop`.)
    fn dropped(&mut self, place: Place, reason: DropReason, dg: Summary) {
        self.stats.count_drop(reason);
        tracing::debug!(
            %reason,
            %place,
            source = %dg.source,
            destination = %dg.destination,
            len = dg.len,
            elapsed = ?self.elapsed(),
            "netsim: datagram dropped"
        );
    }

    fn record(&mut self, tap: Tap, dg: &Datagram) {
        if self.captures.is_empty() {
            return;
        }
        let ts = self.pcap_epoch + self.elapsed();
        for capture in self.captures.iter_mut().flatten() {
            if capture.tap == tap {
                capture.record(ts, dg);
            }
        }
    }
}
