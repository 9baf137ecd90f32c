//! Classic libpcap output with synthesised IPv4/IPv6 and UDP or TCP headers.
//!
//! The link type is `LINKTYPE_RAW` (101): every record is a bare IP packet, so IPv4 and IPv6
//! mix in one file. Headers carry correct lengths and checksums (the IPv4 header checksum,
//! and the UDP and TCP checksums over their pseudo-headers; UDP's is mandatory over IPv6,
//! RFC 8200 §8.1). TCP segments carry the simulated connection's real sequence and
//! acknowledgement numbers, flags and the MSS option of SYNs, so Wireshark follows the
//! streams (and flags retransmissions). Timestamps are virtual: the caller passes a
//! `Duration` since a fixed epoch, never the real clock.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::datagram::{Datagram, Transport};
use crate::packet::Packet;
use crate::tcp::{Flags, Segment};

/// `LINKTYPE_RAW`: the packet begins with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;
const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
const SNAPLEN: u32 = 262_144;
const TTL: u8 = 64;

/// Writes datagrams as a pcap stream to any [`Write`].
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    /// IPv4 identification field: counts packets, so output is reproducible.
    ident: u16,
}

impl<W: Write> PcapWriter<W> {
    /// Write the pcap global header to `out`.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&global_header())?;
        Ok(PcapWriter { out, ident: 0 })
    }

    /// Append one datagram, timestamped `since_epoch` after 1970-01-01 00:00:00 UTC. (A
    /// datagram marked [`Transport::Tcp`] is written as a PSH+ACK segment with zero sequence
    /// numbers; the simulator writes its TCP segments with their real headers.)
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn write_datagram(&mut self, since_epoch: Duration, datagram: &Datagram) -> io::Result<()> {
        let segment = match datagram.transport {
            Transport::Udp => udp_segment(datagram),
            Transport::Tcp => tcp_segment(&Segment {
                source: datagram.source,
                destination: datagram.destination,
                seq: 0,
                ack: 0,
                flags: Flags::PSH | Flags::ACK,
                mss: None,
                payload: datagram.payload.clone(),
            }),
        };
        self.write_ip(
            since_epoch,
            (datagram.source, datagram.destination),
            datagram.transport,
            &segment,
        )
    }

    /// Append one packet as the simulator moves it.
    pub(crate) fn write_packet(
        &mut self,
        since_epoch: Duration,
        packet: &Packet,
    ) -> io::Result<()> {
        match packet {
            Packet::Udp(d) => self.write_datagram(since_epoch, d),
            Packet::Tcp(s) => self.write_ip(
                since_epoch,
                (s.source, s.destination),
                Transport::Tcp,
                &tcp_segment(s),
            ),
        }
    }

    fn write_ip(
        &mut self,
        since_epoch: Duration,
        (source, destination): (SocketAddr, SocketAddr),
        transport: Transport,
        segment: &[u8],
    ) -> io::Result<()> {
        self.ident = self.ident.wrapping_add(1);
        let packet = ip_packet(
            source.ip(),
            destination.ip(),
            transport,
            self.ident,
            segment,
        );
        self.out
            .write_all(&record_header(since_epoch, packet.len()))?;
        self.out.write_all(&packet)
    }

    /// Flush the underlying writer.
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Give back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_MICROSECONDS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

fn record_header(ts: Duration, len: usize) -> [u8; 16] {
    let mut h = [0u8; 16];
    let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes()); // captured length
    h[12..16].copy_from_slice(&len.to_le_bytes()); // original length
    h
}

