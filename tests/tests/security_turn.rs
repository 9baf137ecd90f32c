//! TURN server security, through the public API (`turn_proto::server`) on a virtual clock:
//! every malformed input class gets its documented outcome and changes nothing; denied peer
//! ranges in every request that names a peer; permissions in both directions; quotas;
//! nonce expiry; REST credential expiry and forgery; integrity over every byte; and the
//! bound on what an unauthenticated request can make the server send.
//!
//! `docs/SECURITY.md` maps each defence to its test here (and to the tests in
//! `crates/turn-proto/tests/server.rs` that already prove a point).
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    AdditionalAddressFamily, AddressFamily, AttributeType, ChannelNumber, Data, EncodeAttribute,
    ErrorCode, Lifetime, Nonce, Padding, PasswordAlgorithm, PasswordAlgorithms, RawAttribute,
    Realm, RequestedAddressFamily, RequestedTransport, Software, UnknownAttributes, Username,
    XorPeerAddress, XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use stun_proto::{Transmit, TransportProtocol};
use turn_proto::server::{
    Drops, MAX_UNAUTHENTICATED_GROWTH, Quotas, RelayBinding, RelayRange, Server, ServerConfig,
    ServerInput, ServerOutput, rest_credentials,
};

const REALM: &str = "example.org";
const UNIX0: u64 = 1_700_000_000;
const SECRET: &[u8] = b"rest-secret";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listen() -> SocketAddr {
    sa("192.0.2.1:3478")
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(REALM);
    c.relays.push(RelayRange {
        ip: "192.0.2.1".parse().unwrap(),
        ports: 50000..=50099,
    });
    c.relays.push(RelayRange {
        ip: "2001:db8::1".parse().unwrap(),
        ports: 50000..=50099,
    });
    c.add_user("alice", "alice-pw");
    c.add_user("bob", "bob-pw");
    c.rest_secret = Some(SECRET.to_vec());
    c.unix_time_at_start = UNIX0;
    c.relay_binding = RelayBinding::Automatic;
    c
}

/// A datagram the server relays.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Relayed {
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// Allocations, permissions, channels, cached responses.
type State = (usize, usize, usize, usize);

struct Turn {
    server: Server,
    now: Instant,
}

impl Turn {
    fn new(config: ServerConfig) -> Turn {
        let now = Instant::now();
        Turn {
            server: Server::new(config, 3, now).unwrap(),
            now,
        }
    }

    fn state(&self) -> State {
        let s = self.server.stats();
        (s.allocations, s.permissions, s.channels, s.cached_responses)
    }

    fn drops(&self) -> Drops {
        self.server.stats().drops
    }

    /// Feeds a datagram; returns what is relayed and the responses.
    fn feed(
        &mut self,
        transport: TransportProtocol,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> (Option<Relayed>, Vec<Transmit>) {
        let mut buf = bytes.to_vec();
        let input = ServerInput {
            transport,
            source: from,
            destination: to,
            buf: &mut buf,
            headroom: 0,
        };
        let relayed = match self.server.handle_input(self.now, input) {
            ServerOutput::Send(d) => Some(Relayed {
                source: d.source,
                destination: d.destination,
                data: d.data.to_vec(),
            }),
            _ => None,
        };
        let out = std::iter::from_fn(|| self.server.poll_transmit()).collect();
        while self.server.poll_event().is_some() {}
        (relayed, out)
    }

    fn client_sends(&mut self, c: &Client, bytes: &[u8]) -> (Option<Relayed>, Vec<Transmit>) {
        self.feed(c.transport, c.addr, c.server, bytes)
    }

    /// A peer's datagram arriving on `relayed`.
    fn peer_sends(
        &mut self,
        peer: SocketAddr,
        relayed: SocketAddr,
        payload: &[u8],
    ) -> Option<Relayed> {
        let (r, out) = self.feed(TransportProtocol::Udp, peer, relayed, payload);
        assert!(out.is_empty());
        r
    }

    /// The one response to a request.
    fn exchange(&mut self, c: &Client, bytes: &[u8]) -> Vec<u8> {
        let (relayed, mut out) = self.client_sends(c, bytes);
        assert!(relayed.is_none(), "a request is never relayed");
        assert_eq!(out.len(), 1, "one response per request");
        out.pop().unwrap().payload
    }

    /// A signed request, retried once with the fresh nonce after a 401 or 438.
    fn call(&mut self, c: &mut Client, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let req = c.signed(method, attrs);
        let resp = self.exchange(c, &req);
        if !matches!(code(&resp), Some(401 | 438)) {
            return resp;
        }
        c.learn(&resp);
        let req = c.signed(method, attrs);
        self.exchange(c, &req)
    }

    fn allocate(&mut self, c: &mut Client, attrs: &[&dyn EncodeAttribute]) -> Vec<SocketAddr> {
        let mut all: Vec<&dyn EncodeAttribute> = vec![&RequestedTransport::UDP];
        all.extend_from_slice(attrs);
        let resp = self.call(c, Method::ALLOCATE, &all);
        assert_eq!(code(&resp), None, "allocate failed: {:?}", error(&resp));
        relayed(&resp)
    }

    fn permit(&mut self, c: &mut Client, peer: SocketAddr) -> Option<u16> {
        code(&self.call(c, Method::CREATE_PERMISSION, &[&XorPeerAddress(peer)]))
    }

    fn bind(&mut self, c: &mut Client, number: u16, peer: SocketAddr) -> Option<u16> {
        code(&self.call(
            c,
            Method::CHANNEL_BIND,
            &[&ChannelNumber(number), &XorPeerAddress(peer)],
        ))
    }

    /// Runs every timer up to `now + d`.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.server.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.server.handle_timeout(self.now);
        }
        self.now = end;
        self.server.handle_timeout(end);
        while self.server.poll_transmit().is_some() {}
        while self.server.poll_event().is_some() {}
    }
}

/// A scripted client: RFC 5389 style (MD5, MESSAGE-INTEGRITY), or RFC 8489 style
/// (PASSWORD-ALGORITHMS echoed, SHA-256, MESSAGE-INTEGRITY-SHA256).
#[derive(Clone, Debug)]
struct Client {
    addr: SocketAddr,
    server: SocketAddr,
    transport: TransportProtocol,
    username: String,
    password: String,
    sha256: bool,
    nonce: Vec<u8>,
    next: u32,
}

