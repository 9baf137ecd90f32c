//! The TURN server through its public API, on a virtual clock, against a scripted client
//! that builds its requests with stun-proto's `MessageBuilder`.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, AttributeType, ChannelNumber, Data,
    DontFragment, EncodeAttribute, ErrorCode, EvenPort, Icmp, Lifetime, Nonce, PasswordAlgorithm,
    PasswordAlgorithms, Realm, RequestedAddressFamily, RequestedTransport, ReservationToken,
    Software, UnknownAttributes, UserHash, Username, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey, userhash};
use stun_proto::{
    Class, IntegrityAlgorithm, Message, MessageBuilder, MessageType, Method, TransactionId,
    Transmit, TransportProtocol,
};
use turn_proto::server::{
    BindFailure, DeleteReason, MAX_UNAUTHENTICATED_GROWTH, RelayBinding, RelayBoundError,
    RelayRange, Server, ServerConfig, ServerEvent, ServerInput, ServerOutput, rest_credentials,
};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const REALM: &str = "example.org";
const UNIX0: u64 = 1_700_000_000;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listen() -> SocketAddr {
    sa("192.0.2.1:3478")
}

fn relay_ip() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

fn peer() -> SocketAddr {
    sa("203.0.113.5:7000")
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(REALM);
    c.relays.push(RelayRange {
        ip: relay_ip(),
        ports: 50000..=50099,
    });
    c.add_user("alice", "alice-pw");
    c.add_user("bob", "bob-pw");
    c.rest_secret = Some(b"rest-secret".to_vec());
    c.unix_time_at_start = UNIX0;
    c.relay_binding = RelayBinding::Automatic;
    c
}

/// A datagram the server asked to send, copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    transport: TransportProtocol,
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
    dont_fragment: bool,
}

struct Harness {
    server: Server,
    now: Instant,
}

impl Harness {
    fn new(config: ServerConfig) -> Harness {
        Harness::with_seed(config, 7)
    }

    fn with_seed(config: ServerConfig, seed: u64) -> Harness {
        let now = Instant::now();
        Harness {
            server: Server::new(config, seed, now).unwrap(),
            now,
        }
    }

    /// Moves the clock, running every timer on the way at its own deadline.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..1_000_000 {
            match self.server.poll_timeout() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.server.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = target;
        self.server.handle_timeout(self.now);
    }

    /// Feeds a datagram; returns what the server relays at once.
    fn input(
        &mut self,
        transport: TransportProtocol,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Option<Sent> {
        let mut buf = bytes.to_vec();
        let input = ServerInput {
            transport,
            source: from,
            destination: to,
            buf: &mut buf,
            headroom: 0,
        };
        match self.server.handle_input(self.now, input) {
            ServerOutput::Send(d) => Some(Sent {
                transport: d.transport,
                source: d.source,
                destination: d.destination,
                data: d.data.to_vec(),
                dont_fragment: d.dont_fragment,
            }),
            _ => None,
        }
    }

    /// A peer's datagram arriving on `relayed`, with 4 bytes of headroom.
    fn peer_sends(
        &mut self,
        peer: SocketAddr,
        relayed: SocketAddr,
        payload: &[u8],
    ) -> Option<Sent> {
        let mut buf = vec![0u8; 4 + payload.len()];
        buf[4..].copy_from_slice(payload);
        let input = ServerInput::udp_with_headroom(peer, relayed, &mut buf, 4);
        match self.server.handle_input(self.now, input) {
            ServerOutput::Send(d) => Some(Sent {
                transport: d.transport,
                source: d.source,
                destination: d.destination,
                data: d.data.to_vec(),
                dont_fragment: d.dont_fragment,
            }),
            _ => None,
        }
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.server.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Sends a client's request and returns the one response to it (if any).
    fn exchange(&mut self, c: &Client, bytes: &[u8]) -> Option<Vec<u8>> {
        let relayed = self.input(c.transport, c.addr, c.server, bytes);
        assert!(relayed.is_none(), "a request is not relayed");
        let mut out = self.transmits();
        assert!(out.len() <= 1, "one response per request");
        out.pop().map(|t| {
            assert_eq!(
                (t.source, t.destination, t.transport),
                (c.server, c.addr, c.transport)
            );
            t.payload
        })
    }

    /// The 401 challenge and the authenticated Allocate; returns the final response.
    fn allocate_with(&mut self, c: &mut Client, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        if c.nonce.is_empty() {
            let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
            let challenge = self.exchange(c, &first).unwrap();
            assert_eq!(code(&challenge), Some(401));
            c.learn_nonce(&challenge);
        }
        let (_, req) = c.request(Method::ALLOCATE, attrs);
        self.exchange(c, &req).unwrap()
    }

    /// A UDP allocation; returns the relayed address.
    fn allocate(&mut self, c: &mut Client) -> SocketAddr {
        let resp = self.allocate_with(c, &[&RequestedTransport::UDP]);
        assert_eq!(
            code(&resp),
            None,
            "allocate failed: {:?}",
            Message::parse(&resp)
        );
        relayed(&resp)[0]
    }

    /// An authenticated request, retried once with the new nonce after a 438.
    fn call(&mut self, c: &mut Client, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let (_, req) = c.request(method, attrs);
        let resp = self.exchange(c, &req).unwrap();
        if code(&resp) != Some(438) {
            return resp;
        }
        c.learn_nonce(&resp);
        let (_, req) = c.request(method, attrs);
        self.exchange(c, &req).unwrap()
    }

    fn create_permission(&mut self, c: &mut Client, peer: SocketAddr) -> Option<u16> {
        code(&self.call(c, Method::CREATE_PERMISSION, &[&XorPeerAddress(peer)]))
    }

    fn channel_bind(&mut self, c: &mut Client, number: u16, peer: SocketAddr) -> Option<u16> {
        code(&self.call(
            c,
            Method::CHANNEL_BIND,
            &[&ChannelNumber(number), &XorPeerAddress(peer)],
        ))
    }

    fn refresh(&mut self, c: &mut Client, lifetime: Option<u32>) -> Vec<u8> {
        match lifetime {
            Some(l) => self.call(c, Method::REFRESH, &[&Lifetime(l)]),
            None => self.call(c, Method::REFRESH, &[]),
        }
    }
}

/// How the scripted client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// RFC 5389 style: no PASSWORD-ALGORITHM(S), MD5 key, MESSAGE-INTEGRITY.
    Legacy,
    /// RFC 8489: echo PASSWORD-ALGORITHMS, choose one, MESSAGE-INTEGRITY-SHA256.
    Negotiate(Algorithm),
}

