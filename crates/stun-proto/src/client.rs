//! A Sans-IO Binding client: sends Binding requests, retransmits, and reports the mapped
//! address, the RTT and the RFC 5780 attributes of each response.

use crate::attributes::{
    ChangeRequest, ChangedAddress, ErrorCode, MappedAddress, OtherAddress, Padding, ResponseOrigin,
    ResponsePort, Software, XorMappedAddress,
};
use crate::builder::{BuildError, MessageBuilder};
use crate::header::{Class, MessageType, Method, TransactionId};
use crate::message::Message;
use crate::transaction::{
    ClientTransactions, Completed, StartError, TransactionConfig, TransactionEvent,
};
use crate::transport::{Input, Transmit, TransportProtocol};
use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Binding client configuration.
#[derive(Clone, Debug)]
pub struct BindingClientConfig {
    /// Retransmission parameters.
    pub transactions: TransactionConfig,
    /// SOFTWARE to include in requests.
    pub software: Option<String>,
    /// Append FINGERPRINT to requests.
    pub fingerprint: bool,
}

impl Default for BindingClientConfig {
    fn default() -> Self {
        BindingClientConfig {
            transactions: TransactionConfig::default(),
            software: None,
            fingerprint: true,
        }
    }
}

/// Optional RFC 5780 attributes for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindingRequest {
    /// CHANGE-REQUEST flags.
    pub change_request: Option<ChangeRequest>,
    /// RESPONSE-PORT.
    pub response_port: Option<u16>,
    /// PADDING of this many bytes (0 for none).
    pub padding: usize,
}

/// A Binding success response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingResponse {
    /// The transaction it answers.
    pub transaction_id: TransactionId,
    /// The local address the request was sent from.
    pub local: SocketAddr,
    /// Where the request was sent.
    pub server: SocketAddr,
    /// Where the response came from (differs from `server` after CHANGE-REQUEST).
    pub received_from: SocketAddr,
    /// XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an RFC 3489 server.
    pub mapped: SocketAddr,
    /// RESPONSE-ORIGIN (RFC 5780).
    pub response_origin: Option<SocketAddr>,
    /// OTHER-ADDRESS (RFC 5780), or CHANGED-ADDRESS from an older server.
    pub other_address: Option<SocketAddr>,
    /// Round-trip time, when the request was not retransmitted.
    pub rtt: Option<Duration>,
    /// Retransmissions before the answer.
    pub retransmissions: u32,
}

/// Why a Binding transaction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingFailure {
    /// No response (after 39.5 s with the default configuration).
    TimedOut,
    /// An error response with this code.
    ErrorResponse(u16),
    /// A success response with unknown comprehension-required attributes (RFC 8489 §6.3.3).
    UnknownAttributes,
    /// A success response without a mapped address.
    NoMappedAddress,
}

impl fmt::Display for BindingFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindingFailure::TimedOut => f.write_str("no response"),
            BindingFailure::ErrorResponse(code) => write!(f, "error response {code}"),
            BindingFailure::UnknownAttributes => {
                f.write_str("response with unknown required attributes")
            }
            BindingFailure::NoMappedAddress => f.write_str("response without a mapped address"),
        }
    }
}

/// What the Binding client reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingEvent {
    /// A success response.
    Success(BindingResponse),
    /// The transaction failed.
    Failed {
        /// The transaction.
        transaction_id: TransactionId,
        /// Where the request was sent.
        server: SocketAddr,
        /// Why.
        reason: BindingFailure,
    },
}

/// A Sans-IO STUN Binding client.
#[derive(Debug)]
pub struct BindingClient {
    config: BindingClientConfig,
    transactions: ClientTransactions<()>,
    rng: ChaCha20Rng,
    events: VecDeque<BindingEvent>,
}

impl BindingClient {
    /// A client; `seed` feeds the transaction-ID generator.
    pub fn new(config: BindingClientConfig, seed: u64, _now: Instant) -> Self {
        BindingClient {
            transactions: ClientTransactions::new(config.transactions.clone()),
            config,
            rng: ChaCha20Rng::seed_from_u64(seed),
            events: VecDeque::new(),
        }
    }

