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
//! * [`Builder::relay_only`]: only relayed candidates are signalled, and the host sockets
//!   talk to the configured servers only (like WebRTC's `iceTransportPolicy: "relay"`), so
//!   the selected pair is always relayed.
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
mod error;
mod machine;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use builder::Builder;
pub use error::IceError;
pub use machine::{AgentMachine, IceOutput, LocalCandidate};
#[cfg(test)]
mod tests;
