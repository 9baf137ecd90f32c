//! The path of a packet: from a node (or a host's TCP), over links, through realms and NATs,
//! to a node (or a host's TCP).

use std::fmt;
use std::net::SocketAddr;

use super::Sim;
use super::capture::Tap;
use super::queue::Event;
use crate::datagram::{Datagram, Transport};
use crate::link::{Direction, LinkEnds};
use crate::nat::Outbound;
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::tcp::{Flags, Segment, mss_for_mtu};
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

/// What a drop trace says about the packet (kept apart so the packet itself can move on).
#[derive(Debug, Clone, Copy)]
pub(super) struct Summary {
    transport: Transport,
    source: SocketAddr,
    destination: SocketAddr,
    len: usize,
}

impl From<&Packet> for Summary {
    fn from(p: &Packet) -> Self {
        Summary {
            transport: p.transport(),
            source: p.source(),
            destination: p.destination(),
            len: p.payload_len(),
        }
    }
}

impl From<&Segment> for Summary {
    fn from(s: &Segment) -> Self {
        Summary {
            transport: Transport::Tcp,
            source: s.source,
            destination: s.destination,
            len: s.payload.len(),
        }
    }
}

impl From<&Datagram> for Summary {
    fn from(dg: &Datagram) -> Self {
        Summary {
            transport: dg.transport,
            source: dg.source,
            destination: dg.destination,
            len: dg.payload.len(),
        }
    }
}

/// The largest IP packet the synthesised headers can describe (16-bit length fields).
const MAX_IP_PACKET: usize = 65_535;

impl Sim {
    /// A node handed over `dg`: check it, then put it on the wire.
    pub(super) fn send_from_node(&mut self, node: usize, dg: Datagram) {
        let host = self.nodes[node].host;
        if dg.transport != Transport::Udp {
            return self.host_drop(host, DropReason::BadTransport, (&dg).into());
        }
        if !self.nodes[node].owns(dg.source) {
            return self.host_drop(host, DropReason::BadSource, (&dg).into());
        }
        if !dg.same_family() {
            return self.host_drop(host, DropReason::NoRoute, (&dg).into());
        }
        if dg.ip_len() > MAX_IP_PACKET {
            return self.host_drop(host, DropReason::Mtu, (&dg).into());
        }
        self.send_packet(host, Packet::Udp(dg));
    }

    /// A packet leaves `host` (from a node or from the host's TCP): count and record it, and
    /// put it on the link of the interface that owns its source address.
    pub(super) fn send_packet(&mut self, host: usize, p: Packet) {
        let h = &self.topo.hosts[host];
        // Binding (UDP) and connecting (TCP) checked that the address is the host's.
        let Some(interface) = h.interface_of(p.source().ip()) else {
            return self.host_drop(host, DropReason::BadSource, (&p).into());
        };
        let link = h.interfaces()[interface].link();
        self.topo.hosts[host].stats.sent += 1;
        self.stats.sent += 1;
        self.record(Tap::Host(host), &p);
        self.offer(link.0, Direction::Up, p);
    }

    /// Offer a packet to a link; schedule the copies that make it through.
    fn offer(&mut self, link: usize, dir: Direction, mut p: Packet) {
        let now = self.now;
        if let Packet::Tcp(s) = &mut p {
            // MSS clamping, as routers do: every link a SYN crosses lowers its MSS option to
            // what fits the link's MTU, so the connection's segments fit the whole path.
            if let (true, Some(mss)) = (s.has(Flags::SYN), s.mss) {
                let mtu = self.topo.links[link].config().mtu;
                s.mss = Some(mss.min(mss_for_mtu(mtu, s.source.is_ipv4())));
            }
        }
        match self.topo.links[link].offer(now, p.ip_len(), dir) {
            Err(reason) => self.dropped(Place::Link(link), reason, (&p).into()),
            Ok(arrivals) => {
                let (last, rest) = arrivals
                    .split_last()
                    .expect("a link delivers at least once");
                for at in rest {
                    let packet = p.clone();
                    self.queue.push(*at, Event::LinkExit { link, dir, packet });
                }
                let last = *last;
                self.queue.push(
                    last,
                    Event::LinkExit {
                        link,
                        dir,
                        packet: p,
                    },
                );
            }
        }
    }