/// The IP packet that carries a transport `segment` (header and payload).
///
/// Packets whose lengths do not fit the header fields are refused before they get here
/// (the simulator drops them as oversize, and segments TCP to fit).
fn ip_packet(
    source: IpAddr,
    destination: IpAddr,
    transport: Transport,
    ident: u16,
    segment: &[u8],
) -> Vec<u8> {
    match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(s, d, transport, ident, segment),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6(s, d, transport, segment),
        // Mixed families never leave the sender; map v4 into v6 so the capture stays valid.
        (s, d) => ipv6(to_v6(s), to_v6(d), transport, segment),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The TCP window every segment advertises (the simulated endpoints use no window scaling).
const TCP_WINDOW: u16 = 65_535;

/// TCP header (with the MSS option on SYNs) and payload, checksummed over the pseudo-header
/// (RFC 9293 §3.1).
fn tcp_segment(s: &Segment) -> Vec<u8> {
    let header_len = s.header_len();
    let len = header_len + s.payload.len();
    let mut seg = Vec::with_capacity(len);
    seg.extend_from_slice(&s.source.port().to_be_bytes());
    seg.extend_from_slice(&s.destination.port().to_be_bytes());
    seg.extend_from_slice(&s.seq.to_be_bytes());
    seg.extend_from_slice(&s.ack.to_be_bytes());
    seg.push(((header_len / 4) as u8) << 4); // data offset in 32-bit words
    seg.push(s.flags.bits());
    seg.extend_from_slice(&TCP_WINDOW.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 0]); // checksum (filled below), urgent pointer
    if let Some(mss) = s.mss {
        seg.extend_from_slice(&[2, 4]); // kind 2 (MSS), length 4
        seg.extend_from_slice(&mss.to_be_bytes());
    }
    seg.extend_from_slice(&s.payload);
    let sum = pseudo_header_sum(s.source.ip(), s.destination.ip(), 6, len);
    let checksum = fold(add_words(sum, &seg));
    seg[16..18].copy_from_slice(&checksum.to_be_bytes());
    seg
}

fn udp_segment(dg: &Datagram) -> Vec<u8> {
    let len = 8 + dg.payload.len();
    let mut seg = Vec::with_capacity(len);
    seg.extend_from_slice(&dg.source.port().to_be_bytes());
    seg.extend_from_slice(&dg.destination.port().to_be_bytes());
    seg.extend_from_slice(&(len as u16).to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(&dg.payload);
    let mut sum = pseudo_header_sum(dg.source.ip(), dg.destination.ip(), 17, len);
    sum = add_words(sum, &seg);
    // RFC 768: a computed checksum of zero is sent as all ones (zero means "none").
    let checksum = match fold(sum) {
        0 => 0xffff,
        c => c,
    };
    seg[6..8].copy_from_slice(&checksum.to_be_bytes());
    seg
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u32 {
    let mut sum = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // RFC 768 / RFC 9293 pseudo-header: source, destination, zero, protocol, length.
            sum = add_words(sum, &s.octets());
            sum = add_words(sum, &d.octets());
            sum = add_words(sum, &[0, protocol]);
            sum = add_words(sum, &(len as u16).to_be_bytes());
        }
        (s, d) => {
            // RFC 8200 §8.1 pseudo-header: source, destination, 32-bit length, next header.
            sum = add_words(sum, &to_v6(s).octets());
            sum = add_words(sum, &to_v6(d).octets());
            sum = add_words(sum, &(len as u32).to_be_bytes());
            sum = add_words(sum, &[0, 0, 0, protocol]);
        }
    }
    sum
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, transport: Transport, ident: u16, segment: &[u8]) -> Vec<u8> {
    let total = 20 + segment.len();
    let mut p = Vec::with_capacity(total);
    p.push(0x45); // version 4, header length 5 words
    p.push(0); // DSCP/ECN
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&[0x40, 0]); // don't fragment, offset 0
    p.push(TTL);
    p.push(transport.ip_protocol());
    p.extend_from_slice(&[0, 0]); // checksum, filled below
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let checksum = fold(add_words(0, &p));
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    p.extend_from_slice(segment);
    p
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, transport: Transport, segment: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + segment.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    p.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    p.push(transport.ip_protocol());
    p.push(TTL); // hop limit
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(segment);
    p
}

