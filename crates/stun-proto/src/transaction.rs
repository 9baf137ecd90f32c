//! Client transactions (RFC 8489 §6.2): retransmission with RTO back-off over UDP, a single
//! timeout over reliable transports, response matching by transaction ID.
//!
//! [`ClientTransactions`] does not parse responses: the owner (a binding client, a TURN
//! client, an ICE agent) parses and authenticates a response first and then calls
//! [`match_response`](ClientTransactions::match_response). A response that fails
//! authentication is simply not matched, so retransmissions continue, as RFC 8489 §9.1.4
//! requires over UDP.

use crate::header::TransactionId;
use crate::transport::Transmit;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Retransmission parameters (RFC 8489 §6.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    /// The first RTO. RFC 8489 recommends 500 ms for fixed-line access; the value should
    /// follow the path's measured RTT where one is known.
    pub initial_rto: Duration,
    /// Rc: how many requests are sent in all over UDP (7).
    pub max_requests: u32,
    /// Rm: after the last request, wait `Rm * initial_rto` for a response (16).
    pub last_wait_factor: u32,
    /// Ti: the whole-transaction timeout over TCP and TLS, where nothing is retransmitted
    /// (39.5 s).
    pub reliable_timeout: Duration,
    /// An optional cap on the doubled RTO (none by default, as in RFC 8489).
    pub max_rto: Option<Duration>,
    /// Accept a response only from the address the request was sent to. ICE turns this off
    /// and makes the symmetric-address check itself (RFC 8445 §7.2.5.2.1), because there a
    /// mismatch fails the check rather than being ignored.
    pub check_source: bool,
    /// At most this many transactions in flight; `start` refuses more. Bounds memory.
    pub max_pending: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            initial_rto: Duration::from_millis(500),
            max_requests: 7,
            last_wait_factor: 16,
            reliable_timeout: Duration::from_millis(39_500),
            max_rto: None,
            check_source: true,
            max_pending: 4096,
        }
    }
}

/// Why a transaction could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// A transaction with this ID is already in flight.
    Duplicate(TransactionId),
    /// [`TransactionConfig::max_pending`] transactions are in flight.
    TooManyPending,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Duplicate(id) => write!(f, "transaction {id} is already in flight"),
            StartError::TooManyPending => f.write_str("too many transactions in flight"),
        }
    }
}

impl std::error::Error for StartError {}

/// A transaction that got its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed<T> {
    /// The transaction ID.
    pub transaction_id: TransactionId,
    /// What the owner attached when starting it.
    pub context: T,
    /// Round-trip time, measured only when the request was sent once (Karn's algorithm:
    /// after a retransmission, which copy was answered is unknown).
    pub rtt: Option<Duration>,
    /// Requests sent beyond the first.
    pub retransmissions: u32,
    /// Where the request was sent.
    pub destination: SocketAddr,
    /// The local address it was sent from.
    pub source: SocketAddr,
}

/// Something that happened to a transaction, other than a response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionEvent<T> {
    /// No response came in time: after Rc requests and Rm·RTO over UDP, after Ti over
    /// reliable transports.
    TimedOut {
        /// The transaction ID.
        transaction_id: TransactionId,
        /// What the owner attached when starting it.
        context: T,
        /// Where the request was sent.
        destination: SocketAddr,
    },
}

#[derive(Debug)]
struct Pending<T> {
    id: TransactionId,
    transmit: Transmit,
    context: T,
    started: Instant,
    initial_rto: Duration,
    rto: Duration,
    /// Requests sent so far.
    sent: u32,
    /// When to retransmit or, after the last request, time out.
    deadline: Instant,
}

/// A set of client transactions, Sans-IO.
///
/// Start a transaction with a request [`Transmit`]; the first copy comes out of
/// [`poll_transmit`](Self::poll_transmit) at once, retransmissions at 0.5, 1.5, 3.5, 7.5,
/// 15.5 and 31.5 s (with the default 500 ms RTO), and the timeout at 39.5 s.
#[derive(Debug)]
pub struct ClientTransactions<T> {
    config: TransactionConfig,
    pending: Vec<Pending<T>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent<T>>,
}

