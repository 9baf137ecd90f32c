//! One end of a TCP connection (RFC 9293, simplified): the three-way handshake and
//! simultaneous open, in-order reliable delivery, retransmission with back-off, FIN and RST,
//! keepalive.
//!
//! It is Sans-IO like everything the simulator drives: segments and commands go in with the
//! virtual time, segments to send and events for the node come out in an [`Output`], and
//! [`Conn::deadline`] says when [`Conn::on_timeout`] is due.
//!
//! Simplifications, none visible in the byte stream: no congestion control and no delayed
//! ACKs (every segment with data or FIN is acknowledged at once); a fixed 65535-byte window
//! with no scaling, which also bounds the bytes in flight; a retransmission timeout resends
//! everything outstanding (go-back-N) while the receiver keeps out-of-order data within its
//! window. One connection carries less than 2 GiB (reassembly offsets do not wrap).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::segment::{Flags, Segment, seq_le, seq_lt};
use super::{CloseReason, ConnectError, TcpConfig, TcpEvent, TcpId};
use crate::stats::TcpStats;

/// The window each end advertises, and the most a sender keeps in flight.
pub(crate) const WINDOW: u32 = 65_535;

/// The MSS to assume when a SYN carries no MSS option (RFC 9293 §3.7.1).
const DEFAULT_MSS: u16 = 536;

/// What one call produced.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Segments to send, in order.
    pub(crate) segments: Vec<Segment>,
    /// Events for the node that owns the connection.
    pub(crate) events: Vec<TcpEvent>,
    /// Counters to add to the host's and the simulator's.
    pub(crate) stats: TcpStats,
}

impl Output {
    fn reset(&mut self, segment: Segment) {
        self.stats.resets_sent += 1;
        self.segments.push(segment);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    SynReceived,
    /// Established, including the half-closed states: FINs are tracked by flags.
    Established,
    TimeWait,
    Closed,
}

/// How a connection failed, before it is told to the node.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Reset,
    TimedOut,
}

/// Who a new connection is and how it starts.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) id: TcpId,
    pub(crate) node: usize,
    pub(crate) host: usize,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// Initial send sequence number.
    pub(crate) iss: u32,
    /// The MSS this end's link allows; advertised in the SYN.
    pub(crate) mss: u16,
    pub(crate) config: TcpConfig,
    pub(crate) now: Instant,
}

/// One end of a connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: TcpId,
    pub(crate) node: usize,
    pub(crate) host: usize,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// The local address as given to `Connect` for an active open; `None` when accepted.
    requested: Option<SocketAddr>,
    state: State,
    config: TcpConfig,
    /// The MSS advertised in our SYN.
    own_mss: u16,
    /// The segment size used: the smaller of ours and the peer's.
    mss: u16,
    /// `Connected` or `Accepted` has been counted (and told, unless the node closed first).
    announced: bool,
    /// The node closed, aborted, or was told the connection ended: no more events.
    app_closed: bool,

    // Sending: sequence numbers as in RFC 9293 §3.3.1.
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
    /// The highest sequence number sent so far (`snd_nxt` goes back on a retransmission).
    snd_max: u32,
    /// Data not yet acknowledged, sent or not; `buf[0]` has sequence number `buf_seq`.
    buf: VecDeque<u8>,
    buf_seq: u32,
    /// A FIN goes out after the data in `buf`.
    fin_queued: bool,
    /// We sent our FIN before the peer's arrived: we are the one to wait in TIME-WAIT.
    closed_first: bool,

    // Receiving.
    irs: u32,
    rcv_nxt: u32,
    /// The peer's FIN has arrived, in order.
    peer_fin: bool,
    /// Out-of-order segments by offset from `irs`: payload and FIN bit.
    ooo: BTreeMap<u32, (Vec<u8>, bool)>,

    // Timers.
    srtt: Option<Duration>,
    rttvar: Duration,
    /// The current retransmission timeout (backed off on expiry).
    rto: Duration,
    /// The segment being timed: the sequence number that acknowledges it, and when it left.
    rtt_probe: Option<(u32, Instant)>,
    rto_at: Option<Instant>,
    /// When outstanding data is given up for lack of acknowledgements.
    give_up_at: Option<Instant>,
    last_recv: Instant,
    probes: u32,
    last_probe: Instant,
    time_wait_until: Option<Instant>,
    /// Our FIN is acknowledged and the node closed: how long to wait for the peer's FIN
    /// (FIN-WAIT-2; Linux's `tcp_fin_timeout`, which is the TIME-WAIT length).
    fin_wait_until: Option<Instant>,
    /// The timer event in the simulator's queue: deadline and sequence number.
    pub(crate) timer: Option<(Instant, u64)>,
}

