//! Binding lifetime discovery (RFC 5780 §4.6), Sans-IO.
//!
//! How long does the NAT keep a UDP mapping that carries no traffic? The answer sets the
//! keepalive interval an application needs. The test uses two local sockets, X and Y, and a
//! server that honours RESPONSE-PORT (RFC 5780 §7.5):
//!
//! 1. From X, a Binding request: the NAT maps X to the public endpoint `(Pa, Pp)`.
//! 2. X stays silent for T.
//! 3. From Y, a Binding request with RESPONSE-PORT `Pp`: the server answers to `(Pa, Pp)`,
//!    the source IP of the request with X's public port. If the response reaches X, X's
//!    mapping outlived T; if it reaches Y (the NAT gave Y's new mapping the old port) or
//!    nothing arrives, it did not.
//!
//! A binary search over T between [`LifetimeConfig::min`] and [`LifetimeConfig::max`] closes
//! in on the lifetime until the interval is no wider than [`LifetimeConfig::precision`]. Each
//! round starts again from step 1, because many NATs refresh a mapping only on outbound
//! traffic (RFC 4787 REQ-6) and the previous round's response may or may not have refreshed
//! it (§4.6). A first round with T = 0 checks that the server honours RESPONSE-PORT at all:
//! a server that ignores it answers Y, and the run ends with
//! [`LifetimeError::ResponsePortUnsupported`] instead of a meaningless "under the minimum".
//!
//! The search takes a while in real time: two checking rounds, then about
//! log2((max − min) / precision) bisection rounds, each idle for its T. With the defaults that
//! is 10–11 rounds, whose idle times add up to ~21 minutes for a 30 s lifetime, ~41 minutes for
//! 300 s, and ~2.7 hours for a mapping that outlives `max`. RFC 5780 suggests running it in the
//! background. NATs under load may shorten lifetimes, so the result is an
//! observation, not a guarantee.

use crate::client::{
    BindingClient, BindingClientConfig, BindingEvent, BindingFailure, BindingRequest,
};
use crate::header::{Class, Method, TransactionId};
use crate::message::Message;
use crate::transaction::TransactionConfig;
use crate::transport::{Input, Transmit, TransportProtocol};
use alloc::collections::VecDeque;
use core::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Configuration.
#[derive(Clone, Debug)]
pub struct LifetimeConfig {
    /// The shortest lifetime the search considers (default 5 s).
    pub min: Duration,
    /// The longest (default 1200 s, beyond the 2–5 minutes RFC 4787 REQ-5 asks of NATs).
    pub max: Duration,
    /// Stop when the lifetime is known to within this (default 5 s).
    pub precision: Duration,
    /// Transactions for each request. The probes conclude from silence, so the default gives
    /// up sooner than plain STUN: requests at 0, 0.5, 1.5 and 3.5 s, failure at 5.5 s.
    pub transactions: TransactionConfig,
}

impl Default for LifetimeConfig {
    fn default() -> Self {
        LifetimeConfig {
            min: Duration::from_secs(5),
            max: Duration::from_secs(1200),
            precision: Duration::from_secs(5),
            transactions: TransactionConfig {
                max_requests: 4,
                last_wait_factor: 4,
                // The probe's response comes back on the other socket; sources are the
                // server's either way.
                check_source: false,
                ..TransactionConfig::default()
            },
        }
    }
}

/// What the search found: the mapping lived at least `at_least`, and less than `less_than`
/// (when the search saw it expire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingLifetime {
    /// The longest idle time after which X still got the response.
    pub at_least: Duration,
    /// The shortest idle time after which it did not; `None` if it never expired up to
    /// [`LifetimeConfig::max`].
    pub less_than: Option<Duration>,
    /// Rounds run (each one Binding from X and one probe from Y).
    pub rounds: u32,
}

/// Why the search could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifetimeError {
    /// The Binding request from X got no usable response.
    NoResponse,
    /// The server answered an error (420 for a server without RFC 5780 attributes).
    ErrorResponse(u16),
    /// With no idle time at all, the response to RESPONSE-PORT did not reach X: the server
    /// ignores the attribute (or the NAT does not keep X's mapping for even a moment).
    ResponsePortUnsupported,
    /// The configuration is empty (`min` > `max`) or the precision is zero.
    BadConfig,
}