impl<T> ClientTransactions<T> {
    /// An empty set.
    pub fn new(config: TransactionConfig) -> Self {
        ClientTransactions {
            config,
            pending: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// Starts a transaction with the configured initial RTO.
    pub fn start(
        &mut self,
        now: Instant,
        transaction_id: TransactionId,
        request: Transmit,
        context: T,
    ) -> Result<(), StartError> {
        let rto = self.config.initial_rto;
        self.start_with_rto(now, transaction_id, request, context, rto)
    }

    /// Starts a transaction with its own initial RTO (for example one derived from the
    /// measured RTT to that server, or ICE's RTO of RFC 8445 §14.3).
    pub fn start_with_rto(
        &mut self,
        now: Instant,
        transaction_id: TransactionId,
        request: Transmit,
        context: T,
        initial_rto: Duration,
    ) -> Result<(), StartError> {
        if self.is_pending(&transaction_id) {
            return Err(StartError::Duplicate(transaction_id));
        }
        if self.pending.len() >= self.config.max_pending {
            return Err(StartError::TooManyPending);
        }
        let wait = if request.transport.is_reliable() {
            self.config.reliable_timeout
        } else {
            initial_rto
        };
        self.transmits.push_back(request.clone());
        self.pending.push(Pending {
            id: transaction_id,
            transmit: request,
            context,
            started: now,
            initial_rto,
            rto: initial_rto,
            sent: 1,
            deadline: now + wait,
        });
        Ok(())
    }

    /// True if the transaction is in flight.
    pub fn is_pending(&self, transaction_id: &TransactionId) -> bool {
        self.pending.iter().any(|p| &p.id == transaction_id)
    }

    /// The context of an in-flight transaction.
    pub fn context(&self, transaction_id: &TransactionId) -> Option<&T> {
        self.pending
            .iter()
            .find(|p| &p.id == transaction_id)
            .map(|p| &p.context)
    }

    /// Number of transactions in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True if nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Ends the transaction a response belongs to. Returns `None` (and changes nothing) if
    /// no transaction with this ID is in flight or, with
    /// [`check_source`](TransactionConfig::check_source), the response came from elsewhere.
    pub fn match_response(
        &mut self,
        now: Instant,
        transaction_id: &TransactionId,
        from: SocketAddr,
    ) -> Option<Completed<T>> {
        let i = self.pending.iter().position(|p| &p.id == transaction_id)?;
        if self.config.check_source && self.pending[i].transmit.destination != from {
            tracing::debug!(%transaction_id, %from, "response from an unexpected address ignored");
            return None;
        }
        let p = self.pending.swap_remove(i);
        Some(Completed {
            transaction_id: p.id,
            context: p.context,
            rtt: (p.sent == 1).then(|| now.saturating_duration_since(p.started)),
            retransmissions: p.sent - 1,
            destination: p.transmit.destination,
            source: p.transmit.source,
        })
    }

    /// Abandons a transaction; no further retransmission or timeout.
    pub fn cancel(&mut self, transaction_id: &TransactionId) -> Option<T> {
        let i = self.pending.iter().position(|p| &p.id == transaction_id)?;
        Some(self.pending.swap_remove(i).context)
    }

    /// Retransmits and times out what is due. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline > now {
                i += 1;
                continue;
            }
            let p = &mut self.pending[i];
            if p.transmit.transport.is_reliable() || p.sent >= self.config.max_requests {
                let p = self.pending.swap_remove(i);
                tracing::debug!(transaction_id = %p.id, "transaction timed out");
                self.events.push_back(TransactionEvent::TimedOut {
                    transaction_id: p.id,
                    context: p.context,
                    destination: p.transmit.destination,
                });
                continue;
            }
            // RFC 8489 §6.2.1: double the RTO after each retransmission; after the Rc-th
            // request wait Rm times the initial RTO.
            p.sent += 1;
            p.rto = p.rto.saturating_mul(2);
            if let Some(max) = self.config.max_rto {
                p.rto = p.rto.min(max);
            }
            let wait = if p.sent >= self.config.max_requests {
                p.initial_rto.saturating_mul(self.config.last_wait_factor)
            } else {
                p.rto
            };
            // Keep to the schedule measured from the previous deadline, so a late
            // handle_timeout does not stretch the whole series.
            let scheduled = p.deadline + wait;
            p.deadline = if scheduled > now {
                scheduled
            } else {
                now + wait
            };
            self.transmits.push_back(p.transmit.clone());
            i += 1;
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next timeout event.
    pub fn poll_event(&mut self) -> Option<TransactionEvent<T>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportProtocol;

    fn request(transport: TransportProtocol) -> Transmit {
        Transmit {
            transport,
            source: "10.0.0.1:5000".parse().unwrap(),
            destination: "192.0.2.1:3478".parse().unwrap(),
            payload: vec![1, 2, 3],
        }
    }

    /// Runs the transaction set on a virtual clock, returning the send times (ms) and the
    /// time of the timeout event.
    fn schedule(tx: &mut ClientTransactions<u32>, start: Instant) -> (Vec<u128>, Option<u128>) {
        let mut sends = Vec::new();
        let mut timeout = None;
        let mut now = start;
        loop {
            while tx.poll_transmit().is_some() {
                sends.push((now - start).as_millis());
            }
            if let Some(TransactionEvent::TimedOut { .. }) = tx.poll_event() {
                timeout = Some((now - start).as_millis());
            }
            match tx.poll_timeout() {
                Some(t) => {
                    now = t;
                    tx.handle_timeout(now);
                }
                None => return (sends, timeout),
            }
        }
    }

    #[test]
    fn rfc8489_udp_schedule() {
        // RFC 8489 §6.2.1: requests at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; timeout at
        // 39500 ms.
        let start = Instant::now();
        let mut tx = ClientTransactions::new(TransactionConfig::default());
        tx.start(
            start,
            TransactionId::new([1; 12]),
            request(TransportProtocol::Udp),
            7,
        )
        .unwrap();
        let (sends, timeout) = schedule(&mut tx, start);
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timeout, Some(39500));
        assert!(tx.is_empty());
    }

