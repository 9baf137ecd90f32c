//! Framing on stream transports and demultiplexing on shared ports.
//!
//! * [`StreamFramer`] cuts a TCP/TLS byte stream into messages: STUN messages and TURN
//!   ChannelData (length from their headers; ChannelData padded to 4 bytes on streams,
//!   RFC 8656 §12.5), or RFC 4571 frames (a 2-byte length before each datagram, as ICE-TCP
//!   uses, RFC 6544 §3). Partial reads and several messages per read are handled; a
//!   malformed or oversized header is an error after which the connection must be closed.
//! * [`classify`] is the RFC 7983 first-byte demultiplexer for STUN, DTLS, TURN channels,
//!   RTP/RTCP and ZRTP on one port.

use alloc::vec::Vec;
use core::fmt;

/// How a stream is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// STUN messages and TURN ChannelData, each carrying its own length (TURN over TCP/TLS).
    StunAndChannelData,
    /// RFC 4571: a 16-bit length before each datagram (ICE-TCP).
    Rfc4571,
}

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A STUN message (20-byte header included).
    Stun,
    /// A TURN ChannelData message (4-byte header included, stream padding excluded).
    ChannelData,
    /// An RFC 4571 datagram (the length prefix excluded).
    Datagram,
}

/// One message cut from the stream, borrowed from the framer's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What it is.
    pub kind: FrameKind,
    /// The bytes.
    pub data: &'a [u8],
}

/// A stream that cannot be framed: the connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// The first byte is neither STUN (0–3) nor a ChannelData channel (0x40–0x4F).
    InvalidFirstByte(u8),
    /// A STUN header without the magic cookie or with an unaligned length.
    BadStunHeader,
    /// A frame longer than the configured maximum.
    Oversized {
        /// The declared frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::InvalidFirstByte(b) => write!(f, "invalid first byte {b:#04x} on stream"),
            FramingError::BadStunHeader => f.write_str("bad STUN header on stream"),
            FramingError::Oversized { len, max } => write!(f, "frame of {len} bytes exceeds {max}"),
        }
    }
}

impl core::error::Error for FramingError {}

/// Largest frame any framing can declare: a STUN header plus a 16-bit length.
pub const MAX_FRAME_LEN: usize = 20 + 0xFFFF;

/// Cuts a byte stream into frames.
///
/// ```
/// use stun_proto::framing::{Framing, StreamFramer, FrameKind};
/// let mut f = StreamFramer::new(Framing::Rfc4571);
/// f.push(&[0, 3, b'a', b'b'])?;           // a partial frame
/// assert!(f.next_frame()?.is_none());
/// f.push(&[b'c', 0, 1, b'z'])?;           // its end and a whole second frame
/// assert_eq!(f.next_frame()?.map(|fr| fr.data), Some(&b"abc"[..]));
/// assert_eq!(f.next_frame()?.map(|fr| fr.kind), Some(FrameKind::Datagram));
/// assert!(f.next_frame()?.is_none());
/// # Ok::<(), stun_proto::framing::FramingError>(())
/// ```
#[derive(Debug)]
pub struct StreamFramer {
    framing: Framing,
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    pos: usize,
    max_frame: usize,
    error: Option<FramingError>,
}

impl StreamFramer {
    /// A framer accepting frames up to [`MAX_FRAME_LEN`].
    pub fn new(framing: Framing) -> Self {
        Self::with_max_frame(framing, MAX_FRAME_LEN)
    }

    /// A framer refusing frames longer than `max_frame` bytes (header included).
    pub fn with_max_frame(framing: Framing, max_frame: usize) -> Self {
        StreamFramer {
            framing,
            buf: Vec::new(),
            pos: 0,
            max_frame,
            error: None,
        }
    }

    /// Appends bytes read from the stream. Fails only if the stream already failed.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FramingError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Drop what was already returned before growing, so the buffer stays bounded by
        // one frame plus one read.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FramingError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let rest = &self.buf[self.pos..];
        let header = match self.framing {
            Framing::StunAndChannelData => stun_or_channel_header(rest),
            Framing::Rfc4571 => rfc4571_header(rest),
        };
        let (kind, skip, len, padded) = match header {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        if skip + len > self.max_frame {
            return Err(self.fail(FramingError::Oversized {
                len: skip + len,
                max: self.max_frame,
            }));
        }
        if rest.len() < padded {
            return Ok(None);
        }
        let start = self.pos + skip;
        self.pos += padded;
        Ok(Some(Frame {
            kind,
            data: &self.buf[start..start + len],
        }))
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.error = Some(e);
        e
    }
}

