//! A deterministic simulated network with RFC 4787 / RFC 5382 NAT models, for driving Sans-IO
//! protocol machines (STUN, TURN, ICE, anything that sends datagrams or uses TCP) through
//! realistic networks in virtual time.
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
//! * **Routing.** A packet in a realm goes to the host or NAT that owns its destination
//!   address there; if nobody does, it leaves through the realm's NAT (translated, RFC 4787
//!   mapping and port assignment) into the parent realm; in the internet realm it is dropped
//!   ([`DropReason::NoRoute`]). A packet reaching a NAT's outside address is filtered (RFC
//!   4787 filtering) and translated down into the inside realm. Packets from inside to the
//!   NAT's own outside address hairpin when the NAT allows it.
//! * **Links.** Every host interface and every NAT uplink is a [`Link`] with latency, jitter,
//!   loss, duplication, reordering, MTU and an optional rate limit ([`LinkConfig`]), which can
//!   be changed mid-run.
//! * **Nodes.** Any Sans-IO machine wrapped in the small [`Node`] trait. The simulator owns the
//!   nodes; [`NodeId<T>`] gives typed access back ([`Sim::node_mut`]) so a test can read its
//!   machine's events and issue commands between steps. A node binds UDP sockets on its host
//!   and may only send from them. The [`nodes`] module has ready-made ones for tests and
//!   examples (echo servers, a periodic pinger, probes the test drives by hand, for UDP and
//!   TCP).
//! * **TCP.** Every host runs a TCP stack for its nodes. A node returns [`TcpCommand`]s
//!   (listen, connect, send, close, abort) from [`Node::poll_tcp`] and gets [`TcpEvent`]s
//!   (connected, accepted, data, closed, failures) in [`Node::handle_tcp`]; both default to
//!   nothing, so UDP-only nodes are unchanged. Real segments cross the links and NATs:
//!   - *Handshake*: SYN, SYN-ACK, ACK, each taking its path's latency (connected after one
//!     round trip, accepted half a round trip later); crossing SYNs make a simultaneous open
//!     (RFC 9293 §3.5), which both ends see as connected.
//!   - *Delivery*: bytes arrive once and in order. A lost segment is resent after the
//!     retransmission timeout (1 s before any round trip is measured, then
//!     `max(200 ms, 2 × SRTT, SRTT + 4 × RTTVAR)`, doubling per expiry); duplicated and
//!     reordered segments are absorbed by the receiver. Loss costs time, never bytes.
//!   - *Segmentation*: the MSS is negotiated from the link MTUs (every link clamps the MSS
//!     option of SYNs that cross it), so segments fit the path; the MTU never shows in the
//!     byte stream.
//!   - *Close and reset*: a close sends a FIN after the queued bytes, and the peer sees
//!     [`CloseReason::Fin`] after the last of them (and closes its side in turn); an abort
//!     sends a RST ([`CloseReason::Reset`]); a SYN to a port nobody listens on is answered by
//!     a RST ([`ConnectError::Refused`]); data unacknowledged for
//!     [`TcpConfig::user_timeout`] (a cut link, an expired NAT session) or unanswered
//!     keepalives end the connection ([`CloseReason::TimedOut`]).
//!   - *NATs* (RFC 5382): TCP mappings follow the NAT's mapping and port-assignment
//!     behaviour; only a SYN creates state; inbound SYNs pass the filtering behaviour (a SYN
//!     to a mapping whose outbound SYN went to that very endpoint passes, which is what lets a
//!     simultaneous open through port-restricted NATs; others vanish); connections are
//!     forgotten after the established (default 2 h 4 min) or transitory (4 min) idle
//!     timeout; TCP hairpins when the NAT does. The [`Firewall`] blocks UDP and TCP
//!     independently.
//! * **Observation.** [`Stats`] per host, link and NAT, and for the whole run, with drops by
//!   [`DropReason`] (each drop is also a `tracing::debug!` event) and TCP counters
//!   ([`TcpStats`]). Pcap captures of a host or a link ([`Sim::capture_host`],
//!   [`Sim::capture_link`]) that Wireshark reads, timestamped in virtual time; TCP segments
//!   carry their real sequence numbers and flags, so Wireshark follows the streams and
//!   decodes what they carry (STUN over TCP on port 3478, say).
//!
//! Events (node timers, packets coming out of links, TCP timers) are processed in order of
//! time, then of scheduling. Drive the run with [`Sim::step`], [`Sim::run_until`],
//! [`Sim::run_for`],
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
//!
//! # Example: UDP blocked, TCP through
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use std::time::{Duration, Instant};
//!
//! use netsim::nodes::{Echo, Probe, TcpEcho, TcpProbe};
//! use netsim::{DropReason, LinkConfig, NatConfig, RealmId, Sim};
//!
//! let ip = |s: &str| s.parse::<IpAddr>().unwrap();
//! let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
//! let mut sim = Sim::new(7, Instant::now());
//! let latency = LinkConfig::with_latency(Duration::from_millis(10));
//! // A corporate network: a NAT whose firewall drops all UDP.
//! let outside = [ip("203.0.113.1")];
//! let nat = sim.add_nat(RealmId::INTERNET, &outside, NatConfig::udp_blocked(), latency.clone());
//! let office = sim.nat(nat).inside_realm();
//! let client = sim.add_host(office, &[ip("10.0.0.5")], LinkConfig::default());
//! let server = sim.add_host(RealmId::INTERNET, &[ip("198.51.100.7")], latency);
//!
//! // The server answers on UDP 3478 and on TCP 3478.
//! sim.add_node(server, &[sock("198.51.100.7:3478")], Echo::new())?;
//! sim.add_node(server, &[], TcpEcho::new(&[sock("198.51.100.7:3478")]))?;
//! let udp = sim.add_node(client, &[sock("10.0.0.5:5000")], Probe::new(sock("10.0.0.5:5000")))?;
//! let tcp = sim.add_node(client, &[], TcpProbe::new())?;
//!
//! sim.node_mut(udp).send(sock("198.51.100.7:3478"), b"over udp".to_vec());
//! sim.node_mut(tcp).connect(sock("10.0.0.5:0"), sock("198.51.100.7:3478"));
//! sim.run_for(Duration::from_secs(1));
//! assert!(sim.node(udp).received().is_empty());
//! assert_eq!(sim.nat(nat).stats().dropped(DropReason::Firewall), 1);
//!
//! // The handshake took one round trip, 2 x 2 x 10 ms; the server saw the NAT's address.
//! let (id, _, _) = sim.node(tcp).log().established()[0];
//! let connected = sim.node(tcp).log().established_at(id).unwrap();
//! assert_eq!(connected - sim.base(), Duration::from_millis(40));
//! sim.node_mut(tcp).send(id, b"over tcp".to_vec());
//! sim.run_for(Duration::from_secs(1));
//! assert_eq!(sim.node(tcp).log().received(id), b"over tcp");
//! # Ok::<(), netsim::BindError>(())
//! ```
#![forbid(unsafe_code)]

mod datagram;
mod link;
mod nat;
mod node;
pub mod nodes;
mod packet;
pub mod pcap;
mod random;
mod sim;
mod stats;
mod tcp;
pub mod topology;

pub use datagram::{Datagram, Transport};
pub use link::{Link, LinkConfig, LinkId, RateLimit};
pub use nat::{
    FilteringBehavior, Firewall, Mapping, MappingBehavior, Nat, NatConfig, NatId, PortAssignment,
    TcpSession,
};
pub use node::{AnyNodeId, BindError, Node, NodeId};
pub use sim::{CaptureId, CaptureSink, Sim};
pub use stats::{DropReason, Stats, TcpStats};
pub use tcp::{CloseReason, ConnectError, TcpCommand, TcpConfig, TcpEvent, TcpId};
pub use topology::{Host, HostId, Interface, RealmId};