#[derive(Clone, Debug)]
struct Client {
    addr: SocketAddr,
    server: SocketAddr,
    transport: TransportProtocol,
    username: String,
    password: String,
    mode: Mode,
    userhash: bool,
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
            mode: Mode::Legacy,
            userhash: false,
            nonce: Vec::new(),
            next: 0,
        }
    }

    fn alice() -> Client {
        Client::new("198.51.100.10:40000", "alice", "alice-pw")
    }

    fn negotiating(mut self, algorithm: Algorithm) -> Client {
        self.mode = Mode::Negotiate(algorithm);
        self
    }

    fn tid(&mut self) -> TransactionId {
        self.next += 1;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.next.to_be_bytes());
        id[4..6].copy_from_slice(&self.addr.port().to_be_bytes());
        if let IpAddr::V4(ip) = self.addr.ip() {
            id[6..10].copy_from_slice(&ip.octets());
        }
        TransactionId::new(id)
    }

    fn algorithm(&self) -> Algorithm {
        match self.mode {
            Mode::Legacy => Algorithm::Md5,
            Mode::Negotiate(a) => a,
        }
    }

    fn key(&self) -> stun_proto::IntegrityKey {
        LongTermKey::derive(self.algorithm(), &self.username, REALM, &self.password).integrity_key()
    }

    fn learn_nonce(&mut self, challenge: &[u8]) {
        let m = Message::parse(challenge).unwrap();
        self.nonce = m.require::<Nonce<'_>>().unwrap().as_bytes().to_vec();
    }

    fn unauthenticated(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> (TransactionId, Vec<u8>) {
        let tid = self.tid();
        (tid, build(method, Class::Request, tid, attrs, None))
    }

    fn request(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> (TransactionId, Vec<u8>) {
        let tid = self.tid();
        (tid, self.signed(method, tid, attrs))
    }

    fn signed(
        &self,
        method: Method,
        tid: TransactionId,
        attrs: &[&dyn EncodeAttribute],
    ) -> Vec<u8> {
        build(method, Class::Request, tid, attrs, Some(self))
    }
}

/// Builds a message; with a client, its credentials, integrity and FINGERPRINT.
fn build(
    method: Method,
    class: Class,
    tid: TransactionId,
    attrs: &[&dyn EncodeAttribute],
    auth: Option<&Client>,
) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut b = MessageBuilder::new(&mut buf, MessageType::new(method, class), tid).unwrap();
    for a in attrs {
        b.add(*a).unwrap();
    }
    if let Some(c) = auth {
        if c.userhash {
            b.add(&UserHash(userhash(&c.username, REALM))).unwrap();
        } else {
            b.add(&Username::new(&c.username).unwrap()).unwrap();
        }
        b.add(&Realm::new(REALM).unwrap()).unwrap();
        b.add(&Nonce::new(&c.nonce).unwrap()).unwrap();
        match c.mode {
            Mode::Legacy => {
                b.add_message_integrity(&c.key()).unwrap();
            }
            Mode::Negotiate(a) => {
                b.add(&PasswordAlgorithms::new(&[2, 1])).unwrap();
                b.add(&PasswordAlgorithm::new(a.code())).unwrap();
                b.add_message_integrity_sha256(&c.key()).unwrap();
            }
        }
    }
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

/// The error code of a response; `None` for a success.
fn code(resp: &[u8]) -> Option<u16> {
    let m = Message::parse(resp).unwrap();
    m.verify_fingerprint().unwrap();
    match m.class() {
        Class::Success => None,
        Class::Error => Some(m.require::<ErrorCode<'_>>().unwrap().code()),
        other => panic!("not a response: {other:?}"),
    }
}

fn relayed(resp: &[u8]) -> Vec<SocketAddr> {
    let m = Message::parse(resp).unwrap();
    m.attributes()
        .filter(|a| a.attr_type == AttributeType::XOR_RELAYED_ADDRESS)
        .map(|a| {
            use stun_proto::attributes::Attribute;
            XorRelayedAddress::decode(a.value, &m.transaction_id())
                .unwrap()
                .0
        })
        .collect()
}

fn lifetime(resp: &[u8]) -> u32 {
    Message::parse(resp)
        .unwrap()
        .require::<Lifetime>()
        .unwrap()
        .0
}

fn channel_data(number: u16, payload: &[u8]) -> Vec<u8> {
    turn_proto::channel_data::encode(number, payload, false).unwrap()
}

fn send_indication(peer: SocketAddr, payload: &[u8], extra: &[&dyn EncodeAttribute]) -> Vec<u8> {
    let xpa = XorPeerAddress(peer);
    let data = Data(payload);
    let mut list: Vec<&dyn EncodeAttribute> = vec![&xpa, &data];
    list.extend_from_slice(extra);
    build(
        Method::SEND,
        Class::Indication,
        TransactionId::new([9; 12]),
        &list,
        None,
    )
}

/// An allocated client with a permission and channel 0x4000 to `peer()`.
fn ready(h: &mut Harness) -> (Client, SocketAddr) {
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    assert_eq!(h.channel_bind(&mut c, 0x4000, peer()), None);
    (c, relayed)
}

// ---------------------------------------------------------------------------------------
// Authentication (RFC 8489 §9.2.4, RFC 8656 §5, §7.2 step 1)
// ---------------------------------------------------------------------------------------

#[test]
fn allocate_with_md5_after_401_challenge() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    let m = Message::parse(&challenge).unwrap();
    assert_eq!(code(&challenge), Some(401));
    assert_eq!(m.require::<Realm<'_>>().unwrap().as_str(), REALM);
    let nonce = m.require::<Nonce<'_>>().unwrap();
    assert!(
        nonce.as_bytes().starts_with(b"obMatJos2AAAB"),
        "nonce cookie with password algorithms"
    );
    assert!(
        m.require::<PasswordAlgorithms<'_>>()
            .unwrap()
            .same_as(&PasswordAlgorithms::new(&[2, 1]))
    );
    assert!(!m.has_message_integrity() && !m.has(AttributeType::SOFTWARE));
    assert_eq!(
        h.server.stats().allocations,
        0,
        "the challenge costs no state"
    );

    c.learn_nonce(&challenge);
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let resp = h.exchange(&c, &req).unwrap();
    let m = Message::parse(&resp).unwrap();
    assert_eq!(code(&resp), None);
    assert_eq!(
        m.verify_integrity(&c.key()).unwrap(),
        IntegrityAlgorithm::Sha1
    );
    assert_eq!(lifetime(&resp), 600);
    assert_eq!(m.require::<XorMappedAddress>().unwrap().0, c.addr);
    assert!(
        m.get::<Software<'_>>().unwrap().is_some(),
        "SOFTWARE in Allocate responses"
    );
    let r = relayed(&resp);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ip(), relay_ip());
    assert!((50000..=50099).contains(&r[0].port()));
    let events = h.events();
    assert!(events.contains(&ServerEvent::BindRelay {
        relayed: r[0],
        transport: TransportProtocol::Udp
    }));
    assert!(
        matches!(&events[..], [_, ServerEvent::AllocationCreated { username, .. }] if username == "alice")
    );
    assert_eq!(h.server.stats().allocations, 1);
}

#[test]
fn allocate_with_sha256_password_algorithm() {
    let mut h = Harness::new(config());
    let mut c = Client::alice().negotiating(Algorithm::Sha256);
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP]);
    assert_eq!(code(&resp), None);
    let m = Message::parse(&resp).unwrap();
    assert!(!m.has_message_integrity(), "SHA-256 only, as negotiated");
    assert_eq!(
        m.verify_integrity(&c.key()).unwrap(),
        IntegrityAlgorithm::Sha256
    );
    // The MD5 key does not verify it: the SHA-256 key was used.
    let md5 = LongTermKey::derive(Algorithm::Md5, "alice", REALM, "alice-pw").integrity_key();
    assert!(m.verify_integrity(&md5).is_err());

    // MD5 chosen from the list still answers with MESSAGE-INTEGRITY-SHA256.
    let mut c = Client::new("198.51.100.11:40000", "bob", "bob-pw").negotiating(Algorithm::Md5);
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP]);
    let m = Message::parse(&resp).unwrap();
    assert_eq!(
        m.verify_integrity(&c.key()).unwrap(),
        IntegrityAlgorithm::Sha256
    );
}

#[test]
fn bid_down_attempts_get_400() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    c.learn_nonce(&challenge);
    let key = LongTermKey::derive(Algorithm::Md5, "alice", REALM, "alice-pw").integrity_key();
    let attempt = |c: &mut Client, extra: &[&dyn EncodeAttribute]| {
        let tid = c.tid();
        let mut buf = vec![0u8; 1024];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::Request),
            tid,
        )
        .unwrap();
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&Username::new("alice").unwrap()).unwrap();
        b.add(&Realm::new(REALM).unwrap()).unwrap();
        b.add(&Nonce::new(&c.nonce).unwrap()).unwrap();
        for a in extra {
            b.add(*a).unwrap();
        }
        b.add_message_integrity(&key).unwrap();
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    };
    let md5 = PasswordAlgorithm::new(1);
    let sha = PasswordAlgorithm::new(2);
    let offered = PasswordAlgorithms::new(&[2, 1]);
    let md5_only = PasswordAlgorithms::new(&[1]);
    let reordered = PasswordAlgorithms::new(&[1, 2]);
    let cases: [&[&dyn EncodeAttribute]; 5] = [
        &[&md5],                                 // PASSWORD-ALGORITHM without the list
        &[&offered],                             // the list without a choice
        &[&md5_only, &md5], // a list other than the one offered (stripped SHA-256)
        &[&reordered, &md5], // reordered
        &[&PasswordAlgorithms::new(&[2]), &sha], // truncated
    ];
    for extra in cases {
        let req = attempt(&mut c, extra);
        let resp = h.exchange(&c, &req).unwrap();
        assert_eq!(code(&resp), Some(400), "{extra:?}", extra = extra.len());
        assert!(
            !Message::parse(&resp).unwrap().has(AttributeType::NONCE),
            "400 carries no nonce"
        );
    }
    // Neither attribute: processed as MD5 (RFC 8489 §9.2.4) and accepted.
    let req = attempt(&mut c, &[]);
    assert_eq!(code(&h.exchange(&c, &req).unwrap()), None);
    assert_eq!(h.server.stats().errors.bad_request, 5);
}

#[test]
fn stale_forged_and_foreign_nonces_get_438_with_a_fresh_nonce() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    c.learn_nonce(&challenge);
    let old = c.nonce.clone();
    h.advance(Duration::from_secs(601));
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let resp = h.exchange(&c, &req).unwrap();
    assert_eq!(code(&resp), Some(438));
    let m = Message::parse(&resp).unwrap();
    assert!(m.has(AttributeType::REALM) && m.has(AttributeType::PASSWORD_ALGORITHMS));
    c.learn_nonce(&resp);
    assert_ne!(c.nonce, old, "a fresh nonce");
    // The same nonce from another IP is stale.
    let mut thief = Client::new("198.51.100.99:40000", "bob", "bob-pw");
    thief.nonce = c.nonce.clone();
    let (_, req) = thief.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&h.exchange(&thief, &req).unwrap()), Some(438));
    // A forged nonce (right cookie, made-up body) is stale.
    let mut forger = Client::new("198.51.100.98:40000", "bob", "bob-pw");
    forger.nonce = b"obMatJos2AAAB_____AAAAAAAAAAAAAAAAAAAAAAA".to_vec();
    let (_, req) = forger.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&h.exchange(&forger, &req).unwrap()), Some(438));
    // With the fresh nonce the retry succeeds.
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&h.exchange(&c, &req).unwrap()), None);
    assert_eq!(h.server.stats().errors.stale_nonce, 3);
}

