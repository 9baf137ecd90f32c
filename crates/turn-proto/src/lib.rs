//! Sans-IO TURN (RFC 8656): a [`client::Client`] for one allocation on one server, and a
//! [`server::Server`] with any number of allocations, built on `stun-proto`.
//!
//! Both follow floe's Sans-IO contract: construct with a config, a seed and `now`; feed
//! datagrams with `handle_input`; drain `poll_transmit`, then `poll_event`, then read
//! `poll_timeout`; call `handle_timeout` when it is due. Neither reads a clock or a global
//! random generator.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod channel_data;
pub mod client;
pub mod server;

pub use stun_proto::{Input, Transmit, TransportProtocol};