/// Add `bytes` as big-endian 16-bit words to a one's-complement sum (RFC 1071).
fn add_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Fold carries and complement (RFC 1071).
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(src: &str, dst: &str, payload: &[u8]) -> Datagram {
        Datagram::udp(src.parse().unwrap(), dst.parse().unwrap(), payload.to_vec())
    }

    fn ip_packet(d: &Datagram, ident: u16) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.ident = ident.wrapping_sub(1);
        w.write_datagram(Duration::ZERO, d).unwrap();
        w.into_inner()[24 + 16..].to_vec()
    }

    fn tcp_packet(s: &Segment) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(Duration::ZERO, &Packet::Tcp(s.clone()))
            .unwrap();
        w.into_inner()[24 + 16..].to_vec()
    }

    /// A correct checksum makes the one's-complement sum over the covered bytes all ones.
    fn verifies(sum: u32) -> bool {
        fold(sum) == 0
    }

    #[test]
    fn global_header_is_classic_raw() {
        let w = PcapWriter::new(Vec::new()).unwrap();
        let h = w.into_inner();
        assert_eq!(h.len(), 24);
        assert_eq!(&h[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 101);
    }

    #[test]
    fn ipv4_udp_lengths_and_checksums() {
        let d = dg("192.0.2.1:3478", "198.51.100.2:5000", b"hello");
        let p = ip_packet(&d, 7);
        assert_eq!(p.len(), 20 + 8 + 5);
        assert_eq!(p[0], 0x45);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 33);
        assert_eq!(p[9], 17);
        assert!(verifies(add_words(0, &p[..20])), "IPv4 header checksum");
        let udp = &p[20..];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 3478);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 5000);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 13);
        assert_ne!(u16::from_be_bytes([udp[6], udp[7]]), 0);
        let pseudo = pseudo_header_sum(d.source.ip(), d.destination.ip(), 17, udp.len());
        assert!(verifies(add_words(pseudo, udp)), "UDP checksum over IPv4");
        assert_eq!(&udp[8..], b"hello");
    }

    #[test]
    fn ipv6_udp_lengths_and_checksum() {
        let d = dg("[2001:db8::1]:1000", "[2001:db8::2]:2000", b"odd");
        let p = ip_packet(&d, 0);
        assert_eq!(p.len(), 40 + 8 + 3);
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 11);
        assert_eq!(p[6], 17);
        let udp = &p[40..];
        let pseudo = pseudo_header_sum(d.source.ip(), d.destination.ip(), 17, udp.len());
        assert!(verifies(add_words(pseudo, udp)), "UDP checksum over IPv6");
    }

    #[test]
    fn tcp_syn_header_option_and_checksum() {
        let s = Segment {
            source: "192.0.2.1:50000".parse().unwrap(),
            destination: "198.51.100.2:3478".parse().unwrap(),
            seq: 0x0102_0304,
            ack: 0,
            flags: Flags::SYN,
            mss: Some(1460),
            payload: Vec::new(),
        };
        let p = tcp_packet(&s);
        assert_eq!(p.len(), 20 + 24);
        assert_eq!(p[9], 6, "protocol TCP");
        assert!(verifies(add_words(0, &p[..20])), "IPv4 header checksum");
        let tcp = &p[20..];
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 50000);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 3478);
        assert_eq!(&tcp[4..8], &[1, 2, 3, 4]);
        assert_eq!(tcp[12] >> 4, 6, "data offset: 6 words with the MSS option");
        assert_eq!(tcp[13], 0x02, "SYN");
        assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4], "MSS 1460");
        let pseudo = pseudo_header_sum(s.source.ip(), s.destination.ip(), 6, tcp.len());
        assert!(verifies(add_words(pseudo, tcp)), "TCP checksum over IPv4");
    }

    #[test]
    fn tcp_data_over_ipv6_checksum() {
        let s = Segment {
            source: "[2001:db8::1]:1000".parse().unwrap(),
            destination: "[2001:db8::2]:2000".parse().unwrap(),
            seq: 7,
            ack: 9,
            flags: Flags::PSH | Flags::ACK,
            mss: None,
            payload: b"odd".to_vec(),
        };
        let p = tcp_packet(&s);
        assert_eq!(p.len(), 40 + 20 + 3);
        assert_eq!(p[6], 6);
        let tcp = &p[40..];
        assert_eq!(tcp[12] >> 4, 5);
        assert_eq!(tcp[13], 0x18, "PSH+ACK");
        assert_eq!(&tcp[8..12], &9u32.to_be_bytes());
        let pseudo = pseudo_header_sum(s.source.ip(), s.destination.ip(), 6, tcp.len());
        assert!(verifies(add_words(pseudo, tcp)), "TCP checksum over IPv6");
    }

    #[test]
    fn records_carry_virtual_timestamps() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let d = dg("192.0.2.1:1", "192.0.2.2:2", b"x");
        w.write_datagram(Duration::new(12, 345_678_000), &d)
            .unwrap();
        let out = w.into_inner();
        let r = &out[24..40];
        assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 12);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 345_678);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 29);
        assert_eq!(out.len(), 24 + 16 + 29);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let sum = add_words(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(fold(sum), !0xddf2);
    }
}
