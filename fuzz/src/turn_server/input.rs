//! The input language of the `turn_server` target: peers, signatures, requests and the
//! operations, with their hand-written `Arbitrary` impls and the inverse `Encode` impls.

use crate::ops::{Arbitrary, Encode, Encoder, Result, Unstructured, bytes, choice, sequence};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
/// The peer addresses requests and datagrams name: allowed ones, every built-in denied
/// range (with their IPv4-mapped, IPv4-compatible and NAT64 forms), the deny list, the
/// allow list, and the server's own addresses.
pub const PEERS: [&str; 30] = [
    "203.0.113.5:7000",
    "203.0.113.6:7001",
    "[2001:db8:2::5]:7000",
    "198.51.100.99:9",
    "127.0.0.1:3478",
    "0.0.0.0:80",
    "10.0.0.1:22",
    "[::ffff:127.0.0.1]:3478",
    "[::1]:1",
    "[::ffff:0.0.0.0]:1",
    "[64:ff9b::7f00:1]:1",
    "[::127.0.0.1]:1",
    "169.254.169.254:80",
    "224.0.0.1:1",
    "255.255.255.255:1",
    "[fe80::1]:1",
    "[fc00::1]:1",
    "100.64.0.1:1",
    "192.168.1.1:1",
    "172.16.0.1:1",
    "[::]:1",
    "240.0.0.1:1",
    "[ff02::1]:1",
    "[fec0::1]:1",
    "203.0.113.200:1",
    "[::ffff:203.0.113.200]:1",
    "10.1.2.3:5000",
    "[::ffff:10.1.2.3]:5000",
    "192.0.2.1:3478",
    "192.0.2.1:50000",
];

/// A peer: one of [`PEERS`], or any address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An entry of the table.
    Known(u8),
    /// Any IPv4 address.
    V4(u32, u16),
    /// Any IPv6 address.
    V6(u128, u16),
}

/// [`PEERS`], parsed once.
fn peers_parsed() -> &'static [SocketAddr] {
    static PARSED: std::sync::OnceLock<Vec<SocketAddr>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| PEERS.iter().map(|p| p.parse().expect("literal")).collect())
}

impl Peer {
    /// The address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Peer::Known(i) => peers_parsed()[usize::from(i) % PEERS.len()],
            Peer::V4(ip, port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
            Peer::V6(ip, port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
        }
    }
}

impl<'a> Arbitrary<'a> for Peer {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? {
            254 => Peer::V4(u32::arbitrary(u)?, u16::arbitrary(u)?),
            255 => Peer::V6(u128::arbitrary(u)?, u16::arbitrary(u)?),
            i => Peer::Known(i),
        })
    }
}

impl Encode for Peer {
    fn encode(&self, e: &mut Encoder) {
        match *self {
            Peer::Known(i) => {
                e.u8(i % 254);
            }
            Peer::V4(ip, port) => {
                e.u8(254).u32(ip).u16(port);
            }
            Peer::V6(ip, port) => {
                e.u8(255).u64(ip as u64).u64((ip >> 64) as u64).u16(port);
            }
        }
    }
}

/// How a request is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// With the client's credentials and latest nonce (after a 401 challenge if it has
    /// none yet).
    Valid,
    /// No integrity at all (the first Allocate of RFC 8489 §9.2.3).
    None,
    /// Signed with a wrong password.
    WrongKey,
    /// Integrity present, one byte of it changed.
    Tampered,
    /// The nonce of another client (another IP) or a made-up one.
    ForeignNonce,
    /// Another realm.
    OtherRealm,
    /// PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS (a bid-down attempt).
    BidDown,
    /// USERNAME missing.
    NoUsername,
}

const SIGNS: [Sign; 8] = [
    Sign::Valid,
    Sign::None,
    Sign::WrongKey,
    Sign::Tampered,
    Sign::ForeignNonce,
    Sign::OtherRealm,
    Sign::BidDown,
    Sign::NoUsername,
];

