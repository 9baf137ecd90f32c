//! `turn_client`: the TURN client (`turn_proto::client::Client`) against the real TURN
//! server, over a network the input controls (deliver, drop, duplicate, reorder, corrupt),
//! with forged and replayed datagrams from a third party that can spoof the server's
//! address but does not know the password, the client's commands, peers sending through
//! the relay, and the passing of time.
//!
//! Invariants:
//! * No panic, in the client or the server.
//! * The client only talks to its server from its local address over its transport, and
//!   stays with its server (the server never redirects, and a forged 300 must not move it).
//! * The client believes only the authentic server: its relayed addresses and mapped
//!   address are ones the server gave it in integrity-protected responses.
//! * Data is handed over only from peers the client has a permission for, and nothing is
//!   sent to a peer (Send indication or ChannelData) without one.
//! * Final states stay final: after `Deleted`, `Expired` or `Failed` the client is never
//!   `Allocated` again.
//! * Bounded: permissions and channels only for peers the application asked for.
//! * The timer invariant of [`crate::clock`], for the client and the server.

use crate::clock::{Clock, check_settled};
use crate::ops::{Arbitrary, Encode, Encoder, Result, Unstructured, bytes, choice, sequence};
use crate::turn_server::Peer;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{AddressFamily, XorMappedAddress};
use stun_proto::{Class, Message, Method, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientConfig, ClientEvent, ClientState, Received};
use turn_proto::server::{
    PeerPolicy, RelayBinding, RelayRange, Server, ServerConfig, ServerInput, ServerOutput,
};

const REALM: &str = "example.org";

fn server_addr(v6: bool) -> SocketAddr {
    if v6 {
        "[2001:db8::1]:3478".parse().expect("literal")
    } else {
        "192.0.2.1:3478".parse().expect("literal")
    }
}

/// The client configuration part of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Talk to the server over IPv6.
    pub v6: bool,
    /// TCP instead of UDP.
    pub tcp: bool,
    /// 0: none, 1: IPv4, 2: IPv6 (REQUESTED-ADDRESS-FAMILY).
    pub family: u8,
    /// ADDITIONAL-ADDRESS-FAMILY.
    pub additional: bool,
    /// 0: none, 1: EVEN-PORT, 2: with R.
    pub even_port: u8,
    /// A RESERVATION-TOKEN.
    pub token: bool,
    /// DONT-FRAGMENT asked for.
    pub dont_fragment: bool,
    /// The server honours DONT-FRAGMENT.
    pub server_df: bool,
    /// The right password.
    pub right_password: bool,
    /// Lifetime asked for, seconds.
    pub lifetime: u16,
    /// Nonce lifetime at the server, seconds (1 to 64).
    pub nonce_secs: u8,
    /// Seed.
    pub seed: u8,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Deliver every datagram in flight, both ways, until none is left (bounded rounds).
    Flush,
    /// Deliver one datagram in flight towards the server (`to_server`) or the client.
    Deliver {
        /// Direction.
        to_server: bool,
        /// Which one.
        which: u8,
    },
    /// Drop one.
    Drop {
        /// Direction.
        to_server: bool,
        /// Which one.
        which: u8,
    },
    /// Deliver a copy, keep the original in flight.
    Duplicate {
        /// Direction.
        to_server: bool,
        /// Which one.
        which: u8,
    },
    /// Deliver with bytes changed.
    Corrupt {
        /// Direction.
        to_server: bool,
        /// Which one.
        which: u8,
        /// Position and xor.
        at: u16,
        /// The xor.
        xor: u8,
    },
    /// A third party sends these bytes to the client, spoofing the server's address (or
    /// not).
    Forge {
        /// Spoof the server's address.
        spoof: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A third party replays a datagram the server sent earlier.
    Replay {
        /// Which one.
        which: u8,
    },
    /// `create_permission`.
    Permit(Vec<Peer>),
    /// `remove_permission`.
    Unpermit(Peer),
    /// `bind_channel`.
    Bind(Peer),
    /// `send_to`.
    SendTo {
        /// The peer.
        peer: Peer,
        /// Payload length.
        len: u16,
    },
    /// A peer sends to the client's relayed address.
    PeerSends {
        /// The peer.
        peer: Peer,
        /// Payload length.
        len: u16,
    },
    /// `delete`.
    Delete,
    /// `connection_lost`.
    ConnectionLost,
    /// Time passes (ms).
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time passes (s).
    AdvanceSecs {
        /// Seconds.
        secs: u16,
    },
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The configuration.
    pub setup: Setup,
    /// Operations.
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Setup {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Setup {
            v6: bool::arbitrary(u)?,
            tcp: bool::arbitrary(u)?,
            family: u8::arbitrary(u)? % 3,
            additional: bool::arbitrary(u)?,
            even_port: u8::arbitrary(u)? % 3,
            token: bool::arbitrary(u)?,
            dont_fragment: bool::arbitrary(u)?,
            server_df: bool::arbitrary(u)?,
            right_password: bool::arbitrary(u)?,
            lifetime: u16::arbitrary(u)?,
            nonce_secs: u8::arbitrary(u)?,
            seed: u8::arbitrary(u)?,
        })
    }
}

