//! Simulated networks as just another driver: floe's state machines as [`netsim::Node`]s.
//!
//! [`netsim`] moves datagrams and TCP byte streams between hosts, through links and RFC 4787
//! / RFC 5382 NATs, in virtual time; it knows nothing of STUN, TURN or ICE. The adapters here
//! are the driver side: each turns a netsim [`Datagram`] (or the bytes of a TCP connection)
//! into the machine's input, drains the machine's transmits back into datagrams (or writes on
//! connections), in the Sans-IO order: transmits, then events, then the timeout. They keep
//! the machine's events for the test to drain. The simulator owns the node; get it back
//! with [`Sim::node`](netsim::Sim::node) and [`Sim::node_mut`](netsim::Sim::node_mut) to read
//! events or issue commands between steps.
//!
//! | adapter | machine | bind it to | TCP |
//! |---|---|---|---|
//! | [`StunServerNode`] | `stun_proto::server::BindingServer` | its listening socket(s) | — |
//! | [`TurnServerNode`] | `turn_proto::server::Server` | [`TurnServerNode::sockets`]: listening sockets and a whole-IP socket per relay address | listeners of [`with_tcp`](TurnServerNode::with_tcp) and [`with_tls`](TurnServerNode::with_tls); RFC 6062 peer connections and bridges |
//! | [`AgentNode`] | `ice_core::Agent` | the sockets of its UDP host candidates | ICE-TCP (RFC 6544) connections; connections to TCP and TLS TURN servers |
//! | [`TurnClientNode`] | `turn_proto::client::Client` | [`ClientConfig::local`](turn_proto::client::ClientConfig::local) | the control connection, with [`ClientConfig::transport`](turn_proto::client::ClientConfig::transport) TCP or TLS; RFC 6062 data and peer connections |
//!
//! [`MachineNode`] wraps any [`Machine`](crate::Machine) (the trait the blocking runner drives), so the STUN
//! server and the TURN client are the same adapter. The TURN server and the ICE agent have
//! their own, because their data paths do not fit `Machine`: the server relays from a buffer
//! with headroom and confirms relay binds, the agent sends application data by command.
//!
//! Event timestamps are the virtual time of the last call the adapter saw (`handle_*`, or a
//! command that takes `now`).
//!
//! # TCP and TLS
//!
//! The adapters follow the stream conventions of the cores (`turn_proto::stream`, and
//! "ICE-TCP" and "TURN over TCP and TLS" on [`Agent`](ice_core::Agent)):
//!
//! * **In**: netsim hands over a connection's bytes as they arrive; the adapter cuts them
//!   with `stun_proto::framing::StreamFramer` (STUN and ChannelData on connections to and
//!   from TURN servers; RFC 4571 on ICE-TCP connections) and gives each message to the
//!   machine as one input with the connection's transport, `source` its remote and
//!   `destination` its local address (as the machine names it). A stream that cannot be
//!   framed is closed and reported closed to the machine.
//! * **Out**: a [`Transmit`](stun_proto::Transmit) with transport TCP or TLS is written as it is on the connection
//!   the machine names (`source`, `destination`). A TURN client's control connection is
//!   opened on its first transmit, from [`ClientConfig::local`](turn_proto::client::ClientConfig::local) (netsim's TCP ports are a
//!   namespace of their own: the same address can be a UDP socket too); bytes written
//!   before a connection opens wait for it.
//! * **Reports**: connects, failures, accepts and closes go back to the machine
//!   (`tcp_connected`, `turn_connect_failed`, `connection_closed`, ...); connections the
//!   machine asks to close are closed with a FIN and not reported.
//!
//! **TLS is TCP here.** A TLS connection (a TURN server's TLS listener, a TLS TURN server
//! in an agent's configuration) is simulated as a TCP connection carrying the plaintext:
//! the handshake, the certificate check against the server name and the encryption are the
//! real driver's job, and the cores only ever see plaintext. The inputs and transmits keep
//! the transport `Tls`, so the cores behave as over TLS; captures show plaintext STUN.
//!
//! # Example: a STUN query through a symmetric NAT
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! use floe_drivers::sim::{MachineNode, StunServerNode};
//! use netsim::{LinkConfig, NatConfig, RealmId, Sim};
//! use stun_proto::client::{BindingClient, BindingEvent, BindingRequest};
//! use stun_proto::server::{BindingServer, BindingServerConfig};
//! use stun_proto::TransportProtocol;
//!
//! let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
//! let start = Instant::now(); // the base of virtual time
//! let mut sim = Sim::new(7, start);
//! let nat = sim.add_nat(
//!     RealmId::INTERNET,
//!     &["203.0.113.1".parse()?],
//!     NatConfig::symmetric(),
//!     LinkConfig::with_latency(Duration::from_millis(10)),
//! );
//! let home = sim.nat(nat).inside_realm();
//! let server_host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse()?], LinkConfig::default());
//! let client_host = sim.add_host(home, &["192.168.1.2".parse()?], LinkConfig::default());
//!
//! let (server, local) = (sock("192.0.2.1:3478"), sock("192.168.1.2:5000"));
//! let stun = StunServerNode::new(BindingServer::new(BindingServerConfig::default()), start);
//! sim.add_node(server_host, &[server], stun)?;
//! let client = BindingClient::new(Default::default(), 1, start);
//! let client = sim.add_node(client_host, &[local], MachineNode::new(client, start))?;
//!
//! // A command between steps; its transmit goes out at virtual now.
//! let now = sim.now();
//! let request = BindingRequest::default();
//! sim.node_mut(client).machine_mut().send(now, local, server, TransportProtocol::Udp, request)?;
//! sim.run_for(Duration::from_secs(1));
//!
//! let events = sim.node_mut(client).take_events();
//! let BindingEvent::Success(response) = &events[0].1 else { panic!("{events:?}") };
//! // The server saw the NAT's external address, on a random port.
//! assert_eq!(response.mapped.ip(), "203.0.113.1".parse::<std::net::IpAddr>()?);
//! assert_eq!(response.rtt, Some(Duration::from_millis(20)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: TURN over TCP where UDP is blocked
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! use floe_drivers::sim::{TurnClientNode, TurnServerNode};
//! use floe_drivers::turn::TurnOutput;
//! use netsim::{LinkConfig, NatConfig, RealmId, Sim};
//! use stun_proto::TransportProtocol;
//! use turn_proto::client::{ClientConfig, ClientEvent};
//! use turn_proto::server::{RelayRange, ServerConfig};
//!
//! let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
//! let start = Instant::now();
//! let mut sim = Sim::new(2, start);
//! let link = LinkConfig::with_latency(Duration::from_millis(10));
//! // An office network whose firewall lets no UDP out.
//! let nat = sim.add_nat(RealmId::INTERNET, &["203.0.113.1".parse()?], NatConfig::udp_blocked(), link.clone());
//! let office = sim.nat(nat).inside_realm();
//! let client_host = sim.add_host(office, &["10.0.0.2".parse()?], LinkConfig::default());
//! let server_host = sim.add_host(RealmId::INTERNET, &["192.0.2.1".parse()?], link);
//!
//! let mut config = ServerConfig::new("sim.test");
//! config.relays.push(RelayRange::dynamic("192.0.2.1".parse()?));
//! config.add_user("user", "pass");
//! let turn = TurnServerNode::new(config, &[sock("192.0.2.1:3478")], 1, start)?
//!     .with_tcp(&[sock("192.0.2.1:3478")]);
//! turn.add_to(&mut sim, server_host)?;
//!
//! let local = sock("10.0.0.2:5000");
//! let mut config = ClientConfig::new(sock("192.0.2.1:3478"), local, "user", "pass");
//! config.transport = TransportProtocol::Tcp;
//! let client = sim.add_node(client_host, &[local], TurnClientNode::turn_client(config, 2, start))?;
//! sim.run_for(Duration::from_secs(1));
//!
//! // The control connection opened through the NAT and the allocation was made on it:
//! // one round trip for the handshake, two for the 401 challenge and the Allocate.
//! let (at, event) = &sim.node(client).events().next().expect("an event");
//! assert!(matches!(event, TurnOutput::Event(ClientEvent::Allocated { .. })), "{event:?}");
//! assert_eq!(*at - start, Duration::from_millis(120));
//! assert_eq!(sim.node(client).tcp_connections(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent;
mod machine;
mod streams;
mod turn_server;

pub use agent::{AgentData, AgentNode};
pub use machine::{MachineNode, PeerConnection, StunServerNode, TurnClientNode};
pub use turn_server::TurnServerNode;

use netsim::{Datagram, Transport};
use stun_proto::{Input, TransportProtocol};

/// A datagram as a machine's [`Input`]; `None` for a transport floe does not speak.
fn input(datagram: &Datagram) -> Option<Input<'_>> {
    let transport = match datagram.transport {
        Transport::Udp => TransportProtocol::Udp,
        _ => return None,
    };
    Some(Input {
        transport,
        source: datagram.source,
        destination: datagram.destination,
        data: &datagram.payload,
    })
}
