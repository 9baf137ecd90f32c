//! std and tokio drivers that give floe's Sans-IO state machines real sockets.
//!
//! This crate is being built; see the project issues for its scope.
