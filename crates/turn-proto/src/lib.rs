//! Sans-IO TURN (RFC 8656) client and server state machines.
//!
//! This crate is being built; see the project issues for its scope.
#![forbid(unsafe_code)]