#[test]
fn bad_credentials_get_401_or_400() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let nonce_src = h.exchange(&c, &first).unwrap();
    // Wrong password, unknown user: 401 with realm and nonce, no integrity.
    for (user, pass) in [("alice", "wrong"), ("mallory", "x")] {
        let mut bad = Client::new("198.51.100.10:40000", user, pass);
        bad.learn_nonce(&nonce_src);
        let (_, req) = bad.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
        let resp = h.exchange(&bad, &req).unwrap();
        assert_eq!(code(&resp), Some(401));
        let m = Message::parse(&resp).unwrap();
        assert!(m.has(AttributeType::NONCE) && !m.has_message_integrity());
    }
    // Integrity without REALM: 400.
    let tid = c.tid();
    let mut buf = vec![0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        tid,
    )
    .unwrap();
    b.add(&RequestedTransport::UDP).unwrap();
    b.add(&Username::new("alice").unwrap()).unwrap();
    b.add_message_integrity(&c.key()).unwrap();
    let req = b.finish().to_vec();
    assert_eq!(code(&h.exchange(&c, &req).unwrap()), Some(400));
    assert_eq!(h.server.stats().allocations, 0);
}

#[test]
fn rest_credentials_valid_expired_and_forged() {
    let mut h = Harness::new(config());
    let (user, pass) = rest_credentials(b"rest-secret", UNIX0 + 100, "carol");
    let mut c = Client::new("198.51.100.20:40000", &user, &pass);
    h.allocate(&mut c);

    // Forged: another secret.
    let (user, pass) = rest_credentials(b"guess", UNIX0 + 3600, "erin");
    let mut e = Client::new("198.51.100.22:40000", &user, &pass);
    assert_eq!(
        code(&h.allocate_with(&mut e, &[&RequestedTransport::UDP])),
        Some(401)
    );

    // Expired by the wall clock (start + elapsed virtual time).
    h.advance(Duration::from_secs(101));
    let mut d = Client::new("198.51.100.21:40000", &c.username, &c.password);
    assert_eq!(
        code(&h.allocate_with(&mut d, &[&RequestedTransport::UDP])),
        Some(401)
    );

    // The allocation made while it was valid can still be refreshed: its stored key
    // authenticates its own user (RFC 8656 §6).
    assert_eq!(code(&h.refresh(&mut c, None)), None);
    assert_eq!(h.server.stats().errors.unauthenticated, 5);
}

#[test]
fn userhash_identifies_static_users() {
    let mut h = Harness::new(config());
    let mut c = Client::alice().negotiating(Algorithm::Sha256);
    c.userhash = true;
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP]);
    assert_eq!(code(&resp), None);
    assert!(h.events().iter().any(
        |e| matches!(e, ServerEvent::AllocationCreated { username, .. } if username == "alice")
    ));
}

#[test]
fn announced_username_anonymity() {
    let mut config = config();
    config.userhash = true;
    let mut h = Harness::new(config);
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    let nonce = Message::parse(&challenge)
        .unwrap()
        .require::<Nonce<'_>>()
        .unwrap()
        .as_bytes()
        .to_vec();
    assert!(nonce.starts_with(b"obMatJos2AAAD"), "both feature bits");
}

// ---------------------------------------------------------------------------------------
// Allocate (RFC 8656 §7.2)
// ---------------------------------------------------------------------------------------

#[test]
fn allocate_checks_in_rfc_order() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let even = EvenPort::default();
    let cases: Vec<(Vec<&dyn EncodeAttribute>, u16)> = vec![
        (vec![], 400),                         // step 3: missing
        (vec![&RequestedTransport::TCP], 442), // step 3: not UDP
        (vec![&RequestedTransport(99)], 442),
        (
            vec![&RequestedTransport::UDP, &ReservationToken([1; 8]), &even],
            400,
        ), // step 5
        (
            vec![&RequestedTransport::UDP, &ReservationToken([1; 8])],
            508,
        ), // step 5: unknown token
        (
            vec![
                &RequestedTransport::UDP,
                &RequestedAddressFamily(AddressFamily::Ipv4),
                &AdditionalAddressFamily(AddressFamily::Ipv6),
            ],
            400,
        ), // step 6
        (
            vec![
                &RequestedTransport::UDP,
                &RequestedAddressFamily(AddressFamily::Ipv6),
            ],
            440,
        ), // step 7
        (
            vec![
                &RequestedTransport::UDP,
                &EvenPort { reserve: true },
                &AdditionalAddressFamily(AddressFamily::Ipv6),
            ],
            400,
        ), // step 8
        (
            vec![
                &RequestedTransport::UDP,
                &AdditionalAddressFamily(AddressFamily::Ipv4),
            ],
            400,
        ), // step 9
    ];
    for (attrs, expected) in cases {
        let resp = h.allocate_with(&mut c, &attrs);
        assert_eq!(code(&resp), Some(expected));
        let m = Message::parse(&resp).unwrap();
        assert!(
            m.verify_integrity(&c.key()).is_ok(),
            "errors after authentication are signed"
        );
        assert!(m.has(AttributeType::SOFTWARE));
    }
    assert_eq!(h.server.stats().allocations, 0);
    let e = h.server.stats().errors;
    assert_eq!(
        (
            e.bad_request,
            e.unsupported_transport,
            e.address_family_not_supported,
            e.insufficient_capacity
        ),
        (5, 2, 1, 1)
    );
}

#[test]
fn unknown_comprehension_required_attributes_get_420() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let weird = stun_proto::attributes::RawAttribute {
        attr_type: AttributeType(0x7777),
        value: b"x",
    };
    let (_, req) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP, &weird]);
    let resp = h.exchange(&c, &req).unwrap();
    assert_eq!(code(&resp), Some(420));
    let m = Message::parse(&resp).unwrap();
    assert!(
        m.require::<UnknownAttributes<'_>>()
            .unwrap()
            .iter()
            .eq([AttributeType(0x7777)])
    );
    // Comprehension-optional unknown attributes are ignored.
    let optional = stun_proto::attributes::RawAttribute {
        attr_type: AttributeType(0xC001),
        value: b"x",
    };
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP, &optional]);
    assert_eq!(code(&resp), None);
}

#[test]
fn dont_fragment_accepted_or_unknown() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP, &DontFragment])),
        None
    );

    let mut cfg = config();
    cfg.dont_fragment = false;
    let mut h = Harness::new(cfg);
    let mut c = Client::alice();
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP, &DontFragment]);
    assert_eq!(code(&resp), Some(420));
    let m = Message::parse(&resp).unwrap();
    assert!(
        m.require::<UnknownAttributes<'_>>()
            .unwrap()
            .iter()
            .eq([AttributeType::DONT_FRAGMENT])
    );
}

#[test]
fn existing_five_tuple_gets_437_but_a_retransmission_its_response() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    c.learn_nonce(&challenge);
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let resp = h.exchange(&c, &req).unwrap();
    assert_eq!(code(&resp), None);
    let binds = h
        .events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::BindRelay { .. }))
        .count();
    assert_eq!(binds, 1);

    // Retransmission: identical bytes, not executed again.
    assert_eq!(h.exchange(&c, &req).unwrap(), resp);
    assert!(h.events().is_empty(), "no second bind");
    assert_eq!(h.server.stats().allocations, 1);
    assert_eq!(h.server.stats().retransmissions, 1);

    // A new Allocate (new transaction) on the same 5-tuple: 437.
    let (_, again) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(code(&h.exchange(&c, &again).unwrap()), Some(437));

    // After the cache forgot (40 s), the same transaction is still answered with success.
    h.advance(Duration::from_secs(41));
    assert_eq!(h.server.stats().cached_responses, 0);
    let late = h.exchange(&c, &req).unwrap();
    assert_eq!(code(&late), None);
    assert_eq!(relayed(&late), relayed(&resp));
    assert_eq!(lifetime(&late), 600 - 41);
    assert_eq!(h.server.stats().allocations, 1);
}

