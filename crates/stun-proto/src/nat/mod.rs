//! NAT behaviour discovery (RFC 5780 §4), Sans-IO.
//!
//! [`NatDiscovery`] runs the tests of RFC 5780 §4.3 (mapping) and §4.4 (filtering) against a
//! server that supports the usage (it returns OTHER-ADDRESS), from one local socket, and a
//! hairpinning probe (§3.4). The order is chosen so that earlier tests do not open the NAT's
//! filter for later ones (§4.5): the connectivity test, then the two filtering tests (which
//! only ever send to the primary address), then the mapping tests to the alternate
//! addresses, then hairpinning.
//!
//! [`lifetime::BindingLifetimeDiscovery`] measures how long the NAT keeps an idle mapping
//! (RFC 5780 §4.6), from two local sockets.

pub mod lifetime;

use crate::attributes::ChangeRequest;
use crate::client::{
    BindingClient, BindingClientConfig, BindingEvent, BindingRequest, BindingResponse,
};
use crate::header::{Class, Method, TransactionId};
use crate::message::Message;
use crate::transaction::TransactionConfig;
use crate::transport::{Input, Transmit, TransportProtocol};
use alloc::collections::VecDeque;
use core::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// NAT mapping behaviour (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MappingBehavior {
    /// No NAT: the mapped address is the local address.
    NoNat,
    /// Endpoint-independent mapping: one external address for all destinations.
    EndpointIndependent,
    /// Address-dependent mapping: a new external address per destination IP.
    AddressDependent,
    /// Address-and-port-dependent mapping ("symmetric NAT").
    AddressAndPortDependent,
}

/// NAT filtering behaviour (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilteringBehavior {
    /// Anyone may send to the mapped address once it exists.
    EndpointIndependent,
    /// Only IP addresses the client has sent to.
    AddressDependent,
    /// Only IP address and port pairs the client has sent to.
    AddressAndPortDependent,
}

/// What discovery found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatReport {
    /// The local address tested.
    pub local: SocketAddr,
    /// The mapped address from the first test.
    pub mapped: SocketAddr,
    /// The server's alternate address (OTHER-ADDRESS), if it supports RFC 5780.
    pub other_address: Option<SocketAddr>,
    /// Mapping behaviour; `None` if the server does not support RFC 5780 or a mapping test
    /// went unanswered.
    pub mapping: Option<MappingBehavior>,
    /// Filtering behaviour; `None` if the server does not support RFC 5780.
    pub filtering: Option<FilteringBehavior>,
    /// Whether a datagram from the tested socket to its own mapped address comes back to it
    /// (RFC 5780 §3.4); `None` if not tested (disabled, or no NAT). The probe leaves from
    /// the tested socket itself, so behind a NAT with address-dependent mapping and
    /// address-dependent filtering a hairpinning NAT can still read `false`: the probe gets
    /// a new mapping whose source the filter has not seen. That is also what peers behind
    /// the same NAT would experience.
    pub hairpinning: Option<bool>,
    /// RTT of the first test.
    pub rtt: Option<Duration>,
}

/// Why discovery could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatDiscoveryError {
    /// The server did not answer at all: UDP to it is blocked, or it is down.
    NoResponse,
    /// The server answered with an error.
    ErrorResponse(u16),
    /// The server's response was unusable (no mapped address, unknown attributes).
    BadResponse,
}

impl fmt::Display for NatDiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatDiscoveryError::NoResponse => f.write_str("no response from the server"),
            NatDiscoveryError::ErrorResponse(code) => write!(f, "server answered {code}"),
            NatDiscoveryError::BadResponse => f.write_str("unusable response from the server"),
        }
    }
}

impl std::error::Error for NatDiscoveryError {}

/// The outcome, reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatDiscoveryEvent {
    /// Discovery finished.
    Finished(NatReport),
    /// Discovery failed at the first test.
    Failed(NatDiscoveryError),
}

/// Configuration.
#[derive(Clone, Debug)]
pub struct NatDiscoveryConfig {
    /// Transactions for each test. The filtering tests conclude from silence, so the default
    /// gives up sooner than plain STUN: requests at 0, 0.5, 1.5 and 3.5 s, failure at 5.5 s.
    pub transactions: TransactionConfig,
    /// Probe hairpinning (RFC 5780 §3.4) when behind a NAT.
    pub hairpinning: bool,
    /// The transport (RFC 5780 applies to UDP; TCP only tells mapping).
    pub transport: TransportProtocol,
}

