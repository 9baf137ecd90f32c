//! std and tokio drivers that give floe's Sans-IO state machines real sockets.
//!
//! A driver owns the sockets, reads the clock, draws seeds from the OS, feeds datagrams to a
//! state machine, sends each [`Transmit`](stun_proto::Transmit) from the socket its `source`
//! names, and sleeps until the machine's `poll_timeout`, the next datagram or the next
//! command. There is no protocol logic here: everything a driver decides is about sockets
//! and time.
//!
//! * [`Machine`] is the one trait every floe state machine is driven through.
//! * [`blocking::Runner`] drives a machine on std threads over any number of UDP sockets.
//! * [`stun`] has ready-made STUN helpers: query a server, discover NAT behaviour, serve.
//! * [`ice`] runs ICE agents: host candidates on the machine's interfaces, a blocking and a
//!   tokio flavour with an SDP-line signalling API.
//! * [`turn`] drives a TURN client: a [`Machine`] wrapper and a blocking [`turn::Session`].
//! * [`turn_server`] runs a TURN server: worker threads with mio, batched I/O and GSO.
//! * `sim` (feature `netsim`): floe's state machines as netsim nodes, for simulation tests.
//! * [`net`] binds sockets (with `SO_REUSEPORT` where asked) and lists host addresses.
#![allow(clippy::disallowed_methods)] // drivers are where the clock and OS randomness live

pub mod blocking;
pub mod ice;
mod machine;
pub mod net;
pub mod os;
#[cfg(feature = "netsim")]
pub mod sim;
pub mod stun;
pub mod turn;
pub mod turn_server;

pub use machine::Machine;