#[test]
fn dual_stack_allocations() {
    let mut cfg = config();
    cfg.relays.push(RelayRange {
        ip: "2001:db8::1".parse().unwrap(),
        ports: 50000..=50099,
    });
    let mut h = Harness::new(cfg);
    let mut c = Client::alice();
    let resp = h.allocate_with(
        &mut c,
        &[
            &RequestedTransport::UDP,
            &AdditionalAddressFamily(AddressFamily::Ipv6),
        ],
    );
    assert_eq!(code(&resp), None);
    let r = relayed(&resp);
    assert_eq!(r.len(), 2);
    assert!(r[0].is_ipv4() && r[1].is_ipv6());
    // Both families can be used: permissions for a v4 and a v6 peer.
    assert_eq!(h.create_permission(&mut c, peer()), None);
    assert_eq!(
        h.create_permission(&mut c, sa("[2001:db8:1::5]:7000")),
        None
    );
    // Refresh one family only, then delete it; the other stays.
    let (_, req) = c.request(
        Method::REFRESH,
        &[&RequestedAddressFamily(AddressFamily::Ipv6), &Lifetime(0)],
    );
    assert_eq!(code(&h.exchange(&c, &req).unwrap()), None);
    assert!(h.events().contains(&ServerEvent::ReleaseRelay {
        relayed: r[1],
        transport: TransportProtocol::Udp
    }));
    assert_eq!(h.server.stats().allocations, 1);
    assert_eq!(
        h.server.stats().permissions,
        1,
        "the v6 permission went with its relay"
    );
    let (_, req) = c.request(
        Method::REFRESH,
        &[&RequestedAddressFamily(AddressFamily::Ipv6)],
    );
    assert_eq!(code(&h.exchange(&c, &req).unwrap()), Some(443));

    // IPv6 only.
    let mut d = Client::new("198.51.100.30:40000", "bob", "bob-pw");
    let resp = h.allocate_with(
        &mut d,
        &[
            &RequestedTransport::UDP,
            &RequestedAddressFamily(AddressFamily::Ipv6),
        ],
    );
    let r = relayed(&resp);
    assert_eq!(r.len(), 1);
    assert!(r[0].is_ipv6());
    // A v4 peer on a v6-only allocation: 443.
    assert_eq!(h.create_permission(&mut d, peer()), Some(443));
}

#[test]
fn dual_request_without_ipv6_gets_address_error_code() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let resp = h.allocate_with(
        &mut c,
        &[
            &RequestedTransport::UDP,
            &AdditionalAddressFamily(AddressFamily::Ipv6),
        ],
    );
    assert_eq!(code(&resp), None);
    assert_eq!(relayed(&resp).len(), 1);
    let m = Message::parse(&resp).unwrap();
    let e = m.require::<AddressErrorCode<'_>>().unwrap();
    assert_eq!((e.family, e.code()), (AddressFamily::Ipv6, 440));
}

#[test]
fn even_port_and_reservation_token() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let resp = h.allocate_with(
        &mut c,
        &[&RequestedTransport::UDP, &EvenPort { reserve: true }],
    );
    assert_eq!(code(&resp), None);
    let port = relayed(&resp)[0].port();
    assert_eq!(port % 2, 0);
    let token = Message::parse(&resp)
        .unwrap()
        .require::<ReservationToken>()
        .unwrap();

    // Another client (any 5-tuple) gets port + 1 with the token.
    let mut d = Client::new("198.51.100.31:40000", "bob", "bob-pw");
    let resp = h.allocate_with(&mut d, &[&RequestedTransport::UDP, &token]);
    assert_eq!(code(&resp), None);
    assert_eq!(relayed(&resp)[0].port(), port + 1);
    // A token works once.
    let mut e = Client::new("198.51.100.32:40000", "bob", "bob-pw");
    assert_eq!(
        code(&h.allocate_with(&mut e, &[&RequestedTransport::UDP, &token])),
        Some(508)
    );

    // EVEN-PORT without R: even, no token.
    let resp = h.allocate_with(&mut e, &[&RequestedTransport::UDP, &EvenPort::default()]);
    assert_eq!(relayed(&resp)[0].port() % 2, 0);
    assert!(
        !Message::parse(&resp)
            .unwrap()
            .has(AttributeType::RESERVATION_TOKEN)
    );

    // An unused reservation expires after 30 s.
    let mut f = Client::new("198.51.100.33:40000", "bob", "bob-pw");
    let resp = h.allocate_with(
        &mut f,
        &[&RequestedTransport::UDP, &EvenPort { reserve: true }],
    );
    let token = Message::parse(&resp)
        .unwrap()
        .require::<ReservationToken>()
        .unwrap();
    h.advance(Duration::from_secs(31));
    let mut g = Client::new("198.51.100.34:40000", "bob", "bob-pw");
    assert_eq!(
        code(&h.allocate_with(&mut g, &[&RequestedTransport::UDP, &token])),
        Some(508)
    );
}

#[test]
fn quotas_per_user_per_ip_and_total() {
    let mut cfg = config();
    cfg.quotas.per_user = Some(2);
    cfg.quotas.per_client_ip = Some(3);
    cfg.quotas.total = Some(5);
    let mut h = Harness::new(cfg);
    for port in [1, 2] {
        let mut c = Client::new(&format!("198.51.100.40:{port}"), "alice", "alice-pw");
        h.allocate(&mut c);
    }
    let mut c = Client::new("198.51.100.40:3", "alice", "alice-pw");
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP])),
        Some(486),
        "per user"
    );
    let mut c = Client::new("198.51.100.40:4", "bob", "bob-pw");
    h.allocate(&mut c);
    let mut c = Client::new("198.51.100.40:5", "bob", "bob-pw");
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP])),
        Some(486),
        "per IP"
    );
    // REST users share the quota of their user part.
    for (i, expiry) in [(6, 100), (7, 200)] {
        let (u, p) = rest_credentials(b"rest-secret", UNIX0 + expiry, "carol");
        let mut c = Client::new(&format!("198.51.100.41:{i}"), &u, &p);
        h.allocate(&mut c);
    }
    let (u, p) = rest_credentials(b"rest-secret", UNIX0 + 300, "carol");
    let mut c = Client::new("198.51.100.42:8", &u, &p);
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP])),
        Some(486),
        "REST user part"
    );
    let (u, p) = rest_credentials(b"rest-secret", UNIX0 + 300, "dave");
    let mut c = Client::new("198.51.100.42:9", &u, &p);
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP])),
        Some(486),
        "total"
    );
    assert_eq!(h.server.stats().allocations, 5);
    assert_eq!(h.server.stats().errors.quota_reached, 4);
}

#[test]
fn port_pool_exhaustion_gets_508() {
    let mut cfg = config();
    cfg.relays[0].ports = 50000..=50001;
    let mut h = Harness::new(cfg);
    for port in [1, 2] {
        h.allocate(&mut Client::new(
            &format!("198.51.100.50:{port}"),
            "alice",
            "alice-pw",
        ));
    }
    let mut c = Client::new("198.51.100.51:1", "bob", "bob-pw");
    assert_eq!(
        code(&h.allocate_with(&mut c, &[&RequestedTransport::UDP])),
        Some(508)
    );
}

// ---------------------------------------------------------------------------------------
// Relay binds (driver-confirmed)
// ---------------------------------------------------------------------------------------

fn driver_config(ports: std::ops::RangeInclusive<u16>) -> ServerConfig {
    let mut c = config();
    c.relay_binding = RelayBinding::Driver;
    c.relays[0].ports = ports;
    c
}

fn bind_request(h: &mut Harness) -> SocketAddr {
    let binds: Vec<SocketAddr> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::BindRelay { relayed, .. } => Some(relayed),
            _ => None,
        })
        .collect();
    assert_eq!(binds.len(), 1);
    binds[0]
}

#[test]
fn allocate_waits_for_the_driver_bind() {
    let mut h = Harness::new(driver_config(50000..=50099));
    let mut c = Client::alice();
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    c.learn_nonce(&challenge);
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(h.exchange(&c, &req), None, "no answer before the bind");
    let relayed = bind_request(&mut h);
    // A retransmission while pending is not executed again.
    assert_eq!(h.exchange(&c, &req), None);
    assert_eq!(h.server.stats().drops.pending_retransmission, 1);
    // Peer data before the bind is confirmed is not relayed.
    assert_eq!(h.peer_sends(peer(), relayed, b"early"), None);
    h.server.relay_bound(h.now, relayed, Ok(())).unwrap();
    let resp = h.transmits().pop().unwrap().payload;
    assert_eq!(code(&resp), None);
    assert_eq!(relayed_of(&resp), relayed);
    assert_eq!(
        h.server.relay_bound(h.now, relayed, Ok(())),
        Err(RelayBoundError::NotPending(relayed))
    );
    assert_eq!(
        h.server.relay_bound(h.now, sa("192.0.2.1:50050"), Ok(())),
        Err(RelayBoundError::NotPending(sa("192.0.2.1:50050")))
    );
}

fn relayed_of(resp: &[u8]) -> SocketAddr {
    relayed(resp)[0]
}

/// The 401 dance and an authenticated Allocate in driver mode; returns the relay the
/// server asks the driver to bind.
fn start_allocate(h: &mut Harness, c: &mut Client) -> SocketAddr {
    if c.nonce.is_empty() {
        let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
        let challenge = h.exchange(c, &first).unwrap();
        c.learn_nonce(&challenge);
    }
    let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    assert_eq!(h.exchange(c, &req), None, "answered only after the bind");
    bind_request(h)
}