    #[test]
    fn reliable_transport_sends_once_and_times_out_at_ti() {
        let start = Instant::now();
        let mut tx = ClientTransactions::new(TransactionConfig::default());
        tx.start(
            start,
            TransactionId::new([1; 12]),
            request(TransportProtocol::Tcp),
            0,
        )
        .unwrap();
        let (sends, timeout) = schedule(&mut tx, start);
        assert_eq!(sends, [0]);
        assert_eq!(timeout, Some(39500));
    }

    #[test]
    fn response_matching_source_check_and_karn() {
        let start = Instant::now();
        let mut tx = ClientTransactions::new(TransactionConfig::default());
        let id = TransactionId::new([2; 12]);
        tx.start(start, id, request(TransportProtocol::Udp), 42)
            .unwrap();
        assert_eq!(
            tx.start(start, id, request(TransportProtocol::Udp), 1),
            Err(StartError::Duplicate(id))
        );
        let other = TransactionId::new([3; 12]);
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        assert!(tx.match_response(start, &other, server).is_none());
        // From the wrong address: ignored, still pending.
        assert!(
            tx.match_response(start, &id, "192.0.2.9:3478".parse().unwrap())
                .is_none()
        );
        assert!(tx.is_pending(&id));
        let done = tx
            .match_response(start + Duration::from_millis(30), &id, server)
            .unwrap();
        assert_eq!(
            (done.context, done.rtt, done.retransmissions),
            (42, Some(Duration::from_millis(30)), 0)
        );
        assert!(
            tx.match_response(start, &id, server).is_none(),
            "a duplicate response matches nothing"
        );

        // After a retransmission the RTT is unknown.
        tx.start(start, id, request(TransportProtocol::Udp), 1)
            .unwrap();
        tx.handle_timeout(start + Duration::from_millis(500));
        let done = tx
            .match_response(start + Duration::from_millis(600), &id, server)
            .unwrap();
        assert_eq!((done.rtt, done.retransmissions), (None, 1));
    }

    #[test]
    fn cancel_and_limits() {
        let start = Instant::now();
        let config = TransactionConfig {
            max_pending: 2,
            ..TransactionConfig::default()
        };
        let mut tx = ClientTransactions::new(config);
        for i in 0..2u8 {
            tx.start(
                start,
                TransactionId::new([i; 12]),
                request(TransportProtocol::Udp),
                i,
            )
            .unwrap();
        }
        assert_eq!(
            tx.start(
                start,
                TransactionId::new([9; 12]),
                request(TransportProtocol::Udp),
                9
            ),
            Err(StartError::TooManyPending)
        );
        assert_eq!(tx.cancel(&TransactionId::new([0; 12])), Some(0));
        assert_eq!(tx.cancel(&TransactionId::new([0; 12])), None);
        assert_eq!(tx.len(), 1);
        // Early and repeated timeouts are harmless.
        tx.handle_timeout(start);
        tx.handle_timeout(start);
        assert_eq!(std::iter::from_fn(|| tx.poll_transmit()).count(), 2);
    }

    #[test]
    fn late_timeout_does_not_burst() {
        let start = Instant::now();
        let mut tx = ClientTransactions::new(TransactionConfig::default());
        tx.start(
            start,
            TransactionId::new([1; 12]),
            request(TransportProtocol::Udp),
            0,
        )
        .unwrap();
        let _ = tx.poll_transmit();
        // Woken 5 s late: one retransmission, not a burst of them.
        tx.handle_timeout(start + Duration::from_secs(5));
        assert_eq!(std::iter::from_fn(|| tx.poll_transmit()).count(), 1);
        assert!(tx.poll_timeout().unwrap() > start + Duration::from_secs(5));
    }
}
