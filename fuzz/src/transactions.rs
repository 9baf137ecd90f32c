//! `transactions`: `stun_proto::transaction::ClientTransactions` driven by arbitrary
//! sequences of starts, responses, cancels and timeouts (on time and late), against a
//! model.
//!
//! Invariants:
//! * No panic.
//! * `start` refuses exactly duplicates and starts beyond `max_pending`; `len()` never
//!   exceeds `max_pending`.
//! * Every datagram is a copy of a transaction's request, only while it is in flight: at
//!   most `max_requests` over UDP, one over TCP, none after a response, a cancel or the
//!   timeout; a late `handle_timeout` sends at most one copy per transaction (no burst).
//! * Retransmissions keep to RFC 8489 §6.2.1: the k-th copy is sent no earlier than the
//!   doubling schedule allows (capped by `max_rto`), and the timeout comes no earlier than
//!   after `Rm × RTO` past the last copy (Ti over TCP); each transaction ends exactly once.
//! * `match_response` completes exactly the transactions in flight (from their destination
//!   when `check_source`); RTT is reported only without retransmissions (Karn) and equals
//!   the time since the start.
//! * The timer invariant of [`crate::clock`].

use crate::clock::{Clock, Timed, check_settled, run_until};
use crate::ops::{Arbitrary, Encode, Encoder, Result, Unstructured, choice, sequence};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::transaction::{
    ClientTransactions, StartError, TransactionConfig, TransactionEvent,
};
use stun_proto::{TransactionId, Transmit, TransportProtocol};

/// The configuration part of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Initial RTO in ms (at least 1).
    pub rto_ms: u16,
    /// Rc, 1 to 10.
    pub max_requests: u8,
    /// Rm, 1 to 20.
    pub last_wait_factor: u8,
    /// Ti in ms (at least 1).
    pub reliable_ms: u16,
    /// The RTO cap in ms; 0 for none.
    pub max_rto_ms: u16,
    /// Check the response's source.
    pub check_source: bool,
    /// 1 to 8.
    pub max_pending: u8,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Start transaction `id` (one of 16) over UDP or TCP to destination `dest` (one of 4),
    /// with its own RTO when `rto_ms` is not 0.
    Start {
        /// Transaction selector.
        id: u8,
        /// TCP instead of UDP.
        tcp: bool,
        /// Destination selector.
        dest: u8,
        /// Own initial RTO in ms, 0 for the configured one.
        rto_ms: u16,
    },
    /// A response to `id` from destination `from`.
    Respond {
        /// Transaction selector.
        id: u8,
        /// Source selector.
        from: u8,
    },
    /// Cancel `id`.
    Cancel {
        /// Transaction selector.
        id: u8,
    },
    /// Time passes; the timers run on time.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time passes and the driver wakes late: one `handle_timeout` at the end.
    Late {
        /// Milliseconds.
        ms: u16,
    },
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Configuration.
    pub config: Config,
    /// Operations.
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Config {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Config {
            rto_ms: u16::arbitrary(u)?,
            max_requests: u8::arbitrary(u)?,
            last_wait_factor: u8::arbitrary(u)?,
            reliable_ms: u16::arbitrary(u)?,
            max_rto_ms: u16::arbitrary(u)?,
            check_source: bool::arbitrary(u)?,
            max_pending: u8::arbitrary(u)?,
        })
    }
}

impl Encode for Config {
    fn encode(&self, e: &mut Encoder) {
        e.u16(self.rto_ms)
            .u8(self.max_requests)
            .u8(self.last_wait_factor)
            .u16(self.reliable_ms)
            .u16(self.max_rto_ms)
            .bool(self.check_source)
            .u8(self.max_pending);
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 5)? {
            0 => Op::Start {
                id: u8::arbitrary(u)?,
                tcp: bool::arbitrary(u)?,
                dest: u8::arbitrary(u)?,
                rto_ms: u16::arbitrary(u)?,
            },
            1 => Op::Respond {
                id: u8::arbitrary(u)?,
                from: u8::arbitrary(u)?,
            },
            2 => Op::Cancel {
                id: u8::arbitrary(u)?,
            },
            3 => Op::Advance {
                ms: u16::arbitrary(u)?,
            },
            _ => Op::Late {
                ms: u16::arbitrary(u)?,
            },
        })
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Encoder) {
        match *self {
            Op::Start {
                id,
                tcp,
                dest,
                rto_ms,
            } => e.u8(0).u8(id).bool(tcp).u8(dest).u16(rto_ms),
            Op::Respond { id, from } => e.u8(1).u8(id).u8(from),
            Op::Cancel { id } => e.u8(2).u8(id),
            Op::Advance { ms } => e.u8(3).u16(ms),
            Op::Late { ms } => e.u8(4).u16(ms),
        };
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Input {
            config: Config::arbitrary(u)?,
            ops: sequence(u)?,
        })
    }
}

