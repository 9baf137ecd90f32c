//! A deterministic simulated network with RFC 4787 NAT models, for driving Sans-IO protocol
//! machines (STUN, TURN, ICE, anything that sends datagrams) through realistic networks in
//! virtual time.
//!
//! # The model
//!
//! * **Virtual time, seeded randomness.** [`Sim::new`] takes a seed and a base
//!   [`Instant`](std::time::Instant); virtual time starts there and only moves when events
//!   are processed. The simulator never reads the clock or the OS random generator and
//!   never sleeps: a run is a pure function of the seed and the scenario. Every link and NAT
//!   draws from its own `ChaCha20Rng`, seeded from the simulator's when the element is
//!   created.
//! * **Realms.** An address space. The public internet is the root realm
//!   [`RealmId::INTERNET`]. A [`Nat`] has outside addresses in a parent realm and owns an
//!   inside realm; NATs nest (a home NAT inside a CGNAT's realm).
//! * **Hosts.** A [`Host`] has interfaces, each with addresses (IPv4, IPv6 or both) in one
//!   realm and its own access [`Link`]. A host with interfaces in two realms is multi-homed.
//! * **Routing.** A datagram in a realm goes to the host or NAT that owns its destination
//!   address there; if nobody does, it leaves through the realm's NAT (translated, RFC 4787
//!   mapping and port assignment) into the parent realm; in the internet realm it is dropped
//!   ([`DropReason::NoRoute`]). A datagram reaching a NAT's outside address is filtered (RFC
//!   4787 filtering) and translated down into the inside realm. Datagrams from inside to the
//!   NAT's own outside address hairpin when the NAT allows it.
//! * **Links.** Every host interface and every NAT uplink is a [`Link`] with latency, jitter,
//!   loss, duplication, reordering, MTU and an optional rate limit ([`LinkConfig`]), which can
//!   be changed mid-run.
//! * **Nodes.** Any Sans-IO machine wrapped in the small [`Node`] trait. The simulator owns the
//!   nodes; [`NodeId<T>`] gives typed access back ([`Sim::node_mut`]) so a test can read its
//!   machine's events and issue commands between steps. A node binds sockets on its host and
//!   may only send from them. The [`nodes`] module has ready-made ones for tests and examples
//!   (an echo server, a periodic pinger, a probe the test drives by hand).
//! * **Observation.** [`Stats`] per host, link and NAT, and for the whole run, with drops by
//!   [`DropReason`] (each drop is also a `tracing::debug!` event). Pcap captures of a host or
//!   a link ([`Sim::capture_host`], [`Sim::capture_link`]) that Wireshark reads, timestamped
//!   in virtual time.
//!
//! Events (node timers, datagrams coming out of links) are processed in order of time, then
//! of scheduling. Drive the run with [`Sim::step`], [`Sim::run_until`], [`Sim::run_for`],
//! [`Sim::run_until_idle`] or [`Sim::run_until_condition`].
//!
//! # Example: a client behind a NAT pings a server
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use std::time::{Duration, Instant};
//!
//! use netsim::nodes::{Echo, Pinger};
//! use netsim::{LinkConfig, NatConfig, RealmId, Sim};
//!
//! let ip = |s: &str| s.parse::<IpAddr>().unwrap();
//! let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
//! let start = Instant::now(); // the only clock read: the base of virtual time
//! let mut sim = Sim::new(42, start);
//!
//! // A port-restricted cone home NAT on the internet, and a client behind it.
//! let nat = sim.add_nat(
//!     RealmId::INTERNET,
//!     &[ip("203.0.113.1")],
//!     NatConfig::port_restricted_cone(),
//!     LinkConfig::with_latency(Duration::from_millis(10)),
//! );
//! let home = sim.nat(nat).inside_realm();
//! let client = sim.add_host(home, &[ip("192.168.1.10")], LinkConfig::default());
//! let server = sim.add_host(
//!     RealmId::INTERNET,
//!     &[ip("198.51.100.7")],
//!     LinkConfig::with_latency(Duration::from_millis(20)),
//! );
//!
//! let echo = sim.add_node(server, &[sock("198.51.100.7:7")], Echo::new())?;
//! let pinger = Pinger::new(
//!     sock("192.168.1.10:5000"),
//!     sock("198.51.100.7:7"),
//!     Duration::from_millis(100),
//!     start,
//! );
//! let pinger = sim.add_node(client, &[sock("192.168.1.10:5000")], pinger)?;
//!
//! sim.run_for(Duration::from_secs(1));
//!
//! // The server saw the NAT's external endpoint (the port was preserved)...
//! let seen = sim.node(echo).received()[0].datagram.source;
//! assert_eq!(seen, sock("203.0.113.1:5000"));
//! // ...and every round trip took 2 x (10 + 20) ms.
//! let rtts = sim.node(pinger).rtts();
//! assert_eq!(rtts.len(), 10);
//! assert!(rtts.iter().all(|rtt| *rtt == Duration::from_millis(60)));
//! # Ok::<(), netsim::BindError>(())
//! ```
#![forbid(unsafe_code)]

mod datagram;
mod link;
mod nat;
mod node;
pub mod nodes;
pub mod pcap;
mod random;
mod sim;
mod stats;
pub mod topology;

pub use datagram::{Datagram, Transport};
pub use link::{Link, LinkConfig, LinkId, RateLimit};
pub use nat::{
    FilteringBehavior, Firewall, Mapping, MappingBehavior, Nat, NatConfig, NatId, PortAssignment,
};
pub use node::{AnyNodeId, BindError, Node, NodeId};
pub use sim::{CaptureId, CaptureSink, Sim};
pub use stats::{DropReason, Stats};
pub use topology::{Host, HostId, Interface, RealmId};