#[test]
fn failed_relay_bind_gets_508_and_quarantines_the_port() {
    let mut h = Harness::new(driver_config(50000..=50001));
    let mut c = Client::alice();
    let a = start_allocate(&mut h, &mut c);
    h.server
        .relay_bound(h.now, a, Err(BindFailure::AddressInUse))
        .unwrap();
    let resp = h.transmits().pop().unwrap().payload;
    assert_eq!(code(&resp), Some(508));
    assert!(
        Message::parse(&resp)
            .unwrap()
            .verify_integrity(&c.key())
            .is_ok()
    );
    assert_eq!(h.server.stats().allocations, 0);
    assert_eq!(h.server.stats().failed_binds, 1);
    assert_eq!(
        h.events(),
        [ServerEvent::AllocationDeleted {
            five_tuple: turn_proto::server::FiveTuple {
                client: c.addr,
                server: listen(),
                transport: TransportProtocol::Udp
            },
            reason: DeleteReason::BindFailed,
        }],
        "nothing to release: the bind failed"
    );

    // The failed port sits out; the other one serves the next Allocate.
    let b = start_allocate(&mut h, &mut c);
    assert_ne!(a, b);
    h.server.relay_bound(h.now, b, Ok(())).unwrap();
    assert_eq!(code(&h.transmits().pop().unwrap().payload), None);
    let mut d = Client::new("198.51.100.60:1", "bob", "bob-pw");
    assert_eq!(
        code(&h.allocate_with(&mut d, &[&RequestedTransport::UDP])),
        Some(508),
        "pool empty"
    );
    h.advance(Duration::from_secs(61));
    assert_eq!(
        start_allocate(&mut h, &mut d),
        a,
        "back after the quarantine"
    );
}

#[test]
fn relay_bind_timeout_gets_508_and_releases_the_socket() {
    let mut h = Harness::new(driver_config(50000..=50099));
    let mut c = Client::alice();
    let a = start_allocate(&mut h, &mut c);
    h.advance(Duration::from_secs(6));
    let resp = h.transmits().pop().unwrap().payload;
    assert_eq!(code(&resp), Some(508));
    let events = h.events();
    assert!(events.contains(&ServerEvent::ReleaseRelay {
        relayed: a,
        transport: TransportProtocol::Udp
    }));
    assert_eq!(h.server.stats().allocations, 0);
    assert_eq!(
        h.server.relay_bound(h.now, a, Ok(())),
        Err(RelayBoundError::NotPending(a))
    );
}

// ---------------------------------------------------------------------------------------
// Refresh (RFC 8656 §8.2) and ownership (§5)
// ---------------------------------------------------------------------------------------

#[test]
fn refresh_clamps_lifetimes_and_zero_deletes() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let resp = h.allocate_with(&mut c, &[&RequestedTransport::UDP, &Lifetime(10_000)]);
    assert_eq!(lifetime(&resp), 3600, "clamped to the maximum");
    for (asked, granted) in [
        (None, 600),
        (Some(100), 600),
        (Some(1800), 1800),
        (Some(99_999), 3600),
    ] {
        let resp = h.refresh(&mut c, asked);
        assert_eq!(code(&resp), None);
        assert_eq!(lifetime(&resp), granted, "asked {asked:?}");
        assert!(Message::parse(&resp).unwrap().has(AttributeType::SOFTWARE));
    }
    let relayed = relayed_of(&h.allocate_with(
        &mut Client::new("198.51.100.61:1", "bob", "bob-pw"),
        &[&RequestedTransport::UDP],
    ));
    h.events();
    let (_, delete) = c.request(Method::REFRESH, &[&Lifetime(0)]);
    let resp = h.exchange(&c, &delete).unwrap();
    assert_eq!((code(&resp), lifetime(&resp)), (None, 0));
    let events = h.events();
    assert!(matches!(
        &events[..],
        [
            ServerEvent::ReleaseRelay { .. },
            ServerEvent::AllocationDeleted {
                reason: DeleteReason::Deleted,
                ..
            }
        ]
    ));
    assert_ne!(
        events[0],
        ServerEvent::ReleaseRelay {
            relayed,
            transport: TransportProtocol::Udp
        }
    );
    // The retransmitted delete gets the same success; a new request finds no allocation.
    assert_eq!(h.exchange(&c, &delete).unwrap(), resp);
    assert_eq!(code(&h.refresh(&mut c, None)), Some(437));
    assert_eq!(h.create_permission(&mut c, peer()), Some(437));
    assert_eq!(h.channel_bind(&mut c, 0x4000, peer()), Some(437));
    assert_eq!(h.server.stats().allocations, 1);
}

#[test]
fn another_user_on_the_five_tuple_gets_441() {
    let mut h = Harness::new(config());
    let mut alice = Client::alice();
    h.allocate(&mut alice);
    let mut bob = Client::new("198.51.100.10:40000", "bob", "bob-pw");
    bob.nonce = alice.nonce.clone();
    bob.next = 100; // its own transaction IDs: same address + same ID would be a retransmission
    for method in [
        Method::REFRESH,
        Method::CREATE_PERMISSION,
        Method::CHANNEL_BIND,
    ] {
        let (_, req) = bob.request(method, &[&ChannelNumber(0x4000), &XorPeerAddress(peer())]);
        let resp = h.exchange(&bob, &req).unwrap();
        assert_eq!(code(&resp), Some(441));
        assert!(
            Message::parse(&resp)
                .unwrap()
                .verify_integrity(&bob.key())
                .is_ok()
        );
    }
    assert_eq!(h.server.stats().errors.wrong_credentials, 3);
}

// ---------------------------------------------------------------------------------------
// CreatePermission (§10.2), ChannelBind (§12.2), peer policy
// ---------------------------------------------------------------------------------------

#[test]
fn create_permission_rules() {
    let mut cfg = config();
    cfg.quotas.permissions_per_allocation = 3;
    let mut h = Harness::new(cfg);
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    assert_eq!(
        code(&h.call(&mut c, Method::CREATE_PERMISSION, &[])),
        Some(400),
        "no XOR-PEER-ADDRESS"
    );
    assert_eq!(
        h.create_permission(&mut c, sa("[2001:db8::5]:1")),
        Some(443)
    );
    assert_eq!(h.create_permission(&mut c, sa("10.0.0.1:1")), Some(403));
    // All or nothing: one denied peer fails the request and installs nothing.
    let (a, b) = (sa("203.0.113.1:1"), sa("203.0.113.2:1"));
    let resp = h.call(
        &mut c,
        Method::CREATE_PERMISSION,
        &[
            &XorPeerAddress(a),
            &XorPeerAddress(sa("127.0.0.1:1")),
            &XorPeerAddress(b),
        ],
    );
    assert_eq!(code(&resp), Some(403));
    assert_eq!(h.server.stats().permissions, 0);
    assert_eq!(h.peer_sends(a, relayed, b"x"), None);
    // Several at once; ports are ignored.
    let resp = h.call(
        &mut c,
        Method::CREATE_PERMISSION,
        &[&XorPeerAddress(a), &XorPeerAddress(b)],
    );
    assert_eq!(code(&resp), None);
    assert_eq!(h.server.stats().permissions, 2);
    assert!(h.peer_sends(sa("203.0.113.1:999"), relayed, b"x").is_some());
    // The limit: a third peer fits, a fourth does not.
    assert_eq!(h.create_permission(&mut c, sa("203.0.113.3:1")), None);
    assert_eq!(h.create_permission(&mut c, sa("203.0.113.4:1")), Some(508));
    assert_eq!(
        h.create_permission(&mut c, a),
        None,
        "refreshing an existing one is fine"
    );
}

#[test]
fn channel_bind_rules() {
    let mut cfg = config();
    cfg.quotas.channels_per_allocation = 2;
    let mut h = Harness::new(cfg);
    let mut c = Client::alice();
    h.allocate(&mut c);
    let (p, q, r) = (peer(), sa("203.0.113.6:7000"), sa("203.0.113.7:7000"));
    assert_eq!(h.channel_bind(&mut c, 0x3FFF, p), Some(400));
    assert_eq!(h.channel_bind(&mut c, 0x5000, p), Some(400));
    assert_eq!(
        code(&h.call(&mut c, Method::CHANNEL_BIND, &[&XorPeerAddress(p)])),
        Some(400)
    );
    assert_eq!(
        code(&h.call(&mut c, Method::CHANNEL_BIND, &[&ChannelNumber(0x4000)])),
        Some(400)
    );
    assert_eq!(h.channel_bind(&mut c, 0x4000, p), None);
    assert_eq!(
        h.channel_bind(&mut c, 0x4000, p),
        None,
        "same channel, same peer: refresh"
    );
    assert_eq!(
        h.channel_bind(&mut c, 0x4000, q),
        Some(400),
        "channel bound to another peer"
    );
    assert_eq!(
        h.channel_bind(&mut c, 0x4001, p),
        Some(400),
        "peer bound to another channel"
    );
    assert_eq!(h.channel_bind(&mut c, 0x4001, q), None);
    assert_eq!(
        h.channel_bind(&mut c, 0x4002, r),
        Some(508),
        "channel limit"
    );
    assert_eq!(
        h.channel_bind(&mut c, 0x4FFF, sa("[2001:db8::5]:1")),
        Some(443)
    );
    assert_eq!(
        h.channel_bind(&mut c, 0x4FFF, sa("192.168.0.1:1")),
        Some(403)
    );
    let s = h.server.stats();
    assert_eq!(
        (s.channels, s.permissions),
        (2, 2),
        "a channel installs a permission"
    );
}