impl Encode for Setup {
    fn encode(&self, e: &mut Encoder) {
        e.bool(self.v6)
            .bool(self.tcp)
            .u8(self.family)
            .bool(self.additional)
            .u8(self.even_port)
            .bool(self.token)
            .bool(self.dont_fragment)
            .bool(self.server_df)
            .bool(self.right_password)
            .u16(self.lifetime)
            .u8(self.nonce_secs)
            .u8(self.seed);
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match choice(u, 17)? {
            0 | 1 => Op::Flush,
            2 => Op::Deliver {
                to_server: bool::arbitrary(u)?,
                which: u8::arbitrary(u)?,
            },
            3 => Op::Drop {
                to_server: bool::arbitrary(u)?,
                which: u8::arbitrary(u)?,
            },
            4 => Op::Duplicate {
                to_server: bool::arbitrary(u)?,
                which: u8::arbitrary(u)?,
            },
            5 => Op::Corrupt {
                to_server: bool::arbitrary(u)?,
                which: u8::arbitrary(u)?,
                at: u16::arbitrary(u)?,
                xor: u8::arbitrary(u)?,
            },
            6 => Op::Forge {
                spoof: bool::arbitrary(u)?,
                data: bytes(u, 1500)?.to_vec(),
            },
            7 => Op::Replay {
                which: u8::arbitrary(u)?,
            },
            8 => {
                let n = u8::arbitrary(u)? % 5;
                Op::Permit((0..n).map(|_| Peer::arbitrary(u)).collect::<Result<_>>()?)
            }
            9 => Op::Unpermit(Peer::arbitrary(u)?),
            10 => Op::Bind(Peer::arbitrary(u)?),
            11 => Op::SendTo {
                peer: Peer::arbitrary(u)?,
                len: u16::arbitrary(u)?,
            },
            12 => Op::PeerSends {
                peer: Peer::arbitrary(u)?,
                len: u16::arbitrary(u)?,
            },
            13 => Op::Delete,
            14 => Op::ConnectionLost,
            15 => Op::Advance {
                ms: u16::arbitrary(u)?,
            },
            _ => Op::AdvanceSecs {
                secs: u16::arbitrary(u)?,
            },
        })
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Flush => {
                e.u8(0);
            }
            Op::Deliver { to_server, which } => {
                e.u8(2).bool(*to_server).u8(*which);
            }
            Op::Drop { to_server, which } => {
                e.u8(3).bool(*to_server).u8(*which);
            }
            Op::Duplicate { to_server, which } => {
                e.u8(4).bool(*to_server).u8(*which);
            }
            Op::Corrupt {
                to_server,
                which,
                at,
                xor,
            } => {
                e.u8(5).bool(*to_server).u8(*which).u16(*at).u8(*xor);
            }
            Op::Forge { spoof, data } => {
                e.u8(6).bool(*spoof).bytes(data);
            }
            Op::Replay { which } => {
                e.u8(7).u8(*which);
            }
            Op::Permit(p) => {
                e.u8(8).u8(p.len() as u8).put(&p[..]);
            }
            Op::Unpermit(p) => {
                e.u8(9).put(p);
            }
            Op::Bind(p) => {
                e.u8(10).put(p);
            }
            Op::SendTo { peer, len } => {
                e.u8(11).put(peer).u16(*len);
            }
            Op::PeerSends { peer, len } => {
                e.u8(12).put(peer).u16(*len);
            }
            Op::Delete => {
                e.u8(13);
            }
            Op::ConnectionLost => {
                e.u8(14);
            }
            Op::Advance { ms } => {
                e.u8(15).u16(*ms);
            }
            Op::AdvanceSecs { secs } => {
                e.u8(16).u16(*secs);
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Input {
            setup: Setup::arbitrary(u)?,
            ops: sequence(u)?,
        })
    }
}

impl Encode for Input {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.setup).put(&self.ops[..]);
    }
}

