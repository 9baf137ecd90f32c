//! A deterministic simulated network with RFC 4787 NAT models.
//!
//! This crate is being built; see the project issues for its scope.
#![forbid(unsafe_code)]
