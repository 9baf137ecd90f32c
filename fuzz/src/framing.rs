//! `framing`: `stun_proto::framing::StreamFramer` on an arbitrary stream cut into arbitrary
//! reads, and the RFC 7983 demultiplexers (`framing::classify`, `ice_core::check_ufrag`).
//!
//! Invariants:
//! * No panic.
//! * Chunking does not matter: the frames (and the final error, if any) are the same
//!   whether the stream arrives in the input's chunks or in one read.
//! * Every frame is what its kind says: a STUN frame has a valid STUN header whose length
//!   is the frame's; a ChannelData frame parses as ChannelData of exactly that length; the
//!   frames, with their padding or length prefix, are the stream's bytes in order.
//! * The buffer stays bounded: after draining, at most one incomplete frame (at most the
//!   configured maximum plus padding) is held.
//! * After an error, the framer keeps failing with the same error.
//! * `classify` follows the RFC 7983 / RFC 9443 first-byte ranges, and `check_ufrag` only
//!   answers for Binding requests with a USERNAME; `ice_core::Demux` routes a datagram to a
//!   session only by that ufrag or by its exact (local, remote) path.

use crate::ops::{Arbitrary, Unstructured, bytes};
use std::net::SocketAddr;
use stun_proto::framing::{
    Frame, FrameKind, Framing, FramingError, MAX_FRAME_LEN, PacketKind, StreamFramer, classify,
};
use stun_proto::{Class, Message, Method, peek_header};
use turn_proto::channel_data::ChannelData;

/// The body of the target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u8::arbitrary(&mut u) else {
        return;
    };
    let framing = if mode & 1 == 0 {
        Framing::StunAndChannelData
    } else {
        Framing::Rfc4571
    };
    let max_frame = match (mode >> 1) % 4 {
        0 => MAX_FRAME_LEN,
        1 => 64,
        2 => 200,
        _ => 1500,
    };
    let Ok(stream) = bytes(&mut u, 1 << 16) else {
        return;
    };
    // What is left cuts the stream into reads: each byte is one read's length (0 = 1 byte).
    let cuts: Vec<usize> = u
        .take_rest()
        .iter()
        .map(|&b| usize::from(b).max(1))
        .collect();

    let whole = frames(framing, max_frame, std::iter::once(stream));
    let mut rest = stream;
    let mut chunks = Vec::new();
    for &n in cuts
        .iter()
        .cycle()
        .take(if cuts.is_empty() { 0 } else { 1 << 16 })
    {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    let chunked = frames(framing, max_frame, chunks.iter().copied());
    assert_eq!(
        chunked, whole,
        "the frames depend on how the stream was cut into reads"
    );
    check_frames(framing, stream, &whole.0);

    for datagram in std::iter::once(stream).chain(chunks.iter().copied().take(64)) {
        demux(datagram);
    }
}

type Frames = (Vec<(FrameKind, Vec<u8>)>, Option<FramingError>);

/// Pushes the reads one by one, draining after each; returns the frames and the error.
fn frames<'a>(framing: Framing, max: usize, reads: impl Iterator<Item = &'a [u8]>) -> Frames {
    let mut f = StreamFramer::with_max_frame(framing, max);
    let mut out = Vec::new();
    for read in reads {
        if let Err(e) = f.push(read) {
            assert_eq!(f.next_frame(), Err(e), "errors stick");
            return (out, Some(e));
        }
        loop {
            match f.next_frame() {
                Ok(Some(Frame { kind, data })) => out.push((kind, data.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(f.next_frame(), Err(e), "errors stick");
                    assert_eq!(f.push(b"more"), Err(e), "errors stick");
                    return (out, Some(e));
                }
            }
        }
        // At most one incomplete frame (and its padding) stays buffered.
        assert!(
            f.buffered() <= max + 3 + 20,
            "{} bytes buffered with frames of at most {max}",
            f.buffered()
        );
    }
    (out, None)
}

fn check_frames(framing: Framing, stream: &[u8], frames: &[(FrameKind, Vec<u8>)]) {
    let mut at = 0;
    for (kind, data) in frames {
        match (framing, kind) {
            (Framing::StunAndChannelData, FrameKind::Stun) => {
                let (_, len) = peek_header(data).expect("a STUN frame has a STUN header");
                assert_eq!(len, data.len());
                assert_eq!(classify(data), PacketKind::Stun);
                assert_eq!(&stream[at..at + len], &data[..]);
                at += len;
            }
            (Framing::StunAndChannelData, FrameKind::ChannelData) => {
                let cd = ChannelData::parse(data).expect("a ChannelData frame parses");
                assert_eq!(4 + cd.data.len(), data.len());
                assert_eq!(classify(data), PacketKind::ChannelData);
                assert_eq!(&stream[at..at + data.len()], &data[..]);
                at += data.len().next_multiple_of(4);
            }
            (Framing::Rfc4571, FrameKind::Datagram) => {
                let len = usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
                assert_eq!(len, data.len());
                assert_eq!(&stream[at + 2..at + 2 + len], &data[..]);
                at += 2 + len;
            }
            other => panic!("frame kind {other:?} from this framing"),
        }
    }
    assert!(at <= stream.len());
}

fn demux(datagram: &[u8]) {
    let kind = classify(datagram);
    let expected = match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::ChannelData,
        Some(80..=127) => PacketKind::Quic,
        Some(128..=191) => PacketKind::Rtp,
        _ => PacketKind::Unknown,
    };
    assert_eq!(kind, expected);
    let ufrag = ice_core::check_ufrag(datagram);
    if let Some(ufrag) = ufrag {
        let msg = Message::parse(datagram).expect("check_ufrag answered for a message");
        assert_eq!(
            (msg.method(), msg.class()),
            (Method::BINDING, Class::Request)
        );
        assert!(!ufrag.contains(':'));
    }
    // A demultiplexer with one session known by ufrag and one by path.
    let local: SocketAddr = "192.0.2.1:3478".parse().expect("literal");
    let peer: SocketAddr = "198.51.100.1:5000".parse().expect("literal");
    let mut demux = ice_core::Demux::new();
    demux.insert_ufrag("EsAw", 1u8);
    demux.insert_path(local, peer, 2u8);
    for source in [peer, "203.0.113.9:1".parse().expect("literal")] {
        let input = stun_proto::Input {
            transport: stun_proto::TransportProtocol::Udp,
            source,
            destination: local,
            data: datagram,
        };
        match demux.route(&input) {
            Some(1) => assert_eq!(ufrag, Some("EsAw")),
            Some(2) => assert_eq!(source, peer, "routed by a path it does not match"),
            None => assert!(ufrag != Some("EsAw") && source != peer),
            other => panic!("unknown session {other:?}"),
        }
    }
}