/// A datagram on the wire between the client and the server.
#[derive(Clone, Debug)]
struct Wire {
    transport: TransportProtocol,
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

impl From<Transmit> for Wire {
    fn from(t: Transmit) -> Wire {
        Wire {
            transport: t.transport,
            source: t.source,
            destination: t.destination,
            data: t.payload,
        }
    }
}

struct Harness {
    client: Client,
    server: Server,
    clock: Clock,
    local: SocketAddr,
    server_addr: SocketAddr,
    transport: TransportProtocol,
    to_server: Vec<Wire>,
    to_client: Vec<Wire>,
    /// Everything the server sent to the client, for replays.
    sent_by_server: Vec<Wire>,
    /// Relayed addresses the server granted this client in authenticated responses.
    granted: HashSet<SocketAddr>,
    /// Mapped addresses the server reported.
    mapped: HashSet<SocketAddr>,
    /// Peers the application named.
    named: HashSet<IpAddr>,
    was_final: bool,
    /// Every datagram between the client and the server, for seed corpora.
    log: Vec<Vec<u8>>,
}

/// The body of the target.
pub fn run(data: &[u8]) {
    let _ = capture(data);
}

/// Runs the target and returns every datagram the client and the server exchanged (the
/// seed generator takes real STUN and ChannelData messages from here).
pub fn capture(data: &[u8]) -> Vec<Vec<u8>> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Vec::new();
    };
    let mut h = Harness::new(&input.setup);
    h.settle();
    for op in &input.ops {
        h.op(op);
        h.check();
    }
    h.log
}

impl Harness {
    fn new(s: &Setup) -> Harness {
        let clock = Clock::new();
        let server = server_addr(s.v6);
        let local: SocketAddr = if s.v6 {
            "[2001:db8:1::10]:40000".parse().expect("literal")
        } else {
            "198.51.100.10:40000".parse().expect("literal")
        };
        let mut sc = ServerConfig::new(REALM);
        sc.relays.push(RelayRange {
            ip: server_addr(false).ip(),
            ports: 50000..=50009,
        });
        sc.relays.push(RelayRange {
            ip: server_addr(true).ip(),
            ports: 50000..=50009,
        });
        sc.add_user("alice", "alice-pw");
        sc.relay_binding = RelayBinding::Automatic;
        sc.dont_fragment = s.server_df;
        sc.nonce_lifetime = Duration::from_secs(u64::from(s.nonce_secs % 64 + 1));
        sc.peer_policy = PeerPolicy {
            deny: vec!["203.0.113.128/25".parse().expect("literal")],
            ..PeerPolicy::default()
        };
        let turn = Server::new(sc, u64::from(s.seed), clock.now).expect("valid");

        let password = if s.right_password {
            "alice-pw"
        } else {
            "wrong"
        };
        let mut c = ClientConfig::new(server, local, "alice", password);
        c.transport = if s.tcp {
            TransportProtocol::Tcp
        } else {
            TransportProtocol::Udp
        };
        c.requested_family = match s.family {
            1 => Some(AddressFamily::Ipv4),
            2 => Some(AddressFamily::Ipv6),
            _ => None,
        };
        c.additional_family = s.additional;
        c.even_port = match s.even_port {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        };
        c.reservation_token = s.token.then_some([1, 2, 3, 4, 5, 6, 7, 8]);
        c.dont_fragment = s.dont_fragment;
        if s.lifetime != 0 {
            c.lifetime = Duration::from_secs(u64::from(s.lifetime));
        }
        c.transactions.max_pending = 16;
        let transport = c.transport;
        let client = Client::new(c, u64::from(s.seed) + 1, clock.now);
        Harness {
            client,
            server: turn,
            clock,
            local,
            server_addr: server,
            transport,
            to_server: Vec::new(),
            to_client: Vec::new(),
            sent_by_server: Vec::new(),
            granted: HashSet::new(),
            mapped: HashSet::new(),
            named: HashSet::new(),
            was_final: false,
            log: Vec::new(),
        }
    }

