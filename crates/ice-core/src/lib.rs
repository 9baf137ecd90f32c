//! Sans-IO ICE agent (RFC 8445) with trickle (RFC 8838) and consent freshness (RFC 7675).
//!
//! This crate is being built; see the project issues for its scope.
#![forbid(unsafe_code)]