/// A request's method and attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    /// Allocate.
    Allocate {
        /// 0: none, 1: IPv4, 2: IPv6 (REQUESTED-ADDRESS-FAMILY).
        family: u8,
        /// ADDITIONAL-ADDRESS-FAMILY IPv6 (or IPv4 when `family` is 3, invalid).
        additional: bool,
        /// 0: none, 1: EVEN-PORT, 2: EVEN-PORT with R.
        even_port: u8,
        /// RESERVATION-TOKEN: the last one the server gave (or a made-up one).
        token: bool,
        /// LIFETIME in seconds, if not 0.
        lifetime: u16,
        /// DONT-FRAGMENT.
        dont_fragment: bool,
        /// REQUESTED-TRANSPORT other than UDP (TCP).
        tcp: bool,
    },
    /// Refresh.
    Refresh {
        /// LIFETIME: `None`, or seconds (0 deletes).
        lifetime: Option<u16>,
        /// REQUESTED-ADDRESS-FAMILY: 0 none, 1 IPv4, 2 IPv6.
        family: u8,
    },
    /// CreatePermission with these peers.
    CreatePermission(Vec<Peer>),
    /// ChannelBind.
    ChannelBind {
        /// The channel number.
        channel: u16,
        /// The peer.
        peer: Peer,
    },
    /// A Binding request.
    Binding,
    /// Another method (Connect, Send as a request, an unknown one).
    Other(u16),
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Client `client` sends a request.
    Request {
        /// Client (profile) index.
        client: u8,
        /// The request.
        req: Req,
        /// How it is signed.
        sign: Sign,
    },
    /// The client's last request again (a retransmission).
    Retransmit {
        /// Client index.
        client: u8,
    },
    /// ChannelData from a client.
    ChannelData {
        /// Client index.
        client: u8,
        /// Channel number (0x4000 + this, or any value when over 0x0FFF).
        channel: u16,
        /// Payload length.
        len: u16,
    },
    /// A Send indication from a client.
    Send {
        /// Client index.
        client: u8,
        /// The peer.
        peer: Peer,
        /// Payload length.
        len: u16,
        /// With DONT-FRAGMENT.
        dont_fragment: bool,
    },
    /// A peer's datagram arrives on a relayed address.
    PeerSends {
        /// The peer.
        peer: Peer,
        /// Relayed address: one the server gave out, or any in the relay ranges.
        relay: u8,
        /// Payload length.
        len: u16,
        /// Four bytes of headroom (the in-place ChannelData path).
        headroom: bool,
    },
    /// The driver reports an ICMP error for a relayed address and peer.
    Icmp {
        /// Relayed address selector.
        relay: u8,
        /// The peer.
        peer: Peer,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// Any bytes from any address to a listening or relayed address.
    Raw {
        /// Source: a client (`< 8`) or a peer.
        from: u8,
        /// Destination: 0 listen v4, 1 listen v6, else a relayed address.
        to: u8,
        /// Transport.
        transport: u8,
        /// Headroom bytes before the datagram.
        headroom: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A datagram fed earlier, with bytes changed, sent again (from its source or another).
    Mutate {
        /// Which of the last datagrams.
        which: u8,
        /// (position, xor) pairs.
        flips: Vec<(u16, u8)>,
        /// Spoof another source (a client index, or none when ≥ 8).
        from: u8,
    },
    /// Time passes (milliseconds); every timer runs at its time.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time passes (seconds).
    AdvanceSecs {
        /// Seconds.
        secs: u16,
    },
    /// The driver reports a relay bind.
    RelayBound {
        /// Which pending bind (or a random address when none).
        which: u8,
        /// Bound, or failed.
        ok: bool,
    },
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `RelayBinding::Driver` instead of `Automatic`.
    pub driver_binds: bool,
    /// The server honours DONT-FRAGMENT.
    pub dont_fragment: bool,
    /// The server announces username anonymity.
    pub userhash: bool,
    /// Nonce lifetime in seconds (1 to 64).
    pub nonce_secs: u8,
    /// Seed.
    pub seed: u8,
    /// Operations.
    pub ops: Vec<Op>,
}

fn peers<'a>(u: &mut Unstructured<'a>) -> Result<Vec<Peer>> {
    let n = u8::arbitrary(u)? % 6;
    (0..n).map(|_| Peer::arbitrary(u)).collect()
}

impl<'a> Arbitrary<'a> for Req {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 6)? {
            0 => Req::Allocate {
                family: u8::arbitrary(u)? % 4,
                additional: bool::arbitrary(u)?,
                even_port: u8::arbitrary(u)? % 3,
                token: bool::arbitrary(u)?,
                lifetime: u16::arbitrary(u)?,
                dont_fragment: bool::arbitrary(u)?,
                tcp: bool::arbitrary(u)?,
            },
            1 => Req::Refresh {
                lifetime: match u8::arbitrary(u)? % 3 {
                    0 => None,
                    1 => Some(0),
                    _ => Some(u16::arbitrary(u)?),
                },
                family: u8::arbitrary(u)? % 3,
            },
            2 => Req::CreatePermission(peers(u)?),
            3 => Req::ChannelBind {
                channel: u16::arbitrary(u)?,
                peer: Peer::arbitrary(u)?,
            },
            4 => Req::Binding,
            _ => Req::Other(u16::arbitrary(u)?),
        })
    }
}