impl Encode for Input {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.config).put(&self.ops[..]);
    }
}

impl Config {
    fn transaction_config(&self) -> TransactionConfig {
        TransactionConfig {
            initial_rto: ms(self.rto_ms.max(1)),
            max_requests: u32::from(self.max_requests % 10 + 1),
            last_wait_factor: u32::from(self.last_wait_factor % 20 + 1),
            reliable_timeout: ms(self.reliable_ms.max(1)),
            max_rto: (self.max_rto_ms > 0).then(|| ms(self.max_rto_ms)),
            check_source: self.check_source,
            max_pending: usize::from(self.max_pending % 8 + 1),
        }
    }
}

fn ms(v: u16) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn tid(id: u8) -> TransactionId {
    TransactionId::new([id % 16; 12])
}

fn dest(sel: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + sel % 4], 3478))
}

/// What the model knows of a transaction in flight.
#[derive(Clone, Debug)]
struct Pending {
    id: TransactionId,
    reliable: bool,
    dest: SocketAddr,
    started: Instant,
    rto: Duration,
    /// When each copy was sent.
    sends: Vec<Instant>,
    /// Copies not yet drained from `poll_transmit`.
    queued: usize,
}

struct Harness {
    config: TransactionConfig,
    tx: ClientTransactions<u8>,
    pending: Vec<Pending>,
    clock: Clock,
}

impl Timed for ClientTransactions<u8> {
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn drain(&mut self) -> usize {
        std::iter::from_fn(|| self.poll_transmit()).count()
            + std::iter::from_fn(|| self.poll_event()).count()
    }
}

/// The body of the target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let config = input.config.transaction_config();
    let mut h = Harness {
        tx: ClientTransactions::new(config.clone()),
        config,
        pending: Vec::new(),
        clock: Clock::new(),
    };
    for op in &input.ops {
        h.op(op);
        assert!(h.tx.len() <= h.config.max_pending);
        assert_eq!(h.tx.len(), h.pending.len());
        assert_eq!(h.tx.is_empty(), h.pending.is_empty());
        assert_eq!(h.tx.poll_timeout().is_none(), h.pending.is_empty());
    }
}

impl Harness {
    fn op(&mut self, op: &Op) {
        let now = self.clock.now;
        match *op {
            Op::Start {
                id,
                tcp,
                dest: d,
                rto_ms,
            } => {
                let id = tid(id);
                let transport = if tcp {
                    TransportProtocol::Tcp
                } else {
                    TransportProtocol::Udp
                };
                let request = Transmit {
                    transport,
                    source: "10.0.0.1:5000".parse().expect("literal"),
                    destination: dest(d),
                    payload: id.as_bytes().to_vec(),
                };
                let rto = if rto_ms == 0 {
                    self.config.initial_rto
                } else {
                    ms(rto_ms)
                };
                let result = self
                    .tx
                    .start_with_rto(now, id, request, id.as_bytes()[0], rto);
                let duplicate = self.pending.iter().any(|p| p.id == id);
                let full = self.pending.len() >= self.config.max_pending;
                match result {
                    Ok(()) => {
                        assert!(!duplicate && !full, "start accepted: {result:?}");
                        self.pending.push(Pending {
                            id,
                            reliable: tcp,
                            dest: dest(d),
                            started: now,
                            rto,
                            sends: vec![now],
                            queued: 1,
                        });
                    }
                    Err(StartError::Duplicate(d)) => assert!(duplicate && d == id),
                    Err(StartError::TooManyPending) => assert!(!duplicate && full),
                    Err(e) => panic!("unexpected {e:?}"),
                }
                self.drain(now, false);
            }
            Op::Respond { id, from } => {
                let id = tid(id);
                let from = dest(from);
                let done = self.tx.match_response(now, &id, from);
                let i = self.pending.iter().position(|p| p.id == id);
                let expected =
                    i.filter(|&i| !self.config.check_source || self.pending[i].dest == from);
                match (done, expected) {
                    (None, None) => {}
                    (Some(c), Some(i)) => {
                        let p = self.pending.remove(i);
                        assert_eq!(c.transaction_id, id);
                        assert_eq!(c.context, id.as_bytes()[0]);
                        assert_eq!(c.destination, p.dest);
                        assert_eq!(c.retransmissions as usize, p.sends.len() - 1);
                        match c.rtt {
                            Some(rtt) => {
                                assert_eq!(p.sends.len(), 1, "RTT after a retransmission");
                                assert_eq!(rtt, now - p.started);
                            }
                            None => assert!(p.sends.len() > 1, "no RTT without retransmission"),
                        }
                    }
                    (got, want) => panic!("match_response gave {got:?}, model {want:?}"),
                }
            }
            Op::Cancel { id } => {
                let id = tid(id);
                let got = self.tx.cancel(&id);
                let i = self.pending.iter().position(|p| p.id == id);
                assert_eq!(got.is_some(), i.is_some());
                if let Some(i) = i {
                    self.pending.remove(i);
                }
            }
            Op::Advance { ms: d } => {
                let until = now + ms(d);
                let mut clock = self.clock;
                let mut tx =
                    std::mem::replace(&mut self.tx, ClientTransactions::new(self.config.clone()));
                run_until(
                    "transactions",
                    &mut tx,
                    &mut clock,
                    until,
                    10_000,
                    |tx, at| {
                        self.tx_output(tx, at, false);
                    },
                );
                self.tx = tx;
                self.clock = clock;
            }
            Op::Late { ms: d } => {
                self.clock.advance(ms(d));
                let now = self.clock.now;
                self.tx.handle_timeout(now);
                self.drain(now, true);
                check_settled("transactions", &mut self.tx, now);
            }
        }
    }

