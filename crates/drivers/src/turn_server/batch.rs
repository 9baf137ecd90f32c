//! Batched socket I/O buffers: receive buffers with headroom, and the GSO send batch.
//!
//! Receive: `recvmmsg` fills up to [`BATCH_SIZE`] buffers, each after 4 bytes of headroom,
//! each holding one datagram or (with GRO) several of one size back to back. Every datagram
//! is handed to the core where it lies, with the 4 bytes before it as headroom: for the first
//! that is the spare room, for the others it is the tail of the datagram before, which has
//! been handled (its output copied into the send batch or sent) by then.
//!
//! Send: relay outputs are copied into a [`TxBatch`] slot per (socket, destination, ECN); a
//! slot holds datagrams of one size (the last may be shorter) and leaves in one `sendmsg`
//! with `UDP_SEGMENT` (GSO). That copy is the only copy of a relayed payload.

use super::sockets::Route;
use quinn_udp::{BATCH_SIZE, EcnCodepoint, RecvMeta};
use std::io::IoSliceMut;
use std::net::SocketAddr;

/// Spare bytes before each received datagram: room for a ChannelData header.
pub(super) const HEADROOM: usize = turn_proto::channel_data::HEADER_LEN;
/// Bytes per receive buffer: a GRO buffer holds at most 64 KiB.
const RX_BUF: usize = 1 << 16;
/// Bytes one GSO send may carry: below 65,507, the largest UDP payload over IPv4.
pub(super) const MAX_GSO_BYTES: usize = 65_000;
/// Send batches open at once. A handful of flows interleave in one receive batch (two
/// directions of a call, a few busy clients); more are flushed in turn.
const SLOTS: usize = 8;

/// The receive buffers and their metadata, reused for every batch.
#[derive(Debug)]
pub(super) struct RxBuffers {
    bufs: [Box<[u8]>; BATCH_SIZE],
    meta: [RecvMeta; BATCH_SIZE],
}

impl RxBuffers {
    pub(super) fn new() -> RxBuffers {
        RxBuffers {
            bufs: std::array::from_fn(|_| vec![0u8; HEADROOM + RX_BUF].into_boxed_slice()),
            meta: [RecvMeta::default(); BATCH_SIZE],
        }
    }

    /// Receives into every buffer after its headroom with `recv` (a socket's batched
    /// receive); returns how many buffers were filled.
    pub(super) fn recv(
        &mut self,
        recv: impl FnOnce(&mut [IoSliceMut<'_>], &mut [RecvMeta]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let mut slices = self
            .bufs
            .each_mut()
            .map(|b| IoSliceMut::new(&mut b[HEADROOM..]));
        recv(&mut slices, &mut self.meta)
    }

    /// Buffer `i` (headroom included) and its metadata.
    pub(super) fn get(&mut self, i: usize) -> (&mut [u8], &RecvMeta) {
        (&mut self.bufs[i], &self.meta[i])
    }
}

/// The datagrams of one received buffer: `(start, len)` of each, `start` counted from
/// the end of the headroom. Without GRO there is one (an empty datagram too: a peer may send
/// one, and it becomes an empty ChannelData); with GRO, `len / stride` rounded up.
pub(super) fn segments(meta: &RecvMeta) -> impl Iterator<Item = (usize, usize)> + use<> {
    let (len, stride) = (meta.len, meta.stride);
    let stride = if stride == 0 { len.max(1) } else { stride };
    let count = len.div_ceil(stride).max(1);
    (0..count).map(move |k| (k * stride, stride.min(len - k * stride)))
}

/// What datagrams must share to leave in one GSO send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) route: Route,
    pub(super) destination: SocketAddr,
    pub(super) ecn: Option<EcnCodepoint>,
}

/// One send in the making: datagrams of `segment` bytes back to back in `buf`.
#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    buf: Vec<u8>,
    segment: usize,
    /// A shorter datagram was appended: GSO allows it only as the last.
    closed: bool,
}

impl Slot {
    fn accepts(&self, len: usize, max_segments: usize) -> bool {
        !self.closed
            && len <= self.segment
            && self.buf.len() + len <= MAX_GSO_BYTES
            && self.buf.len() / self.segment < max_segments
    }

    fn start(&mut self, key: Key, data: &[u8]) {
        self.key = Some(key);
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.segment = data.len();
        self.closed = false;
    }

    fn append(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.closed = data.len() < self.segment;
    }

    /// Hands the batch to `send` (bytes, segment size) and empties the slot.
    fn flush(&mut self, send: &mut impl FnMut(&Key, &[u8], usize)) {
        if let Some(key) = self.key.take() {
            send(&key, &self.buf, self.segment);
            self.buf.clear();
        }
    }
}

/// Relay outputs waiting to leave in GSO batches. Nothing is allocated after `new`.
#[derive(Debug)]
pub(super) struct TxBatch {
    slots: [Slot; SLOTS],
    /// The slot flushed next when all are busy and a new flow arrives.
    victim: usize,
    /// The slot used last: consecutive datagrams of one flow find it without a scan.
    last: usize,
}

impl TxBatch {
    pub(super) fn new() -> TxBatch {
        TxBatch {
            slots: std::array::from_fn(|_| Slot {
                key: None,
                buf: Vec::with_capacity(MAX_GSO_BYTES),
                segment: 1,
                closed: false,
            }),
            victim: 0,
            last: 0,
        }
    }