    /// Sends a Binding request from `local` to `server`.
    pub fn send(
        &mut self,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
        transport: TransportProtocol,
        request: BindingRequest,
    ) -> Result<TransactionId, StartError> {
        let tid = TransactionId::random(&mut self.rng);
        let payload = self
            .build_request(tid, request)
            .map_err(|_| StartError::TooManyPending)?;
        let transmit = Transmit {
            transport,
            source: local,
            destination: server,
            payload,
        };
        self.transactions.start(now, tid, transmit, ())?;
        Ok(tid)
    }

    /// Stops retransmitting a request.
    pub fn cancel(&mut self, transaction_id: &TransactionId) -> bool {
        self.transactions.cancel(transaction_id).is_some()
    }

    fn build_request(
        &self,
        tid: TransactionId,
        request: BindingRequest,
    ) -> Result<alloc::vec::Vec<u8>, BuildError> {
        let mut buf = alloc::vec![0u8; 128 + request.padding];
        let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_REQUEST, tid)?;
        if let Some(change) = request.change_request {
            b.add(&change)?;
        }
        if let Some(port) = request.response_port {
            b.add(&ResponsePort(port))?;
        }
        if request.padding > 0 {
            let zeros = alloc::vec![0u8; request.padding];
            b.add(&Padding(&zeros))?;
        }
        if let Some(software) = self
            .config
            .software
            .as_deref()
            .and_then(|s| Software::new(s).ok())
        {
            b.add(&software)?;
        }
        if self.config.fingerprint {
            b.add_fingerprint()?;
        }
        Ok(b.finish().to_vec())
    }

    /// Handles a datagram. Returns `true` if it was a response to one of our requests.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> bool {
        let Ok(msg) = Message::parse(input.data) else {
            return false;
        };
        if msg.method() != Method::BINDING || !msg.class().is_response() {
            return false;
        }
        let tid = msg.transaction_id();
        if !self.transactions.is_pending(&tid) {
            return false;
        }
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            return true; // altered or not STUN: keep waiting for a good copy
        }
        let Some(done) = self.transactions.match_response(now, &tid, input.source) else {
            return true;
        };
        let event = match msg.class() {
            Class::Success => self.success(&msg, done, input.source),
            _ => {
                let code = msg
                    .get::<ErrorCode<'_>>()
                    .ok()
                    .flatten()
                    .map_or(0, |e| e.code());
                BindingEvent::Failed {
                    transaction_id: tid,
                    server: done.destination,
                    reason: BindingFailure::ErrorResponse(code),
                }
            }
        };
        self.events.push_back(event);
        true
    }

    fn success(&self, msg: &Message<'_>, done: Completed<()>, from: SocketAddr) -> BindingEvent {
        let fail = |reason| BindingEvent::Failed {
            transaction_id: done.transaction_id,
            server: done.destination,
            reason,
        };
        if msg.unknown_comprehension_required().next().is_some() {
            return fail(BindingFailure::UnknownAttributes);
        }
        let mapped = match msg.get::<XorMappedAddress>() {
            Ok(Some(a)) => Some(a.0),
            _ => msg.get::<MappedAddress>().ok().flatten().map(|a| a.0),
        };
        let Some(mapped) = mapped else {
            return fail(BindingFailure::NoMappedAddress);
        };
        let other = match msg.get::<OtherAddress>() {
            Ok(Some(a)) => Some(a.0),
            _ => msg.get::<ChangedAddress>().ok().flatten().map(|a| a.0),
        };
        BindingEvent::Success(BindingResponse {
            transaction_id: done.transaction_id,
            local: done.source,
            server: done.destination,
            received_from: from,
            mapped,
            response_origin: msg.get::<ResponseOrigin>().ok().flatten().map(|a| a.0),
            other_address: other,
            rtt: done.rtt,
            retransmissions: done.retransmissions,
        })
    }

    /// Retransmits and times out what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        while let Some(TransactionEvent::TimedOut {
            transaction_id,
            destination,
            ..
        }) = self.transactions.poll_event()
        {
            self.events.push_back(BindingEvent::Failed {
                transaction_id,
                server: destination,
                reason: BindingFailure::TimedOut,
            });
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transactions.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<BindingEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions.poll_timeout()
    }
}