const DENIED: [&str; 16] = [
    "[::ffff:127.0.0.1]:9",
    "[::127.0.0.1]:9",
    "0.0.0.0:9",
    "[::]:9",
    "127.0.0.1:9",
    "[::1]:9",
    "169.254.1.1:9",
    "[fe80::1]:9",
    "224.0.0.1:9",
    "[ff02::1]:9",
    "255.255.255.255:9",
    "10.1.2.3:9",
    "172.16.5.4:9",
    "192.168.1.1:9",
    "[fc00::1]:9",
    "[fd00::1]:9",
];

fn dual_config() -> ServerConfig {
    let mut cfg = config();
    cfg.relays.push(RelayRange {
        ip: "2001:db8::1".parse().unwrap(),
        ports: 50000..=50099,
    });
    cfg
}

#[test]
fn denied_peers_in_create_permission_channel_bind_and_send() {
    let mut h = Harness::new(dual_config());
    let mut c = Client::alice();
    let resp = h.allocate_with(
        &mut c,
        &[
            &RequestedTransport::UDP,
            &AdditionalAddressFamily(AddressFamily::Ipv6),
        ],
    );
    assert_eq!(relayed(&resp).len(), 2);
    for (i, peer) in DENIED.iter().map(|s| sa(s)).enumerate() {
        assert_eq!(
            h.create_permission(&mut c, peer),
            Some(403),
            "CreatePermission {peer}"
        );
        assert_eq!(
            h.channel_bind(&mut c, 0x4000 + i as u16, peer),
            Some(403),
            "ChannelBind {peer}"
        );
        let ind = send_indication(peer, b"x", &[]);
        assert_eq!(
            h.input(TransportProtocol::Udp, c.addr, c.server, &ind),
            None,
            "Send {peer}"
        );
    }
    let s = h.server.stats();
    assert_eq!(s.errors.forbidden, 2 * DENIED.len() as u64);
    assert_eq!(s.drops.denied_peer, DENIED.len() as u64);
    assert_eq!((s.permissions, s.channels, s.to_peer.packets), (0, 0, 0));
}

#[test]
fn loopback_can_be_allowed_explicitly() {
    let mut cfg = config();
    cfg.relays[0].ip = "127.0.0.1".parse().unwrap();
    cfg.peer_policy.allow.push("127.0.0.0/8".parse().unwrap());
    let mut h = Harness::new(cfg);
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    let lo = sa("127.0.0.1:9000");
    assert_eq!(h.create_permission(&mut c, lo), None);
    let sent = h
        .input(
            TransportProtocol::Udp,
            c.addr,
            c.server,
            &send_indication(lo, b"ping", &[]),
        )
        .unwrap();
    assert_eq!(
        (sent.source, sent.destination, &sent.data[..]),
        (relayed, lo, &b"ping"[..])
    );
    assert!(h.peer_sends(lo, relayed, b"pong").is_some());
    assert_eq!(
        h.create_permission(&mut c, sa("10.0.0.1:1")),
        Some(403),
        "only what was allowed"
    );
}

/// The server's own listening address is never a peer (TURN over TURN, loops), even where
/// the policy allows its IP; another allocation's relayed address on the same IP is.
#[test]
fn the_servers_own_listening_address_is_not_a_peer() {
    let mut h = Harness::new(config());
    let mut alice = Client::alice();
    let mut bob = Client::new("198.51.100.11:40000", "bob", "bob-pw");
    let relayed_a = h.allocate(&mut alice);
    let relayed_b = h.allocate(&mut bob);
    // 192.0.2.1 is both the listening and the relay IP; permissions are by IP.
    assert_eq!(h.create_permission(&mut alice, relayed_b), None);
    assert_eq!(h.channel_bind(&mut alice, 0x4001, listen()), Some(403));
    assert_eq!(
        h.input(
            TransportProtocol::Udp,
            alice.addr,
            alice.server,
            &send_indication(listen(), b"loop", &[])
        ),
        None,
        "nothing relayed to the listening port"
    );
    assert_eq!(h.server.stats().drops.denied_peer, 1);
    // Client to client on the same server still works.
    let sent = h
        .input(
            TransportProtocol::Udp,
            alice.addr,
            alice.server,
            &send_indication(relayed_b, b"hi bob", &[]),
        )
        .unwrap();
    assert_eq!(
        (sent.source, sent.destination, &sent.data[..]),
        (relayed_a, relayed_b, &b"hi bob"[..])
    );
    assert_eq!(h.channel_bind(&mut alice, 0x4002, relayed_b), None);
}

// ---------------------------------------------------------------------------------------
// The data path (RFC 8656 §9, §11, §12)
// ---------------------------------------------------------------------------------------

#[test]
fn channel_data_both_directions_without_copying() {
    let mut h = Harness::new(config());
    let (c, relayed) = ready(&mut h);

    // Client to peer: the payload is relayed from where it lies in the input buffer.
    let mut buf = channel_data(0x4000, b"hello peer");
    let base = buf.as_ptr();
    match h
        .server
        .handle_input(h.now, ServerInput::udp(c.addr, c.server, &mut buf))
    {
        ServerOutput::Send(d) => {
            assert_eq!(d.data, b"hello peer");
            assert_eq!(
                d.data.as_ptr(),
                base.wrapping_add(4),
                "points into the input"
            );
            assert_eq!((d.source, d.destination), (relayed, peer()));
            assert!(!d.dont_fragment);
        }
        other => panic!("not relayed: {other:?}"),
    }

    // Peer to client: the ChannelData header is written into the headroom.
    let mut buf = vec![0u8; 4 + 5];
    buf[4..].copy_from_slice(b"hello");
    let base = buf.as_ptr();
    match h.server.handle_input(
        h.now,
        ServerInput::udp_with_headroom(peer(), relayed, &mut buf, 4),
    ) {
        ServerOutput::Send(d) => {
            assert_eq!(d.data.as_ptr(), base, "header in place, payload not copied");
            assert_eq!(
                d.data,
                [0x40, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o']
            );
            assert_eq!(
                (d.source, d.destination, d.transport),
                (listen(), c.addr, TransportProtocol::Udp)
            );
        }
        other => panic!("not relayed: {other:?}"),
    }

    // Without headroom the same message is built in the scratch buffer.
    let mut buf = b"hello".to_vec();
    let base = buf.as_ptr();
    match h
        .server
        .handle_input(h.now, ServerInput::udp(peer(), relayed, &mut buf))
    {
        ServerOutput::Send(d) => {
            assert_ne!(d.data.as_ptr(), base);
            assert_eq!(
                d.data,
                [0x40, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o']
            );
        }
        other => panic!("not relayed: {other:?}"),
    }
    let s = h.server.stats();
    assert_eq!((s.to_peer.packets, s.to_peer.bytes), (1, 10));
    assert_eq!(
        (s.to_client.packets, s.to_client.bytes, s.data_indications),
        (2, 10, 0)
    );
}

#[test]
fn send_and_data_indications() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    assert_eq!(h.create_permission(&mut c, peer()), None);

    let mut ind = send_indication(peer(), b"via send", &[&DontFragment]);
    let range = ind.as_ptr_range();
    match h
        .server
        .handle_input(h.now, ServerInput::udp(c.addr, c.server, &mut ind))
    {
        ServerOutput::Send(d) => {
            assert_eq!(d.data, b"via send");
            assert!(
                range.contains(&d.data.as_ptr()),
                "DATA relayed from the input"
            );
            assert_eq!((d.source, d.destination), (relayed, peer()));
            assert!(d.dont_fragment, "DONT-FRAGMENT asks for DF");
        }
        other => panic!("not relayed: {other:?}"),
    }

    // No channel: the peer's datagram comes back as a Data indication.
    let sent = h
        .peer_sends(sa("203.0.113.5:7001"), relayed, b"via data")
        .unwrap();
    assert_eq!((sent.source, sent.destination), (listen(), c.addr));
    let m = Message::parse(&sent.data).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::DATA, Class::Indication)
    );
    assert_eq!(
        m.require::<XorPeerAddress>().unwrap().0,
        sa("203.0.113.5:7001")
    );
    assert_eq!(m.require::<Data<'_>>().unwrap().0, b"via data");
    assert_eq!(h.server.stats().data_indications, 1);

    // Malformed Send indications are dropped.
    let no_data = build(
        Method::SEND,
        Class::Indication,
        TransactionId::new([1; 12]),
        &[&XorPeerAddress(peer())],
        None,
    );
    assert_eq!(
        h.input(TransportProtocol::Udp, c.addr, c.server, &no_data),
        None
    );
    let v6 = send_indication(sa("[2001:db8::9]:1"), b"x", &[]);
    assert_eq!(h.input(TransportProtocol::Udp, c.addr, c.server, &v6), None);
    let d = h.server.stats().drops;
    assert_eq!((d.bad_send_indication, d.family_mismatch), (1, 1));
}