    /// Queues one datagram for `key`. Whatever must leave first (a full batch, a batch of
    /// another size for the same flow, the flow displaced from a slot) goes to `send` as
    /// `(key, bytes, segment size)`; so does `data` itself when the socket cannot do GSO
    /// (`max_segments` 1) or it is too large to batch. Order within a flow is kept.
    pub(super) fn push(
        &mut self,
        key: Key,
        data: &[u8],
        max_segments: usize,
        send: &mut impl FnMut(&Key, &[u8], usize),
    ) {
        let same = if self.slots[self.last].key == Some(key) {
            Some(self.last)
        } else {
            self.slots.iter().position(|s| s.key == Some(key))
        };
        if max_segments <= 1 || data.is_empty() || data.len() > MAX_GSO_BYTES {
            if let Some(i) = same {
                self.slots[i].flush(send);
            }
            send(&key, data, data.len().max(1));
            return;
        }
        let i = match same {
            Some(i) if self.slots[i].accepts(data.len(), max_segments) => {
                self.last = i;
                self.slots[i].append(data);
                if self.slots[i].buf.len() / self.slots[i].segment >= max_segments {
                    self.slots[i].flush(send);
                }
                return;
            }
            Some(i) => i,
            None => match self.slots.iter().position(|s| s.key.is_none()) {
                Some(i) => i,
                None => {
                    let i = self.victim;
                    self.victim = (i + 1) % SLOTS;
                    i
                }
            },
        };
        self.slots[i].flush(send);
        self.slots[i].start(key, data);
        self.last = i;
    }

    /// Sends every open batch.
    pub(super) fn flush(&mut self, send: &mut impl FnMut(&Key, &[u8], usize)) {
        for slot in &mut self.slots {
            slot.flush(send);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sockets::SocketId;
    use super::*;

    fn key(dest: &str) -> Key {
        Key {
            route: Route {
                socket: SocketId::Relay(0),
                src_ip: None,
            },
            destination: dest.parse().unwrap(),
            ecn: None,
        }
    }

    /// (destination port, total bytes, segment size) of each send.
    type Sent = Vec<(u16, usize, usize)>;

    fn recorder(sent: &mut Sent) -> impl FnMut(&Key, &[u8], usize) + '_ {
        |k: &Key, d: &[u8], seg: usize| sent.push((k.destination.port(), d.len(), seg))
    }

    #[test]
    fn coalesces_a_flow_and_keeps_flows_apart() {
        let (a, b) = (key("127.0.0.1:1"), key("127.0.0.1:2"));
        let mut tx = TxBatch::new();
        let mut sent = Sent::new();
        for _ in 0..3 {
            tx.push(a, &[1; 100], 64, &mut recorder(&mut sent));
            tx.push(b, &[2; 100], 64, &mut recorder(&mut sent));
        }
        assert!(sent.is_empty());
        tx.flush(&mut recorder(&mut sent));
        assert_eq!(sent, vec![(1, 300, 100), (2, 300, 100)]);
    }

    #[test]
    fn a_short_datagram_closes_the_batch_and_a_long_one_starts_another() {
        let a = key("127.0.0.1:1");
        let mut tx = TxBatch::new();
        let mut sent = Sent::new();
        tx.push(a, &[0; 100], 64, &mut recorder(&mut sent));
        tx.push(a, &[0; 60], 64, &mut recorder(&mut sent));
        tx.push(a, &[0; 60], 64, &mut recorder(&mut sent));
        assert_eq!(sent, vec![(1, 160, 100)], "closed by the short one");
        tx.push(a, &[0; 200], 64, &mut recorder(&mut sent));
        assert_eq!(sent[1], (1, 60, 60), "a longer one cannot follow");
        tx.flush(&mut recorder(&mut sent));
        assert_eq!(sent[2], (1, 200, 200));
    }

    #[test]
    fn full_batches_leave_at_once() {
        let a = key("127.0.0.1:1");
        let mut tx = TxBatch::new();
        let mut sent = Sent::new();
        for _ in 0..5 {
            tx.push(a, &[0; 10], 4, &mut recorder(&mut sent));
        }
        assert_eq!(sent, vec![(1, 40, 10)]);
        // Bytes, not only segments, bound a batch.
        for _ in 0..60 {
            tx.push(a, &[0; 1200], 64, &mut recorder(&mut sent));
        }
        assert!(sent[1..].iter().all(|&(_, len, _)| len <= MAX_GSO_BYTES));
    }

    #[test]
    fn without_gso_each_datagram_leaves_alone_in_order() {
        let a = key("127.0.0.1:1");
        let mut tx = TxBatch::new();
        let mut sent = Sent::new();
        tx.push(a, &[0; 10], 64, &mut recorder(&mut sent));
        tx.push(a, &[0; 20], 1, &mut recorder(&mut sent));
        assert_eq!(sent, vec![(1, 10, 10), (1, 20, 20)]);
    }

    #[test]
    fn a_ninth_flow_displaces_one() {
        let mut tx = TxBatch::new();
        let mut sent = Sent::new();
        for port in 1..=9 {
            tx.push(
                key(&format!("127.0.0.1:{port}")),
                &[0; 10],
                64,
                &mut recorder(&mut sent),
            );
        }
        assert_eq!(sent, vec![(1, 10, 10)]);
        tx.flush(&mut recorder(&mut sent));
        assert_eq!(sent.len(), 9);
    }

    #[test]
    fn gro_segments_split_at_the_stride() {
        let meta = RecvMeta {
            len: 250,
            stride: 100,
            ..RecvMeta::default()
        };
        let segs: Vec<_> = segments(&meta).collect();
        assert_eq!(segs, vec![(0, 100), (100, 100), (200, 50)]);
        let single = RecvMeta {
            len: 42,
            stride: 42,
            ..RecvMeta::default()
        };
        assert_eq!(segments(&single).collect::<Vec<_>>(), vec![(0, 42)]);
        let empty = RecvMeta {
            len: 0,
            stride: 0,
            ..RecvMeta::default()
        };
        assert_eq!(segments(&empty).collect::<Vec<_>>(), vec![(0, 0)]);
    }
}