impl Default for NatDiscoveryConfig {
    fn default() -> Self {
        NatDiscoveryConfig {
            transactions: TransactionConfig {
                max_requests: 4,
                last_wait_factor: 4,
                // Responses to CHANGE-REQUEST come from another address by design.
                check_source: false,
                ..TransactionConfig::default()
            },
            hairpinning: true,
            transport: TransportProtocol::Udp,
        }
    }
}

/// Which test is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// §4.2 / §4.3 test I: plain request to the primary address.
    Connectivity,
    /// §4.4 test II: change IP and port.
    FilterChangeBoth,
    /// §4.4 test III: change port.
    FilterChangePort,
    /// §4.3 test II: to the alternate IP, primary port.
    MappingAlternateIp,
    /// §4.3 test III: to the alternate IP and port.
    MappingAlternateBoth {
        test2: SocketAddr,
    },
    /// §3.4: a request to our own mapped address.
    Hairpin,
    Done,
}

/// A Sans-IO RFC 5780 NAT behaviour discovery run.
#[derive(Debug)]
pub struct NatDiscovery {
    config: NatDiscoveryConfig,
    client: BindingClient,
    local: SocketAddr,
    server: SocketAddr,
    step: Step,
    current: Option<TransactionId>,
    report: Option<NatReport>,
    events: VecDeque<NatDiscoveryEvent>,
}

impl NatDiscovery {
    /// Starts discovery from `local` against `server`; the first request is ready at once.
    pub fn new(
        config: NatDiscoveryConfig,
        seed: u64,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Self {
        let client_config = BindingClientConfig {
            transactions: config.transactions.clone(),
            software: None,
            fingerprint: true,
        };
        let mut d = NatDiscovery {
            client: BindingClient::new(client_config, seed, now),
            config,
            local,
            server,
            step: Step::Connectivity,
            current: None,
            report: None,
            events: VecDeque::new(),
        };
        d.send(now, server, None);
        d
    }

    fn send(&mut self, now: Instant, to: SocketAddr, change: Option<ChangeRequest>) {
        let request = BindingRequest {
            change_request: change,
            ..BindingRequest::default()
        };
        match self
            .client
            .send(now, self.local, to, self.config.transport, request)
        {
            Ok(tid) => self.current = Some(tid),
            Err(error) => {
                tracing::warn!(%error, "NAT discovery could not send");
                self.fail(NatDiscoveryError::BadResponse);
            }
        }
    }

    /// Handles a datagram on the local socket; returns `true` if it was ours.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> bool {
        // Hairpinning: our own request comes back to us through the NAT.
        if self.step == Step::Hairpin && self.is_own_hairpin_request(input.data) {
            if let Some(tid) = self.current.take() {
                self.client.cancel(&tid);
            }
            self.finish_hairpin(true);
            return true;
        }
        if !self.client.handle_input(now, input) {
            return false;
        }
        self.drain(now);
        true
    }

    fn is_own_hairpin_request(&self, data: &[u8]) -> bool {
        match Message::parse(data) {
            Ok(m) => {
                m.method() == Method::BINDING
                    && m.class() == Class::Request
                    && Some(m.transaction_id()) == self.current
            }
            Err(_) => false,
        }
    }