    fn op(&mut self, op: &Op) {
        let now = self.clock.now;
        match op {
            Op::Flush => {
                for _ in 0..16 {
                    if self.to_server.is_empty() && self.to_client.is_empty() {
                        break;
                    }
                    for w in std::mem::take(&mut self.to_server) {
                        self.deliver_to_server(&w);
                    }
                    for w in std::mem::take(&mut self.to_client) {
                        self.deliver_to_client(&w);
                    }
                }
            }
            Op::Deliver { to_server, which } => {
                if let Some(w) = take(self.queue(*to_server), *which) {
                    self.deliver(*to_server, &w);
                }
            }
            Op::Drop { to_server, which } => {
                let _ = take(self.queue(*to_server), *which);
            }
            Op::Duplicate { to_server, which } => {
                let q = self.queue(*to_server);
                if !q.is_empty() {
                    let w = q[usize::from(*which) % q.len()].clone();
                    self.deliver(*to_server, &w);
                }
            }
            Op::Corrupt {
                to_server,
                which,
                at,
                xor,
            } => {
                if let Some(mut w) = take(self.queue(*to_server), *which) {
                    if !w.data.is_empty() {
                        let n = w.data.len();
                        w.data[usize::from(*at) % n] ^= xor;
                    }
                    self.deliver(*to_server, &w);
                }
            }
            Op::Forge { spoof, data } => {
                let source = if *spoof {
                    self.server_addr
                } else {
                    "203.0.113.66:3478".parse().expect("literal")
                };
                let w = Wire {
                    transport: self.transport,
                    source,
                    destination: self.local,
                    data: data.clone(),
                };
                self.deliver_to_client(&w);
            }
            Op::Replay { which } => {
                if !self.sent_by_server.is_empty() {
                    let i = usize::from(*which) % self.sent_by_server.len();
                    let w = self.sent_by_server[i].clone();
                    self.deliver_to_client(&w);
                }
            }
            Op::Permit(peers) => {
                let ips: Vec<IpAddr> = peers.iter().map(|p| p.addr().ip()).collect();
                self.named.extend(ips.iter().copied());
                let _ = self.client.create_permission(now, &ips);
                self.drain_client(now);
            }
            Op::Unpermit(peer) => {
                let _ = self.client.remove_permission(peer.addr().ip());
            }
            Op::Bind(peer) => {
                self.named.insert(peer.addr().ip());
                let _ = self.client.bind_channel(now, peer.addr());
                self.drain_client(now);
            }
            Op::SendTo { peer, len } => {
                let payload = vec![0x5a; usize::from(*len % 1400)];
                let permitted = self.client.has_permission(peer.addr().ip());
                let state = self.client.state();
                if let Ok(t) = self.client.send_to(now, peer.addr(), &payload) {
                    assert!(permitted, "sent to {} without a permission", peer.addr());
                    assert_eq!(state, ClientState::Allocated, "sent while {state:?}");
                    self.sent_by_client(t);
                }
                self.drain_client(now);
            }
            Op::PeerSends { peer, len } => {
                let Some(&relayed) = self.client.relayed_addresses().first() else {
                    return;
                };
                let mut buf = vec![0u8; 4 + usize::from(*len % 1400)];
                let input = ServerInput::udp_with_headroom(peer.addr(), relayed, &mut buf, 4);
                let out = match self.server.handle_input(now, input) {
                    ServerOutput::Send(d) => Some(Wire {
                        transport: d.transport,
                        source: d.source,
                        destination: d.destination,
                        data: d.data.to_vec(),
                    }),
                    _ => None,
                };
                if let Some(w) = out {
                    self.sent_by_server.push(w.clone());
                    self.to_client.push(w);
                }
                self.drain_server(now);
            }
            Op::Delete => {
                self.client.delete(now);
                self.drain_client(now);
            }
            Op::ConnectionLost => {
                if self.transport != TransportProtocol::Udp {
                    self.client.connection_lost(now);
                    self.drain_client(now);
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms))),
            Op::AdvanceSecs { secs } => self.advance(Duration::from_secs(u64::from(*secs % 4096))),
        }
    }

    fn queue(&mut self, to_server: bool) -> &mut Vec<Wire> {
        if to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        }
    }

    fn deliver(&mut self, to_server: bool, w: &Wire) {
        if to_server {
            self.deliver_to_server(w);
        } else {
            self.deliver_to_client(w);
        }
    }

    fn deliver_to_server(&mut self, w: &Wire) {
        let now = self.clock.now;
        self.log.push(w.data.clone());
        let mut buf = w.data.clone();
        let input = ServerInput {
            transport: w.transport,
            source: w.source,
            destination: w.destination,
            buf: &mut buf,
            headroom: 0,
        };
        // Relayed datagrams towards peers leave the simulation.
        let _ = self.server.handle_input(now, input);
        self.drain_server(now);
    }

    fn deliver_to_client(&mut self, w: &Wire) {
        let now = self.clock.now;
        self.log.push(w.data.clone());
        let input = stun_proto::Input {
            transport: w.transport,
            source: w.source,
            destination: w.destination,
            data: &w.data,
        };
        match self.client.handle_input(now, input) {
            Received::PeerData { peer, .. } => {
                assert!(
                    self.client.has_permission(peer.ip()),
                    "data from {peer} handed over without a permission"
                );
            }
            Received::Consumed => {
                assert_eq!(
                    w.source, self.server_addr,
                    "consumed a datagram from elsewhere"
                );
            }
            _ => {}
        }
        self.drain_client(now);
    }

    fn sent_by_client(&mut self, t: Transmit) {
        assert_eq!(
            (t.source, t.destination, t.transport),
            (self.local, self.server_addr, self.transport),
            "the client sent elsewhere"
        );
        self.to_server.push(t.into());
    }

    fn drain_client(&mut self, _now: Instant) {
        while let Some(t) = self.client.poll_transmit() {
            self.sent_by_client(t);
        }
        while let Some(e) = self.client.poll_event() {
            if let ClientEvent::Allocated {
                relayed, mapped, ..
            } = &e
            {
                for r in relayed {
                    assert!(self.granted.contains(r), "allocated at {r}, never granted");
                }
                if let Some(m) = mapped {
                    assert!(self.mapped.contains(m), "mapped address {m} never reported");
                }
            }
        }
    }

    fn drain_server(&mut self, _now: Instant) {
        while let Some(t) = self.server.poll_transmit() {
            if let Ok(msg) = Message::parse(&t.payload) {
                if msg.method() == Method::ALLOCATE && msg.class() == Class::Success {
                    for a in msg.attributes() {
                        use stun_proto::attributes::{Attribute, AttributeType};
                        let tid = msg.transaction_id();
                        if a.attr_type == AttributeType::XOR_RELAYED_ADDRESS {
                            if let Ok(r) =
                                stun_proto::attributes::XorRelayedAddress::decode(a.value, &tid)
                            {
                                self.granted.insert(r.0);
                            }
                        }
                    }
                    if let Ok(Some(XorMappedAddress(m))) = msg.get::<XorMappedAddress>() {
                        self.mapped.insert(m);
                    }
                }
            }
            let w = Wire::from(t);
            if self.sent_by_server.len() < 64 {
                self.sent_by_server.push(w.clone());
            }
            self.to_client.push(w);
        }
        while self.server.poll_event().is_some() {}
    }

    fn settle(&mut self) {
        let now = self.clock.now;
        self.drain_client(now);
        self.drain_server(now);
    }

    /// Runs both machines' timers up to `now + d`, each deadline at its time.
    fn advance(&mut self, d: Duration) {
        let until = self.clock.now + d;
        for _ in 0..100_000 {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.clock.now = self.clock.now.max(t);
                    self.tick();
                }
                _ => break,
            }
        }
        self.clock.now = until;
        self.tick();
    }

    fn tick(&mut self) {
        let now = self.clock.now;
        self.client.handle_timeout(now);
        self.drain_client(now);
        self.server.handle_timeout(now);
        self.drain_server(now);
        check_settled("turn client", &mut ClientTimed(&mut self.client), now);
        check_settled("turn server", &mut self.server, now);
    }

    fn check(&mut self) {
        assert_eq!(self.client.server(), self.server_addr, "the client moved");
        for r in self.client.relayed_addresses() {
            assert!(
                self.granted.contains(r),
                "relayed address {r} never granted"
            );
        }
        if let Some(m) = self.client.mapped_address() {
            assert!(
                self.mapped.contains(&m),
                "mapped address {m} never reported"
            );
        }
        let state = self.client.state();
        if self.was_final {
            assert!(state.is_final(), "left a final state for {state:?}");
        }
        self.was_final = state.is_final();
        for p in crate::turn_server::PEERS {
            let ip: IpAddr = p.parse::<SocketAddr>().expect("literal").ip();
            if self.client.has_permission(ip) {
                assert!(
                    self.named.contains(&ip),
                    "a permission for {ip}, never asked"
                );
            }
        }
    }
}

/// The client's timer interface, for [`check_settled`].
struct ClientTimed<'a>(&'a mut Client);

impl crate::clock::Timed for ClientTimed<'_> {
    fn timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }
    fn deadline(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn drain(&mut self) -> usize {
        std::iter::from_fn(|| self.0.poll_transmit()).count()
            + std::iter::from_fn(|| self.0.poll_event()).count()
    }
}

fn take(q: &mut Vec<Wire>, which: u8) -> Option<Wire> {
    if q.is_empty() {
        None
    } else {
        let i = usize::from(which) % q.len();
        Some(q.remove(i))
    }
}
