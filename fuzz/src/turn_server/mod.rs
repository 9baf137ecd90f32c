//! `turn_server`: the TURN server (`turn_proto::server::Server`) fed arbitrary sequences of
//! client requests (signed right, signed wrong, unsigned, stale), ChannelData, Send
//! indications, peer datagrams, ICMP reports, raw and mutated datagrams from anywhere, relay
//! bind reports and the passing of time, with small quotas so that every limit is reached.
//!
//! The harness keeps a model built only from what the server said to authenticated
//! clients and from its events: which relayed address belongs to which 5-tuple, and which
//! permissions each allocation holds until when (300 s from the success response that
//! installed or refreshed them).
//!
//! Invariants:
//! * No panic.
//! * Nothing is relayed to a peer the peer policy denies, or to a peer without a live
//!   permission, or from a relayed address the sender's 5-tuple does not own; nothing is
//!   relayed from a peer without a permission, and it goes only to the owning 5-tuple
//!   (and carries the peer's bytes unchanged).
//! * Nothing changes for unauthenticated input: a datagram that is not a request carrying
//!   integrity valid under some user's key leaves the allocations, permissions, channels
//!   and cached responses as they were, and creates no allocation.
//! * Every success response to Allocate, Refresh, CreatePermission or ChannelBind carries
//!   integrity valid under the requesting user's key.
//! * No amplification: a response without integrity is at most
//!   `MAX_UNAUTHENTICATED_GROWTH` + the realm's length longer than the datagram that caused
//!   it; a Binding success at most 32 bytes longer.
//! * Bounded state: allocations within the total, per-user and per-IP quotas and the port
//!   pool; permissions and channels within the per-allocation limits; cached responses
//!   within the cache capacity.
//! * The timer invariant of [`crate::clock`].

mod input;

pub use input::{Input, Op, PEERS, Peer, Req, Sign};

use crate::clock::{Clock, Timed, check_settled};
use crate::ops::{Arbitrary, Unstructured};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    AdditionalAddressFamily, AddressFamily, ChannelNumber, Data, DontFragment, EncodeAttribute,
    ErrorCode, EvenPort, Lifetime, Nonce, PasswordAlgorithm, PasswordAlgorithms, Realm,
    RequestedAddressFamily, RequestedTransport, ReservationToken, UserHash, Username,
    XorPeerAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey, userhash};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
    TransportProtocol,
};
use turn_proto::channel_data::ChannelData;
use turn_proto::server::{
    BindFailure, FiveTuple, MAX_UNAUTHENTICATED_GROWTH, PeerPolicy, Quotas, RelayBinding,
    RelayRange, Server, ServerConfig, ServerEvent, ServerInput, ServerOutput, rest_credentials,
};

/// The realm.
pub const REALM: &str = "example.org";
/// Unix time at the server's start.
pub const UNIX0: u64 = 1_700_000_000;
/// The REST shared secret.
pub const REST_SECRET: &[u8] = b"rest-secret";
/// Permission lifetime (RFC 8656 §9).
const PERMISSION: Duration = Duration::from_secs(300);

const QUOTA_TOTAL: usize = 5;
const QUOTA_USER: u32 = 3;
const QUOTA_IP: u32 = 3;
const PERMISSIONS_PER_ALLOCATION: usize = 4;
const CHANNELS_PER_ALLOCATION: usize = 3;
const CACHE: usize = 8;
const V4_PORTS: u16 = 8;
const V6_PORTS: u16 = 4;

fn listen_v4() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 3478))
}

fn listen_v6() -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        3478,
    )
}

/// How a client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// RFC 5389: MD5, MESSAGE-INTEGRITY, no PASSWORD-ALGORITHM(S).
    Legacy,
    /// RFC 8489: PASSWORD-ALGORITHMS echoed, one chosen, MESSAGE-INTEGRITY-SHA256.
    Negotiate(Algorithm),
}