    /// A packet came out of a link: hand it to whatever is at that end.
    pub(super) fn link_exit(&mut self, link: usize, dir: Direction, p: Packet) {
        self.topo.links[link].stats.delivered += 1;
        self.record(Tap::Link(link), &p);
        match (self.topo.links[link].ends, dir) {
            (LinkEnds::Host { host, interface }, Direction::Up) => {
                let realm = self.topo.hosts[host].interfaces()[interface].realm();
                self.route(realm, p);
            }
            (LinkEnds::Host { host, .. }, Direction::Down) => self.deliver(host, p),
            (LinkEnds::NatUplink { nat }, Direction::Up) => {
                let parent = self.topo.nats[nat].parent_realm();
                self.route(parent, p);
            }
            (LinkEnds::NatUplink { nat }, Direction::Down) => {
                let (now, summary) = (self.now, Summary::from(&p));
                match self.topo.nats[nat].inbound(now, p) {
                    Ok(translated) => {
                        let inside = self.topo.nats[nat].inside_realm();
                        self.route(inside, translated);
                    }
                    Err(reason) => self.dropped(Place::Nat(nat), reason, summary),
                }
            }
        }
    }

    /// Forward `p`, which is in `realm`, one hop towards its destination (see
    /// [`topology`](crate::topology) for the rules).
    fn route(&mut self, realm: RealmId, p: Packet) {
        let r = &self.topo.realms[realm.0];
        match r.owner(p.destination().ip()) {
            Some(Owner::Host { host, interface }) => {
                let link = self.topo.hosts[host].interfaces()[interface].link();
                self.offer(link.0, Direction::Down, p);
            }
            Some(Owner::Nat(nat)) => {
                let link = self.topo.nats[nat].uplink();
                self.offer(link.0, Direction::Down, p);
            }
            None => match r.gateway {
                Some(nat) => self.leave_realm(nat, p),
                None => self.dropped(Place::Realm(realm.0), DropReason::NoRoute, (&p).into()),
            },
        }
    }

    /// Out through the realm's NAT: translate, then up the uplink (or hairpin back in).
    fn leave_realm(&mut self, nat: usize, p: Packet) {
        let (now, summary) = (self.now, Summary::from(&p));
        match self.topo.nats[nat].outbound(now, p) {
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

    /// The packet reached its host: record it and hand it to the node bound to the port, or
    /// to the host's TCP.
    fn deliver(&mut self, host: usize, p: Packet) {
        self.record(Tap::Host(host), &p);
        match p {
            Packet::Udp(dg) => self.deliver_datagram(host, dg),
            Packet::Tcp(s) => self.tcp_receive(host, s),
        }
    }

    fn deliver_datagram(&mut self, host: usize, dg: Datagram) {
        let exact = self.sockets.get(&(host, dg.destination));
        let wildcard = || {
            let any_port = SocketAddr::new(dg.destination.ip(), 0);
            self.sockets.get(&(host, any_port))
        };
        let Some(&node) = exact.or_else(wildcard) else {
            return self.host_drop(host, DropReason::UnboundPort, (&dg).into());
        };
        self.topo.hosts[host].stats.delivered += 1;
        self.stats.delivered += 1;
        let now = self.now;
        self.nodes[node].node.handle_datagram(now, dg);
        self.poll_node(node);
    }

    pub(super) fn host_drop(&mut self, host: usize, reason: DropReason, summary: Summary) {
        self.topo.hosts[host].stats.count_drop(reason);
        self.dropped(Place::Host(host), reason, summary);
    }

    /// Count a drop in the simulator totals and trace it. (Links and NATs count their own
    /// drops; hosts are counted by `host_drop`.)
    fn dropped(&mut self, place: Place, reason: DropReason, dg: Summary) {
        self.stats.count_drop(reason);
        tracing::debug!(
            %reason,
            %place,
            transport = ?dg.transport,
            source = %dg.source,
            destination = %dg.destination,
            len = dg.len,
            elapsed = ?self.elapsed(),
            "netsim: packet dropped"
        );
    }

    fn record(&mut self, tap: Tap, p: &Packet) {
        if self.captures.is_empty() {
            return;
        }
        let ts = self.pcap_epoch + self.elapsed();
        for capture in self.captures.iter_mut().flatten() {
            if capture.tap == tap {
                capture.record(ts, p);
            }
        }
    }
}
