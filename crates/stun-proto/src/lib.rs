//! Sans-IO STUN (RFC 8489, compatible with RFC 5389).
//!
//! The codec is a zero-copy view over `&[u8]` ([`Message`]) and a builder that writes into
//! a caller's buffer ([`MessageBuilder`]); neither allocates. [`IntegrityKey`] holds a
//! prepared HMAC state so that integrity checks cost only the hashing of the message.
//! The codec builds with `no_std` + `alloc`; the state machines need the `std` feature
//! (on by default) for [`std::time::Instant`].
//!
//! ```
//! use stun_proto::{Message, MessageBuilder, MessageType, TransactionId, IntegrityKey};
//! use stun_proto::attributes::{Username, XorMappedAddress};
//!
//! // Build a Binding success response into a stack buffer...
//! let tid = TransactionId::new([7; 12]);
//! let mut buf = [0u8; 128];
//! let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, tid)?;
//! b.add(&XorMappedAddress("192.0.2.1:32853".parse()?))?;
//! b.add_fingerprint()?;
//! let bytes = b.finish();
//!
//! // ...and read it back.
//! let msg = Message::parse(bytes)?;
//! msg.verify_fingerprint()?;
//! let mapped = msg.require::<XorMappedAddress>()?;
//! assert_eq!(mapped.0.to_string(), "192.0.2.1:32853");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

extern crate alloc;

pub mod attributes;
mod builder;
pub mod credentials;
pub mod framing;
mod header;
mod hmac_sha1;
mod integrity;
mod message;
mod transport;

#[cfg(feature = "std")]
mod cache;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod nat;
#[cfg(feature = "std")]
pub mod server;
#[cfg(feature = "std")]
pub mod transaction;

#[cfg(feature = "std")]
pub use cache::{DEFAULT_RESPONSE_TTL, ResponseCache};
pub use transport::{Input, Transmit, TransportProtocol};

pub use builder::{BuildError, MessageBuilder};
pub use header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
pub use integrity::{FINGERPRINT_XOR, IntegrityKey};
pub use message::{Attributes, IntegrityAlgorithm, Message, ParseError, VerifyError, peek_header};