impl Conn {
    fn new(s: Setup, state: State, requested: Option<SocketAddr>) -> Self {
        Conn {
            id: s.id,
            node: s.node,
            host: s.host,
            local: s.local,
            remote: s.remote,
            requested,
            state,
            own_mss: s.mss.max(1),
            mss: s.mss.max(1),
            announced: false,
            app_closed: false,
            iss: s.iss,
            snd_una: s.iss,
            snd_nxt: s.iss,
            snd_max: s.iss,
            buf: VecDeque::new(),
            buf_seq: s.iss.wrapping_add(1),
            fin_queued: false,
            closed_first: false,
            irs: 0,
            rcv_nxt: 0,
            peer_fin: false,
            ooo: BTreeMap::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            rto: s.config.initial_rto,
            rtt_probe: None,
            rto_at: None,
            give_up_at: None,
            last_recv: s.now,
            probes: 0,
            last_probe: s.now,
            time_wait_until: None,
            fin_wait_until: None,
            timer: None,
            config: s.config,
        }
    }

    /// An active open: sends the SYN. `requested` is the local address as the node gave it.
    pub(crate) fn connect(s: Setup, requested: SocketAddr, out: &mut Output) -> Self {
        let now = s.now;
        let mut c = Conn::new(s, State::SynSent, Some(requested));
        c.transmit(now, out);
        c
    }

    /// A passive open: `syn` arrived at a listener; sends the SYN-ACK.
    pub(crate) fn accept(s: Setup, syn: &Segment, out: &mut Output) -> Self {
        let now = s.now;
        let mut c = Conn::new(s, State::SynReceived, None);
        c.irs = syn.seq;
        c.rcv_nxt = syn.seq.wrapping_add(1);
        c.peer_mss(syn.mss);
        c.transmit(now, out);
        c
    }

    /// Whether the connection is over and can be forgotten.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the connection only lingers in TIME-WAIT (a new one may take its place).
    pub(crate) fn is_time_wait(&self) -> bool {
        self.state == State::TimeWait
    }