impl Client {
    fn new(addr: &str, username: &str, password: &str) -> Client {
        Client {
            addr: sa(addr),
            server: listen(),
            transport: TransportProtocol::Udp,
            username: username.into(),
            password: password.into(),
            sha256: false,
            nonce: b"obMatJos2AAAB-no-nonce-yet".to_vec(),
            next: 0,
        }
    }

    fn alice() -> Client {
        Client::new("198.51.100.10:40000", "alice", "alice-pw")
    }

    /// A transaction ID no other request in the process has (clones of a client included).
    fn tid(&mut self) -> TransactionId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.next += 1;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id[8..12].copy_from_slice(&self.next.to_be_bytes());
        TransactionId::new(id)
    }

    fn key(&self) -> IntegrityKey {
        let alg = if self.sha256 {
            Algorithm::Sha256
        } else {
            Algorithm::Md5
        };
        LongTermKey::derive(alg, &self.username, REALM, &self.password).integrity_key()
    }

    fn learn(&mut self, challenge: &[u8]) {
        let m = Message::parse(challenge).unwrap();
        self.nonce = m.require::<Nonce<'_>>().unwrap().as_bytes().to_vec();
    }

    fn unsigned(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let tid = self.tid();
        build(MessageType::new(method, Class::Request), tid, attrs, |_| {})
    }

    fn signed(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let tid = self.tid();
        let me = self.clone();
        build(MessageType::new(method, Class::Request), tid, attrs, |b| {
            me.sign(b)
        })
    }

    /// USERNAME, REALM, NONCE (and the algorithms), then the integrity attribute.
    fn sign(&self, b: &mut MessageBuilder<'_>) {
        b.add(&Username::new(&self.username).unwrap()).unwrap();
        b.add(&Realm::new(REALM).unwrap()).unwrap();
        b.add(&Nonce::new(&self.nonce).unwrap()).unwrap();
        if self.sha256 {
            b.add(&PasswordAlgorithms::new(&[2, 1])).unwrap();
            b.add(&PasswordAlgorithm::new(2)).unwrap();
            b.add_message_integrity_sha256(&self.key()).unwrap();
        } else {
            b.add_message_integrity(&self.key()).unwrap();
        }
    }
}