/// (kind, bytes to skip before the data, data length, total bytes including padding)
type Header = (FrameKind, usize, usize, usize);

fn stun_or_channel_header(b: &[u8]) -> Result<Option<Header>, FramingError> {
    let Some(&first) = b.first() else {
        return Ok(None);
    };
    match first {
        0x00..=0x03 => {
            if b.len() < crate::HEADER_LEN {
                return Ok(None);
            }
            let (_, len) = crate::peek_header(b).ok_or(FramingError::BadStunHeader)?;
            Ok(Some((FrameKind::Stun, 0, len, len)))
        }
        // RFC 8656 §12: channel numbers 0x4000–0x4FFF.
        0x40..=0x4F => {
            if b.len() < 4 {
                return Ok(None);
            }
            let len = 4 + usize::from(u16::from_be_bytes([b[2], b[3]]));
            Ok(Some((
                FrameKind::ChannelData,
                0,
                len,
                len.next_multiple_of(4),
            )))
        }
        other => Err(FramingError::InvalidFirstByte(other)),
    }
}

fn rfc4571_header(b: &[u8]) -> Result<Option<Header>, FramingError> {
    if b.len() < 2 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    Ok(Some((FrameKind::Datagram, 2, len, 2 + len)))
}

/// Appends `payload` with its RFC 4571 length prefix to `out`. Fails if longer than 65535.
pub fn encode_rfc4571(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
    let len = u16::try_from(payload.len()).map_err(|_| FramingError::Oversized {
        len: payload.len(),
        max: 0xFFFF,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What a datagram on a multiplexed port is, by its first byte (RFC 7983 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 0–3: STUN.
    Stun,
    /// 16–19: ZRTP.
    Zrtp,
    /// 20–63: DTLS.
    Dtls,
    /// 64–79: TURN ChannelData.
    ChannelData,
    /// 80–127: QUIC (RFC 9443 widens the QUIC range to 64–127; 64–79 stays with TURN
    /// channels here, as on a port that runs TURN).
    Quic,
    /// 128–191: RTP or RTCP.
    Rtp,
    /// Anything else: drop.
    Unknown,
}

/// Classifies a datagram by its first byte (RFC 7983 §7, RFC 9443 §3).
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::ChannelData,
        Some(80..=127) => PacketKind::Quic,
        Some(128..=191) => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageBuilder, MessageType, TransactionId};

    fn stun_message(n: u8) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::BINDING_REQUEST,
            TransactionId::new([n; 12]),
        )
        .unwrap();
        b.add_raw(crate::attributes::AttributeType::SOFTWARE, &[n; 5])
            .unwrap();
        b.finish().to_vec()
    }

    fn channel_data(n: u8, len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut m = vec![0x40, n, 0, len as u8];
        m.extend(std::iter::repeat_n(n, len));
        let mut padded = m.clone();
        padded.resize(m.len().next_multiple_of(4), 0);
        (m, padded)
    }

    /// The stream: two STUN messages and two ChannelData (one needing padding).
    fn stream() -> (Vec<u8>, Vec<(FrameKind, Vec<u8>)>) {
        let (c1, c1p) = channel_data(1, 5);
        let (c2, c2p) = channel_data(2, 8);
        let s1 = stun_message(1);
        let s2 = stun_message(2);
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        for (kind, frame, wire) in [
            (FrameKind::Stun, s1.clone(), s1),
            (FrameKind::ChannelData, c1, c1p),
            (FrameKind::ChannelData, c2, c2p),
            (FrameKind::Stun, s2.clone(), s2),
        ] {
            bytes.extend_from_slice(&wire);
            frames.push((kind, frame));
        }
        (bytes, frames)
    }

    fn drain(f: &mut StreamFramer, out: &mut Vec<(FrameKind, Vec<u8>)>) {
        while let Some(frame) = f.next_frame().unwrap() {
            out.push((frame.kind, frame.data.to_vec()));
        }
    }

    #[test]
    fn split_at_every_offset() {
        let (bytes, expected) = stream();
        for cut in 0..=bytes.len() {
            let mut f = StreamFramer::new(Framing::StunAndChannelData);
            let mut got = Vec::new();
            f.push(&bytes[..cut]).unwrap();
            drain(&mut f, &mut got);
            f.push(&bytes[cut..]).unwrap();
            drain(&mut f, &mut got);
            assert_eq!(got, expected, "split at {cut}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn byte_at_a_time_and_all_at_once() {
        let (bytes, expected) = stream();
        let mut f = StreamFramer::new(Framing::StunAndChannelData);
        let mut got = Vec::new();
        for b in &bytes {
            f.push(std::slice::from_ref(b)).unwrap();
            drain(&mut f, &mut got);
        }
        assert_eq!(got, expected);
        let mut f = StreamFramer::new(Framing::StunAndChannelData);
        let mut got = Vec::new();
        f.push(&bytes).unwrap();
        f.push(&bytes).unwrap();
        drain(&mut f, &mut got);
        assert_eq!(got.len(), 2 * expected.len());
    }

    #[test]
    fn rfc4571_split_at_every_offset() {
        let mut bytes = Vec::new();
        let payloads: [&[u8]; 3] = [b"first", b"", b"third one"];
        for p in payloads {
            encode_rfc4571(p, &mut bytes).unwrap();
        }
        for cut in 0..=bytes.len() {
            let mut f = StreamFramer::new(Framing::Rfc4571);
            let mut got = Vec::new();
            f.push(&bytes[..cut]).unwrap();
            drain(&mut f, &mut got);
            f.push(&bytes[cut..]).unwrap();
            drain(&mut f, &mut got);
            let datas: Vec<&[u8]> = got.iter().map(|(_, d)| d.as_slice()).collect();
            assert_eq!(datas, payloads, "split at {cut}");
        }
        assert!(encode_rfc4571(&vec![0; 70_000], &mut bytes).is_err());
    }

    #[test]
    fn errors_close_the_stream() {
        let mut f = StreamFramer::new(Framing::StunAndChannelData);
        f.push(&[0x17, 0x03, 0x03]).unwrap(); // a TLS record where TURN was expected
        assert_eq!(f.next_frame(), Err(FramingError::InvalidFirstByte(0x17)));
        assert_eq!(f.push(&[0]), Err(FramingError::InvalidFirstByte(0x17)));
        assert_eq!(f.next_frame(), Err(FramingError::InvalidFirstByte(0x17)));

        let mut f = StreamFramer::new(Framing::StunAndChannelData);
        let mut bad = stun_message(1);
        bad[4] = 0; // no magic cookie
        f.push(&bad).unwrap();
        assert_eq!(f.next_frame(), Err(FramingError::BadStunHeader));

        let mut f = StreamFramer::with_max_frame(Framing::StunAndChannelData, 100);
        f.push(&[0x40, 0x00, 0x01, 0x00]).unwrap(); // ChannelData declaring 256 bytes
        assert_eq!(
            f.next_frame(),
            Err(FramingError::Oversized { len: 260, max: 100 })
        );

        let mut f = StreamFramer::with_max_frame(Framing::Rfc4571, 50);
        f.push(&[0xff, 0xff]).unwrap();
        assert_eq!(
            f.next_frame(),
            Err(FramingError::Oversized {
                len: 2 + 0xffff,
                max: 50
            })
        );
    }

    #[test]
    fn rfc7983_ranges() {
        assert_eq!(classify(&[0]), PacketKind::Stun);
        assert_eq!(classify(&[3]), PacketKind::Stun);
        assert_eq!(classify(&[4]), PacketKind::Unknown);
        assert_eq!(classify(&[16]), PacketKind::Zrtp);
        assert_eq!(classify(&[20]), PacketKind::Dtls);
        assert_eq!(classify(&[63]), PacketKind::Dtls);
        assert_eq!(classify(&[64]), PacketKind::ChannelData);
        assert_eq!(classify(&[79]), PacketKind::ChannelData);
        assert_eq!(classify(&[80]), PacketKind::Quic);
        assert_eq!(classify(&[128]), PacketKind::Rtp);
        assert_eq!(classify(&[191]), PacketKind::Rtp);
        assert_eq!(classify(&[192]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
    }
}