    /// When [`on_timeout`](Self::on_timeout) is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::TimeWait => self.time_wait_until,
            _ => [
                self.rto_at,
                self.give_up_at,
                self.keepalive_at(),
                self.fin_wait_until,
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    // ---- commands ----

    /// Queue bytes; `false` if the connection no longer takes any.
    pub(crate) fn send(&mut self, now: Instant, bytes: Vec<u8>, out: &mut Output) -> bool {
        if self.app_closed || matches!(self.state, State::TimeWait | State::Closed) {
            return false;
        }
        out.stats.bytes_sent += bytes.len() as u64;
        self.buf.extend(bytes);
        self.transmit(now, out);
        true
    }

    /// Close gracefully; `false` if the node had closed already.
    pub(crate) fn close(&mut self, now: Instant, out: &mut Output) -> bool {
        if self.app_closed {
            return false;
        }
        self.app_closed = true;
        if self.state == State::SynSent {
            // RFC 9293 §3.10.4: nothing to tell the peer yet.
            self.state = State::Closed;
            return true;
        }
        self.fin_queued = true;
        self.transmit(now, out);
        self.check_done(now, out);
        true
    }

    /// Abort with a RST; `false` if the connection was over already.
    pub(crate) fn abort(&mut self, out: &mut Output) -> bool {
        if self.state == State::Closed {
            return false;
        }
        if matches!(self.state, State::SynReceived | State::Established) {
            out.reset(self.segment(Flags::RST | Flags::ACK, self.snd_nxt, Vec::new()));
        }
        self.app_closed = true;
        self.state = State::Closed;
        true
    }

    // ---- input ----

    /// A segment for this connection arrived.
    pub(crate) fn on_segment(&mut self, now: Instant, seg: &Segment, out: &mut Output) {
        if self.state == State::Closed {
            return;
        }
        self.last_recv = now;
        self.probes = 0;
        if seg.has(Flags::RST) {
            return self.on_reset(seg, out);
        }
        match self.state {
            State::SynSent => return self.on_syn_sent(now, seg, out),
            State::TimeWait => {
                // A retransmitted FIN: our last ACK was lost (RFC 9293 §3.10.7.4).
                if seg.has(Flags::FIN) {
                    self.send_ack(out);
                    self.time_wait_until = now.checked_add(self.config.time_wait);
                }
                return;
            }
            _ => {}
        }
        if seg.has(Flags::SYN) {
            return self.on_syn(now, seg, out);
        }
        if !seg.has(Flags::ACK) {
            return;
        }
        if self.state == State::SynReceived {
            if !self.acceptable_ack(seg.ack) {
                return out.reset(seg.reset_reply().expect("not a reset"));
            }
            self.on_ack(now, seg.ack);
            self.establish(out);
        } else if seq_lt(self.snd_max, seg.ack) {
            // It acknowledges something never sent.
            return self.send_ack(out);
        } else {
            self.on_ack(now, seg.ack);
        }
        self.receive(seg, out);
        self.transmit(now, out);
        self.check_done(now, out);
    }

    /// The deadline has come: retransmit, give up, probe, or leave TIME-WAIT.
    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Output) {
        match self.state {
            State::Closed => return,
            State::TimeWait => {
                if self.time_wait_until.is_some_and(|t| now >= t) {
                    self.state = State::Closed;
                }
                return;
            }
            _ => {}
        }
        if self.in_flight() && self.give_up_at.is_some_and(|t| now >= t) {
            return self.fail(Failure::TimedOut, out);
        }
        if !self.peer_fin && self.fin_wait_until.is_some_and(|t| now >= t) {
            // The peer never closed its side; nobody is left to tell.
            self.state = State::Closed;
            return;
        }
        if self.rto_at.is_some_and(|t| now >= t) {
            // RFC 6298 §5.5-5.6: back off, resend from the oldest unacknowledged byte, and
            // take no RTT sample from what is resent (Karn).
            self.rto = self.rto.saturating_mul(2).min(self.config.max_rto);
            self.rtt_probe = None;
            self.rto_at = None;
            self.snd_nxt = self.snd_una;
            let before = out.segments.len();
            self.transmit(now, out);
            out.stats.retransmitted += (out.segments.len() - before) as u64;
        }
        if self.keepalive_at().is_some_and(|t| now >= t) {
            if self.probes >= self.config.keepalive_probes {
                return self.fail(Failure::TimedOut, out);
            }
            // RFC 1122 §4.2.3.6: a segment one below the next sequence number makes the
            // peer answer with an ACK.
            let probe = self.segment(Flags::ACK, self.snd_una.wrapping_sub(1), Vec::new());
            out.segments.push(probe);
            self.probes += 1;
            self.last_probe = now;
        }
    }

    // ---- handshake and reset ----