impl fmt::Display for LifetimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LifetimeError::NoResponse => f.write_str("no response from the server"),
            LifetimeError::ErrorResponse(code) => write!(f, "error response {code}"),
            LifetimeError::ResponsePortUnsupported => {
                f.write_str("the server does not honour RESPONSE-PORT (RFC 5780)")
            }
            LifetimeError::BadConfig => f.write_str("empty search range or zero precision"),
        }
    }
}

impl std::error::Error for LifetimeError {}

/// The outcome, reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifetimeEvent {
    /// One round's verdict, as the search goes: after `idle`, X's mapping was `alive`.
    Probed {
        /// How long X was silent.
        idle: Duration,
        /// Whether the response reached X.
        alive: bool,
    },
    /// The search finished.
    Finished(BindingLifetime),
    /// The search could not run.
    Failed(LifetimeError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The Binding request from X is out.
    Mapping,
    /// X is silent until `until`; its public port is `port`.
    Idle {
        until: Instant,
        port: u16,
    },
    /// The probe from Y is out; `arrived` is the socket its response reached.
    Probe {
        arrived: Option<SocketAddr>,
    },
    Done,
}

/// A Sans-IO binding lifetime search from two local sockets against one server.
#[derive(Debug)]
pub struct BindingLifetimeDiscovery {
    config: LifetimeConfig,
    client: BindingClient,
    x: SocketAddr,
    y: SocketAddr,
    server: SocketAddr,
    /// Known alive after this idle time.
    lo: Duration,
    /// Known expired after this idle time, if seen.
    hi: Option<Duration>,
    /// The idle time of the current round.
    idle: Duration,
    rounds: u32,
    step: Step,
    current: Option<TransactionId>,
    events: VecDeque<LifetimeEvent>,
}

impl BindingLifetimeDiscovery {
    /// Starts the search: `x` and `y` are two local sockets (same IP, different ports, both
    /// bound by the driver), `server` an RFC 5780 server. The first request is ready at once.
    pub fn new(
        config: LifetimeConfig,
        seed: u64,
        now: Instant,
        x: SocketAddr,
        y: SocketAddr,
        server: SocketAddr,
    ) -> Self {
        let client_config = BindingClientConfig {
            transactions: config.transactions.clone(),
            software: None,
            fingerprint: true,
        };
        let mut d = BindingLifetimeDiscovery {
            client: BindingClient::new(client_config, seed, now),
            x,
            y,
            server,
            lo: Duration::ZERO,
            hi: None,
            // The first round checks RESPONSE-PORT with no idle time.
            idle: Duration::ZERO,
            rounds: 0,
            step: Step::Mapping,
            current: None,
            events: VecDeque::new(),
            config,
        };
        if d.config.min > d.config.max || d.config.precision.is_zero() {
            d.fail(LifetimeError::BadConfig);
        } else {
            d.send(now, x, None);
        }
        d
    }

    fn send(&mut self, now: Instant, from: SocketAddr, response_port: Option<u16>) {
        let request = BindingRequest {
            response_port,
            ..BindingRequest::default()
        };
        match self
            .client
            .send(now, from, self.server, TransportProtocol::Udp, request)
        {
            Ok(tid) => self.current = Some(tid),
            Err(error) => {
                tracing::warn!(%error, "binding lifetime discovery could not send");
                self.fail(LifetimeError::NoResponse);
            }
        }
    }

