//! End-to-end simulations: ICE agents, a STUN server and a TURN server in a netsim network,
//! through every pair of NAT types, on clean and bad networks, over hours of virtual time, and
//! over TCP (TURN over TCP and TLS, ICE-TCP, RFC 6062) where a firewall drops UDP.
//! The scenarios are in `floe_tests::sim`; `docs/SIMULATION.md` is their report.
#![allow(clippy::disallowed_methods)]

mod determinism;
mod ip;
mod lifetime;
mod long_run;
mod matrix;
mod recovery;
mod tcp;