    fn on_syn_sent(&mut self, now: Instant, seg: &Segment, out: &mut Output) {
        if seg.has(Flags::ACK) && seg.ack != self.iss.wrapping_add(1) {
            // An old segment from another incarnation of the connection.
            return out.reset(seg.reset_reply().expect("not a reset"));
        }
        if !seg.has(Flags::SYN) {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq.wrapping_add(1);
        self.peer_mss(seg.mss);
        if seg.has(Flags::ACK) {
            self.on_ack(now, seg.ack);
            self.establish(out);
            self.send_ack(out);
            self.transmit(now, out);
        } else {
            // RFC 9293 §3.5, simultaneous open: the peer's SYN crossed ours. Send our SYN
            // again, now with an ACK of theirs.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            self.transmit(now, out);
        }
    }

    /// A SYN in SYN-RECEIVED or later.
    fn on_syn(&mut self, now: Instant, seg: &Segment, out: &mut Output) {
        if seg.seq != self.irs {
            // Not the SYN of this connection: a challenge ACK (RFC 5961 §4).
            return self.send_ack(out);
        }
        if self.state != State::SynReceived {
            // The peer resent its SYN-ACK: our ACK of it was lost.
            return self.send_ack(out);
        }
        if seg.has(Flags::ACK) && self.acceptable_ack(seg.ack) {
            // Simultaneous open: the peer's SYN-ACK acknowledges our SYN.
            self.on_ack(now, seg.ack);
            self.establish(out);
            self.transmit(now, out);
        } else {
            // The peer resent its SYN: our SYN-ACK was lost.
            self.snd_nxt = self.iss;
            self.transmit(now, out);
        }
    }

    fn on_reset(&mut self, seg: &Segment, out: &mut Output) {
        let acceptable = match self.state {
            State::SynSent => seg.has(Flags::ACK) && seg.ack == self.iss.wrapping_add(1),
            _ => seg.seq.wrapping_sub(self.rcv_nxt) < WINDOW,
        };
        if !acceptable {
            return;
        }
        if self.state == State::TimeWait {
            self.state = State::Closed;
            return;
        }
        self.fail(Failure::Reset, out);
    }

    fn establish(&mut self, out: &mut Output) {
        self.state = State::Established;
        if self.announced {
            return;
        }
        self.announced = true;
        let (id, local, remote) = (self.id, self.local, self.remote);
        let event = if self.requested.is_some() {
            out.stats.connected += 1;
            TcpEvent::Connected { id, local, remote }
        } else {
            out.stats.accepted += 1;
            TcpEvent::Accepted { id, local, remote }
        };
        if !self.app_closed {
            out.events.push(event);
        }
    }

    /// The connection is over; tell the node how, unless it closed first.
    fn fail(&mut self, failure: Failure, out: &mut Output) {
        self.state = State::Closed;
        if self.announced {
            let reason = match failure {
                Failure::Reset => {
                    out.stats.reset += 1;
                    CloseReason::Reset
                }
                Failure::TimedOut => {
                    out.stats.timed_out += 1;
                    CloseReason::TimedOut
                }
            };
            if !self.app_closed {
                out.events.push(TcpEvent::Closed {
                    id: self.id,
                    reason,
                });
            }
        } else if let (Some(local), false) = (self.requested, self.app_closed) {
            out.stats.connect_failed += 1;
            let error = match failure {
                Failure::Reset => ConnectError::Refused,
                Failure::TimedOut => ConnectError::TimedOut,
            };
            out.events.push(TcpEvent::ConnectFailed {
                local,
                remote: self.remote,
                error,
            });
        }
        self.app_closed = true;
    }

    // ---- sending ----

    fn peer_mss(&mut self, mss: Option<u16>) {
        self.mss = self.own_mss.min(mss.unwrap_or(DEFAULT_MSS)).max(1);
    }

    fn in_flight(&self) -> bool {
        self.snd_una != self.snd_max
    }

    fn acceptable_ack(&self, ack: u32) -> bool {
        seq_lt(self.snd_una, ack) && seq_le(ack, self.snd_max)
    }

    fn segment(&self, flags: Flags, seq: u32, payload: Vec<u8>) -> Segment {
        Segment {
            source: self.local,
            destination: self.remote,
            seq,
            ack: if flags.contains(Flags::ACK) {
                self.rcv_nxt
            } else {
                0
            },
            flags,
            mss: None,
            payload,
        }
    }

    fn send_ack(&self, out: &mut Output) {
        out.segments
            .push(self.segment(Flags::ACK, self.snd_nxt, Vec::new()));
    }

    /// Send whatever may go now: the SYN (again), data within the window, the FIN.
    fn transmit(&mut self, now: Instant, out: &mut Output) {
        match self.state {
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                let flags = if self.state == State::SynReceived {
                    Flags::SYN | Flags::ACK
                } else {
                    Flags::SYN
                };
                let mut syn = self.segment(flags, self.iss, Vec::new());
                syn.mss = Some(self.own_mss);
                if self.snd_max == self.iss {
                    self.rtt_probe = Some((self.iss.wrapping_add(1), now));
                }
                out.segments.push(syn);
                self.advance(self.iss.wrapping_add(1));
            }
            State::Established => self.send_data(now, out),
            _ => {}
        }
        self.arm(now);
    }

