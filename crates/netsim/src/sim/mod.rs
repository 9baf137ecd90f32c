//! The simulator: owns the topology and the nodes, and moves datagrams in virtual time.

mod capture;
mod forward;
mod queue;
mod run;
mod tcp;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use capture::{CaptureId, CaptureSink};

use crate::link::{Link, LinkConfig, LinkEnds, LinkId};
use crate::nat::{Nat, NatConfig, NatId};
use crate::node::{AnyNodeId, BindError, Node, NodeId, NodeSlot};
use crate::random;
use crate::stats::Stats;
use crate::topology::{Host, HostId, Owner, RealmId, Topology};
use capture::{Capture, Tap};
use queue::EventQueue;
use tcp::TcpStack;

/// A deterministic simulated network.
///
/// A run is a pure function of the seed, the base instant and what the test does: the
/// simulator never reads the clock or the OS random generator, and never sleeps.
///
/// Methods, by group:
/// * **Topology**: [`add_nat`](Self::add_nat), [`add_host`](Self::add_host),
///   [`add_interface`](Self::add_interface); inspect and change elements with
///   [`host`](Self::host), [`nat`](Self::nat), [`nat_mut`](Self::nat_mut),
///   [`link`](Self::link), [`link_mut`](Self::link_mut), [`host_link`](Self::host_link).
/// * **Nodes**: [`add_node`](Self::add_node), [`bind`](Self::bind), [`unbind`](Self::unbind),
///   typed access with [`node`](Self::node) and [`node_mut`](Self::node_mut). After
///   `node_mut`, the simulator polls the node (transmits, TCP commands, timeout) before the
///   next event.
/// * **TCP**: nodes drive it themselves ([`Node::poll_tcp`]); the simulator-wide knobs are
///   [`set_tcp_config`](Self::set_tcp_config) and [`tcp_config`](Self::tcp_config), and
///   [`tcp_connection_count`](Self::tcp_connection_count) tells what the stacks still hold.
/// * **Time**: [`now`](Self::now), [`step`](Self::step), [`run_until`](Self::run_until),
///   [`run_for`](Self::run_for), [`run_until_idle`](Self::run_until_idle),
///   [`run_until_condition`](Self::run_until_condition),
///   [`next_event_time`](Self::next_event_time).
/// * **Observation**: [`stats`](Self::stats), [`capture_host`](Self::capture_host),
///   [`capture_link`](Self::capture_link), [`capture_bytes`](Self::capture_bytes),
///   [`finish_capture`](Self::finish_capture).
///
/// Misusing an id from another `Sim` or adding an address twice to one realm panics: these
/// are mistakes in a test's setup, not conditions a run can recover from.
pub struct Sim {
    base: Instant,
    now: Instant,
    pcap_epoch: Duration,
    rng: ChaCha20Rng,
    topo: Topology,
    nodes: Vec<NodeSlot>,
    /// (host, socket) -> node. Port 0 binds every port of the address.
    sockets: BTreeMap<(usize, SocketAddr), usize>,
    queue: EventQueue,
    /// Nodes handed out by `node_mut` (or just added): poll them before the next event.
    dirty: BTreeSet<usize>,
    captures: Vec<Option<Capture>>,
    stats: Stats,
    /// Events processed at the current instant, to catch a node that never lets time move.
    events_at_now: u64,
    tcp: TcpStack,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("elapsed", &self.elapsed())
            .field("hosts", &self.topo.hosts.len())
            .field("nats", &self.topo.nats.len())
            .field("links", &self.topo.links.len())
            .field("nodes", &self.nodes.len())
            .field("tcp_connections", &self.tcp.conns.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty network (just the [internet](RealmId::INTERNET) realm) whose virtual clock
    /// starts at `base`. Every random choice derives from `seed`.
    #[must_use]
    pub fn new(seed: u64, base: Instant) -> Self {
        Sim {
            base,
            now: base,
            pcap_epoch: Duration::ZERO,
            rng: ChaCha20Rng::seed_from_u64(seed),
            topo: Topology::new(),
            nodes: Vec::new(),
            sockets: BTreeMap::new(),
            queue: EventQueue::default(),
            dirty: BTreeSet::new(),
            captures: Vec::new(),
            stats: Stats::default(),
            events_at_now: 0,
            tcp: TcpStack::new(seed),
        }
    }

    /// Virtual now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the simulation started at.
    #[must_use]
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Virtual time since the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Set the wall-clock time that pcap timestamps count the simulation's start from
    /// (a duration since 1970-01-01 UTC; default zero). Fixed, so captures are reproducible.
    pub fn set_pcap_epoch(&mut self, since_unix_epoch: Duration) {
        self.pcap_epoch = since_unix_epoch;
    }

    /// Counters over the whole network: packets sent and delivered by hosts (UDP datagrams
    /// and TCP segments), every drop anywhere by reason, and TCP connection counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ---- topology ----

    /// Add a NAT with `outside` addresses in `parent`, and a new realm behind it
    /// ([`Nat::inside_realm`]). `uplink` configures the link between the NAT and `parent`.
    /// Put a NAT inside another NAT's realm to nest them (home NAT behind a CGNAT).
    ///
    /// # Panics
    /// If `parent` is unknown or an outside address is already used in it.
    pub fn add_nat(
        &mut self,
        parent: RealmId,
        outside: &[IpAddr],
        config: NatConfig,
        uplink: LinkConfig,
    ) -> NatId {
        let nat = self.topo.nats.len();
        self.topo.claim(parent, outside, Owner::Nat(nat));
        let link = self.new_link(uplink, LinkEnds::NatUplink { nat });
        let inside = self.topo.add_realm(nat);
        let rng = random::child(&mut self.rng);
        self.topo
            .nats
            .push(Nat::new(config, outside, parent, inside, link, rng));
        NatId(nat)
    }

    /// Add a host with one interface: `addresses` in `realm` (IPv4, IPv6, or both for a
    /// dual-stack host), attached through a link configured by `link`. The host runs a TCP
    /// stack for its nodes.
    ///
    /// # Panics
    /// If `realm` is unknown or an address is already used in it.
    pub fn add_host(&mut self, realm: RealmId, addresses: &[IpAddr], link: LinkConfig) -> HostId {
        self.topo.hosts.push(Host::default());
        let host = HostId(self.topo.hosts.len() - 1);
        self.add_interface(host, realm, addresses, link);
        host
    }

    /// Give `host` another interface, with `addresses` in `realm` and its own link: a
    /// multi-homed host (Wi-Fi and cellular, or IPv4 behind a NAT and IPv6 on the internet).
    /// A datagram leaves through the interface that owns its source address.
    ///
    /// # Panics
    /// If the host or realm is unknown or an address is already used in the realm.
    pub fn add_interface(
        &mut self,
        host: HostId,
        realm: RealmId,
        addresses: &[IpAddr],
        link: LinkConfig,
    ) -> LinkId {
        let interface = self.host(host).interfaces().len();
        let link = self.new_link(
            link,
            LinkEnds::Host {
                host: host.0,
                interface,
            },
        );
        self.topo.add_interface(host, realm, addresses, link);
        link
    }

    fn new_link(&mut self, config: LinkConfig, ends: LinkEnds) -> LinkId {
        let rng = random::child(&mut self.rng);
        self.topo.links.push(Link::new(config, ends, rng));
        LinkId(self.topo.links.len() - 1)
    }

    /// A host.
    ///
    /// # Panics
    /// If the id is unknown.
    #[must_use]
    pub fn host(&self, id: HostId) -> &Host {
        self.topo
            .hosts
            .get(id.0)
            .unwrap_or_else(|| panic!("netsim: unknown {id:?}"))
    }

    /// The link of a host's first interface.
    #[must_use]
    pub fn host_link(&self, id: HostId) -> LinkId {
        self.host(id).interfaces()[0].link()
    }

    /// A NAT.
    ///
    /// # Panics
    /// If the id is unknown.
    #[must_use]
    pub fn nat(&self, id: NatId) -> &Nat {
        self.topo.nat_id(id)
    }

    /// A NAT, to change its configuration or expire its mappings.
    ///
    /// # Panics
    /// If the id is unknown.
    pub fn nat_mut(&mut self, id: NatId) -> &mut Nat {
        self.topo
            .nats
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("netsim: unknown {id:?}"))
    }

