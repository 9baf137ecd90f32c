//! The Binding server (RFC 8489 §6.3, RFC 5780 §6), Sans-IO.
//!
//! It answers Binding requests with XOR-MAPPED-ADDRESS (and MAPPED-ADDRESS for RFC 3489
//! clients), SOFTWARE and FINGERPRINT. Configured with a second IP address and port it
//! implements the NAT Behavior Discovery usage: OTHER-ADDRESS, RESPONSE-ORIGIN,
//! CHANGE-REQUEST (the response leaves from the other IP and/or port), RESPONSE-PORT and
//! PADDING. The driver binds all four address/port combinations and feeds datagrams from
//! each; every [`Transmit`] names the socket to send from.

use crate::attributes::{
    AttributeType, ChangeRequest, ErrorCode, MappedAddress, OtherAddress, Padding, ResponseOrigin,
    ResponsePort, Software, UnknownAttributes, XorMappedAddress,
};
use crate::builder::{BuildError, MessageBuilder};
use crate::header::{Class, HEADER_LEN, MessageType, Method, TransactionId};
use crate::message::{Message, peek_header};
use crate::transport::{Input, Transmit};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The second address of an RFC 5780 server: it must be able to send from both IPs and
/// both ports (four sockets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlternateAddress {
    /// A1, the primary IP.
    pub primary_ip: IpAddr,
    /// A2, the alternate IP.
    pub alternate_ip: IpAddr,
    /// P1, the primary port.
    pub primary_port: u16,
    /// P2, the alternate port.
    pub alternate_port: u16,
}

impl AlternateAddress {
    fn other_ip(&self, ip: IpAddr) -> IpAddr {
        if ip == self.primary_ip {
            self.alternate_ip
        } else {
            self.primary_ip
        }
    }

    fn other_port(&self, port: u16) -> u16 {
        if port == self.primary_port {
            self.alternate_port
        } else {
            self.primary_port
        }
    }
}

/// Binding server configuration.
#[derive(Clone, Debug)]
pub struct BindingServerConfig {
    /// SOFTWARE to include in responses (none if `None`).
    pub software: Option<String>,
    /// Include MAPPED-ADDRESS besides XOR-MAPPED-ADDRESS, for RFC 3489 clients (RFC 5780
    /// §6.1 requires it of behaviour-discovery servers).
    pub mapped_address: bool,
    /// Append FINGERPRINT to responses.
    pub fingerprint: bool,
    /// Enables RFC 5780: the server's second IP and port.
    pub alternate: Option<AlternateAddress>,
    /// Largest PADDING echoed in a response (RFC 5780 §7.6 suggests the path MTU).
    pub max_padding: usize,
}

impl Default for BindingServerConfig {
    fn default() -> Self {
        BindingServerConfig {
            software: Some(String::from(concat!("floe ", env!("CARGO_PKG_VERSION")))),
            mapped_address: true,
            fingerprint: true,
            alternate: None,
            max_padding: 1500,
        }
    }
}

/// What the binding server has seen; network input never raises errors, it is counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindingServerStats {
    /// Binding requests answered with success.
    pub success: u64,
    /// Requests answered 400 Bad Request.
    pub bad_request: u64,
    /// Requests answered 420 Unknown Attribute.
    pub unknown_attribute: u64,
    /// Binding indications (keepalives) received.
    pub indications: u64,
    /// Datagrams dropped: not STUN, classic STUN, responses, bad fingerprint, or
    /// malformed beyond answering.
    pub dropped: u64,
}

/// A Sans-IO STUN Binding server.
#[derive(Debug)]
pub struct BindingServer {
    config: BindingServerConfig,
    transmits: VecDeque<Transmit>,
    stats: BindingServerStats,
}

/// Room for any response we build: headers plus the largest PADDING.
const RESPONSE_OVERHEAD: usize = 256;