#[test]
fn permissions_are_enforced_both_ways() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    assert_eq!(h.peer_sends(peer(), relayed, b"in"), None);
    let out = send_indication(peer(), b"out", &[]);
    assert_eq!(
        h.input(TransportProtocol::Udp, c.addr, c.server, &out),
        None
    );
    assert_eq!(
        h.input(
            TransportProtocol::Udp,
            c.addr,
            c.server,
            &channel_data(0x4000, b"x")
        ),
        None
    );
    let d = h.server.stats().drops;
    assert_eq!((d.no_permission, d.no_channel), (2, 1));

    assert_eq!(h.create_permission(&mut c, peer()), None);
    assert!(
        h.peer_sends(sa("203.0.113.5:1234"), relayed, b"in")
            .is_some(),
        "any port of the IP"
    );
    assert!(
        h.input(TransportProtocol::Udp, c.addr, c.server, &out)
            .is_some()
    );
    assert_eq!(
        h.peer_sends(sa("203.0.113.55:7000"), relayed, b"in"),
        None,
        "other IPs still not"
    );
    assert_eq!(h.server.stats().drops.no_permission, 3);
}

#[test]
fn nothing_is_relayed_without_an_allocation() {
    let mut h = Harness::new(config());
    let stranger = sa("198.51.100.70:1");
    assert_eq!(
        h.input(
            TransportProtocol::Udp,
            stranger,
            listen(),
            &channel_data(0x4000, b"x")
        ),
        None
    );
    assert_eq!(
        h.input(
            TransportProtocol::Udp,
            stranger,
            listen(),
            &send_indication(peer(), b"x", &[])
        ),
        None
    );
    assert_eq!(h.peer_sends(peer(), sa("192.0.2.1:50000"), b"x"), None);
    assert_eq!(h.server.stats().drops.no_allocation, 3);
    assert!(
        h.transmits().is_empty(),
        "indications and data are never answered"
    );
}

#[test]
fn icmp_errors_reach_the_client_as_data_indications() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    let unreachable = Icmp {
        icmp_type: 3,
        code: 3,
        error_data: 0,
    };
    assert_eq!(
        h.server.handle_icmp(h.now, relayed, peer(), unreachable),
        ServerOutput::Handled,
        "no permission"
    );
    assert_eq!(h.create_permission(&mut c, peer()), None);
    match h.server.handle_icmp(h.now, relayed, peer(), unreachable) {
        ServerOutput::Send(d) => {
            assert_eq!((d.source, d.destination), (listen(), c.addr));
            let m = Message::parse(d.data).unwrap();
            assert_eq!(
                m.message_type(),
                MessageType::new(Method::DATA, Class::Indication)
            );
            assert_eq!(m.require::<XorPeerAddress>().unwrap().0, peer());
            assert_eq!(m.require::<Icmp>().unwrap(), unreachable);
            assert!(!m.has(AttributeType::DATA));
        }
        other => panic!("not relayed: {other:?}"),
    }
    let redirect = Icmp {
        icmp_type: 5,
        code: 0,
        error_data: 0,
    };
    assert_eq!(
        h.server.handle_icmp(h.now, relayed, peer(), redirect),
        ServerOutput::Handled
    );
    let s = h.server.stats();
    assert_eq!(
        (s.icmp_relayed, s.drops.bad_icmp, s.drops.no_permission),
        (1, 1, 1)
    );
}

#[test]
fn channel_data_to_a_stream_client_is_padded() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    c.transport = TransportProtocol::Tcp;
    let relayed = h.allocate(&mut c);
    assert_eq!(h.channel_bind(&mut c, 0x4000, peer()), None);
    let sent = h.peer_sends(peer(), relayed, b"hello").unwrap();
    assert_eq!(sent.transport, TransportProtocol::Tcp);
    assert_eq!(
        sent.data,
        [
            0x40, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0, 0, 0
        ]
    );
    // And the other way, the framer has already cut the padding off.
    let out = h
        .input(
            TransportProtocol::Tcp,
            c.addr,
            c.server,
            &channel_data(0x4000, b"abc"),
        )
        .unwrap();
    assert_eq!(
        (out.transport, &out.data[..]),
        (TransportProtocol::Udp, &b"abc"[..])
    );
}

// ---------------------------------------------------------------------------------------
// Expiry (RFC 8656 §6, §9, §12) on the virtual clock
// ---------------------------------------------------------------------------------------

#[test]
fn permissions_channels_and_allocations_expire() {
    let mut h = Harness::new(config());
    let (mut c, relayed) = ready(&mut h);
    h.advance(Duration::from_secs(299));
    assert!(h.peer_sends(peer(), relayed, b"x").is_some());
    h.advance(Duration::from_secs(2));
    assert_eq!(
        h.peer_sends(peer(), relayed, b"x"),
        None,
        "permission lapsed at 300 s"
    );
    assert_eq!(
        h.input(
            TransportProtocol::Udp,
            c.addr,
            c.server,
            &channel_data(0x4000, b"x")
        ),
        None
    );
    assert_eq!(
        (h.server.stats().permissions, h.server.stats().channels),
        (0, 1)
    );
    assert_eq!(h.create_permission(&mut c, peer()), None);
    assert!(
        h.peer_sends(peer(), relayed, b"x").is_some(),
        "channel still bound"
    );
    h.events();
    h.advance(Duration::from_secs(300));
    let s = h.server.stats();
    assert_eq!(
        (
            s.allocations,
            s.permissions,
            s.channels,
            s.expired_allocations
        ),
        (0, 0, 0, 1)
    );
    assert_eq!(
        h.events(),
        [
            ServerEvent::ReleaseRelay {
                relayed,
                transport: TransportProtocol::Udp
            },
            ServerEvent::AllocationDeleted {
                five_tuple: turn_proto::server::FiveTuple {
                    client: c.addr,
                    server: listen(),
                    transport: TransportProtocol::Udp
                },
                reason: DeleteReason::Expired,
            }
        ]
    );
    assert_eq!(h.peer_sends(peer(), relayed, b"x"), None);
}

#[test]
fn a_channel_expires_after_ten_minutes_unless_rebound() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let relayed = h.allocate_with(&mut c, &[&RequestedTransport::UDP, &Lifetime(3600)]);
    let relayed = relayed_of(&relayed);
    assert_eq!(h.channel_bind(&mut c, 0x4000, peer()), None);
    for _ in 0..3 {
        h.advance(Duration::from_secs(290));
        assert_eq!(h.create_permission(&mut c, peer()), None);
    }
    // 870 s: the channel (600 s) is gone, the permission is not: Data indications now.
    let sent = h.peer_sends(peer(), relayed, b"x").unwrap();
    assert!(
        Message::parse(&sent.data).is_ok(),
        "a Data indication, not ChannelData"
    );
    assert_eq!(h.server.stats().channels, 0);
    // The number can be bound again (to another peer, after the client's 5 minutes).
    assert_eq!(h.channel_bind(&mut c, 0x4000, sa("203.0.113.9:1")), None);
}

#[test]
fn refreshes_keep_everything_alive_for_hours() {
    let mut h = Harness::new(config());
    let (mut c, relayed) = ready(&mut h);
    for minute in 1..=300 {
        h.advance(Duration::from_secs(60));
        if minute % 4 == 0 {
            assert_eq!(h.create_permission(&mut c, peer()), None);
        }
        if minute % 9 == 0 {
            assert_eq!(h.channel_bind(&mut c, 0x4000, peer()), None);
        }
        if minute % 5 == 0 {
            assert_eq!(code(&h.refresh(&mut c, None)), None);
        }
        let sent = h.peer_sends(peer(), relayed, b"tick").unwrap();
        assert_eq!(
            &sent.data[..2],
            &[0x40, 0x00],
            "minute {minute}: still ChannelData"
        );
    }
    let s = h.server.stats();
    assert_eq!((s.allocations, s.permissions, s.channels), (1, 1, 1));
    assert!(
        s.errors.stale_nonce >= 25,
        "nonces rolled over every 10 minutes"
    );
    // Stop refreshing: within the lifetime everything is gone.
    h.advance(Duration::from_secs(601));
    let s = h.server.stats();
    assert_eq!((s.allocations, s.permissions, s.channels), (0, 0, 0));
    assert_eq!(h.peer_sends(peer(), relayed, b"tick"), None);
}

