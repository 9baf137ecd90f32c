//! TCP segments as the simulator moves them: addresses, sequence numbers, flags, the MSS
//! option of SYNs, and the payload.

use std::fmt;
use std::net::SocketAddr;
use std::ops::BitOr;

/// The control bits of a TCP header (RFC 9293 §3.1) the simulator uses.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags(u8);

impl Flags {
    pub(crate) const FIN: Flags = Flags(0x01);
    pub(crate) const SYN: Flags = Flags(0x02);
    pub(crate) const RST: Flags = Flags(0x04);
    pub(crate) const PSH: Flags = Flags(0x08);
    pub(crate) const ACK: Flags = Flags(0x10);

    /// Whether every bit of `other` is set.
    pub(crate) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The header byte.
    pub(crate) fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Flags::SYN, "SYN"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect();
        write!(f, "[{}]", set.join(","))
    }
}

/// One TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
    pub(crate) seq: u32,
    /// Meaningful only with [`Flags::ACK`] (zero otherwise, as on the wire).
    pub(crate) ack: u32,
    pub(crate) flags: Flags,
    /// The MSS option (RFC 9293 §3.7.1), sent on SYNs only.
    pub(crate) mss: Option<u16>,
    pub(crate) payload: Vec<u8>,
}

impl Segment {
    /// Bytes of TCP header: 20, plus 4 for the MSS option.
    pub(crate) fn header_len(&self) -> usize {
        20 + if self.mss.is_some() { 4 } else { 0 }
    }

    /// Size of the IP packet that carries the segment.
    pub(crate) fn ip_len(&self) -> usize {
        ip_header_len(self.source) + self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload, plus one for SYN and for FIN.
    pub(crate) fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags.contains(Flags::SYN))
            + u32::from(self.flags.contains(Flags::FIN))
    }

    /// A SYN without ACK: the first segment of a connection.
    pub(crate) fn is_initial_syn(&self) -> bool {
        self.flags.contains(Flags::SYN) && !self.flags.contains(Flags::ACK)
    }

    pub(crate) fn has(&self, flags: Flags) -> bool {
        self.flags.contains(flags)
    }

    /// RFC 9293 §3.10.7.1: the reset that answers `self` when no connection wants it. `None`
    /// for a segment that is itself a reset.
    pub(crate) fn reset_reply(&self) -> Option<Segment> {
        if self.has(Flags::RST) {
            return None;
        }
        let (seq, ack, flags) = if self.has(Flags::ACK) {
            (self.ack, 0, Flags::RST)
        } else {
            (
                0,
                self.seq.wrapping_add(self.seq_len()),
                Flags::RST | Flags::ACK,
            )
        };
        Some(Segment {
            source: self.destination,
            destination: self.source,
            seq,
            ack,
            flags,
            mss: None,
            payload: Vec::new(),
        })
    }
}

/// 20 bytes of IPv4 header, 40 of IPv6.
pub(crate) fn ip_header_len(addr: SocketAddr) -> usize {
    if addr.is_ipv4() { 20 } else { 40 }
}

/// The largest MSS whose segments fit an IP packet of `mtu` bytes (RFC 9293 §3.7.1: MTU
/// minus the fixed IP and TCP headers), at least 1 and small enough for 16-bit length fields.
pub(crate) fn mss_for_mtu(mtu: usize, ipv4: bool) -> u16 {
    let headers = if ipv4 { 40 } else { 60 };
    mtu.saturating_sub(headers).clamp(1, 65_000) as u16
}

/// `a < b` in sequence-number arithmetic (RFC 9293 §3.4: modulo 2^32).
pub(crate) fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a <= b` in sequence-number arithmetic.
pub(crate) fn seq_le(a: u32, b: u32) -> bool {
    a == b || seq_lt(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Segment {
        Segment {
            source: "192.0.2.1:1000".parse().unwrap(),
            destination: "192.0.2.2:80".parse().unwrap(),
            seq,
            ack,
            flags,
            mss: None,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn sequence_arithmetic_wraps() {
        assert!(seq_lt(1, 2));
        assert!(seq_lt(u32::MAX, 0));
        assert!(!seq_lt(0, u32::MAX));
        assert!(seq_le(5, 5));
        assert!(!seq_le(6, 5));
    }

    #[test]
    fn reset_replies_follow_rfc_9293() {
        // A SYN to a closed port: RST+ACK acknowledging the SYN.
        let rst = seg(Flags::SYN, 100, 0, b"").reset_reply().unwrap();
        assert_eq!(rst.flags, Flags::RST | Flags::ACK);
        assert_eq!((rst.seq, rst.ack), (0, 101));
        assert_eq!(rst.destination, "192.0.2.1:1000".parse().unwrap());
        // A stray ACK: RST with the sequence number it acknowledged.
        let rst = seg(Flags::ACK | Flags::PSH, 7, 555, b"abc")
            .reset_reply()
            .unwrap();
        assert_eq!((rst.flags, rst.seq), (Flags::RST, 555));
        assert!(seg(Flags::RST, 1, 0, b"").reset_reply().is_none());
    }

    #[test]
    fn lengths() {
        let mut s = seg(Flags::SYN | Flags::FIN, 0, 0, b"hello");
        assert_eq!(s.seq_len(), 7);
        assert_eq!(s.ip_len(), 20 + 20 + 5);
        s.mss = Some(1460);
        assert_eq!(s.header_len(), 24);
        assert_eq!(mss_for_mtu(1500, true), 1460);
        assert_eq!(mss_for_mtu(1500, false), 1440);
        assert_eq!(mss_for_mtu(10, true), 1);
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "[SYN,ACK]");
    }
}