impl BindingServer {
    /// A server with the given configuration.
    pub fn new(config: BindingServerConfig) -> Self {
        BindingServer {
            config,
            transmits: VecDeque::new(),
            stats: BindingServerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> BindingServerStats {
        self.stats
    }

    /// Handles a datagram. Returns `false` if it was not STUN addressed to this server
    /// (the caller may hand it elsewhere), `true` if it was consumed.
    pub fn handle_input(&mut self, _now: Instant, input: Input<'_>) -> bool {
        let msg = match Message::parse(input.data) {
            Ok(msg) => msg,
            Err(error) => return self.handle_malformed(&input, error),
        };
        match msg.message_type() {
            MessageType {
                method: Method::BINDING,
                class: Class::Request,
            } => {
                self.handle_request(&input, &msg);
            }
            MessageType {
                method: Method::BINDING,
                class: Class::Indication,
            } => {
                self.stats.indications += 1;
            }
            MessageType {
                class: Class::Request,
                ..
            } => {
                // A method this server does not implement.
                self.reply_error(
                    &input,
                    input.source,
                    msg.message_type().method,
                    msg.transaction_id(),
                    400,
                    &[],
                );
            }
            _ => self.stats.dropped += 1,
        }
        true
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A malformed message: answer 400 if the header shows a request we can reply to
    /// (RFC 8489 §6.3.1), else drop and count.
    fn handle_malformed(&mut self, input: &Input<'_>, error: crate::ParseError) -> bool {
        tracing::debug!(%error, from = %input.source, "malformed STUN");
        match peek_header(input.data) {
            Some((mtype, _)) if mtype.class == Class::Request => {
                let mut id = [0u8; 12];
                id.copy_from_slice(&input.data[8..HEADER_LEN]);
                self.reply_error(
                    input,
                    input.source,
                    mtype.method,
                    TransactionId::new(id),
                    400,
                    &[],
                );
                true
            }
            Some(_) => {
                self.stats.dropped += 1;
                true
            }
            None => {
                self.stats.dropped += 1;
                false
            }
        }
    }

    fn handle_request(&mut self, input: &Input<'_>, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let method = msg.method();
        // A FINGERPRINT that does not match means the datagram is not what it claims to be.
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            self.stats.dropped += 1;
            return;
        }
        let mut unknown: SmallVec<[AttributeType; 4]> =
            msg.unknown_comprehension_required().collect();
        let change = match msg.get::<ChangeRequest>() {
            Ok(c) => c,
            Err(_) => return self.reply_error(input, input.source, method, tid, 400, &[]),
        };
        // RFC 5780 §6: without a second address, CHANGE-REQUEST is an unknown attribute.
        if change.is_some() && self.config.alternate.is_none() {
            unknown.push(AttributeType::CHANGE_REQUEST);
        }
        if !unknown.is_empty() {
            return self.reply_error(input, input.source, method, tid, 420, &unknown);
        }
        let (response_port, padding) = match (msg.get::<ResponsePort>(), msg.get::<Padding<'_>>()) {
            (Ok(r), Ok(p)) => (r, p),
            _ => return self.reply_error(input, input.source, method, tid, 400, &[]),
        };
        // RFC 5780 §6.1: PADDING together with RESPONSE-PORT is refused with 400.
        if response_port.is_some() && padding.is_some() {
            return self.reply_error(input, input.source, method, tid, 400, &[]);
        }
        let source = self.response_source(input.destination, change.unwrap_or_default());
        let destination = match response_port {
            Some(ResponsePort(port)) => SocketAddr::new(input.source.ip(), port),
            None => input.source,
        };
        // Padding is echoed at most as long as the request's own, so PADDING cannot be used
        // to amplify traffic towards a spoofed source.
        let pad_len = padding.map_or(0, |p| {
            p.0.len().min(self.config.max_padding).next_multiple_of(4)
        });
        match self.build_success(input.source, tid, input.destination, source, pad_len) {
            Ok(payload) => {
                self.stats.success += 1;
                self.transmits.push_back(Transmit {
                    transport: input.transport,
                    source,
                    destination,
                    payload,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "could not build a Binding response");
                self.stats.dropped += 1;
            }
        }
    }

    /// RFC 5780 §6.1 table 1: where the response leaves from.
    fn response_source(&self, local: SocketAddr, change: ChangeRequest) -> SocketAddr {
        let Some(alt) = self.config.alternate else {
            return local;
        };
        let ip = if change.change_ip {
            alt.other_ip(local.ip())
        } else {
            local.ip()
        };
        let port = if change.change_port {
            alt.other_port(local.port())
        } else {
            local.port()
        };
        SocketAddr::new(ip, port)
    }

    fn build_success(
        &self,
        client: SocketAddr,
        tid: TransactionId,
        local: SocketAddr,
        source: SocketAddr,
        pad_len: usize,
    ) -> Result<Vec<u8>, BuildError> {
        let mut buf = alloc::vec![0u8; RESPONSE_OVERHEAD + pad_len];
        let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, tid)?;
        b.add(&XorMappedAddress(client))?;
        if self.config.mapped_address {
            b.add(&MappedAddress(client))?;
        }
        if let Some(alt) = self.config.alternate {
            b.add(&ResponseOrigin(source))?;
            // RFC 5780 §6.1: OTHER-ADDRESS is Ca:Cp, the other IP and port relative to where
            // the request arrived, whatever the CHANGE-REQUEST flags.
            let other = SocketAddr::new(alt.other_ip(local.ip()), alt.other_port(local.port()));
            b.add(&OtherAddress(other))?;
        }
        if pad_len > 0 {
            let zeros = [0u8; 1500];
            b.add(&Padding(&zeros[..pad_len.min(zeros.len())]))?;
        }
        self.finish(b)
    }

    fn finish(&self, mut b: MessageBuilder<'_>) -> Result<Vec<u8>, BuildError> {
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

    fn reply_error(
        &mut self,
        input: &Input<'_>,
        to: SocketAddr,
        method: Method,
        tid: TransactionId,
        code: u16,
        unknown: &[AttributeType],
    ) {
        let mut buf = alloc::vec![0u8; RESPONSE_OVERHEAD + 2 * unknown.len()];
        let built = MessageBuilder::new(&mut buf, MessageType::new(method, Class::Error), tid)
            .and_then(|mut b| {
                add_error(&mut b, code, unknown)?;
                self.finish(b)
            });
        match built {
            Ok(payload) => {
                match code {
                    420 => self.stats.unknown_attribute += 1,
                    _ => self.stats.bad_request += 1,
                }
                self.transmits.push_back(Transmit {
                    transport: input.transport,
                    source: input.destination,
                    destination: to,
                    payload,
                });
            }
            Err(_) => self.stats.dropped += 1,
        }
    }
}

/// Adds ERROR-CODE with the recommended reason phrase and, when `unknown` is not empty
/// (420), UNKNOWN-ATTRIBUTES.
pub fn add_error(
    b: &mut MessageBuilder<'_>,
    code: u16,
    unknown: &[AttributeType],
) -> Result<(), BuildError> {
    let error = ErrorCode::with_default_reason(code).map_err(|_| BuildError::TooLong)?;
    b.add(&error)?;
    if !unknown.is_empty() {
        b.add(&UnknownAttributes::new(unknown))?;
    }
    Ok(())
}

/// Builds an error response carrying ERROR-CODE with the recommended reason phrase and,
/// for 420, UNKNOWN-ATTRIBUTES. No integrity, no fingerprint.
pub fn build_error_response(
    method: Method,
    transaction_id: TransactionId,
    code: u16,
    unknown: &[AttributeType],
) -> Result<Vec<u8>, BuildError> {
    let mut buf = alloc::vec![0u8; 64 + 2 * unknown.len()];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(method, Class::Error),
        transaction_id,
    )?;
    add_error(&mut b, code, unknown)?;
    Ok(b.finish().to_vec())
}