    /// Handles a datagram on either socket; returns `true` if it was ours.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> bool {
        if let Step::Probe { arrived } = &mut self.step {
            // Which socket the probe's response reached is the whole point of the probe.
            if let Ok(msg) = Message::parse(input.data) {
                if msg.method() == Method::BINDING
                    && msg.class() == Class::Success
                    && Some(msg.transaction_id()) == self.current
                    && arrived.is_none()
                {
                    *arrived = Some(input.destination);
                }
            }
        }
        if !self.client.handle_input(now, input) {
            return false;
        }
        self.drain(now);
        true
    }

    /// Ends idle waits, retransmits, and concludes probes that went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Step::Idle { until, port } = self.step {
            if now >= until {
                self.step = Step::Probe { arrived: None };
                self.send(now, self.y, Some(port));
            }
        }
        self.client.handle_timeout(now);
        self.drain(now);
    }

    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.client.poll_event() {
            let (tid, outcome) = match event {
                BindingEvent::Success(r) => (r.transaction_id, Ok(r.mapped)),
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
            match (self.step, outcome) {
                (Step::Mapping, Ok(mapped)) => {
                    self.step = Step::Idle {
                        until: now + self.idle,
                        port: mapped.port(),
                    };
                }
                (Step::Mapping, Err(BindingFailure::ErrorResponse(code))) => {
                    self.fail(LifetimeError::ErrorResponse(code));
                }
                (Step::Mapping, Err(_)) => self.fail(LifetimeError::NoResponse),
                (Step::Probe { arrived }, outcome) => {
                    if let Err(BindingFailure::ErrorResponse(code)) = outcome {
                        self.fail(LifetimeError::ErrorResponse(code));
                        continue;
                    }
                    self.conclude(now, arrived == Some(self.x));
                }
                (Step::Idle { .. } | Step::Done, _) => {}
            }
        }
    }

    /// One round's verdict; the next round or the result.
    fn conclude(&mut self, now: Instant, alive: bool) {
        self.rounds += 1;
        self.events.push_back(LifetimeEvent::Probed {
            idle: self.idle,
            alive,
        });
        if self.rounds == 1 {
            // The T = 0 check.
            if !alive {
                self.fail(LifetimeError::ResponsePortUnsupported);
                return;
            }
            self.lo = self.config.min;
            self.idle = self.config.min;
        } else if alive {
            self.lo = self.idle;
        } else {
            self.hi = Some(self.idle);
        }
        // Round 2 probes `min` itself; after that, bisect [lo, hi] (hi = max until an expiry
        // is seen; `max` itself is probed once everything below it was alive).
        if self.rounds >= 2 {
            if self.rounds == 2 && !alive {
                // Expired within `min`: nothing shorter is searched.
                self.lo = Duration::ZERO;
                return self.finish();
            }
            let hi = self.hi.unwrap_or(self.config.max);
            if hi.saturating_sub(self.lo) <= self.config.precision {
                if self.hi.is_none() && self.lo < self.config.max {
                    // Close to max but max itself not yet probed.
                    self.idle = self.config.max;
                } else {
                    return self.finish();
                }
            } else {
                self.idle = self.lo + (hi - self.lo) / 2;
            }
        }
        self.step = Step::Mapping;
        self.send(now, self.x, None);
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        self.events
            .push_back(LifetimeEvent::Finished(BindingLifetime {
                at_least: self.lo,
                less_than: self.hi,
                rounds: self.rounds,
            }));
    }

    fn fail(&mut self, error: LifetimeError) {
        self.step = Step::Done;
        self.events.push_back(LifetimeEvent::Failed(error));
    }

    /// True once the outcome has been reported.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The next datagram to send (from `x` or `y`, as its `source` says).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.client.poll_transmit()
    }

    /// Progress and the outcome.
    pub fn poll_event(&mut self) -> Option<LifetimeEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = match self.step {
            Step::Idle { until, .. } => Some(until),
            _ => None,
        };
        match (idle, self.client.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{ResponsePort, XorMappedAddress};
    use crate::builder::MessageBuilder;
    use crate::header::MessageType;

    const X: &str = "192.168.1.2:5000";
    const Y: &str = "192.168.1.2:5001";
    const SERVER: &str = "198.51.100.1:3478";
    const PUBLIC: &str = "203.0.113.1";

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn success(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        let msg = Message::parse(request).unwrap();
        let mut buf = [0u8; 128];
        let mut b =
            MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, msg.transaction_id())
                .unwrap();
        b.add(&XorMappedAddress(mapped)).unwrap();
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    /// A scripted NAT and server: X's mapping (public port 40000) lives `lifetime` after X's
    /// last outbound packet, Y maps to 40001; the server honours RESPONSE-PORT or not; each
    /// hop takes 10 ms. Returns the events.
    fn run(lifetime: Duration, honours: bool, config: LifetimeConfig) -> Vec<LifetimeEvent> {
        #[allow(clippy::disallowed_methods)]
        let mut now = Instant::now();
        let mut d = BindingLifetimeDiscovery::new(config, 7, now, sock(X), sock(Y), sock(SERVER));
        let mut last_x = None;
        let mut events = Vec::new();
        let mut deliveries: Vec<(Instant, SocketAddr, Vec<u8>)> = Vec::new();
        for _ in 0..100_000 {
            while let Some(t) = d.poll_transmit() {
                if t.source == sock(X) {
                    last_x = Some(now);
                }
                let msg = Message::parse(&t.payload).unwrap();
                let mapped_port = if t.source == sock(X) { 40000 } else { 40001 };
                let mapped = SocketAddr::new(PUBLIC.parse().unwrap(), mapped_port);
                let to_port = match msg.get::<ResponsePort>().unwrap() {
                    Some(ResponsePort(p)) if honours => p,
                    _ => mapped_port,
                };
                let at = now + Duration::from_millis(20);
                // Back through the NAT: to X only while its mapping lives.
                let to = match to_port {
                    40000 if last_x.is_some_and(|l| at < l + lifetime) => Some(sock(X)),
                    40001 => Some(sock(Y)),
                    _ => None,
                };
                if let Some(to) = to {
                    deliveries.push((at, to, success(&t.payload, mapped)));
                }
            }
            while let Some(e) = d.poll_event() {
                events.push(e);
            }
            if d.is_done() {
                return events;
            }
            deliveries.sort_by_key(|(at, ..)| *at);
            let next_delivery = deliveries.first().map(|(at, ..)| *at);
            match (next_delivery, d.poll_timeout()) {
                (Some(at), timeout) if timeout.is_none_or(|t| at <= t) => {
                    let (at, to, data) = deliveries.remove(0);
                    now = at;
                    let input = Input {
                        transport: TransportProtocol::Udp,
                        source: sock(SERVER),
                        destination: to,
                        data: &data,
                    };
                    assert!(d.handle_input(now, input));
                }
                (_, Some(t)) => {
                    now = now.max(t);
                    d.handle_timeout(now);
                }
                (_, None) => panic!("stuck: {events:?}"),
            }
        }
        panic!("no end: {events:?}");
    }

    fn finished(events: &[LifetimeEvent]) -> BindingLifetime {
        match events.last() {
            Some(LifetimeEvent::Finished(r)) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_the_lifetime_to_the_precision() {
        for secs in [7u64, 30, 61, 120, 299, 300, 1000] {
            let lifetime = Duration::from_secs(secs);
            let events = run(lifetime, true, LifetimeConfig::default());
            let r = finished(&events);
            let less_than = r.less_than.expect("it expired");
            // The probe's response arrives 20 ms after the idle time, so a lifetime within
            // those 20 ms of a probe reads as the step below it.
            assert!(r.at_least <= lifetime, "{secs}: {r:?}");
            assert!(
                less_than >= lifetime - Duration::from_millis(20),
                "{secs}: {r:?}"
            );
            assert!(
                less_than - r.at_least <= Duration::from_secs(5),
                "{secs}: {r:?}"
            );
            // Every verdict is consistent with the lifetime.
            for e in &events {
                if let LifetimeEvent::Probed { idle, alive } = e {
                    assert_eq!(
                        *alive,
                        *idle + Duration::from_millis(20) < lifetime,
                        "{e:?}"
                    );
                }
            }
            // A binary search: 1 + 1 + about log2(1195 / 5) rounds.
            assert!(r.rounds <= 12, "{secs}: {} rounds", r.rounds);
        }
    }

    #[test]
    fn edges_of_the_range() {
        // Shorter than min: reported as under min.
        let r = finished(&run(
            Duration::from_secs(2),
            true,
            LifetimeConfig::default(),
        ));
        assert_eq!(
            (r.at_least, r.less_than),
            (Duration::ZERO, Some(Duration::from_secs(5)))
        );
        // Longer than max: at least max, never seen to expire.
        let config = LifetimeConfig {
            max: Duration::from_secs(60),
            ..LifetimeConfig::default()
        };
        let r = finished(&run(Duration::from_secs(3600), true, config));
        assert_eq!((r.at_least, r.less_than), (Duration::from_secs(60), None));
    }

    #[test]
    fn a_server_ignoring_response_port_is_detected() {
        let events = run(Duration::from_secs(120), false, LifetimeConfig::default());
        assert_eq!(
            events.last(),
            Some(&LifetimeEvent::Failed(
                LifetimeError::ResponsePortUnsupported
            ))
        );
        assert_eq!(events.len(), 2, "{events:?}"); // the T = 0 verdict, then the failure
    }

    #[test]
    fn bad_config_fails_at_once() {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let config = LifetimeConfig {
            min: Duration::from_secs(10),
            max: Duration::from_secs(5),
            ..LifetimeConfig::default()
        };
        let mut d = BindingLifetimeDiscovery::new(config, 1, now, sock(X), sock(Y), sock(SERVER));
        assert!(d.is_done());
        assert!(d.poll_transmit().is_none());
        assert_eq!(
            d.poll_event(),
            Some(LifetimeEvent::Failed(LifetimeError::BadConfig))
        );
    }
}
