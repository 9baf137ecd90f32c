//! Small ready-made nodes for tests and examples: an echo server, a periodic pinger, and a
//! probe that sends what the test tells it to, over UDP; and over TCP an echo server
//! ([`TcpEcho`]) and a probe ([`TcpProbe`]). All of them record what they receive.

mod tcp;

pub use tcp::{TcpEcho, TcpLog, TcpProbe};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::datagram::Datagram;
use crate::node::Node;

/// A datagram a node received, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Virtual time of delivery.
    pub at: Instant,
    /// The datagram as delivered (source as translated by NATs on the way).
    pub datagram: Datagram,
}

/// Replies to every datagram with the same payload, from the socket it arrived on to the
/// address it came from (as a STUN server reflects the source it sees).
#[derive(Debug, Default)]
pub struct Echo {
    received: Vec<Arrival>,
    outbox: VecDeque<Datagram>,
}

impl Echo {
    /// A new echo node.
    #[must_use]
    pub fn new() -> Self {
        Echo::default()
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> &[Arrival] {
        &self.received
    }
}

impl Node for Echo {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.outbox.push_back(Datagram {
            source: datagram.destination,
            destination: datagram.source,
            payload: datagram.payload.clone(),
            transport: datagram.transport,
        });
        self.received.push(Arrival { at: now, datagram });
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// Sends a numbered datagram to each of its targets every `interval`, and records what comes
/// back. The payload starts with the sequence number (8 bytes, big endian).
#[derive(Debug)]
pub struct Pinger {
    local: SocketAddr,
    targets: Vec<SocketAddr>,
    interval: Duration,
    next: Option<Instant>,
    remaining: Option<u64>,
    payload_len: usize,
    /// Send time of each sequence number.
    sent: Vec<Instant>,
    received: Vec<Arrival>,
    outbox: VecDeque<Datagram>,
}

impl Pinger {
    /// Ping `target` from `local` every `interval`, the first time at `start`.
    #[must_use]
    pub fn new(local: SocketAddr, target: SocketAddr, interval: Duration, start: Instant) -> Self {
        Pinger {
            local,
            targets: vec![target],
            interval,
            next: Some(start),
            remaining: None,
            payload_len: 8,
            sent: Vec::new(),
            received: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    /// Also ping `target`, from the same socket, in every round.
    #[must_use]
    pub fn also_to(mut self, target: SocketAddr) -> Self {
        self.targets.push(target);
        self
    }

    /// Stop after `rounds` rounds.
    #[must_use]
    pub fn rounds(mut self, rounds: u64) -> Self {
        self.remaining = Some(rounds);
        if rounds == 0 {
            self.next = None;
        }
        self
    }

    /// Pad every payload to `len` bytes (at least the 8 of the sequence number).
    #[must_use]
    pub fn payload_len(mut self, len: usize) -> Self {
        self.payload_len = len.max(8);
        self
    }

    /// Rounds sent so far.
    #[must_use]
    pub fn rounds_sent(&self) -> u64 {
        self.sent.len() as u64
    }

    /// When round `seq` was sent.
    #[must_use]
    pub fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.sent.get(usize::try_from(seq).ok()?).copied()
    }

    /// Everything received so far, replies or not.
    #[must_use]
    pub fn received(&self) -> &[Arrival] {
        &self.received
    }

    /// The sequence numbers of the replies received so far, in arrival order (duplicates and
    /// reordering show up here).
    #[must_use]
    pub fn reply_seqs(&self) -> Vec<u64> {
        self.received
            .iter()
            .filter_map(|a| parse_seq(&a.datagram.payload))
            .collect()
    }

    /// The round-trip time of each reply received so far, in arrival order.
    #[must_use]
    pub fn rtts(&self) -> Vec<Duration> {
        self.received
            .iter()
            .filter_map(|a| Some(a.at - self.sent_at(parse_seq(&a.datagram.payload)?)?))
            .collect()
    }

    fn send_round(&mut self, now: Instant) {
        let seq = self.sent.len() as u64;
        let mut payload = vec![0u8; self.payload_len];
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        for target in &self.targets {
            self.outbox
                .push_back(Datagram::udp(self.local, *target, payload.clone()));
        }
        self.sent.push(now);
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
    }
}

fn parse_seq(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

impl Node for Pinger {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.received.push(Arrival { at: now, datagram });
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Early or repeated calls do nothing; a late call sends one round and keeps the grid.
        let Some(next) = self.next.filter(|n| *n <= now) else {
            return;
        };
        self.send_round(now);
        self.next = match self.remaining {
            Some(0) => None,
            _ => Some(next + self.interval),
        };
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}

/// Sends exactly what the test queues with [`send`](Self::send) (through
/// [`Sim::node_mut`](crate::Sim::node_mut)), and records everything it receives.
#[derive(Debug)]
pub struct Probe {
    local: SocketAddr,
    received: Vec<Arrival>,
    outbox: VecDeque<Datagram>,
}

impl Probe {
    /// A probe that sends from `local`.
    #[must_use]
    pub fn new(local: SocketAddr) -> Self {
        Probe {
            local,
            received: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    /// Queue a UDP datagram from the probe's socket to `destination`.
    pub fn send(&mut self, destination: SocketAddr, payload: impl Into<Vec<u8>>) {
        self.outbox
            .push_back(Datagram::udp(self.local, destination, payload));
    }

    /// Queue an arbitrary datagram (any source, to test what the simulator does with it).
    pub fn send_datagram(&mut self, datagram: Datagram) {
        self.outbox.push_back(datagram);
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> &[Arrival] {
        &self.received
    }

    /// Take (and forget) everything received so far.
    pub fn take_received(&mut self) -> Vec<Arrival> {
        std::mem::take(&mut self.received)
    }
}

impl Node for Probe {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.received.push(Arrival { at: now, datagram });
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pinger_keeps_its_grid_and_ignores_early_timeouts() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pinger::new(sa("10.0.0.1:1"), sa("10.0.0.2:2"), ms(10), t0)
            .also_to(sa("10.0.0.3:3"))
            .rounds(2)
            .payload_len(20);
        assert_eq!(p.poll_timeout(), Some(t0));
        p.handle_timeout(t0);
        let a = p.poll_transmit().unwrap();
        let b = p.poll_transmit().unwrap();
        assert!(p.poll_transmit().is_none());
        assert_eq!(
            (a.destination, b.destination),
            (sa("10.0.0.2:2"), sa("10.0.0.3:3"))
        );
        assert_eq!(a.payload.len(), 20);
        p.handle_timeout(t0 + ms(5));
        assert!(p.poll_transmit().is_none(), "early timeout sends nothing");
        p.handle_timeout(t0 + ms(13));
        assert_eq!(parse_seq(&p.poll_transmit().unwrap().payload), Some(1));
        assert_eq!(p.poll_timeout(), None, "two rounds, then done");
        p.handle_datagram(t0 + ms(20), a.clone());
        assert_eq!(p.reply_seqs(), [0]);
        assert_eq!(p.rtts(), [ms(20)]);
    }

    #[test]
    fn echo_swaps_addresses() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut e = Echo::new();
        e.handle_datagram(
            t0,
            Datagram::udp(sa("1.1.1.1:1"), sa("2.2.2.2:2"), b"hi".to_vec()),
        );
        let r = e.poll_transmit().unwrap();
        assert_eq!(
            (r.source, r.destination),
            (sa("2.2.2.2:2"), sa("1.1.1.1:1"))
        );
        assert_eq!(r.payload, b"hi");
        assert_eq!(e.received().len(), 1);
    }
}