#[test]
fn retransmitted_create_permission_and_channel_bind_are_not_executed_twice() {
    let mut h = Harness::new(config());
    let mut c = Client::alice();
    let relayed = h.allocate(&mut c);
    let (_, perm) = c.request(Method::CREATE_PERMISSION, &[&XorPeerAddress(peer())]);
    let first = h.exchange(&c, &perm).unwrap();
    h.advance(Duration::from_secs(30));
    assert_eq!(h.exchange(&c, &perm).unwrap(), first, "identical response");
    assert_eq!(h.server.stats().retransmissions, 1);
    // Had the retransmission run again, the permission would last until 330 s.
    h.advance(Duration::from_secs(271));
    assert_eq!(
        h.peer_sends(peer(), relayed, b"x"),
        None,
        "expired 300 s after the first"
    );

    let (_, bind) = c.request(
        Method::CHANNEL_BIND,
        &[&ChannelNumber(0x4001), &XorPeerAddress(peer())],
    );
    let first = h.exchange(&c, &bind).unwrap();
    assert_eq!(code(&first), None);
    assert_eq!(h.exchange(&c, &bind).unwrap(), first);
    assert_eq!(h.server.stats().retransmissions, 2);
    assert_eq!(h.server.stats().channels, 1);
}

// ---------------------------------------------------------------------------------------
// Robustness: amplification, malformed input, memory, determinism
// ---------------------------------------------------------------------------------------

#[test]
fn unauthenticated_answers_are_barely_larger_than_the_request() {
    let mut h = Harness::new(config());
    let bound = |req: &[u8], resp: &[u8]| {
        assert!(
            resp.len() <= req.len() + MAX_UNAUTHENTICATED_GROWTH + REALM.len(),
            "{} -> {}",
            req.len(),
            resp.len()
        );
    };
    let mut c = Client::alice();
    // The smallest Allocate: a bare header (401 needs no attributes to be triggered).
    let tid = c.tid();
    let bare = build(Method::ALLOCATE, Class::Request, tid, &[], None);
    let bare = &bare[..bare.len() - 8]; // without FINGERPRINT
    let mut bare = bare.to_vec();
    bare[2..4].copy_from_slice(&0u16.to_be_bytes());
    let resp = h.exchange(&c, &bare).unwrap();
    assert_eq!(code(&resp), Some(401));
    bound(&bare, &resp);
    assert!(
        resp.len() - bare.len() <= 104,
        "401 grows by {}",
        resp.len() - bare.len()
    );
    // 420, 400 and Binding.
    let weird = stun_proto::attributes::RawAttribute {
        attr_type: AttributeType(0x7777),
        value: b"",
    };
    let (_, req) = c.unauthenticated(Method::ALLOCATE, &[&weird]);
    bound(&req, &h.exchange(&c, &req).unwrap());
    let (_, req) = c.unauthenticated(Method::CONNECT, &[]);
    bound(&req, &h.exchange(&c, &req).unwrap());
    let binding = build(Method::BINDING, Class::Request, c.tid(), &[], None);
    let resp = h.exchange(&c, &binding).unwrap();
    assert!(resp.len() <= binding.len() + 32);
    assert_eq!(
        Message::parse(&resp)
            .unwrap()
            .require::<XorMappedAddress>()
            .unwrap()
            .0,
        c.addr
    );
}

#[test]
fn unauthenticated_requests_cost_no_memory() {
    let mut h = Harness::new(config());
    for i in 0..2000u32 {
        let mut c = Client::new(
            &format!("198.51.{}.{}:{}", 100 + i % 2, i % 250 + 1, 1000 + i),
            "alice",
            "wrong",
        );
        let (_, req) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
        let challenge = h.exchange(&c, &req).unwrap();
        c.learn_nonce(&challenge);
        let (_, req) = c.request(Method::ALLOCATE, &[&RequestedTransport::UDP]);
        assert_eq!(code(&h.exchange(&c, &req).unwrap()), Some(401));
    }
    let s = h.server.stats();
    assert_eq!((s.allocations, s.cached_responses), (0, 0));
    assert_eq!(s.errors.unauthenticated, 4000);
}

#[test]
fn malformed_input_is_dropped_or_answered_400() {
    let mut h = Harness::new(config());
    let c = Client::alice();
    let send =
        |h: &mut Harness, bytes: &[u8]| h.input(TransportProtocol::Udp, c.addr, c.server, bytes);
    assert_eq!(send(&mut h, &[0x99, 1, 2, 3]), None);
    assert_eq!(send(&mut h, &[]), None);
    assert_eq!(
        send(&mut h, &[0x40, 0x00, 0x00, 0x09, 1]),
        None,
        "truncated ChannelData"
    );
    // A request whose attribute runs past the end: 400.
    let mut bad = build(
        Method::ALLOCATE,
        Class::Request,
        TransactionId::new([3; 12]),
        &[&RequestedTransport::UDP],
        None,
    );
    bad[22..24].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(send(&mut h, &bad), None);
    assert_eq!(code(&h.transmits().pop().unwrap().payload), Some(400));
    // A wrong FINGERPRINT: dropped.
    let mut fp = build(
        Method::ALLOCATE,
        Class::Request,
        TransactionId::new([4; 12]),
        &[&RequestedTransport::UDP],
        None,
    );
    let last = fp.len() - 1;
    fp[last] ^= 1;
    assert_eq!(send(&mut h, &fp), None);
    // A response: dropped.
    let resp = build(
        Method::ALLOCATE,
        Class::Success,
        TransactionId::new([5; 12]),
        &[],
        None,
    );
    assert_eq!(send(&mut h, &resp), None);
    // Headroom larger than the buffer.
    let mut buf = [0u8; 2];
    let input = ServerInput {
        transport: TransportProtocol::Udp,
        source: c.addr,
        destination: c.server,
        buf: &mut buf,
        headroom: 3,
    };
    assert_eq!(h.server.handle_input(h.now, input), ServerOutput::Handled);
    assert!(h.transmits().is_empty());
    let d = h.server.stats().drops;
    assert_eq!(
        (
            d.not_turn,
            d.bad_channel_data,
            d.bad_fingerprint,
            d.unexpected_stun
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(h.server.stats().errors.bad_request, 1);
}

/// A scripted session; returns every byte the server emitted, in order.
fn session(seed: u64) -> Vec<Vec<u8>> {
    let mut h = Harness::with_seed(config(), seed);
    let mut out = Vec::new();
    let mut c = Client::alice().negotiating(Algorithm::Sha256);
    let (_, first) = c.unauthenticated(Method::ALLOCATE, &[&RequestedTransport::UDP]);
    let challenge = h.exchange(&c, &first).unwrap();
    out.push(challenge.clone());
    c.learn_nonce(&challenge);
    let (_, req) = c.request(
        Method::ALLOCATE,
        &[&RequestedTransport::UDP, &EvenPort { reserve: true }],
    );
    let resp = h.exchange(&c, &req).unwrap();
    out.push(resp.clone());
    let relayed = relayed_of(&resp);
    for req in [
        c.request(Method::CREATE_PERMISSION, &[&XorPeerAddress(peer())])
            .1,
        c.request(
            Method::CHANNEL_BIND,
            &[&ChannelNumber(0x4000), &XorPeerAddress(sa("203.0.113.8:1"))],
        )
        .1,
    ] {
        out.push(h.exchange(&c, &req).unwrap());
    }
    out.push(
        h.peer_sends(peer(), relayed, b"data indication")
            .unwrap()
            .data,
    );
    out.push(
        h.peer_sends(sa("203.0.113.8:1"), relayed, b"channel")
            .unwrap()
            .data,
    );
    out.extend(h.events().iter().map(|e| format!("{e:?}").into_bytes()));
    out
}

#[test]
fn same_seed_same_bytes() {
    assert_eq!(session(1), session(1));
    let (a, b) = (session(1), session(2));
    assert_ne!(a[0], b[0], "nonces differ with the seed");
    assert_ne!(a[1], b[1], "so do relay ports and reservation tokens");
}

#[test]
fn random_and_mutated_datagrams_never_panic() {
    let mut h = Harness::new(dual_config());
    let (mut c, relayed) = ready(&mut h);
    let (_, valid) = c.request(
        Method::CHANNEL_BIND,
        &[&ChannelNumber(0x4001), &XorPeerAddress(sa("203.0.113.9:1"))],
    );
    let samples = [
        valid,
        send_indication(peer(), b"payload", &[&DontFragment]),
        channel_data(0x4000, b"data"),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let r = next();
        let mut bytes = samples[(r % 3) as usize].clone();
        if round % 2 == 0 {
            // Flip a few bytes of a valid message.
            for _ in 0..1 + r % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
        } else {
            // Random bytes with a plausible first byte.
            let len = (next() % 80) as usize;
            bytes = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = bytes.first_mut() {
                *b = [0x00, 0x01, 0x40, 0x4f, 0x17][(r % 5) as usize];
            }
        }
        let (from, to) = if r % 7 == 0 {
            (peer(), relayed)
        } else {
            (c.addr, c.server)
        };
        let headroom = (r % 6) as usize;
        let mut buf = vec![0u8; headroom];
        buf.extend_from_slice(&bytes);
        let input = ServerInput::udp_with_headroom(from, to, &mut buf, headroom);
        let _ = h.server.handle_input(h.now, input);
        let _ = h.transmits();
        let _ = h.events();
        if round % 1000 == 0 {
            h.advance(Duration::from_secs(7));
        }
    }
    assert_eq!(h.server.stats().allocations, 1);
}