/// Builds a message: the attributes, then `finish` (signing), then FINGERPRINT.
fn build(
    mtype: MessageType,
    tid: TransactionId,
    attrs: &[&dyn EncodeAttribute],
    finish: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut b = MessageBuilder::new(&mut buf, mtype, tid).unwrap();
    for a in attrs {
        b.add(*a).unwrap();
    }
    finish(&mut b);
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

/// The error code of a response; `None` for a success.
fn code(resp: &[u8]) -> Option<u16> {
    let m = Message::parse(resp).unwrap();
    match m.class() {
        Class::Success => None,
        Class::Error => Some(m.require::<ErrorCode<'_>>().unwrap().code()),
        other => panic!("not a response: {other:?}"),
    }
}

fn error(resp: &[u8]) -> Option<String> {
    let m = Message::parse(resp).ok()?;
    let e = m.get::<ErrorCode<'_>>().ok()??;
    Some(format!("{} {}", e.code(), e.reason()))
}

fn signed(resp: &[u8]) -> bool {
    let m = Message::parse(resp).unwrap();
    m.has_message_integrity() || m.has_message_integrity_sha256()
}

fn relayed(resp: &[u8]) -> Vec<SocketAddr> {
    use stun_proto::attributes::Attribute;
    let m = Message::parse(resp).unwrap();
    m.attributes()
        .filter(|a| a.attr_type == AttributeType::XOR_RELAYED_ADDRESS)
        .map(|a| {
            XorRelayedAddress::decode(a.value, &m.transaction_id())
                .unwrap()
                .0
        })
        .collect()
}

fn send_indication(peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    build(
        MessageType::new(Method::SEND, Class::Indication),
        TransactionId::new([9; 12]),
        &[&XorPeerAddress(peer), &Data(payload)],
        |_| {},
    )
}

fn channel_data(number: u16, payload: &[u8]) -> Vec<u8> {
    turn_proto::channel_data::encode(number, payload, false).unwrap()
}

/// Flips one bit of byte `at`, then recomputes FINGERPRINT so that only the integrity check
/// can notice (when the attributes still walk; otherwise the bytes go as they are).
fn tamper(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut body = bytes[..bytes.len() - 8].to_vec();
    body[at] ^= 0x01;
    let mut attrs = Vec::new();
    let mut pos = 20;
    while pos + 4 <= body.len() {
        let t = u16::from_be_bytes([body[pos], body[pos + 1]]);
        let l = usize::from(u16::from_be_bytes([body[pos + 2], body[pos + 3]]));
        let Some(v) = body.get(pos + 4..pos + 4 + l) else {
            break;
        };
        attrs.push((AttributeType(t), v.to_vec()));
        pos += 4 + l.next_multiple_of(4);
    }
    let mtype = MessageType::from_u16(u16::from_be_bytes([body[0], body[1]]));
    let (Some(mtype), true) = (mtype, pos == body.len()) else {
        let mut b = bytes.to_vec();
        b[at] ^= 0x01;
        return b;
    };
    let tid = TransactionId::new(body[8..20].try_into().unwrap());
    let raw: Vec<RawAttribute<'_>> = attrs
        .iter()
        .map(|(t, v)| RawAttribute {
            attr_type: *t,
            value: v,
        })
        .collect();
    let refs: Vec<&dyn EncodeAttribute> = raw.iter().map(|r| r as &dyn EncodeAttribute).collect();
    build(mtype, tid, &refs, |_| {})
}

// ---------------------------------------------------------------------------------------
// Malformed input: every class, its documented outcome, and no state change
// ---------------------------------------------------------------------------------------

/// What the server must do with an input class.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Dropped without an answer, counted by this drop counter.
    Dropped(fn(&Drops) -> u64),
    /// Answered with this error code (without integrity: the request was not
    /// authenticated).
    Answered(u16),
}

/// An allocated client (alice, dual-stack) with a permission and channel 0x4000 to
/// 203.0.113.5:7000.
fn ready() -> (Turn, Client, Vec<SocketAddr>) {
    let mut t = Turn::new(config());
    let mut c = Client::alice();
    let relays = t.allocate(&mut c, &[&AdditionalAddressFamily(AddressFamily::Ipv6)]);
    assert_eq!(t.bind(&mut c, 0x4000, sa("203.0.113.5:7000")), None);
    (t, c, relays)
}

#[test]
fn malformed_input_classes_get_their_documented_outcome_and_change_nothing() {
    use Outcome::{Answered, Dropped};
    let (mut t, mut alice, relays) = ready();
    let stranger = Client::new("198.51.100.99:5000", "alice", "alice-pw");
    let peer = sa("203.0.113.5:7000");
    let mut wrong = alice.clone();
    wrong.password = "not-alice-pw".into();
    let mut unknown = alice.clone();
    unknown.username = "mallory".into();
    let mut legacy_cookie = alice.unsigned(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    legacy_cookie[4..8].copy_from_slice(&[1, 2, 3, 4]);
    let mut classic = alice.unsigned(Method::BINDING, &[]);
    classic[4..8].copy_from_slice(&[9, 9, 9, 9]);
    let mut unaligned = alice.unsigned(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    unaligned[3] += 1;
    let mut trailing = alice.unsigned(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    trailing.extend_from_slice(&[0; 4]);
    let mut overflow = alice.unsigned(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    overflow[22..24].copy_from_slice(&200u16.to_be_bytes());
    let mut bad_fingerprint = alice.signed(Method::REFRESH, &[&Lifetime(0)]);
    let n = bad_fingerprint.len();
    bad_fingerprint[n - 1] ^= 0xff;
    let short_mi = {
        let tid = alice.tid();
        build(
            MessageType::new(Method::REFRESH, Class::Request),
            tid,
            &[&RawAttribute {
                attr_type: AttributeType::MESSAGE_INTEGRITY,
                value: &[0; 19],
            }],
            |_| {},
        )
    };
    let no_username = {
        let tid = alice.tid();
        let key = alice.key();
        let nonce = alice.nonce.clone();
        build(
            MessageType::new(Method::REFRESH, Class::Request),
            tid,
            &[&Lifetime(0)],
            |b| {
                b.add(&Realm::new(REALM).unwrap()).unwrap();
                b.add(&Nonce::new(&nonce).unwrap()).unwrap();
                b.add_message_integrity(&key).unwrap();
            },
        )
    };
    let no_nonce = {
        let tid = alice.tid();
        let key = alice.key();
        build(
            MessageType::new(Method::REFRESH, Class::Request),
            tid,
            &[&Lifetime(0)],
            |b| {
                b.add(&Username::new("alice").unwrap()).unwrap();
                b.add(&Realm::new(REALM).unwrap()).unwrap();
                b.add_message_integrity(&key).unwrap();
            },
        )
    };
    let other_realm = {
        let tid = alice.tid();
        let key =
            LongTermKey::derive(Algorithm::Md5, "alice", "evil.org", "alice-pw").integrity_key();
        let nonce = alice.nonce.clone();
        build(
            MessageType::new(Method::REFRESH, Class::Request),
            tid,
            &[&Lifetime(0)],
            |b| {
                b.add(&Username::new("alice").unwrap()).unwrap();
                b.add(&Realm::new("evil.org").unwrap()).unwrap();
                b.add(&Nonce::new(&nonce).unwrap()).unwrap();
                b.add_message_integrity(&key).unwrap();
            },
        )
    };
    // RFC 8489 §9.2.4 bid-down: PASSWORD-ALGORITHM without the list, or a changed list.
    let bid_down = |alice: &mut Client, list: Option<&[u16]>| {
        let tid = alice.tid();
        let mut sha = alice.clone();
        sha.sha256 = true;
        let key = sha.key();
        let nonce = alice.nonce.clone();
        let list = list.map(|l| l.to_vec());
        build(
            MessageType::new(Method::REFRESH, Class::Request),
            tid,
            &[&Lifetime(0)],
            |b| {
                b.add(&Username::new("alice").unwrap()).unwrap();
                b.add(&Realm::new(REALM).unwrap()).unwrap();
                b.add(&Nonce::new(&nonce).unwrap()).unwrap();
                if let Some(l) = &list {
                    b.add(&PasswordAlgorithms::new(l)).unwrap();
                }
                b.add(&PasswordAlgorithm::new(2)).unwrap();
                b.add_message_integrity_sha256(&key).unwrap();
            },
        )
    };
    let stripped = bid_down(&mut alice, None);
    let reordered = bid_down(&mut alice, Some(&[1, 2]));
    let mut foreign_nonce = Client::new("198.51.100.77:1", "alice", "alice-pw");
    let (_, mut challenge) = t.client_sends(
        &foreign_nonce.clone(),
        &foreign_nonce.unsigned(Method::ALLOCATE, &[&RequestedTransport::UDP]),
    );
    foreign_nonce.learn(&challenge.pop().unwrap().payload);
    let mut replayed_nonce = alice.clone();
    replayed_nonce.nonce = foreign_nonce.nonce.clone();
    let mut made_up_nonce = alice.clone();
    made_up_nonce.nonce = b"obMatJos2AAABAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec();
    let unknown_attr = RawAttribute {
        attr_type: AttributeType(0x7777),
        value: b"x",
    };

    let cases: Vec<(&str, &Client, Vec<u8>, Outcome)> = vec![
        ("empty datagram", &alice, vec![], Dropped(|d| d.not_turn)),
        (
            "RTP (first byte 0x80)",
            &alice,
            vec![0x80, 0, 0, 1],
            Dropped(|d| d.not_turn),
        ),
        (
            "DTLS (first byte 0x16)",
            &alice,
            vec![0x16, 0xfe, 0xfd],
            Dropped(|d| d.not_turn),
        ),
        (
            "12 bytes of STUN header",
            &alice,
            vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4],
            Dropped(|d| d.malformed_stun),
        ),
        (
            "request without the magic cookie",
            &alice,
            legacy_cookie,
            Dropped(|d| d.malformed_stun),
        ),
        (
            "classic RFC 3489 request",
            &alice,
            classic,
            Dropped(|d| d.malformed_stun),
        ),
        (
            "length not a multiple of 4",
            &alice,
            unaligned,
            Dropped(|d| d.malformed_stun),
        ),
        (
            "bytes after the declared length",
            &alice,
            trailing,
            Answered(400),
        ),
        (
            "attribute running past the end",
            &alice,
            overflow,
            Answered(400),
        ),
        (
            "MESSAGE-INTEGRITY of 19 bytes",
            &alice,
            short_mi,
            Answered(400),
        ),
        (
            "wrong FINGERPRINT",
            &alice,
            bad_fingerprint,
            Dropped(|d| d.bad_fingerprint),
        ),
        (
            "a response from a client",
            &alice,
            build(
                MessageType::new(Method::ALLOCATE, Class::Success),
                TransactionId::new([1; 12]),
                &[],
                |_| {},
            ),
            Dropped(|d| d.unexpected_stun),
        ),
        (
            "a Data indication from a client",
            &alice,
            build(
                MessageType::new(Method::DATA, Class::Indication),
                TransactionId::new([1; 12]),
                &[&XorPeerAddress(peer), &Data(b"x")],
                |_| {},
            ),
            Dropped(|d| d.unexpected_stun),
        ),
        (
            "unknown method",
            &alice,
            alice.clone().unsigned(Method::new(0x0ff).unwrap(), &[]),
            Answered(400),
        ),
        (
            "Send as a request",
            &alice,
            alice.clone().unsigned(Method::SEND, &[]),
            Answered(400),
        ),
        (
            "unknown comprehension-required attribute",
            &alice,
            alice.clone().signed(Method::REFRESH, &[&unknown_attr]),
            Answered(420),
        ),
        (
            "no integrity",
            &alice,
            alice.clone().unsigned(Method::REFRESH, &[&Lifetime(0)]),
            Answered(401),
        ),
        (
            "integrity without USERNAME",
            &alice,
            no_username,
            Answered(400),
        ),
        ("integrity without NONCE", &alice, no_nonce, Answered(400)),
        (
            "unknown user",
            &unknown,
            unknown.clone().signed(Method::REFRESH, &[&Lifetime(0)]),
            Answered(401),
        ),
        (
            "wrong password",
            &wrong,
            wrong.clone().signed(Method::REFRESH, &[&Lifetime(0)]),
            Answered(401),
        ),
        ("another realm", &alice, other_realm, Answered(401)),
        (
            "PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS",
            &alice,
            stripped,
            Answered(400),
        ),
        (
            "PASSWORD-ALGORITHMS not as offered",
            &alice,
            reordered,
            Answered(400),
        ),
        (
            "nonce issued to another IP",
            &replayed_nonce,
            replayed_nonce
                .clone()
                .signed(Method::REFRESH, &[&Lifetime(0)]),
            Answered(438),
        ),
        (
            "made-up nonce",
            &made_up_nonce,
            made_up_nonce
                .clone()
                .signed(Method::REFRESH, &[&Lifetime(0)]),
            Answered(438),
        ),
        (
            "truncated ChannelData",
            &alice,
            vec![0x40, 0x00, 0x00, 0x09, 1],
            Dropped(|d| d.bad_channel_data),
        ),
        (
            "ChannelData on an unbound channel",
            &alice,
            channel_data(0x4001, b"x"),
            Dropped(|d| d.no_channel),
        ),
        (
            "ChannelData without an allocation",
            &stranger,
            channel_data(0x4000, b"x"),
            Dropped(|d| d.no_allocation),
        ),
        (
            "Send indication without DATA",
            &alice,
            build(
                MessageType::new(Method::SEND, Class::Indication),
                TransactionId::new([2; 12]),
                &[&XorPeerAddress(peer)],
                |_| {},
            ),
            Dropped(|d| d.bad_send_indication),
        ),
        (
            "Send indication without XOR-PEER-ADDRESS",
            &alice,
            build(
                MessageType::new(Method::SEND, Class::Indication),
                TransactionId::new([2; 12]),
                &[&Data(b"x")],
                |_| {},
            ),
            Dropped(|d| d.bad_send_indication),
        ),
        (
            "Send indication without an allocation",
            &stranger,
            send_indication(peer, b"x"),
            Dropped(|d| d.no_allocation),
        ),
        (
            "Send indication to a peer without permission",
            &alice,
            send_indication(sa("203.0.113.6:1"), b"x"),
            Dropped(|d| d.no_permission),
        ),
    ];
    for (name, client, bytes, outcome) in cases {
        let before = t.state();
        let drops = t.drops();
        let errors = t.server.stats().errors;
        let (relayed_out, out) = t.client_sends(client, &bytes);
        assert!(relayed_out.is_none(), "{name}: relayed");
        match outcome {
            Dropped(counter) => {
                assert!(
                    out.is_empty(),
                    "{name}: answered {:?}",
                    out.first().map(|o| error(&o.payload))
                );
                assert_eq!(
                    counter(&t.drops()),
                    counter(&drops) + 1,
                    "{name}: not counted"
                );
            }
            Answered(expected) => {
                assert_eq!(out.len(), 1, "{name}: {} answers", out.len());
                let resp = &out[0].payload;
                assert_eq!(code(resp), Some(expected), "{name}: {:?}", error(resp));
                assert_eq!(out[0].destination, client.addr, "{name}");
                assert!(
                    !signed(resp),
                    "{name}: an unauthenticated request got a signed answer"
                );
                assert_eq!(
                    t.server.stats().errors.get(expected),
                    errors.get(expected) + 1,
                    "{name}: not counted"
                );
                if matches!(expected, 401 | 438) {
                    let m = Message::parse(resp).unwrap();
                    assert!(
                        m.has(AttributeType::REALM) && m.has(AttributeType::NONCE),
                        "{name}"
                    );
                }
                if expected == 420 {
                    let m = Message::parse(resp).unwrap();
                    let listed: Vec<AttributeType> = m
                        .require::<UnknownAttributes<'_>>()
                        .unwrap()
                        .iter()
                        .collect();
                    assert_eq!(listed, [AttributeType(0x7777)], "{name}");
                }
            }
        }
        assert_eq!(t.state(), before, "{name}: changed the server's state");
    }
    // Peer datagrams: to a relayed address nobody holds, and from a peer without permission.
    let drops = t.drops();
    assert_eq!(
        t.peer_sends(peer, sa("192.0.2.1:50099"), b"x").map(|_| ()),
        None
    );
    assert_eq!(
        t.peer_sends(sa("203.0.113.6:7000"), relays[0], b"x")
            .map(|_| ()),
        None
    );
    assert_eq!(t.drops().no_allocation, drops.no_allocation + 1);
    assert_eq!(t.drops().no_permission, drops.no_permission + 1);
    // Through all of it, the real client was never disturbed.
    assert_eq!(
        t.client_sends(&alice, &channel_data(0x4000, b"ok"))
            .0
            .map(|r| r.destination),
        Some(peer)
    );
}

#[test]
fn authenticated_request_errors_get_their_codes() {
    let mut cfg = config();
    cfg.relays.truncate(1); // IPv4 relays only
    let mut q = Quotas::default();
    q.permissions_per_allocation = 2;
    q.channels_per_allocation = 1;
    cfg.quotas = q;
    let mut t = Turn::new(cfg);
    let mut alice = Client::alice();
    // 437: a request other than Allocate on a 5-tuple without an allocation.
    assert_eq!(t.permit(&mut alice, sa("203.0.113.5:1")), Some(437));
    let resp = t.call(&mut alice, Method::REFRESH, &[]);
    assert_eq!(code(&resp), Some(437));
    assert!(
        signed(&resp),
        "an authenticated request gets a signed error"
    );
    // 400: no REQUESTED-TRANSPORT; 442: not UDP; 440: a family the server has no relay for.
    assert_eq!(code(&t.call(&mut alice, Method::ALLOCATE, &[])), Some(400));
    let tcp = RequestedTransport(6);
    assert_eq!(
        code(&t.call(&mut alice, Method::ALLOCATE, &[&tcp])),
        Some(442)
    );
    let v6 = RequestedAddressFamily(AddressFamily::Ipv6);
    let resp = t.call(
        &mut alice,
        Method::ALLOCATE,
        &[&RequestedTransport::UDP, &v6],
    );
    assert_eq!(code(&resp), Some(440));
    assert_eq!(t.state().0, 0);
    t.allocate(&mut alice, &[]);
    // 437: Allocate again on the 5-tuple, as a new transaction.
    let resp = t.call(&mut alice, Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&resp), Some(437));
    // 441: another user's request on alice's 5-tuple.
    let mut bob_on_alice = Client::new("198.51.100.10:40000", "bob", "bob-pw");
    assert_eq!(t.permit(&mut bob_on_alice, sa("203.0.113.5:1")), Some(441));
    // 443: a peer of a family the allocation has no relayed address for.
    assert_eq!(t.permit(&mut alice, sa("[2001:db8:2::5]:1")), Some(443));
    // 400: a channel number outside 0x4000-0x4FFF.
    assert_eq!(t.bind(&mut alice, 0x3fff, sa("203.0.113.5:1")), Some(400));
    assert_eq!(t.bind(&mut alice, 0x5000, sa("203.0.113.5:1")), Some(400));
    // 508: beyond the permissions and channels per allocation.
    assert_eq!(t.permit(&mut alice, sa("203.0.113.5:1")), None);
    assert_eq!(t.permit(&mut alice, sa("203.0.113.6:1")), None);
    assert_eq!(t.permit(&mut alice, sa("203.0.113.7:1")), Some(508));
    assert_eq!(t.bind(&mut alice, 0x4000, sa("203.0.113.5:1")), None);
    assert_eq!(t.bind(&mut alice, 0x4001, sa("203.0.113.6:1")), Some(508));
    // 400: the channel already bound to another peer, or the peer to another channel.
    assert_eq!(t.bind(&mut alice, 0x4000, sa("203.0.113.6:1")), Some(400));
    let s = t.server.stats();
    assert_eq!((s.allocations, s.permissions, s.channels), (1, 2, 1));
}

// ---------------------------------------------------------------------------------------
// Peer policy: every denied range, in CreatePermission, ChannelBind and Send
// ---------------------------------------------------------------------------------------

/// Every built-in special range (first and last address), in every form an IPv4 address
/// can take inside IPv6, and the addresses just outside each range.
fn policy_cases() -> Vec<(&'static str, bool)> {
    let mut cases = vec![
        // (address, denied)
        ("0.0.0.0", true),
        ("0.255.255.255", true),
        ("1.0.0.0", false),
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.0", false),
        ("9.255.255.255", false),
        ("100.63.255.255", false),
        ("100.64.0.0", true),
        ("100.127.255.255", true),
        ("100.128.0.0", false),
        ("126.255.255.255", false),
        ("127.0.0.0", true),
        ("127.0.0.1", true),
        ("127.255.255.255", true),
        ("128.0.0.0", false),
        ("169.253.255.255", false),
        ("169.254.0.0", true),
        ("169.254.169.254", true),
        ("169.254.255.255", true),
        ("169.255.0.0", false),
        ("172.15.255.255", false),
        ("172.16.0.0", true),
        ("172.31.255.255", true),
        ("172.32.0.0", false),
        ("192.167.255.255", false),
        ("192.168.0.0", true),
        ("192.168.255.255", true),
        ("192.169.0.0", false),
        ("223.255.255.255", false),
        ("224.0.0.0", true),
        ("239.255.255.255", true),
        ("240.0.0.0", true),
        ("255.255.255.255", true),
        ("::", true),
        ("::1", true),
        ("::2", true), // IPv4-compatible 0.0.0.2
        ("fc00::", true),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("fe00::", false),
        ("fe80::", true),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("fec0::", true),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("ff00::", true),
        ("ff02::1", true),
        ("2001:db8::5", false),
    ];
    // Each IPv4 case also as IPv4-mapped, IPv4-compatible and NAT64 (RFC 6052) IPv6:
    // judged as the IPv4 address they embed (coturn CVE-2020-26262).
    let v4: Vec<(&'static str, bool)> = cases
        .iter()
        .filter(|(a, _)| !a.contains(':'))
        .copied()
        .collect();
    for (a, denied) in v4 {
        for prefix in ["::ffff:", "::", "64:ff9b::"] {
            let s: &'static str = Box::leak(format!("{prefix}{a}").into_boxed_str());
            // `::0.0.0.0` and `::0.0.0.1` are `::` and `::1`; anything in `::/96` other
            // than those two is IPv4-compatible and judged as its IPv4 address.
            cases.push((s, denied));
        }
    }
    cases
}

#[test]
fn every_denied_range_is_refused_in_create_permission_channel_bind_and_send() {
    let mut t = Turn::new(config());
    let mut alice = Client::alice();
    let relays = t.allocate(&mut alice, &[&AdditionalAddressFamily(AddressFamily::Ipv6)]);
    assert_eq!(
        relays.len(),
        2,
        "dual-stack: IPv4 and IPv6 peers can be named"
    );
    let mut allowed_count = 0;
    for (i, (addr, denied)) in policy_cases().into_iter().enumerate() {
        let ip: IpAddr = addr.parse().unwrap();
        let peer = SocketAddr::new(ip, 9000);
        if !denied {
            allowed_count += 1;
            if allowed_count > 30 {
                continue; // the permission quota; the denied cases matter most
            }
            assert_eq!(t.permit(&mut alice, peer), None, "{addr} must be allowed");
            continue;
        }
        let before = t.state();
        let installed = |s: State| (s.0, s.1, s.2); // allocations, permissions, channels
        assert_eq!(
            t.permit(&mut alice, peer),
            Some(403),
            "CreatePermission {addr}"
        );
        let number = 0x4001 + i as u16;
        assert_eq!(
            t.bind(&mut alice, number, peer),
            Some(403),
            "ChannelBind {addr}"
        );
        // Several peers in one CreatePermission: one denied refuses them all (§10.2).
        let ok_peer = XorPeerAddress(sa("203.0.113.99:1"));
        let resp = t.call(
            &mut alice,
            Method::CREATE_PERMISSION,
            &[&ok_peer, &XorPeerAddress(peer)],
        );
        assert_eq!(
            code(&resp),
            Some(403),
            "CreatePermission with {addr} among others"
        );
        assert_eq!(
            installed(t.state()),
            installed(before),
            "{addr}: a permission or channel was installed"
        );
        let denied_drops = t.drops().denied_peer;
        let (out, answers) = t.client_sends(&alice.clone(), &send_indication(peer, b"x"));
        assert!(
            out.is_none() && answers.is_empty(),
            "Send indication to {addr} relayed"
        );
        assert_eq!(
            t.drops().denied_peer,
            denied_drops + 1,
            "{addr}: not counted"
        );
        // And the peer cannot reach the client either: it has no permission.
        let relay = relays[usize::from(ip.is_ipv6())];
        assert!(
            t.peer_sends(peer, relay, b"x").is_none(),
            "{addr} relayed to the client"
        );
    }
    assert!(t.server.stats().errors.forbidden > 100);
}

#[test]
fn deny_list_wins_and_allow_list_opens_a_range() {
    let mut cfg = config();
    cfg.peer_policy.deny.push("203.0.113.0/24".parse().unwrap());
    cfg.peer_policy.allow.push("10.1.0.0/16".parse().unwrap());
    cfg.peer_policy.allow.push("203.0.113.7".parse().unwrap()); // the deny list still wins
    let mut t = Turn::new(cfg);
    let mut alice = Client::alice();
    t.allocate(&mut alice, &[&AdditionalAddressFamily(AddressFamily::Ipv6)]);
    for (addr, expected) in [
        ("203.0.113.7:1", Some(403)),
        ("[::ffff:203.0.113.7]:1", Some(403)),
        ("10.1.2.3:1", None),
        ("[::ffff:10.1.2.3]:1", None),
        ("10.2.0.1:1", Some(403)),
        ("198.51.100.1:1", None),
    ] {
        assert_eq!(t.permit(&mut alice, sa(addr)), expected, "{addr}");
    }
}

// ---------------------------------------------------------------------------------------
// Permissions, both directions
// ---------------------------------------------------------------------------------------

#[test]
fn permissions_are_enforced_both_ways_per_ip_per_allocation_and_expire() {
    let mut t = Turn::new(config());
    let mut alice = Client::alice();
    let relay = t.allocate(&mut alice, &[&Lifetime(3600)])[0];
    let peer = sa("203.0.113.5:7000");
    let same_ip_other_port = sa("203.0.113.5:8000");
    let other_ip = sa("203.0.113.6:7000");
    // Nothing either way without a permission.
    assert!(
        t.client_sends(&alice, &send_indication(peer, b"out"))
            .0
            .is_none()
    );
    assert!(t.peer_sends(peer, relay, b"in").is_none());
    assert_eq!(t.permit(&mut alice, peer), None);
    // A permission is for an IP address, any port (RFC 8656 §9).
    for p in [peer, same_ip_other_port] {
        let out = t
            .client_sends(&alice, &send_indication(p, b"out"))
            .0
            .unwrap();
        assert_eq!(
            (out.source, out.destination, out.data),
            (relay, p, b"out".to_vec())
        );
        let back = t.peer_sends(p, relay, b"in").unwrap();
        assert_eq!((back.source, back.destination), (alice.server, alice.addr));
    }
    assert!(
        t.client_sends(&alice, &send_indication(other_ip, b"x"))
            .0
            .is_none()
    );
    assert!(t.peer_sends(other_ip, relay, b"x").is_none());
    // A permission belongs to its allocation: bob's allocation does not get alice's.
    let mut bob = Client::new("198.51.100.20:40000", "bob", "bob-pw");
    let bob_relay = t.allocate(&mut bob, &[])[0];
    assert!(
        t.client_sends(&bob, &send_indication(peer, b"x"))
            .0
            .is_none()
    );
    assert!(t.peer_sends(peer, bob_relay, b"x").is_none());
    // A channel (600 s) outlives its permission (300 s) unless the permission is refreshed.
    assert_eq!(t.bind(&mut alice, 0x4000, peer), None);
    t.advance(Duration::from_secs(299));
    assert!(
        t.client_sends(&alice, &channel_data(0x4000, b"x"))
            .0
            .is_some()
    );
    assert!(t.peer_sends(peer, relay, b"x").is_some());
    t.advance(Duration::from_secs(1));
    let before = t.drops().no_permission;
    assert!(
        t.client_sends(&alice, &channel_data(0x4000, b"x"))
            .0
            .is_none(),
        "expired at 300 s"
    );
    assert!(t.peer_sends(peer, relay, b"x").is_none());
    assert!(
        t.client_sends(&alice, &send_indication(peer, b"x"))
            .0
            .is_none()
    );
    assert_eq!(t.drops().no_permission, before + 3);
    // Refreshed, it works again, and a refresh at 250 s keeps it to 550 s.
    assert_eq!(t.permit(&mut alice, peer), None);
    t.advance(Duration::from_secs(250));
    assert_eq!(t.permit(&mut alice, peer), None);
    t.advance(Duration::from_secs(299));
    assert!(t.peer_sends(peer, relay, b"x").is_some());
    t.advance(Duration::from_secs(1));
    assert!(t.peer_sends(peer, relay, b"x").is_none());
}

// ---------------------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------------------

#[test]
fn quotas_per_user_per_ip_total_and_rest_user_part() {
    let mut cfg = config();
    let mut q = Quotas::default();
    q.total = Some(4);
    q.per_user = Some(2);
    q.per_client_ip = Some(2);
    cfg.quotas = q;
    let mut t = Turn::new(cfg);
    let alloc_code = |t: &mut Turn, c: &mut Client| {
        code(&t.call(c, Method::ALLOCATE, &[&RequestedTransport::UDP]))
    };
    // Per user: alice twice from different IPs, then 486 — also with a REST username for
    // "alice" (the user part counts, so minting usernames does not escape the quota).
    assert_eq!(
        alloc_code(
            &mut t,
            &mut Client::new("198.51.100.1:1", "alice", "alice-pw")
        ),
        None
    );
    assert_eq!(
        alloc_code(
            &mut t,
            &mut Client::new("198.51.100.2:1", "alice", "alice-pw")
        ),
        None
    );
    assert_eq!(
        alloc_code(
            &mut t,
            &mut Client::new("198.51.100.3:1", "alice", "alice-pw")
        ),
        Some(486)
    );
    let (user, pass) = rest_credentials(SECRET, UNIX0 + 3600, "alice");
    assert_eq!(
        alloc_code(&mut t, &mut Client::new("198.51.100.4:1", &user, &pass)),
        Some(486)
    );
    // Per client IP: bob and carol (REST) from one IP.
    let (carol, carol_pw) = rest_credentials(SECRET, UNIX0 + 3600, "carol");
    assert_eq!(
        alloc_code(&mut t, &mut Client::new("198.51.100.9:1", "bob", "bob-pw")),
        None
    );
    assert_eq!(
        alloc_code(
            &mut t,
            &mut Client::new("198.51.100.9:2", &carol, &carol_pw)
        ),
        None
    );
    let (dave, dave_pw) = rest_credentials(SECRET, UNIX0 + 3600, "dave");
    assert_eq!(
        alloc_code(&mut t, &mut Client::new("198.51.100.9:3", &dave, &dave_pw)),
        Some(486)
    );
    // Total: 4 allocations exist.
    assert_eq!(
        alloc_code(&mut t, &mut Client::new("198.51.100.10:1", &dave, &dave_pw)),
        Some(486)
    );
    assert_eq!(t.state().0, 4);
    assert_eq!(t.server.stats().errors.quota_reached, 4);
    // A deleted allocation gives its place back.
    let mut first = Client::new("198.51.100.1:1", "alice", "alice-pw");
    let resp = t.call(&mut first, Method::REFRESH, &[&Lifetime(0)]);
    assert_eq!(code(&resp), None);
    assert_eq!(
        alloc_code(&mut t, &mut Client::new("198.51.100.10:1", &dave, &dave_pw)),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Nonces and REST credentials
// ---------------------------------------------------------------------------------------

#[test]
fn nonces_expire_and_are_bound_to_the_client_ip() {
    let mut cfg = config();
    cfg.nonce_lifetime = Duration::from_secs(60);
    let mut t = Turn::new(cfg);
    let mut alice = Client::alice();
    t.allocate(&mut alice, &[]);
    let peer = sa("203.0.113.5:1");
    t.advance(Duration::from_secs(59));
    let req = alice.signed(Method::CREATE_PERMISSION, &[&XorPeerAddress(peer)]);
    assert_eq!(
        code(&t.exchange(&alice, &req)),
        None,
        "valid until its lifetime ends"
    );
    t.advance(Duration::from_secs(1));
    let before = t.state();
    let req = alice.signed(
        Method::CREATE_PERMISSION,
        &[&XorPeerAddress(sa("203.0.113.6:1"))],
    );
    let resp = t.exchange(&alice, &req);
    assert_eq!(code(&resp), Some(438), "stale after nonce_lifetime");
    assert!(!signed(&resp));
    assert_eq!(t.state(), before, "a stale nonce changes nothing");
    let old = alice.nonce.clone();
    alice.learn(&resp);
    assert_ne!(alice.nonce, old, "438 carries a fresh nonce");
    let req = alice.signed(
        Method::CREATE_PERMISSION,
        &[&XorPeerAddress(sa("203.0.113.6:1"))],
    );
    assert_eq!(
        code(&t.exchange(&alice, &req)),
        None,
        "the fresh nonce works"
    );
    // The same credentials and nonce from another IP: 438 (the nonce is bound to the IP).
    let mut elsewhere = Client::new("198.51.100.11:40000", "alice", "alice-pw");
    elsewhere.nonce = alice.nonce.clone();
    let req = elsewhere.signed(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&t.exchange(&elsewhere, &req)), Some(438));
}

#[test]
fn rest_credentials_expire_and_cannot_be_forged() {
    let mut t = Turn::new(config());
    let attempt = |t: &mut Turn, addr: &str, user: &str, pass: &str| {
        let mut c = Client::new(addr, user, pass);
        code(&t.call(&mut c, Method::ALLOCATE, &[&RequestedTransport::UDP]))
    };
    let (user, pass) = rest_credentials(SECRET, UNIX0 + 60, "carol");
    // Expired: the expiry is the server's wall time or earlier.
    let (old_user, old_pass) = rest_credentials(SECRET, UNIX0, "carol");
    assert_eq!(
        attempt(&mut t, "198.51.100.1:1", &old_user, &old_pass),
        Some(401)
    );
    // Forged: another secret; a later expiry with the old password; no expiry at all.
    let (_, forged_pass) = rest_credentials(b"guessed-secret", UNIX0 + 60, "carol");
    assert_eq!(
        attempt(&mut t, "198.51.100.2:1", &user, &forged_pass),
        Some(401)
    );
    let extended = format!("{}:carol", UNIX0 + 999_999);
    assert_eq!(
        attempt(&mut t, "198.51.100.3:1", &extended, &pass),
        Some(401)
    );
    assert_eq!(attempt(&mut t, "198.51.100.4:1", "carol", &pass), Some(401));
    assert_eq!(t.state().0, 0);
    // Valid: allocated; after the expiry the allocation can still be refreshed (the key is
    // kept with it, RFC 8656 §6), but no new allocation can be made with the credential.
    let mut carol = Client::new("198.51.100.5:1", &user, &pass);
    t.allocate(&mut carol, &[]);
    t.advance(Duration::from_secs(61));
    let resp = t.call(&mut carol, Method::REFRESH, &[&Lifetime(600)]);
    assert_eq!(code(&resp), None, "{:?}", error(&resp));
    assert_eq!(attempt(&mut t, "198.51.100.6:1", &user, &pass), Some(401));
}

// ---------------------------------------------------------------------------------------
// Integrity: every byte is examined
// ---------------------------------------------------------------------------------------

/// The HMAC comparison examines every byte: changing any one byte of the MAC, or of the
/// message it covers, turns an accepted request into a 401 that changes nothing. (That the
/// comparison is also constant-time is structural: `stun_proto`'s `ct_eq` folds all bytes
/// into one word before one `subtle` comparison; see `docs/SECURITY.md`.)
#[test]
fn integrity_examines_every_byte_of_the_mac_and_of_the_message() {
    for sha256 in [false, true] {
        let mut t = Turn::new(config());
        let mut alice = Client::alice();
        alice.sha256 = sha256;
        t.allocate(&mut alice, &[]);
        let req = alice.signed(
            Method::CREATE_PERMISSION,
            &[&XorPeerAddress(sa("203.0.113.5:1"))],
        );
        let msg = Message::parse(&req).unwrap();
        let mac_len = if sha256 { 32 } else { 20 };
        let mac_start = req.len() - 8 - mac_len;
        assert!(msg.has_message_integrity() != sha256);
        let before = t.state();
        // Every byte of the MAC, and every byte of the message before it (the length field
        // and the integrity attribute's own header excepted: they break the parse).
        // (The magic cookie and the padding are left out: `tamper` rebuilds the message,
        // which writes them afresh; a changed cookie fails the parse anyway.)
        let mut padding = Vec::new();
        let mut pos = 20;
        while pos < req.len() {
            let l = usize::from(u16::from_be_bytes([req[pos + 2], req[pos + 3]]));
            padding.extend(pos + 4 + l..pos + 4 + l.next_multiple_of(4));
            pos += 4 + l.next_multiple_of(4);
        }
        let skipped = |i: usize| (2..8).contains(&i) || padding.contains(&i);
        for at in (0..mac_start - 4)
            .filter(|&i| !skipped(i))
            .chain(mac_start..req.len() - 8)
        {
            let bad = tamper(&req, at);
            let (relayed_out, out) = t.client_sends(&alice, &bad);
            assert!(relayed_out.is_none());
            let answer = out.first().map(|o| code(&o.payload));
            assert!(
                matches!(answer, None | Some(Some(400 | 401 | 420))),
                "byte {at} changed (sha256: {sha256}): {answer:?}"
            );
            assert_eq!(
                t.state(),
                before,
                "byte {at} changed, yet the request was executed"
            );
        }
        let (_, out) = t.client_sends(&alice, &req);
        assert_eq!(
            code(&out[0].payload),
            None,
            "the untouched request is accepted"
        );
        assert_eq!(t.state().1, before.1 + 1);
    }
}

// ---------------------------------------------------------------------------------------
// No amplification
// ---------------------------------------------------------------------------------------

/// Many request shapes, none authenticated, from IPv4 and IPv6 clients: the answer is never
/// more than `MAX_UNAUTHENTICATED_GROWTH` plus the realm's length larger than the request
/// (a Binding success at most 32 bytes), at most one answer per request, and nothing is
/// kept. Checked with the longest realm the server accepts too.
#[test]
fn unauthenticated_answers_stay_within_the_amplification_bound() {
    let long_realm = "r".repeat(127);
    for realm in [REALM, long_realm.as_str()] {
        let mut cfg = config();
        cfg.realm = realm.to_string();
        let mut t = Turn::new(cfg);
        let bound = MAX_UNAUTHENTICATED_GROWTH + realm.len();
        let mut checked = 0;
        let unknown: Vec<RawAttribute<'static>> = (0..100u16)
            .map(|i| RawAttribute {
                attr_type: AttributeType(0x7000 + i),
                value: b"",
            })
            .collect();
        let long_name = "u".repeat(500);
        let username = Username::new(&long_name).unwrap();
        let wrong_key = IntegrityKey::new(b"nope");
        let methods = [
            Method::BINDING,
            Method::ALLOCATE,
            Method::REFRESH,
            Method::CREATE_PERMISSION,
            Method::CHANNEL_BIND,
            Method::SEND,
            Method::DATA,
            Method::CONNECT,
            Method::new(0x0ff).unwrap(),
        ];
        for (i, client) in ["198.51.100.1:1", "[2001:db8:1::1]:65535"]
            .iter()
            .enumerate()
        {
            let c = Client::new(client, "alice", "alice-pw");
            let server = if i == 0 {
                listen()
            } else {
                sa("[2001:db8::1]:3478")
            };
            for method in methods {
                for shape in 0..9 {
                    let mut attrs: Vec<&dyn EncodeAttribute> = Vec::new();
                    let pad = Padding(&[0; 8]);
                    let sw = Software::new("x").unwrap();
                    match shape {
                        0 => {}
                        1 => attrs.push(&RequestedTransport::UDP),
                        2 => attrs.push(&unknown[0]),
                        3 => {
                            attrs.extend(unknown.iter().take(8).map(|u| u as &dyn EncodeAttribute))
                        }
                        4 => attrs.extend(unknown.iter().map(|u| u as &dyn EncodeAttribute)),
                        5 => attrs.push(&username),
                        6 => attrs.push(&pad),
                        7 => attrs.push(&sw),
                        _ => {}
                    }
                    let tid = TransactionId::new([shape as u8 + 1; 12]);
                    let key = wrong_key.clone();
                    let req = build(MessageType::new(method, Class::Request), tid, &attrs, |b| {
                        if shape == 8 {
                            b.add(&Username::new("alice").unwrap()).unwrap();
                            b.add(&Realm::new("x").unwrap()).unwrap();
                            b.add(&Nonce::new(b"n").unwrap()).unwrap();
                            b.add_message_integrity(&key).unwrap();
                        }
                    });
                    // The request as built, without its FINGERPRINT, and as a bare header.
                    let bare = {
                        let mut h = req[..20].to_vec();
                        h[2..4].copy_from_slice(&[0, 0]);
                        h
                    };
                    for bytes in [req.clone(), bare] {
                        for transport in [TransportProtocol::Udp, TransportProtocol::Tcp] {
                            let before = t.state();
                            let (relayed_out, out) = t.feed(transport, c.addr, server, &bytes);
                            assert!(relayed_out.is_none());
                            assert!(out.len() <= 1, "{} answers", out.len());
                            for o in &out {
                                let limit = if code(&o.payload).is_none() {
                                    32
                                } else {
                                    bound
                                };
                                assert!(
                                    o.payload.len() <= bytes.len() + limit,
                                    "{method:?} shape {shape}: {} bytes answer {} (limit +{limit}): {:?}",
                                    o.payload.len(),
                                    bytes.len(),
                                    error(&o.payload)
                                );
                                checked += 1;
                            }
                            assert_eq!(t.state(), before);
                        }
                    }
                }
            }
        }
        assert!(checked > 200, "{checked} answers checked");
    }
}