    /// Retransmits and concludes tests that went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.drain(now);
    }

    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.client.poll_event() {
            let (tid, outcome) = match event {
                BindingEvent::Success(r) => (r.transaction_id, Ok(r)),
                BindingEvent::Failed {
                    transaction_id,
                    reason,
                    ..
                } => (transaction_id, Err(reason)),
            };
            if Some(tid) != self.current {
                continue;
            }
            self.current = None;
            self.advance(now, outcome);
        }
    }

    /// One test finished: record what it means and start the next (RFC 5780 §4.3–4.4).
    fn advance(
        &mut self,
        now: Instant,
        outcome: Result<BindingResponse, crate::client::BindingFailure>,
    ) {
        use crate::client::BindingFailure;
        match (self.step, outcome) {
            (Step::Connectivity, Ok(r)) => self.after_connectivity(now, r),
            (Step::Connectivity, Err(BindingFailure::TimedOut)) => {
                self.fail(NatDiscoveryError::NoResponse)
            }
            (Step::Connectivity, Err(BindingFailure::ErrorResponse(code))) => {
                self.fail(NatDiscoveryError::ErrorResponse(code))
            }
            (Step::Connectivity, Err(_)) => self.fail(NatDiscoveryError::BadResponse),
            (Step::FilterChangeBoth, Ok(_)) => {
                self.set_filtering(FilteringBehavior::EndpointIndependent);
                self.start_mapping(now);
            }
            (Step::FilterChangeBoth, Err(_)) => {
                self.step = Step::FilterChangePort;
                let change = ChangeRequest {
                    change_ip: false,
                    change_port: true,
                };
                self.send(now, self.server, Some(change));
            }
            (Step::FilterChangePort, outcome) => {
                self.set_filtering(match outcome {
                    Ok(_) => FilteringBehavior::AddressDependent,
                    Err(_) => FilteringBehavior::AddressAndPortDependent,
                });
                self.start_mapping(now);
            }
            (Step::MappingAlternateIp, Ok(r)) => {
                if Some(r.mapped) == self.report.map(|rep| rep.mapped) {
                    self.set_mapping(Some(MappingBehavior::EndpointIndependent));
                    self.start_hairpin(now);
                } else {
                    self.step = Step::MappingAlternateBoth { test2: r.mapped };
                    let other = self
                        .report
                        .and_then(|rep| rep.other_address)
                        .unwrap_or(self.server);
                    self.send(now, other, None);
                }
            }
            (Step::MappingAlternateBoth { test2 }, Ok(r)) => {
                self.set_mapping(Some(if r.mapped == test2 {
                    MappingBehavior::AddressDependent
                } else {
                    MappingBehavior::AddressAndPortDependent
                }));
                self.start_hairpin(now);
            }
            (Step::MappingAlternateIp | Step::MappingAlternateBoth { .. }, Err(_)) => {
                self.set_mapping(None);
                self.start_hairpin(now);
            }
            (Step::Hairpin, _) => self.finish_hairpin(false),
            (Step::Done, _) => {}
        }
    }

    fn after_connectivity(&mut self, now: Instant, r: BindingResponse) {
        let no_nat = r.mapped == self.local;
        self.report = Some(NatReport {
            local: self.local,
            mapped: r.mapped,
            other_address: r.other_address,
            mapping: no_nat.then_some(MappingBehavior::NoNat),
            filtering: None,
            hairpinning: None,
            rtt: r.rtt,
        });
        if r.other_address.is_none() {
            // The server does not do RFC 5780: only the connectivity result stands.
            return self.finish();
        }
        self.step = Step::FilterChangeBoth;
        self.send(
            now,
            self.server,
            Some(ChangeRequest {
                change_ip: true,
                change_port: true,
            }),
        );
    }

    fn start_mapping(&mut self, now: Instant) {
        let Some(report) = self.report else {
            return self.finish();
        };
        if report.mapping == Some(MappingBehavior::NoNat) {
            return self.start_hairpin(now);
        }
        let Some(other) = report.other_address else {
            return self.finish();
        };
        self.step = Step::MappingAlternateIp;
        self.send(now, SocketAddr::new(other.ip(), self.server.port()), None);
    }

    fn start_hairpin(&mut self, now: Instant) {
        let behind_nat = self
            .report
            .is_some_and(|r| r.mapping != Some(MappingBehavior::NoNat));
        match self.report {
            Some(report) if self.config.hairpinning && behind_nat => {
                self.step = Step::Hairpin;
                self.send(now, report.mapped, None);
            }
            _ => self.finish(),
        }
    }

    fn finish_hairpin(&mut self, works: bool) {
        if let Some(r) = self.report.as_mut() {
            r.hairpinning = Some(works);
        }
        self.finish();
    }

    fn set_filtering(&mut self, f: FilteringBehavior) {
        if let Some(r) = self.report.as_mut() {
            r.filtering = Some(f);
        }
    }

    fn set_mapping(&mut self, m: Option<MappingBehavior>) {
        if let Some(r) = self.report.as_mut() {
            r.mapping = m;
        }
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        if let Some(report) = self.report {
            self.events.push_back(NatDiscoveryEvent::Finished(report));
        }
    }

    fn fail(&mut self, error: NatDiscoveryError) {
        self.step = Step::Done;
        self.events.push_back(NatDiscoveryEvent::Failed(error));
    }

    /// True once the outcome has been reported.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The next datagram to send (all from the local address).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.client.poll_transmit()
    }

    /// The outcome, once.
    pub fn poll_event(&mut self) -> Option<NatDiscoveryEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }
}