    /// A link.
    ///
    /// # Panics
    /// If the id is unknown.
    #[must_use]
    pub fn link(&self, id: LinkId) -> &Link {
        self.topo
            .links
            .get(id.0)
            .unwrap_or_else(|| panic!("netsim: unknown {id:?}"))
    }

    /// A link, to change its configuration mid-run (cut it, add loss...).
    ///
    /// # Panics
    /// If the id is unknown.
    pub fn link_mut(&mut self, id: LinkId) -> &mut Link {
        self.topo
            .links
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("netsim: unknown {id:?}"))
    }

    // ---- nodes ----

    /// Run `node` on `host`, bound to `sockets` (port 0 binds every port of that address).
    /// The node is polled (transmits, then timeout) before the next event is processed.
    ///
    /// # Errors
    /// If a socket's address is not the host's, or the socket is taken.
    ///
    /// # Panics
    /// If the host is unknown.
    pub fn add_node<T: Node + 'static>(
        &mut self,
        host: HostId,
        sockets: &[SocketAddr],
        node: T,
    ) -> Result<NodeId<T>, BindError> {
        let _ = self.host(host);
        for (i, socket) in sockets.iter().enumerate() {
            self.check_bind(host.0, *socket)?;
            if sockets[..i].contains(socket) {
                return Err(BindError::InUse(*socket));
            }
        }
        let index = self.nodes.len();
        self.nodes.push(NodeSlot {
            host: host.0,
            node: Box::new(node),
            sockets: Vec::new(),
            timer: None,
        });
        for socket in sockets {
            self.attach(index, *socket);
        }
        self.dirty.insert(index);
        Ok(NodeId::new(index))
    }

    /// Bind a node to one more socket on its host (a TURN server's new relay port, say).
    ///
    /// # Errors
    /// If the address is not the host's, or the socket is taken.
    pub fn bind(
        &mut self,
        node: impl Into<AnyNodeId>,
        socket: SocketAddr,
    ) -> Result<(), BindError> {
        let index = self.slot_index(node.into());
        self.check_bind(self.nodes[index].host, socket)?;
        self.attach(index, socket);
        Ok(())
    }

    /// Release a socket of a node; returns whether it was bound.
    pub fn unbind(&mut self, node: impl Into<AnyNodeId>, socket: SocketAddr) -> bool {
        let index = self.slot_index(node.into());
        let slot = &mut self.nodes[index];
        let Some(pos) = slot.sockets.iter().position(|s| *s == socket) else {
            return false;
        };
        slot.sockets.remove(pos);
        self.sockets.remove(&(slot.host, socket));
        true
    }

    fn check_bind(&self, host: usize, socket: SocketAddr) -> Result<(), BindError> {
        if self.topo.hosts[host].interface_of(socket.ip()).is_none() {
            return Err(BindError::AddressNotOnHost(socket));
        }
        if self.sockets.contains_key(&(host, socket)) {
            return Err(BindError::InUse(socket));
        }
        Ok(())
    }

    fn attach(&mut self, index: usize, socket: SocketAddr) {
        let host = self.nodes[index].host;
        self.sockets.insert((host, socket), index);
        self.nodes[index].sockets.push(socket);
    }

    fn slot_index(&self, id: AnyNodeId) -> usize {
        assert!(id.0 < self.nodes.len(), "netsim: unknown {id:?}");
        id.0
    }

    /// The host a node runs on.
    #[must_use]
    pub fn node_host(&self, node: impl Into<AnyNodeId>) -> HostId {
        HostId(self.nodes[self.slot_index(node.into())].host)
    }

    /// The sockets a node is bound to.
    #[must_use]
    pub fn node_sockets(&self, node: impl Into<AnyNodeId>) -> &[SocketAddr] {
        &self.nodes[self.slot_index(node.into())].sockets
    }

    /// Typed shared access to a node.
    ///
    /// # Panics
    /// If the id does not belong to this simulator.
    #[must_use]
    pub fn node<T: Node + 'static>(&self, id: NodeId<T>) -> &T {
        self.nodes
            .get(id.index)
            .and_then(|s| s.node.as_any().downcast_ref())
            .unwrap_or_else(|| panic!("netsim: {id:?} is not a node of this type in this Sim"))
    }

    /// Typed mutable access to a node, to issue commands or drain its events. The simulator
    /// polls the node (transmits, TCP commands, then timeout) at [`now`](Self::now) before
    /// the next event.
    ///
    /// # Panics
    /// If the id does not belong to this simulator.
    pub fn node_mut<T: Node + 'static>(&mut self, id: NodeId<T>) -> &mut T {
        self.dirty.insert(id.index);
        self.nodes
            .get_mut(id.index)
            .and_then(|s| s.node.as_any_mut().downcast_mut())
            .unwrap_or_else(|| panic!("netsim: {id:?} is not a node of this type in this Sim"))
    }

    // ---- captures ----

    /// Capture everything `host` sends (stamped when sent) and receives (stamped when
    /// delivered, whether or not a node is bound to the port).
    pub fn capture_host(&mut self, host: HostId, sink: CaptureSink) -> CaptureId {
        let _ = self.host(host);
        self.add_capture(Tap::Host(host.0), sink)
    }

    /// Capture everything that comes out of either end of `link`, stamped when it comes out:
    /// lost datagrams are absent, duplicates appear twice.
    pub fn capture_link(&mut self, link: LinkId, sink: CaptureSink) -> CaptureId {
        let _ = self.link(link);
        self.add_capture(Tap::Link(link.0), sink)
    }

    fn add_capture(&mut self, tap: Tap, sink: CaptureSink) -> CaptureId {
        self.captures.push(Some(Capture::new(tap, sink)));
        CaptureId(self.captures.len() - 1)
    }

    /// The pcap bytes so far of a running in-memory capture (`None` for a writer capture,
    /// a finished one, or one stopped by a write error).
    #[must_use]
    pub fn capture_bytes(&self, id: CaptureId) -> Option<&[u8]> {
        self.captures.get(id.0)?.as_ref()?.bytes()
    }

    /// Stop a capture and flush it; returns the bytes of an in-memory capture.
    ///
    /// # Errors
    /// The first error the writer returned (which stopped the capture), or a flush error.
    pub fn finish_capture(&mut self, id: CaptureId) -> io::Result<Option<Vec<u8>>> {
        match self.captures.get_mut(id.0).and_then(Option::take) {
            Some(c) => c.finish(),
            None => Ok(None),
        }
    }
}

impl<T> From<NodeId<T>> for AnyNodeId {
    fn from(id: NodeId<T>) -> Self {
        id.erased()
    }
}