/// A scripted client: who it is and how it signs.
#[derive(Clone, Copy, Debug)]
struct Profile {
    addr: &'static str,
    transport: TransportProtocol,
    v6: bool,
    user: User,
    mode: Mode,
    userhash: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum User {
    Static(&'static str, &'static str),
    /// A REST credential valid until UNIX0 + this many seconds (negative: expired).
    Rest(&'static str, i64),
}

const PROFILES: [Profile; 8] = [
    Profile {
        addr: "198.51.100.10:40000",
        transport: TransportProtocol::Udp,
        v6: false,
        user: User::Static("alice", "alice-pw"),
        mode: Mode::Legacy,
        userhash: false,
    },
    Profile {
        addr: "198.51.100.10:40001",
        transport: TransportProtocol::Udp,
        v6: false,
        user: User::Static("alice", "alice-pw"),
        mode: Mode::Negotiate(Algorithm::Sha256),
        userhash: false,
    },
    Profile {
        addr: "198.51.100.11:40000",
        transport: TransportProtocol::Tcp,
        v6: false,
        user: User::Static("bob", "bob-pw"),
        mode: Mode::Negotiate(Algorithm::Md5),
        userhash: false,
    },
    Profile {
        addr: "[2001:db8:1::10]:40000",
        transport: TransportProtocol::Udp,
        v6: true,
        user: User::Rest("alice", 3600),
        mode: Mode::Negotiate(Algorithm::Sha256),
        userhash: false,
    },
    Profile {
        addr: "198.51.100.12:40000",
        transport: TransportProtocol::Udp,
        v6: false,
        user: User::Rest("dave", -10),
        mode: Mode::Legacy,
        userhash: false,
    },
    Profile {
        addr: "198.51.100.13:40000",
        transport: TransportProtocol::Udp,
        v6: false,
        user: User::Static("alice", "not-the-password"),
        mode: Mode::Legacy,
        userhash: false,
    },
    Profile {
        addr: "198.51.100.14:40000",
        transport: TransportProtocol::Tls,
        v6: false,
        user: User::Static("carol", "carol-pw"),
        mode: Mode::Negotiate(Algorithm::Sha256),
        userhash: true,
    },
    Profile {
        addr: "198.51.100.10:40002",
        transport: TransportProtocol::Udp,
        v6: false,
        user: User::Static("bob", "bob-pw"),
        mode: Mode::Legacy,
        userhash: true,
    },
];

impl Profile {
    fn addr(&self) -> SocketAddr {
        self.addr.parse().expect("literal")
    }

    fn server(&self) -> SocketAddr {
        if self.v6 { listen_v6() } else { listen_v4() }
    }

    fn tuple(&self) -> FiveTuple {
        FiveTuple {
            client: self.addr(),
            server: self.server(),
            transport: self.transport,
        }
    }

    fn credentials(&self) -> (String, String) {
        match self.user {
            User::Static(u, p) => (u.to_string(), p.to_string()),
            User::Rest(u, secs) => {
                let expiry = UNIX0.saturating_add_signed(secs);
                rest_credentials(REST_SECRET, expiry, u)
            }
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self.mode {
            Mode::Legacy => Algorithm::Md5,
            Mode::Negotiate(a) => a,
        }
    }
}

fn policy() -> PeerPolicy {
    PeerPolicy {
        deny: vec!["203.0.113.128/25".parse().expect("literal")],
        allow: vec!["10.1.0.0/16".parse().expect("literal")],
        ..PeerPolicy::default()
    }
}

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// What a client knows.
#[derive(Clone, Debug, Default)]
struct ClientState {
    nonce: Vec<u8>,
    next_tid: u32,
    last_request: Option<Vec<u8>>,
    token: Option<[u8; 8]>,
}

/// A datagram fed to the server, kept for mutation and replay.
#[derive(Clone, Debug)]
struct Fed {
    transport: TransportProtocol,
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// The model: what authenticated clients were told, and the server's events.
#[derive(Debug, Default)]
struct Model {
    /// Relayed address -> owning 5-tuple.
    relays: HashMap<SocketAddr, FiveTuple>,
    /// (5-tuple, peer IP) -> expiry.
    permissions: HashMap<(FiveTuple, IpAddr), Instant>,
    /// Allocations created, by 5-tuple: the user's quota key.
    allocations: HashMap<FiveTuple, String>,
    /// Peers named in requests fed, by (5-tuple, transaction ID).
    requested: HashMap<(FiveTuple, TransactionId), Vec<SocketAddr>>,
    /// Relay binds the server asked for and no report was made yet.
    binds: Vec<SocketAddr>,
}

struct Harness {
    server: Server,
    clock: Clock,
    policy: PeerPolicy,
    clients: Vec<ClientState>,
    model: Model,
    history: Vec<Fed>,
}

impl Timed for Server {
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
    let mut h = Harness::new(&input);
    for op in &input.ops {
        h.op(op);
        h.check_bounds();
    }
}

fn config(input: &Input) -> ServerConfig {
    let mut c = ServerConfig::new(REALM);
    c.relays.push(RelayRange {
        ip: listen_v4().ip(),
        ports: 50000..=50000 + V4_PORTS - 1,
    });
    c.relays.push(RelayRange {
        ip: listen_v6().ip(),
        ports: 50000..=50000 + V6_PORTS - 1,
    });
    c.add_user("alice", "alice-pw");
    c.add_user("bob", "bob-pw");
    c.add_user_key(
        "carol",
        LongTermKey::derive(Algorithm::Sha256, "carol", REALM, "carol-pw"),
    );
    c.rest_secret = Some(REST_SECRET.to_vec());
    c.unix_time_at_start = UNIX0;
    c.userhash = input.userhash;
    c.dont_fragment = input.dont_fragment;
    c.nonce_lifetime = Duration::from_secs(u64::from(input.nonce_secs % 64 + 1));
    c.peer_policy = policy();
    c.relay_binding = if input.driver_binds {
        RelayBinding::Driver
    } else {
        RelayBinding::Automatic
    };
    c.response_cache_capacity = CACHE;
    let mut q = Quotas::default();
    q.total = Some(QUOTA_TOTAL);
    q.per_user = Some(QUOTA_USER);
    q.per_client_ip = Some(QUOTA_IP);
    q.permissions_per_allocation = PERMISSIONS_PER_ALLOCATION;
    q.channels_per_allocation = CHANNELS_PER_ALLOCATION;
    c.quotas = q;
    c
}

/// Every key a request could be authenticated with, by username (computed once).
fn keys() -> &'static [(String, IntegrityKey)] {
    static KEYS: std::sync::OnceLock<Vec<(String, IntegrityKey)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(all_keys)
}

fn all_keys() -> Vec<(String, IntegrityKey)> {
    let mut keys = Vec::new();
    for p in PROFILES {
        let (user, password) = p.credentials();
        if matches!(p.user, User::Static(_, pw) if pw == "not-the-password") {
            continue;
        }
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            if user == "carol" && alg == Algorithm::Md5 {
                continue; // a key-only user: SHA-256 only
            }
            let key = LongTermKey::derive(alg, &user, REALM, &password).integrity_key();
            keys.push((user.clone(), key));
        }
    }
    keys
}

impl Harness {
    fn new(input: &Input) -> Harness {
        let clock = Clock::new();
        let server = Server::new(config(input), u64::from(input.seed), clock.now)
            .expect("the configuration is valid");
        Harness {
            server,
            clock,
            policy: policy(),
            clients: vec![ClientState::default(); PROFILES.len()],
            model: Model::default(),
            history: Vec::new(),
        }
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Request { client, req, sign } => self.request(*client, req, *sign),
            Op::Retransmit { client } => {
                let c = usize::from(*client) % PROFILES.len();
                if let Some(bytes) = self.clients[c].last_request.clone() {
                    let p = PROFILES[c];
                    self.feed(p.transport, p.addr(), p.server(), 0, &bytes);
                }
            }
            Op::ChannelData {
                client,
                channel,
                len,
            } => {
                let p = PROFILES[usize::from(*client) % PROFILES.len()];
                let number = if *channel < 0x1000 {
                    0x4000 + channel
                } else {
                    *channel
                };
                let payload = payload(*len);
                let mut bytes = Vec::with_capacity(4 + payload.len());
                bytes.extend_from_slice(&number.to_be_bytes());
                bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                bytes.extend_from_slice(&payload);
                if p.transport != TransportProtocol::Udp {
                    bytes.resize(bytes.len().next_multiple_of(4), 0);
                }
                self.feed(p.transport, p.addr(), p.server(), 0, &bytes);
            }
            Op::Send {
                client,
                peer,
                len,
                dont_fragment,
            } => {
                let p = PROFILES[usize::from(*client) % PROFILES.len()];
                let payload = payload(*len);
                let xpa = XorPeerAddress(peer.addr());
                let data = Data(&payload);
                let mut attrs: Vec<&dyn EncodeAttribute> = vec![&xpa, &data];
                if *dont_fragment {
                    attrs.push(&DontFragment);
                }
                let tid = self.tid(usize::from(*client) % PROFILES.len());
                let bytes = build(
                    MessageType::new(Method::SEND, Class::Indication),
                    tid,
                    &attrs,
                    None,
                );
                self.feed(p.transport, p.addr(), p.server(), 0, &bytes);
            }
            Op::PeerSends {
                peer,
                relay,
                len,
                headroom,
            } => {
                let relayed = self.relay(*relay);
                let room = if *headroom { 4 } else { 0 };
                let mut buf = vec![0u8; room];
                buf.extend_from_slice(&payload(*len));
                self.feed(TransportProtocol::Udp, peer.addr(), relayed, room, &buf);
            }
            Op::Icmp {
                relay,
                peer,
                icmp_type,
                code,
            } => self.icmp(*relay, *peer, *icmp_type, *code),
            Op::Raw {
                from,
                to,
                transport,
                headroom,
                data,
            } => {
                let source = if usize::from(*from) < PROFILES.len() {
                    PROFILES[usize::from(*from)].addr()
                } else {
                    Peer::Known(*from).addr()
                };
                let destination = match to {
                    0 => listen_v4(),
                    1 => listen_v6(),
                    r => self.relay(*r),
                };
                let transport = match transport % 3 {
                    0 => TransportProtocol::Udp,
                    1 => TransportProtocol::Tcp,
                    _ => TransportProtocol::Tls,
                };
                let room = usize::from(*headroom % 8);
                let mut buf = vec![0u8; room];
                buf.extend_from_slice(data);
                self.feed(transport, source, destination, room, &buf);
            }
            Op::Mutate { which, flips, from } => {
                if self.history.is_empty() {
                    return;
                }
                let i = usize::from(*which) % self.history.len();
                let mut fed = self.history[i].clone();
                for &(at, x) in flips {
                    if !fed.data.is_empty() {
                        let n = fed.data.len();
                        fed.data[usize::from(at) % n] ^= x;
                    }
                }
                if let Some(p) = PROFILES.get(usize::from(*from)) {
                    fed.source = p.addr();
                }
                self.feed(fed.transport, fed.source, fed.destination, 0, &fed.data);
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms))),
            Op::AdvanceSecs { secs } => self.advance(Duration::from_secs(u64::from(*secs))),
            Op::RelayBound { which, ok } => {
                let now = self.clock.now;
                let (addr, pending) = if self.model.binds.is_empty() {
                    (self.relay(*which), false)
                } else {
                    let i = usize::from(*which) % self.model.binds.len();
                    (self.model.binds.remove(i), true)
                };
                let result = if *ok {
                    Ok(())
                } else {
                    Err(BindFailure::AddressInUse)
                };
                let before = self.server.stats();
                let reported = self.server.relay_bound(now, addr, result);
                assert_eq!(
                    reported.is_ok(),
                    pending,
                    "relay_bound({addr}) gave {reported:?}"
                );
                if !pending {
                    assert_eq!(
                        self.server.stats(),
                        before,
                        "a refused report changed state"
                    );
                }
                self.after(now, None);
            }
        }
    }

    /// A relayed address: one the model knows (most of the time), or any in the ranges.
    fn relay(&self, sel: u8) -> SocketAddr {
        let mut known: Vec<SocketAddr> = self.model.relays.keys().copied().collect();
        known.sort();
        if sel < 192 && !known.is_empty() {
            return known[usize::from(sel) % known.len()];
        }
        if sel % 2 == 0 {
            SocketAddr::new(listen_v4().ip(), 50000 + u16::from(sel) % (V4_PORTS + 1))
        } else {
            SocketAddr::new(listen_v6().ip(), 50000 + u16::from(sel) % (V6_PORTS + 1))
        }
    }

    fn tid(&mut self, c: usize) -> TransactionId {
        let state = &mut self.clients[c];
        state.next_tid += 1;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&state.next_tid.to_be_bytes());
        id[4] = c as u8;
        TransactionId::new(id)
    }

    fn request(&mut self, client: u8, req: &Req, sign: Sign) {
        let c = usize::from(client) % PROFILES.len();
        let p = PROFILES[c];
        if sign == Sign::Valid && self.clients[c].nonce.is_empty() {
            // The RFC 8489 §9.2.3 dance: an unauthenticated request gets the nonce.
            self.request(client, req, Sign::None);
        }
        let tid = self.tid(c);
        let bytes = self.encode_request(c, tid, req, sign);
        self.clients[c].last_request = Some(bytes.clone());
        self.feed(p.transport, p.addr(), p.server(), 0, &bytes);
    }

    fn encode_request(&self, c: usize, tid: TransactionId, req: &Req, sign: Sign) -> Vec<u8> {
        let method;
        let mut owned: Vec<Box<dyn EncodeAttribute>> = Vec::new();
        match req {
            Req::Allocate {
                family,
                additional,
                even_port,
                token,
                lifetime,
                dont_fragment,
                tcp,
            } => {
                method = Method::ALLOCATE;
                owned.push(Box::new(if *tcp {
                    RequestedTransport(6)
                } else {
                    RequestedTransport::UDP
                }));
                match family {
                    1 => owned.push(Box::new(RequestedAddressFamily(AddressFamily::Ipv4))),
                    2 => owned.push(Box::new(RequestedAddressFamily(AddressFamily::Ipv6))),
                    _ => {}
                }
                if *additional {
                    let f = if *family == 3 {
                        AddressFamily::Ipv4
                    } else {
                        AddressFamily::Ipv6
                    };
                    owned.push(Box::new(AdditionalAddressFamily(f)));
                }
                match even_port {
                    1 => owned.push(Box::new(EvenPort { reserve: false })),
                    2 => owned.push(Box::new(EvenPort { reserve: true })),
                    _ => {}
                }
                if *token {
                    let t = self.clients[c].token.unwrap_or([7; 8]);
                    owned.push(Box::new(ReservationToken(t)));
                }
                if *lifetime != 0 {
                    owned.push(Box::new(Lifetime(u32::from(*lifetime))));
                }
                if *dont_fragment {
                    owned.push(Box::new(DontFragment));
                }
            }
            Req::Refresh { lifetime, family } => {
                method = Method::REFRESH;
                if let Some(l) = lifetime {
                    owned.push(Box::new(Lifetime(u32::from(*l))));
                }
                match family {
                    1 => owned.push(Box::new(RequestedAddressFamily(AddressFamily::Ipv4))),
                    2 => owned.push(Box::new(RequestedAddressFamily(AddressFamily::Ipv6))),
                    _ => {}
                }
            }
            Req::CreatePermission(peers) => {
                method = Method::CREATE_PERMISSION;
                for peer in peers {
                    owned.push(Box::new(XorPeerAddress(peer.addr())));
                }
            }
            Req::ChannelBind { channel, peer } => {
                method = Method::CHANNEL_BIND;
                let number = if *channel < 0x1000 {
                    0x4000 + channel
                } else {
                    *channel
                };
                owned.push(Box::new(ChannelNumber(number)));
                owned.push(Box::new(XorPeerAddress(peer.addr())));
            }
            Req::Binding => method = Method::BINDING,
            Req::Other(m) => method = Method::new(*m & 0x0fff).unwrap_or(Method::CONNECT),
        }
        let attrs: Vec<&dyn EncodeAttribute> = owned.iter().map(|b| b.as_ref()).collect();
        let mtype = MessageType::new(method, Class::Request);
        let signing = (sign != Sign::None).then(|| self.signing(c, sign));
        let mut bytes = build(mtype, tid, &attrs, signing.as_ref());
        if sign == Sign::Tampered {
            // Change a byte of the integrity value (before the FINGERPRINT), and fix the
            // FINGERPRINT so only the integrity check can notice.
            let n = bytes.len();
            if n > 8 + 4 {
                bytes[n - 8 - 2] ^= 0x40;
                refingerprint(&mut bytes);
            }
        }
        bytes
    }

    fn signing(&self, c: usize, sign: Sign) -> Signing {
        let p = PROFILES[c];
        let (user, mut password) = p.credentials();
        if sign == Sign::WrongKey {
            password.push('x');
        }
        let nonce = match sign {
            Sign::ForeignNonce => {
                let other = (c + 1) % PROFILES.len();
                let n = &self.clients[other].nonce;
                if n.is_empty() {
                    b"obMatJos2AAABmadeupmadeupmadeupmadeup12".to_vec()
                } else {
                    n.clone()
                }
            }
            _ if self.clients[c].nonce.is_empty() => b"obMatJos2AAABnononce".to_vec(),
            _ => self.clients[c].nonce.clone(),
        };
        Signing {
            username: (sign != Sign::NoUsername).then(|| user.clone()),
            userhash: p.userhash.then(|| userhash(&user, REALM)),
            realm: if sign == Sign::OtherRealm {
                "example.net".into()
            } else {
                REALM.into()
            },
            nonce,
            mode: p.mode,
            bid_down: sign == Sign::BidDown,
            key: LongTermKey::derive(p.algorithm(), &user, REALM, &password).integrity_key(),
        }
    }

    fn icmp(&mut self, relay: u8, peer: Peer, icmp_type: u8, code: u8) {
        let now = self.clock.now;
        let relayed = self.relay(relay);
        let peer = peer.addr();
        let icmp = stun_proto::attributes::Icmp {
            icmp_type,
            code,
            error_data: 1280,
        };
        let before = self.server.stats();
        let out = match self.server.handle_icmp(now, relayed, peer, icmp) {
            ServerOutput::Send(d) => Some((d.transport, d.source, d.destination, d.data.to_vec())),
            _ => None,
        };
        if let Some((transport, source, destination, data)) = out {
            let owner = self.check_from_peer(relayed, peer, now, transport, source, destination);
            let msg = Message::parse(&data).expect("an ICMP Data indication parses");
            assert_eq!(msg.method(), Method::DATA);
            let _ = owner;
        }
        self.check_unchanged(&before, "an ICMP report");
        self.after(now, None);
    }

    /// Feeds a datagram and checks everything that comes out.
    fn feed(
        &mut self,
        transport: TransportProtocol,
        source: SocketAddr,
        destination: SocketAddr,
        headroom: usize,
        buf: &[u8],
    ) {
        let now = self.clock.now;
        let data = &buf[headroom.min(buf.len())..];
        if self.history.len() >= 16 {
            self.history.remove(0);
        }
        self.history.push(Fed {
            transport,
            source,
            destination,
            data: data.to_vec(),
        });
        let tuple = FiveTuple {
            client: source,
            server: destination,
            transport,
        };
        // Remember the peers a request names, for the model.
        if let Ok(msg) = Message::parse(data) {
            if msg.class() == Class::Request {
                let tid = msg.transaction_id();
                let peers: Vec<SocketAddr> = msg
                    .attributes()
                    .filter(|a| {
                        a.attr_type == stun_proto::attributes::AttributeType::XOR_PEER_ADDRESS
                    })
                    .filter_map(|a| {
                        use stun_proto::attributes::Attribute;
                        XorPeerAddress::decode(a.value, &tid).ok().map(|x| x.0)
                    })
                    .collect();
                self.model
                    .requested
                    .entry((tuple, tid))
                    .or_default()
                    .extend(peers);
            }
        }
        let authentic = self.authentic(data);
        let before = self.server.stats();
        let is_relay = self.is_relay_range(destination);
        let mut copy = buf.to_vec();
        let input = ServerInput {
            transport,
            source,
            destination,
            buf: &mut copy,
            headroom,
        };
        let out = match self.server.handle_input(now, input) {
            ServerOutput::Send(d) => Some((
                d.transport,
                d.source,
                d.destination,
                d.data.to_vec(),
                d.dont_fragment,
            )),
            _ => None,
        };
        if let Some((t, s, d, bytes, _df)) = out {
            if is_relay {
                self.check_from_peer(destination, source, now, t, s, d);
                self.check_peer_payload(source, data, &bytes);
            } else {
                self.check_to_peer(tuple, now, t, s, d);
            }
        }
        if !authentic {
            self.check_unchanged(&before, "unauthenticated input");
        }
        self.after(now, Some((tuple, data.len(), authentic)));
    }

    fn is_relay_range(&self, a: SocketAddr) -> bool {
        let (ip, n) = if a.ip() == listen_v4().ip() {
            (true, V4_PORTS)
        } else if a.ip() == listen_v6().ip() {
            (true, V6_PORTS)
        } else {
            (false, 0)
        };
        ip && (50000..50000 + n).contains(&a.port())
    }

    /// A datagram relayed from a client's 5-tuple to a peer.
    fn check_to_peer(
        &self,
        tuple: FiveTuple,
        now: Instant,
        transport: TransportProtocol,
        source: SocketAddr,
        destination: SocketAddr,
    ) {
        assert_eq!(
            transport,
            TransportProtocol::Udp,
            "peers are reached over UDP"
        );
        let owner = self.model.relays.get(&source);
        assert_eq!(
            owner,
            Some(&tuple),
            "relayed from {source}, which {tuple:?} does not own (owner {owner:?})"
        );
        assert!(
            self.policy.allows(destination.ip()),
            "relayed to {destination}, which the peer policy denies"
        );
        let live = self
            .model
            .permissions
            .get(&(tuple, destination.ip()))
            .is_some_and(|&exp| exp > now);
        assert!(live, "relayed to {destination} without a live permission");
    }

    /// A datagram relayed from a peer (or an ICMP report about one) to the client owning
    /// `relayed`; returns that 5-tuple.
    fn check_from_peer(
        &self,
        relayed: SocketAddr,
        peer: SocketAddr,
        now: Instant,
        transport: TransportProtocol,
        source: SocketAddr,
        destination: SocketAddr,
    ) -> FiveTuple {
        let tuple = *self
            .model
            .relays
            .get(&relayed)
            .unwrap_or_else(|| panic!("relayed from {relayed}, which no allocation owns"));
        assert_eq!(
            (transport, source, destination),
            (tuple.transport, tuple.server, tuple.client),
            "peer data sent somewhere else than the owning 5-tuple"
        );
        let live = self
            .model
            .permissions
            .get(&(tuple, peer.ip()))
            .is_some_and(|&exp| exp > now);
        assert!(live, "data from {peer} relayed without a live permission");
        tuple
    }

    /// The relayed message carries the peer's bytes unchanged.
    fn check_peer_payload(&self, peer: SocketAddr, payload: &[u8], out: &[u8]) {
        if let Ok(cd) = ChannelData::parse(out) {
            assert_eq!(cd.data, payload, "ChannelData changed the payload");
            return;
        }
        let msg = Message::parse(out).expect("a Data indication parses");
        assert_eq!(
            (msg.method(), msg.class()),
            (Method::DATA, Class::Indication)
        );
        assert_eq!(
            msg.require::<XorPeerAddress>().ok().map(|x| x.0),
            Some(peer)
        );
        assert_eq!(msg.require::<Data<'_>>().ok().map(|d| d.0), Some(payload));
    }

    fn check_unchanged(&self, before: &turn_proto::server::ServerStats, what: &str) {
        let after = self.server.stats();
        assert_eq!(
            (
                after.allocations,
                after.permissions,
                after.channels,
                after.cached_responses
            ),
            (
                before.allocations,
                before.permissions,
                before.channels,
                before.cached_responses
            ),
            "{what} changed the server's state"
        );
    }

    /// True if `data` is a request whose integrity verifies under some user's key.
    fn authentic(&self, data: &[u8]) -> bool {
        let Ok(msg) = Message::parse(data) else {
            return false;
        };
        if msg.class() != Class::Request
            || !(msg.has_message_integrity() || msg.has_message_integrity_sha256())
        {
            return false;
        }
        let name = match (msg.get::<Username<'_>>(), msg.get::<UserHash>()) {
            (Ok(Some(u)), _) => Some(u.as_str().to_string()),
            (_, Ok(Some(h))) => PROFILES
                .iter()
                .map(|p| p.credentials().0)
                .find(|u| userhash(u, REALM) == h.0),
            _ => None,
        };
        verifies(&msg, name.as_deref())
    }

    /// Drains the server after a call at `now` and checks what came out. `cause` is the
    /// datagram fed (5-tuple, length, authentic), if any.
    fn after(&mut self, now: Instant, cause: Option<(FiveTuple, usize, bool)>) {
        let transmits: Vec<_> = std::iter::from_fn(|| self.server.poll_transmit()).collect();
        let events: Vec<_> = std::iter::from_fn(|| self.server.poll_event()).collect();
        self.process(now, cause, transmits, events);
    }

    fn process(
        &mut self,
        now: Instant,
        cause: Option<(FiveTuple, usize, bool)>,
        transmits: Vec<stun_proto::Transmit>,
        events: Vec<ServerEvent>,
    ) {
        for t in transmits {
            let msg = Message::parse(&t.payload).expect("the server's responses parse");
            assert!(
                matches!(msg.class(), Class::Success | Class::Error),
                "the server sent a {:?}",
                msg.class()
            );
            let tuple = FiveTuple {
                client: t.destination,
                server: t.source,
                transport: t.transport,
            };
            if let Some((from, _, _)) = cause {
                assert_eq!(tuple, from, "a response to someone else than the requester");
            }
            let signed = msg.has_message_integrity() || msg.has_message_integrity_sha256();
            if let (false, Some((_, len, _))) = (signed, cause) {
                let bound = if msg.class() == Class::Success {
                    32
                } else {
                    MAX_UNAUTHENTICATED_GROWTH + REALM.len()
                };
                assert!(
                    t.payload.len() <= len + bound,
                    "a {}-byte unauthenticated answer to {len} bytes",
                    t.payload.len()
                );
            }
            let method = msg.method();
            if msg.class() == Class::Success && method != Method::BINDING {
                let user = PROFILES
                    .iter()
                    .find(|p| p.tuple() == tuple)
                    .map(|p| p.credentials().0);
                assert!(
                    signed && (verifies(&msg, user.as_deref()) || verifies(&msg, None)),
                    "a {method:?} success without valid integrity"
                );
                self.on_success(now, tuple, &msg);
            }
            if msg.class() == Class::Error {
                let code = msg.get::<ErrorCode<'_>>().ok().flatten().map(|e| e.code());
                if matches!(code, Some(401 | 438)) {
                    if let Some(c) = PROFILES.iter().position(|p| p.tuple() == tuple) {
                        if let Ok(Some(n)) = msg.get::<Nonce<'_>>() {
                            self.clients[c].nonce = n.as_bytes().to_vec();
                        }
                    }
                }
            }
        }
        for e in events {
            self.on_event(e, cause.map(|(_, _, authentic)| authentic));
        }
    }

    fn on_event(&mut self, e: ServerEvent, authentic_cause: Option<bool>) {
        match e {
            ServerEvent::BindRelay { relayed, .. } if !self.model.binds.contains(&relayed) => {
                self.model.binds.push(relayed);
            }
            ServerEvent::ReleaseRelay { relayed, .. } => {
                self.model.binds.retain(|b| *b != relayed);
                self.model.relays.remove(&relayed);
            }
            ServerEvent::AllocationCreated {
                five_tuple,
                username,
                relayed,
            } => {
                assert_ne!(
                    authentic_cause,
                    Some(false),
                    "an allocation from unauthenticated input"
                );
                for r in relayed {
                    self.model.relays.insert(r, five_tuple);
                    self.model.binds.retain(|b| *b != r);
                }
                // The quota key: the user part of a REST username.
                let key = match username.split_once(':') {
                    Some((exp, user)) if exp.bytes().all(|b| b.is_ascii_digit()) => {
                        user.to_string()
                    }
                    _ => username,
                };
                self.model.allocations.insert(five_tuple, key);
            }
            ServerEvent::AllocationDeleted { five_tuple, .. } => {
                self.model.allocations.remove(&five_tuple);
                self.model.relays.retain(|_, t| *t != five_tuple);
                self.model.permissions.retain(|(t, _), _| *t != five_tuple);
            }
            _ => {}
        }
    }

    fn on_success(&mut self, now: Instant, tuple: FiveTuple, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let peers = self
            .model
            .requested
            .get(&(tuple, tid))
            .cloned()
            .unwrap_or_default();
        match msg.method() {
            Method::CREATE_PERMISSION | Method::CHANNEL_BIND => {
                for p in peers {
                    self.model
                        .permissions
                        .insert((tuple, p.ip()), now + PERMISSION);
                }
            }
            Method::ALLOCATE => {
                if let Some(c) = PROFILES.iter().position(|p| p.tuple() == tuple) {
                    if let Ok(Some(t)) = msg.get::<ReservationToken>() {
                        self.clients[c].token = Some(t.0);
                    }
                }
            }
            _ => {}
        }
    }

    /// Runs every deadline up to `now + d` at its own instant (a driver woken on time),
    /// checking the output and the timer invariant at each step.
    fn advance(&mut self, d: Duration) {
        let until = self.clock.now + d;
        for _ in 0..100_000 {
            match self.server.poll_timeout() {
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
        self.server.handle_timeout(now);
        self.after(now, None);
        check_settled("turn_server", &mut self.server, now);
    }

    fn check_bounds(&self) {
        let s = self.server.stats();
        assert_eq!(s.allocations, self.server.allocation_count());
        let ports = usize::from(V4_PORTS + V6_PORTS);
        assert!(
            s.allocations <= QUOTA_TOTAL && s.allocations <= ports,
            "{s:?}"
        );
        assert!(
            s.permissions <= s.allocations * PERMISSIONS_PER_ALLOCATION,
            "{s:?}"
        );
        assert!(
            s.channels <= s.allocations * CHANNELS_PER_ALLOCATION,
            "{s:?}"
        );
        assert!(s.cached_responses <= CACHE, "{s:?}");
        assert!(self.model.allocations.len() <= s.allocations);
        let mut per_user: HashMap<&str, u32> = HashMap::new();
        let mut per_ip: HashMap<IpAddr, u32> = HashMap::new();
        for (t, user) in &self.model.allocations {
            *per_user.entry(user).or_default() += 1;
            *per_ip.entry(t.client.ip()).or_default() += 1;
        }
        assert!(per_user.values().all(|&n| n <= QUOTA_USER), "{per_user:?}");
        assert!(per_ip.values().all(|&n| n <= QUOTA_IP), "{per_ip:?}");
    }
}

/// True if `msg`'s integrity verifies under a key of `user` (any user when `None`).
fn verifies(msg: &Message<'_>, user: Option<&str>) -> bool {
    keys()
        .iter()
        .filter(|(u, _)| user.is_none_or(|want| u == want))
        .any(|(_, k)| msg.verify_integrity(k).is_ok())
}

fn payload(len: u16) -> Vec<u8> {
    (0..usize::from(len % 1500)).map(|i| i as u8).collect()
}

/// Credentials for signing a request.
struct Signing {
    username: Option<String>,
    userhash: Option<[u8; 32]>,
    realm: String,
    nonce: Vec<u8>,
    mode: Mode,
    bid_down: bool,
    key: IntegrityKey,
}

fn build(
    mtype: MessageType,
    tid: TransactionId,
    attrs: &[&dyn EncodeAttribute],
    signing: Option<&Signing>,
) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut b = MessageBuilder::new(&mut buf, mtype, tid).expect("fits");
    for a in attrs {
        b.add(*a).expect("fits");
    }
    if let Some(s) = signing {
        match (&s.userhash, &s.username) {
            (Some(h), Some(_)) => {
                b.add(&UserHash(*h)).expect("fits");
            }
            (None, Some(u)) => {
                b.add(&Username::new(u).expect("short")).expect("fits");
            }
            _ => {}
        }
        b.add(&Realm::new(&s.realm).expect("short")).expect("fits");
        b.add(&Nonce::new(&s.nonce).expect("short")).expect("fits");
        match s.mode {
            Mode::Legacy if !s.bid_down => {
                b.add_message_integrity(&s.key).expect("fits");
            }
            Mode::Legacy => {
                b.add(&PasswordAlgorithm::new(Algorithm::Md5.code()))
                    .expect("fits");
                b.add_message_integrity(&s.key).expect("fits");
            }
            Mode::Negotiate(a) => {
                if !s.bid_down {
                    b.add(&PasswordAlgorithms::new(&[2, 1])).expect("fits");
                }
                b.add(&PasswordAlgorithm::new(a.code())).expect("fits");
                b.add_message_integrity_sha256(&s.key).expect("fits");
            }
        }
    }
    b.add_fingerprint().expect("fits");
    b.finish().to_vec()
}

/// Recomputes the FINGERPRINT at the end of `bytes` after an edit.
fn refingerprint(bytes: &mut Vec<u8>) {
    let n = bytes.len();
    let mut body = bytes[..n - 8].to_vec();
    let tid = TransactionId::new(body[8..20].try_into().expect("header"));
    let mtype = MessageType::from_u16(u16::from_be_bytes([body[0], body[1]])).expect("type");
    // Rebuild: the body's attributes raw (the integrity value included, as edited).
    let msg_len = body.len();
    body[2..4].copy_from_slice(&((msg_len - 20) as u16).to_be_bytes());
    let mut buf = vec![0u8; msg_len + 8];
    let mut b = MessageBuilder::new(&mut buf, mtype, tid).expect("fits");
    let mut at = 20;
    while at + 4 <= body.len() {
        let t = u16::from_be_bytes([body[at], body[at + 1]]);
        let l = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let v = &body[at + 4..at + 4 + l];
        b.add_raw(stun_proto::attributes::AttributeType(t), v)
            .expect("fits");
        at += 4 + l.next_multiple_of(4);
    }
    b.add_fingerprint().expect("fits");
    *bytes = b.finish().to_vec();
}
