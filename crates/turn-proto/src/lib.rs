//! Sans-IO TURN (RFC 8656): a [`client::Client`] for one allocation on one server, and a
//! [`server::Server`] with any number of allocations, built on `stun-proto`.
//!
//! Both follow floe's Sans-IO contract: construct with a config, a seed and `now`; feed
//! datagrams with `handle_input`; drain `poll_transmit`, then `poll_event`, then read
//! `poll_timeout`; call `handle_timeout` when it is due. Neither reads a clock or a global
//! random generator.
//!
//! Both speak TURN over UDP, TCP and TLS (see [`stream`] for the conventions on streams),
//! and both implement RFC 6062 TCP allocations: Connect, ConnectionAttempt and
//! ConnectionBind, with the data connections opened and closed by the driver on the
//! machines' word.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod channel_data;
pub mod client;
pub mod server;
pub mod stream;

pub use stun_proto::{Input, Transmit, TransportProtocol};
