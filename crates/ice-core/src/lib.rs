//! Sans-IO ICE (RFC 8445) with trickle (RFC 8838), ICE-lite, consent freshness (RFC 7675),
//! restarts, TCP candidates (RFC 6544), SDP candidate lines (RFC 8839) and mDNS candidates.
//!
//! The [`Agent`] is a state machine: it never touches a socket or a clock and draws its
//! randomness from a seed, so it runs in any event loop, in a simulator on a virtual clock,
//! and under a fuzzer. Its documentation shows the run loop. For servers holding thousands
//! of sessions on one port, [`AgentSet`] routes datagrams to agents (checks by the ufrag in
//! USERNAME, data by validated remote address) and paces all of them with one [`Pacer`].
//!
//! # What is implemented
//!
//! * RFC 8445: full and lite agents, controlling and controlled, role-conflict repair;
//!   host, server-reflexive, peer-reflexive (both sides) and relayed candidates (the agent
//!   runs `turn_proto` clients and wraps relayed traffic itself); priorities,
//!   foundations, redundancy; checklists with pruning, the pair limit, foundation-based
//!   unfreezing across streams, Ta pacing and triggered checks; regular nomination, and
//!   aggressive nomination from a peer; keepalives; restarts.
//! * RFC 8838: local candidates as events, remote candidates any time (also before the
//!   peer's credentials), end-of-candidates both ways.
//! * RFC 7675: consent checks at randomised intervals, expiry after 30 s.
//! * RFC 6544: active, passive and simultaneous-open TCP host candidates, their priorities
//!   and pairing; the agent drives the connections (the driver opens, accepts and closes
//!   them, see [`Agent`]) and frames checks and data with RFC 4571.
//! * RFC 8656 §3.1: relayed candidates from TURN servers over TCP and TLS, on connections
//!   the driver opens when asked (see [`Agent`]); ranked below those from UDP TURN servers,
//!   re-allocated on a new connection when one is lost.
//! * RFC 8421: interleaved IPv6/IPv4 local preferences for multihomed hosts.
//! * RFC 8839: `a=candidate` and the ICE attribute lines ([`sdp`]).
//! * draft-ietf-mmusic-mdns-ice-candidates: `.local` remote candidates surfaced as
//!   [`Event::ResolveMdns`], and a Sans-IO one-shot mDNS querier to resolve them
//!   ([`mdns::MdnsResolver`], RFC 6762 §5.1 and §6.7).
//!
//! Not yet: server-reflexive and relayed TCP candidates (RFC 6544 §5), freeing unused
//! candidates (RFC 8445 §8.3), keeping server-reflexive bindings alive through
//! the STUN server (§5.1.1.4), `a=remote-candidates`, following ALTERNATE-SERVER
//! redirects of TURN servers reached over TCP or TLS. `docs/COMPLIANCE.md` has the
//! section-by-section table.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::disallowed_methods))]
#![deny(missing_docs)]

mod agent;
mod candidate;
mod check;
mod checklist;
mod config;
mod consent;
mod demux;
mod error;
mod events;
mod gathering;
pub mod mdns;
mod pacer;
mod pair;
pub mod priority;
mod relay;
pub mod sdp;
mod stats;
mod stream;
mod tcp;

pub use agent::{Agent, PairInfo};
pub use candidate::{
    ACTIVE_TCP_PORT, Candidate, CandidateType, Foundation, MAX_FOUNDATION_LEN, TcpType,
};
pub use checklist::CheckListState;
pub use config::{
    AgentConfig, ConsentConfig, Credentials, CredentialsError, DEFAULT_TA, Role, TurnServer,
};
pub use demux::{AgentSet, Demux, SessionId, check_ufrag};
pub use error::{
    AddCandidateError, AddStreamError, EndOfCandidatesError, MdnsError, RemoteCandidateError,
    RestartError, SendError,
};
pub use events::{ConnectionState, Event, GatheringState, Received, StreamId, TurnConnectionId};
pub use pacer::Pacer;
pub use pair::PairState;
pub use stats::Stats;
pub use stun_proto::{Input, Transmit, TransportProtocol};