impl Encode for Req {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Req::Allocate {
                family,
                additional,
                even_port,
                token,
                lifetime,
                dont_fragment,
                tcp,
            } => {
                e.u8(0)
                    .u8(*family)
                    .bool(*additional)
                    .u8(*even_port)
                    .bool(*token)
                    .u16(*lifetime)
                    .bool(*dont_fragment)
                    .bool(*tcp);
            }
            Req::Refresh { lifetime, family } => {
                e.u8(1);
                match lifetime {
                    None => e.u8(0),
                    Some(0) => e.u8(1),
                    Some(l) => e.u8(2).u16(*l),
                };
                e.u8(*family);
            }
            Req::CreatePermission(p) => {
                e.u8(2).u8(p.len() as u8).put(&p[..]);
            }
            Req::ChannelBind { channel, peer } => {
                e.u8(3).u16(*channel).put(peer);
            }
            Req::Binding => {
                e.u8(4);
            }
            Req::Other(m) => {
                e.u8(5).u16(*m);
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 12)? {
            0 | 1 => Op::Request {
                client: u8::arbitrary(u)?,
                req: Req::arbitrary(u)?,
                sign: SIGNS[usize::from(u8::arbitrary(u)? % 8)],
            },
            2 => Op::Retransmit {
                client: u8::arbitrary(u)?,
            },
            3 => Op::ChannelData {
                client: u8::arbitrary(u)?,
                channel: u16::arbitrary(u)?,
                len: u16::arbitrary(u)?,
            },
            4 => Op::Send {
                client: u8::arbitrary(u)?,
                peer: Peer::arbitrary(u)?,
                len: u16::arbitrary(u)?,
                dont_fragment: bool::arbitrary(u)?,
            },
            5 => Op::PeerSends {
                peer: Peer::arbitrary(u)?,
                relay: u8::arbitrary(u)?,
                len: u16::arbitrary(u)?,
                headroom: bool::arbitrary(u)?,
            },
            6 => Op::Icmp {
                relay: u8::arbitrary(u)?,
                peer: Peer::arbitrary(u)?,
                icmp_type: u8::arbitrary(u)?,
                code: u8::arbitrary(u)?,
            },
            7 => Op::Raw {
                from: u8::arbitrary(u)?,
                to: u8::arbitrary(u)?,
                transport: u8::arbitrary(u)?,
                headroom: u8::arbitrary(u)?,
                data: bytes(u, 2048)?.to_vec(),
            },
            8 => {
                let which = u8::arbitrary(u)?;
                let n = u8::arbitrary(u)? % 8;
                let mut flips = Vec::new();
                for _ in 0..n {
                    flips.push((u16::arbitrary(u)?, u8::arbitrary(u)?));
                }
                Op::Mutate {
                    which,
                    flips,
                    from: u8::arbitrary(u)?,
                }
            }
            9 => Op::Advance {
                ms: u16::arbitrary(u)?,
            },
            10 => Op::AdvanceSecs {
                secs: u16::arbitrary(u)?,
            },
            _ => Op::RelayBound {
                which: u8::arbitrary(u)?,
                ok: bool::arbitrary(u)?,
            },
        })
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Request { client, req, sign } => {
                let s = SIGNS.iter().position(|x| x == sign).unwrap_or(0) as u8;
                e.u8(0).u8(*client).put(req).u8(s);
            }
            Op::Retransmit { client } => {
                e.u8(2).u8(*client);
            }
            Op::ChannelData {
                client,
                channel,
                len,
            } => {
                e.u8(3).u8(*client).u16(*channel).u16(*len);
            }
            Op::Send {
                client,
                peer,
                len,
                dont_fragment,
            } => {
                e.u8(4).u8(*client).put(peer).u16(*len).bool(*dont_fragment);
            }
            Op::PeerSends {
                peer,
                relay,
                len,
                headroom,
            } => {
                e.u8(5).put(peer).u8(*relay).u16(*len).bool(*headroom);
            }
            Op::Icmp {
                relay,
                peer,
                icmp_type,
                code,
            } => {
                e.u8(6).u8(*relay).put(peer).u8(*icmp_type).u8(*code);
            }
            Op::Raw {
                from,
                to,
                transport,
                headroom,
                data,
            } => {
                e.u8(7)
                    .u8(*from)
                    .u8(*to)
                    .u8(*transport)
                    .u8(*headroom)
                    .bytes(data);
            }
            Op::Mutate { which, flips, from } => {
                e.u8(8).u8(*which).u8(flips.len() as u8);
                for (at, x) in flips {
                    e.u16(*at).u8(*x);
                }
                e.u8(*from);
            }
            Op::Advance { ms } => {
                e.u8(9).u16(*ms);
            }
            Op::AdvanceSecs { secs } => {
                e.u8(10).u16(*secs);
            }
            Op::RelayBound { which, ok } => {
                e.u8(11).u8(*which).bool(*ok);
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Input {
            driver_binds: bool::arbitrary(u)?,
            dont_fragment: bool::arbitrary(u)?,
            userhash: bool::arbitrary(u)?,
            nonce_secs: u8::arbitrary(u)?,
            seed: u8::arbitrary(u)?,
            ops: sequence(u)?,
        })
    }
}

impl Encode for Input {
    fn encode(&self, e: &mut Encoder) {
        e.bool(self.driver_binds)
            .bool(self.dont_fragment)
            .bool(self.userhash)
            .u8(self.nonce_secs)
            .u8(self.seed)
            .put(&self.ops[..]);
    }
}