    fn send_data(&mut self, now: Instant, out: &mut Output) {
        loop {
            let offset = self.snd_nxt.wrapping_sub(self.buf_seq) as usize;
            let room = WINDOW.saturating_sub(self.snd_nxt.wrapping_sub(self.snd_una)) as usize;
            if offset >= self.buf.len() || room == 0 {
                break;
            }
            let len = (self.buf.len() - offset)
                .min(usize::from(self.mss))
                .min(room);
            let payload: Vec<u8> = self.buf.range(offset..offset + len).copied().collect();
            let seq = self.snd_nxt;
            let end = seq.wrapping_add(len as u32);
            if seq == self.snd_max && self.rtt_probe.is_none() {
                self.rtt_probe = Some((end, now));
            }
            out.segments
                .push(self.segment(Flags::ACK | Flags::PSH, seq, payload));
            self.advance(end);
        }
        let data_end = self.buf_seq.wrapping_add(self.buf.len() as u32);
        if self.fin_queued && self.snd_nxt == data_end {
            out.segments
                .push(self.segment(Flags::FIN | Flags::ACK, data_end, Vec::new()));
            self.advance(data_end.wrapping_add(1));
            self.closed_first |= !self.peer_fin;
        }
    }

    fn advance(&mut self, to: u32) {
        self.snd_nxt = to;
        if seq_lt(self.snd_max, to) {
            self.snd_max = to;
        }
    }

    /// Start the retransmission and give-up timers when something is in flight; stop them
    /// when nothing is.
    fn arm(&mut self, now: Instant) {
        if !self.in_flight() {
            self.rto_at = None;
            self.give_up_at = None;
            return;
        }
        if self.rto_at.is_none() {
            self.rto_at = now.checked_add(self.rto);
        }
        if self.give_up_at.is_none() {
            let limit = match self.state {
                State::SynSent | State::SynReceived => self.config.connect_timeout,
                _ => self.config.user_timeout,
            };
            self.give_up_at = now.checked_add(limit);
        }
    }