    fn drain(&mut self, now: Instant, late: bool) {
        let mut tx = std::mem::replace(&mut self.tx, ClientTransactions::new(self.config.clone()));
        self.tx_output(&mut tx, now, late);
        self.tx = tx;
    }

    /// Checks the datagrams and events after a call at `now`.
    fn tx_output(&mut self, tx: &mut ClientTransactions<u8>, now: Instant, late: bool) {
        let mut per_tx = vec![0usize; self.pending.len()];
        while let Some(t) = tx.poll_transmit() {
            let i = self
                .pending
                .iter()
                .position(|p| p.id.as_bytes()[..] == t.payload[..])
                .unwrap_or_else(|| panic!("a datagram of no transaction in flight: {t:?}"));
            let p = &mut self.pending[i];
            assert_eq!(t.destination, p.dest);
            per_tx[i] += 1;
            if p.queued > 0 {
                p.queued -= 1; // the first copy, queued by start
                continue;
            }
            p.sends.push(now);
            let rc = self.config.max_requests as usize;
            assert!(!p.reliable, "a retransmission over TCP");
            assert!(p.sends.len() <= rc, "more than Rc = {rc} copies");
            let earliest = p.started + schedule(&self.config, p.rto, p.sends.len() - 1);
            assert!(
                now >= earliest,
                "copy {} sent {:?} early",
                p.sends.len(),
                earliest - now
            );
        }
        if late {
            assert!(
                per_tx.iter().all(|&n| n <= 1),
                "a late wake-up sent a burst"
            );
        }
        while let Some(e) = tx.poll_event() {
            match e {
                TransactionEvent::TimedOut {
                    transaction_id,
                    context,
                    destination,
                } => {
                    let i = self
                        .pending
                        .iter()
                        .position(|p| p.id == transaction_id)
                        .unwrap_or_else(|| panic!("timeout of {transaction_id} not in flight"));
                    let p = self.pending.remove(i);
                    assert_eq!((context, destination), (p.id.as_bytes()[0], p.dest));
                    let rc = self.config.max_requests as usize;
                    // The on-time schedule: a late wake-up delays a copy, but the next
                    // deadline still counts from when the previous one was due.
                    let (copies, total) = if p.reliable {
                        (1, self.config.reliable_timeout)
                    } else if rc == 1 {
                        (1, p.rto)
                    } else {
                        let last = p.rto.saturating_mul(self.config.last_wait_factor);
                        (
                            rc,
                            schedule(&self.config, p.rto, rc - 1).saturating_add(last),
                        )
                    };
                    assert_eq!(
                        p.sends.len(),
                        copies,
                        "timed out after {} copies",
                        p.sends.len()
                    );
                    let due = p.started + total;
                    assert!(now >= due, "timed out {:?} early", due - now);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}

/// RFC 8489 §6.2.1: the time from the start to the k-th retransmission (k ≥ 1) on time:
/// RTO, then doubling, each wait capped by `max_rto`.
fn schedule(config: &TransactionConfig, rto: Duration, k: usize) -> Duration {
    let mut at = Duration::ZERO;
    let mut wait = rto;
    for i in 0..k {
        if i > 0 {
            wait = wait.saturating_mul(2);
            if let Some(max) = config.max_rto {
                wait = wait.min(max);
            }
        }
        at = at.saturating_add(wait);
    }
    at
}
