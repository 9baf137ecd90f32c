//! ICE agents on real sockets: [`ice_core::Agent`] with host candidates on the machine's
//! interfaces, driven by a blocking loop ([`blocking`]) or a tokio task ([`tokio`]).
//!
//! Both flavours are built the same way, with a [`Builder`]:
//!
//! * host candidates: one UDP socket per interface address ([`net::host_addresses`]: IPv4
//!   and IPv6, loopback and link-local skipped), or per address of an explicit list
//!   ([`Builder::host_ips`]); all added at once, so checks start as soon as the peer's
//!   candidates arrive;
//! * server-reflexive and relayed candidates from [`Builder::stun`] and [`Builder::turn`]:
//!   the agent gathers them itself, through the host sockets;
//! * TURN servers over TCP or TLS ([`Builder::turn_tcp`], [`Builder::turn_tls`], RFC 8656
//!   §3.1, for networks that let no UDP out): the driver opens a connection per UDP host
//!   candidate when the agent asks (`Event::TurnConnect`), makes the TLS handshake against
//!   the trust anchor of [`Builder::turn_tls_ca`] or [`Builder::turn_tls_config`] (never the
//!   platform's), cuts the stream into STUN and ChannelData messages, and reports it closed
//!   (`turn_closed`) when it breaks;
//! * ICE-TCP host candidates ([`Builder::tcp_candidates`], RFC 6544): per host address a
//!   passive candidate on a listening socket, whose connections are offered to the agent
//!   (`tcp_accepted`), and an active one, whose connections the driver opens when the agent
//!   asks (`Event::TcpConnect`); both carry RFC 4571 frames. [`Builder::udp_candidates`]
//!   turns UDP host candidates off;
//! * [`Builder::relay_only`]: only relayed candidates are signalled, and the host sockets
//!   talk to the configured servers only (like WebRTC's `iceTransportPolicy: "relay"`), so
//!   the selected pair is always relayed.
//!
//! Connections are opened, closed and reported on the agent's word: the driver keeps a table
//! of them (which the agent names by `(local, remote)` or by `TurnConnectionId`) and carries
//! bytes; a connection the agent gave up on while it was opening is closed as soon as it
//! opens. In the blocking flavour every socket and connection has a thread feeding the one
//! loop; in the tokio flavour every connection has a task.
//!
//! Then the handle follows the signalling: [`local_credentials`], the local candidates as SDP
//! lines (RFC 8839) until end-of-candidates, the peer's credentials and candidates in any
//! order, `connect` until a pair is selected, then `send`/`recv` on the connection, and
//! `close`, which releases the TURN allocations and waits (boundedly) until the server
//! answered.
//!
//! Application data is copied out of the receive buffer once, into an owned `Vec<u8>`.
//! Receive buffers have no headroom: the agent wraps relayed data in TURN headers by copying
//! it into a new datagram, so headroom would save nothing here.
//!
//! The driver does no ICE itself: every decision is [`ice_core::Agent`]'s. It owns sockets and
//! time, and enforces the relay-only policy as a firewall on its own sockets.
//!
//! [`local_credentials`]: blocking::IceAgent::local_credentials
//! [`net::host_addresses`]: crate::net::host_addresses

pub mod blocking;
mod builder;
mod conns;
mod error;
mod machine;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use builder::{Builder, MdnsResolution};
pub use error::IceError;
pub use machine::{AgentMachine, IceOutput, LocalCandidate};
#[cfg(test)]
mod tests;