    /// An acceptable ACK: forget what it covers, measure the round trip, restart the timers.
    fn on_ack(&mut self, now: Instant, ack: u32) {
        if !self.acceptable_ack(ack) {
            return;
        }
        if seq_lt(self.buf_seq, ack) {
            let n = (ack.wrapping_sub(self.buf_seq) as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.buf_seq = self.buf_seq.wrapping_add(n as u32);
        }
        self.snd_una = ack;
        if seq_lt(self.snd_nxt, ack) {
            self.snd_nxt = ack;
        }
        if let Some((end, sent)) = self.rtt_probe {
            if seq_le(end, ack) {
                self.sample(now - sent);
                self.rtt_probe = None;
            }
        }
        self.rto = self.base_rto();
        self.rto_at = None;
        self.give_up_at = None;
        self.arm(now);
        if self.fin_acked() && !self.peer_fin && self.fin_wait_until.is_none() {
            self.fin_wait_until = now.checked_add(self.config.time_wait);
        }
    }

    /// Our FIN went out and is acknowledged.
    fn fin_acked(&self) -> bool {
        self.fin_queued && self.buf.is_empty() && self.snd_una == self.buf_seq.wrapping_add(1)
    }

    /// RFC 6298 §2: smoothed round-trip time and its variation.
    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    fn base_rto(&self) -> Duration {
        let Some(srtt) = self.srtt else {
            return self.config.initial_rto;
        };
        let rto = (srtt * 2)
            .max(srtt + self.rttvar * 4)
            .max(self.config.min_rto);
        rto.min(self.config.max_rto)
    }

    fn keepalive_at(&self) -> Option<Instant> {
        let idle = self.config.keepalive?;
        if self.state != State::Established || self.in_flight() {
            return None;
        }
        if self.probes == 0 {
            self.last_recv.checked_add(idle)
        } else {
            self.last_probe.checked_add(self.config.keepalive_interval)
        }
    }

    // ---- receiving ----

    /// Data and FIN of an acceptable segment: deliver what is in order, keep what is ahead.
    fn receive(&mut self, seg: &Segment, out: &mut Output) {
        let fin = seg.has(Flags::FIN);
        if seg.payload.is_empty() && !fin {
            // A pure ACK. One just below the next expected byte is a keepalive probe.
            if seg.seq == self.rcv_nxt.wrapping_sub(1) {
                self.send_ack(out);
            }
            return;
        }
        if self.peer_fin {
            // The whole stream is in: a retransmission.
            return self.send_ack(out);
        }
        let ahead = seg.seq.wrapping_sub(self.rcv_nxt);
        if ahead != 0 && (ahead as i32) > 0 {
            if ahead < WINDOW {
                let key = seg.seq.wrapping_sub(self.irs);
                let entry = self.ooo.entry(key).or_default();
                if seg.payload.len() >= entry.0.len() {
                    *entry = (seg.payload.clone(), fin);
                }
            }
            return self.send_ack(out);
        }
        let mut bytes = Vec::new();
        let mut got_fin = self.take(seg.seq, &seg.payload, fin, &mut bytes);
        while !got_fin {
            let Some((&key, _)) = self.ooo.first_key_value() else {
                break;
            };
            let seq = self.irs.wrapping_add(key);
            if seq_lt(self.rcv_nxt, seq) {
                break;
            }
            let (data, fin) = self.ooo.remove(&key).unwrap_or_default();
            got_fin = self.take(seq, &data, fin, &mut bytes);
        }
        self.send_ack(out);
        if !bytes.is_empty() && !self.app_closed {
            out.stats.bytes_delivered += bytes.len() as u64;
            out.events.push(TcpEvent::Data { id: self.id, bytes });
        }
        if got_fin {
            self.peer_fin = true;
            self.ooo.clear();
            if !self.app_closed {
                out.events.push(TcpEvent::Closed {
                    id: self.id,
                    reason: CloseReason::Fin,
                });
            }
            // The simulator closes this side in turn (queued data still goes first).
            self.app_closed = true;
            self.fin_queued = true;
        }
    }

    /// Take the new part (at or after `rcv_nxt`) of data starting at `seq <= rcv_nxt`;
    /// returns whether its FIN ended the stream.
    fn take(&mut self, seq: u32, data: &[u8], fin: bool, bytes: &mut Vec<u8>) -> bool {
        let skip = self.rcv_nxt.wrapping_sub(seq) as usize;
        if skip < data.len() {
            bytes.extend_from_slice(&data[skip..]);
            self.rcv_nxt = self.rcv_nxt.wrapping_add((data.len() - skip) as u32);
        }
        if fin && skip <= data.len() {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            return true;
        }
        false
    }

    /// Both FINs are through and ours is acknowledged: TIME-WAIT for the side that closed
    /// first, closed for the other.
    fn check_done(&mut self, now: Instant, out: &mut Output) {
        let fin_acked =
            self.fin_queued && self.buf.is_empty() && self.snd_una == self.buf_seq.wrapping_add(1);
        if self.state != State::Established || !self.peer_fin || !fin_acked {
            return;
        }
        out.stats.closed += 1;
        if self.closed_first && !self.config.time_wait.is_zero() {
            self.state = State::TimeWait;
            self.time_wait_until = now.checked_add(self.config.time_wait);
        } else {
            self.state = State::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    const A: &str = "192.0.2.1:1000";
    const B: &str = "192.0.2.2:80";

    fn setup(id: u64, local: &str, remote: &str, iss: u32, now: Instant) -> Setup {
        Setup {
            id: TcpId(id),
            node: 0,
            host: 0,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            iss,
            mss: 4,
            config: TcpConfig::default(),
            now,
        }
    }

    /// Two ends joined by a perfect wire: everything one sends, the other gets at once.
    struct Wire {
        now: Instant,
        a: Conn,
        b: Conn,
        events_a: Vec<TcpEvent>,
        events_b: Vec<TcpEvent>,
        segments: usize,
    }

    impl Wire {
        /// A connects; B is the accepted end.
        fn handshake() -> Self {
            let now = base();
            let mut out = Output::default();
            let a = Conn::connect(setup(1, A, B, 1000, now), A.parse().unwrap(), &mut out);
            let syn = out.segments.remove(0);
            let mut out_b = Output::default();
            let b = Conn::accept(setup(2, B, A, 5000, now), &syn, &mut out_b);
            let mut w = Wire {
                now,
                a,
                b,
                events_a: Vec::new(),
                events_b: Vec::new(),
                segments: 1,
            };
            w.flow(Output::default(), out_b);
            w
        }

        /// Deliver segments back and forth until both sides are quiet.
        fn flow(&mut self, mut from_a: Output, mut from_b: Output) {
            loop {
                self.events_a.append(&mut from_a.events);
                self.events_b.append(&mut from_b.events);
                if from_a.segments.is_empty() && from_b.segments.is_empty() {
                    return;
                }
                let (mut next_a, mut next_b) = (Output::default(), Output::default());
                for s in from_a.segments.drain(..) {
                    self.segments += 1;
                    self.b.on_segment(self.now, &s, &mut next_b);
                }
                for s in from_b.segments.drain(..) {
                    self.segments += 1;
                    self.a.on_segment(self.now, &s, &mut next_a);
                }
                (from_a, from_b) = (next_a, next_b);
            }
        }

        fn data(events: &[TcpEvent]) -> Vec<u8> {
            events
                .iter()
                .filter_map(|e| match e {
                    TcpEvent::Data { bytes, .. } => Some(bytes.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        }
    }

    #[test]
    fn handshake_data_and_close() {
        let mut w = Wire::handshake();
        assert!(matches!(w.events_a[..], [TcpEvent::Connected { .. }]));
        assert!(matches!(w.events_b[..], [TcpEvent::Accepted { .. }]));
        let mut out = Output::default();
        assert!(w.a.send(w.now, b"hello world".to_vec(), &mut out));
        assert_eq!(out.segments.len(), 3, "MSS 4: three segments");
        w.flow(out, Output::default());
        assert_eq!(Wire::data(&w.events_b), b"hello world");
        assert!(!w.a.in_flight());

        let mut out = Output::default();
        w.a.close(w.now, &mut out);
        w.flow(out, Output::default());
        assert!(matches!(
            w.events_b.last(),
            Some(TcpEvent::Closed {
                reason: CloseReason::Fin,
                ..
            })
        ));
        assert_eq!(w.a.state, State::TimeWait, "A closed first");
        assert!(w.b.is_done());
        w.a.on_timeout(w.now + Duration::from_secs(60), &mut Output::default());
        assert!(w.a.is_done());
    }

    #[test]
    fn a_closer_whose_peer_never_closes_gives_up_after_fin_wait_2() {
        let mut w = Wire::handshake();
        let mut out = Output::default();
        w.a.close(w.now, &mut out);
        let fin = out.segments.pop().unwrap();
        // B acknowledges the FIN but its own FIN never arrives.
        let mut reply = Output::default();
        w.b.on_segment(w.now, &fin, &mut reply);
        w.a.on_segment(w.now, &reply.segments[0], &mut Output::default());
        assert_eq!(w.a.deadline().unwrap() - w.now, Duration::from_secs(60));
        w.a.on_timeout(w.now + Duration::from_secs(60), &mut out);
        assert!(w.a.is_done());
        assert!(out.events.is_empty());
    }

    #[test]
    fn out_of_order_and_duplicate_segments_are_reassembled() {
        let mut w = Wire::handshake();
        let mut out = Output::default();
        w.a.send(w.now, b"abcdefghij".to_vec(), &mut out);
        let segs = std::mem::take(&mut out.segments);
        assert_eq!(segs.len(), 3);
        let mut got = Output::default();
        for i in [2, 0, 0, 2, 1] {
            w.b.on_segment(w.now, &segs[i], &mut got);
        }
        assert_eq!(Wire::data(&got.events), b"abcdefghij");
    }

    #[test]
    fn timeout_resends_and_backs_off_then_gives_up() {
        let mut w = Wire::handshake();
        let mut out = Output::default();
        w.a.send(w.now, b"xy".to_vec(), &mut out);
        let first = w.a.deadline().unwrap();
        assert_eq!(
            first - w.now,
            Duration::from_millis(200),
            "the handshake measured a zero RTT: the minimum RTO"
        );
        let mut out = Output::default();
        w.a.on_timeout(first, &mut out);
        assert_eq!(out.segments.len(), 1);
        assert_eq!(out.stats.retransmitted, 1);
        assert_eq!(w.a.deadline().unwrap() - first, Duration::from_millis(400));
        // Keep timing out until the user timeout.
        let mut t = first;
        let mut out = Output::default();
        while !w.a.is_done() {
            t = w.a.deadline().unwrap();
            w.a.on_timeout(t, &mut out);
        }
        assert_eq!(t - w.now, TcpConfig::default().user_timeout);
        assert_eq!(
            out.events,
            [TcpEvent::Closed {
                id: TcpId(1),
                reason: CloseReason::TimedOut
            }]
        );
    }

    #[test]
    fn an_endless_user_timeout_retransmits_forever_at_the_max_rto() {
        let mut w = Wire::handshake();
        w.a.config.user_timeout = Duration::MAX;
        w.a.send(w.now, b"xy".to_vec(), &mut Output::default());
        let mut out = Output::default();
        let mut last = w.now;
        for _ in 0..40 {
            let t = w.a.deadline().unwrap();
            w.a.on_timeout(t, &mut out);
            last = t;
        }
        assert!(!w.a.is_done());
        assert_eq!(w.a.deadline().unwrap() - last, Duration::from_secs(60));
    }

    #[test]
    fn simultaneous_open() {
        let now = base();
        let (mut oa, mut ob) = (Output::default(), Output::default());
        let mut a = Conn::connect(setup(1, A, B, 100, now), A.parse().unwrap(), &mut oa);
        let mut b = Conn::connect(setup(2, B, A, 900, now), B.parse().unwrap(), &mut ob);
        let (syn_a, syn_b) = (oa.segments.remove(0), ob.segments.remove(0));
        a.on_segment(now, &syn_b, &mut oa);
        b.on_segment(now, &syn_a, &mut ob);
        let (synack_a, synack_b) = (oa.segments.remove(0), ob.segments.remove(0));
        assert_eq!(synack_a.flags, Flags::SYN | Flags::ACK);
        a.on_segment(now, &synack_b, &mut oa);
        b.on_segment(now, &synack_a, &mut ob);
        assert!(matches!(oa.events[..], [TcpEvent::Connected { .. }]));
        assert!(matches!(ob.events[..], [TcpEvent::Connected { .. }]));
        assert_eq!((a.state, b.state), (State::Established, State::Established));
    }

    #[test]
    fn reset_refuses_a_connect() {
        let now = base();
        let mut out = Output::default();
        let mut a = Conn::connect(setup(1, A, B, 100, now), A.parse().unwrap(), &mut out);
        let rst = out.segments[0].reset_reply().unwrap();
        let mut out = Output::default();
        a.on_segment(now, &rst, &mut out);
        assert!(a.is_done());
        assert!(matches!(
            out.events[..],
            [TcpEvent::ConnectFailed {
                error: ConnectError::Refused,
                ..
            }]
        ));
    }

    #[test]
    fn keepalive_probes_then_gives_up() {
        let mut w = Wire::handshake();
        w.a.config.keepalive = Some(Duration::from_secs(7200));
        let at = w.a.deadline().unwrap();
        assert_eq!(at - w.now, Duration::from_secs(7200));
        let mut out = Output::default();
        w.a.on_timeout(at, &mut out);
        let probe = out.segments.pop().unwrap();
        // The peer answers the probe with an ACK.
        let mut reply = Output::default();
        w.b.on_segment(at, &probe, &mut reply);
        assert_eq!(reply.segments.len(), 1);
        w.a.on_segment(at, &reply.segments[0], &mut Output::default());
        assert_eq!(w.a.probes, 0);
        // Unanswered: nine probes 75 s apart, then the connection is given up.
        let mut out = Output::default();
        while !w.a.is_done() {
            let t = w.a.deadline().unwrap();
            w.a.on_timeout(t, &mut out);
        }
        assert_eq!(out.segments.len(), 9);
        assert_eq!(out.stats.timed_out, 1);
    }
}
