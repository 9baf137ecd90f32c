//! The TURN client against a scripted server on a virtual clock: the 401 dance (MD5 and
//! SHA-256 with PASSWORD-ALGORITHMS), 438, 300, failure codes, refresh timing over hours,
//! permissions, channels, the data path, integrity, loss and determinism.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    AddressErrorCode, AddressFamily, AlternateServer, Attribute, AttributeType, ChannelNumber,
    Data, ErrorCode, EvenPort, Icmp, Lifetime, Nonce, PasswordAlgorithm, PasswordAlgorithms, Realm,
    RequestedTransport, ReservationToken, UnknownAttributes, UserHash, Username, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
use stun_proto::credentials::{self, Algorithm, LongTermKey, SecurityFeatures};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_proto::client::{
    AllocationFailure, AuthFailure, Client, ClientConfig, ClientError, ClientEvent, ClientState,
    ErrorKind, ExpiryReason, Received, RequestFailure, SendError,
};
use turn_proto::{Input, Transmit, TransportProtocol};

const SERVER: &str = "192.0.2.1:3478";
const ALTERNATE: &str = "192.0.2.2:3478";
const LOCAL: &str = "10.0.0.2:50000";
const RELAYED: &str = "192.0.2.1:49152";
const RELAYED6: &str = "[2001:db8::1]:49154";
const USER: &str = "alice";
const PASS: &str = "secret";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, n], 6000 + u16::from(n)))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The client configuration most tests use. Keepalives are off so that the scripted
/// server's logs hold exactly the requests each test is about; `keepalives_*` turn them on.
fn config() -> ClientConfig {
    let mut c = ClientConfig::new(sa(SERVER), sa(LOCAL), USER, PASS);
    c.keepalive_interval = None;
    c
}

// ---------------------------------------------------------------------------------------
// The scripted server

/// What the server does with the next request of a method instead of succeeding.
#[derive(Clone, Debug)]
enum Action {
    /// An error response (integrity-protected when the request was authenticated).
    Error(u16),
    /// 420 listing an attribute.
    UnknownAttribute(AttributeType),
    /// 438 with a fresh nonce.
    Stale,
    /// 300 with ALTERNATE-SERVER, with or without integrity.
    Redirect { to: SocketAddr, protected: bool },
    /// Success with a wrong MAC.
    BadIntegrity,
    /// Success without integrity.
    Unprotected,
    /// No response at all.
    Drop,
    /// Success with an extra raw attribute.
    Extra(AttributeType, Vec<u8>),
}

/// A TURN server reduced to what the client sees: long-term credentials with a nonce
/// cookie (RFC 8489) or without (RFC 5389), and scripted deviations.
struct Scripted {
    addr: SocketAddr,
    realm: String,
    /// Nonce cookie features (`None`: an RFC 5389 server, no cookie).
    features: Option<SecurityFeatures>,
    algorithms: Option<Vec<u16>>,
    /// No authentication at all (RFC 8155 style).
    open: bool,
    nonce: Vec<u8>,
    nonces: u32,
    relayed: Vec<SocketAddr>,
    lifetime: u32,
    reservation_token: Option<[u8; 8]>,
    address_error: Option<(AddressFamily, u16)>,
    script: VecDeque<(Method, Action)>,
    /// Every datagram received, with its time.
    log: Vec<(Duration, Vec<u8>)>,
}

impl Scripted {
    /// An RFC 5389 server: no nonce cookie, MD5 keys, MESSAGE-INTEGRITY.
    fn rfc5389(addr: &str) -> Self {
        let mut s = Scripted {
            addr: sa(addr),
            realm: "example.org".into(),
            features: None,
            algorithms: None,
            open: false,
            nonce: Vec::new(),
            nonces: 0,
            relayed: vec![sa(RELAYED)],
            lifetime: 600,
            reservation_token: None,
            address_error: None,
            script: VecDeque::new(),
            log: Vec::new(),
        };
        s.fresh_nonce();
        s
    }

    /// An RFC 8489 server offering `algorithms` behind the nonce cookie.
    fn rfc8489(addr: &str, algorithms: &[u16]) -> Self {
        let mut s = Scripted::rfc5389(addr);
        s.features = Some(SecurityFeatures::PASSWORD_ALGORITHMS);
        s.algorithms = Some(algorithms.to_vec());
        s.nonces = 0;
        s.fresh_nonce();
        s
    }

    fn with(mut self, method: Method, action: Action) -> Self {
        self.script.push_back((method, action));
        self
    }

    fn fresh_nonce(&mut self) {
        self.nonces += 1;
        let mut nonce = match self.features {
            Some(f) => credentials::nonce_cookie(f).to_vec(),
            None => Vec::new(),
        };
        nonce.extend_from_slice(format!("nonce{}", self.nonces).as_bytes());
        self.nonce = nonce;
    }

    fn handle(&mut self, at: Duration, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        self.log.push((at, bytes.to_vec()));
        let msg = Message::parse(bytes).ok()?;
        if msg.class() != Class::Request {
            return None;
        }
        let key = match self.authenticate(&msg) {
            Ok(key) => key,
            Err(response) => return Some(response),
        };
        if let Some(i) = self.script.iter().position(|(m, _)| *m == msg.method()) {
            let (_, action) = self.script.remove(i).unwrap();
            return self.act(action, &msg, from, key.as_ref());
        }
        Some(self.success(&msg, from, key.as_ref(), None))
    }

    /// RFC 8489 §9.2.4, reduced: a challenge without integrity, 438 for an old nonce,
    /// PASSWORD-ALGORITHMS checked, the key chosen by PASSWORD-ALGORITHM.
    fn authenticate(&mut self, msg: &Message<'_>) -> Result<Option<(IntegrityKey, bool)>, Vec<u8>> {
        if self.open {
            return Ok(None);
        }
        let sha256 = msg.has_message_integrity_sha256();
        if !sha256 && !msg.has_message_integrity() {
            return Err(self.challenge(msg, 401));
        }
        if msg.require::<Nonce<'_>>().unwrap().as_bytes() != self.nonce {
            return Err(self.challenge(msg, 438));
        }
        let mut algorithm = Algorithm::Md5;
        if let Some(list) = &self.algorithms {
            let echoed = msg.require::<PasswordAlgorithms<'_>>().unwrap();
            assert!(
                echoed.same_as(&PasswordAlgorithms::new(list)),
                "bid-down check"
            );
            let chosen = msg.require::<PasswordAlgorithm<'_>>().unwrap().algorithm;
            assert!(list.contains(&chosen));
            algorithm = Algorithm::from_code(chosen).unwrap();
        }
        match msg.get::<UserHash>().unwrap() {
            Some(h) => assert_eq!(h.0, credentials::userhash(USER, &self.realm)),
            None => assert_eq!(msg.require::<Username<'_>>().unwrap().as_str(), USER),
        }
        let key = LongTermKey::derive(algorithm, USER, &self.realm, PASS).integrity_key();
        if msg.verify_integrity(&key).is_err() {
            return Err(self.challenge(msg, 401));
        }
        Ok(Some((key, sha256)))
    }

    fn challenge(&self, msg: &Message<'_>, code: u16) -> Vec<u8> {
        respond(msg, Class::Error, None, |b| {
            b.add(&ErrorCode::with_default_reason(code).unwrap())
                .unwrap();
            b.add(&Realm::new(&self.realm).unwrap()).unwrap();
            b.add(&Nonce::new(&self.nonce).unwrap()).unwrap();
            if let Some(list) = &self.algorithms {
                b.add(&PasswordAlgorithms::new(list)).unwrap();
            }
        })
    }

    fn act(
        &mut self,
        action: Action,
        msg: &Message<'_>,
        from: SocketAddr,
        key: Option<&(IntegrityKey, bool)>,
    ) -> Option<Vec<u8>> {
        let error = |code: u16, extra: &dyn Fn(&mut MessageBuilder<'_>)| {
            respond(msg, Class::Error, key, |b| {
                b.add(&ErrorCode::with_default_reason(code).unwrap())
                    .unwrap();
                extra(b);
            })
        };
        Some(match action {
            Action::Error(401) => self.challenge(msg, 401),
            Action::Error(code) => error(code, &|_| {}),
            Action::UnknownAttribute(t) => error(420, &|b| {
                b.add(&UnknownAttributes::new(&[t])).unwrap();
            }),
            Action::Stale => {
                self.fresh_nonce();
                self.challenge(msg, 438)
            }
            Action::Redirect { to, protected } => {
                let key = if protected { key } else { None };
                respond(msg, Class::Error, key, |b| {
                    b.add(&ErrorCode::with_default_reason(300).unwrap())
                        .unwrap();
                    b.add(&AlternateServer(to)).unwrap();
                })
            }
            Action::BadIntegrity => {
                let wrong = (IntegrityKey::new(b"wrong"), key.is_some_and(|k| k.1));
                self.success(msg, from, Some(&wrong), None)
            }
            Action::Unprotected => self.success(msg, from, None, None),
            Action::Drop => return None,
            Action::Extra(t, v) => self.success(msg, from, key, Some((t, v))),
        })
    }

    fn success(
        &self,
        msg: &Message<'_>,
        from: SocketAddr,
        key: Option<&(IntegrityKey, bool)>,
        extra: Option<(AttributeType, Vec<u8>)>,
    ) -> Vec<u8> {
        respond(msg, Class::Success, key, |b| {
            if msg.method() == Method::ALLOCATE {
                for r in &self.relayed {
                    b.add(&XorRelayedAddress(*r)).unwrap();
                }
                b.add(&Lifetime(self.lifetime)).unwrap();
                b.add(&XorMappedAddress(from)).unwrap();
                let reserve = msg.get::<EvenPort>().unwrap().is_some_and(|e| e.reserve);
                if let (true, Some(token)) = (reserve, self.reservation_token) {
                    b.add(&ReservationToken(token)).unwrap();
                }
                if let Some((family, code)) = self.address_error {
                    let e = AddressErrorCode::new(family, code, "refused").unwrap();
                    b.add(&e).unwrap();
                }
            }
            if msg.method() == Method::REFRESH {
                let asked = msg.require::<Lifetime>().unwrap().0;
                b.add(&Lifetime(if asked == 0 { 0 } else { self.lifetime }))
                    .unwrap();
            }
            if let Some((t, v)) = &extra {
                b.add_raw(*t, v).unwrap();
            }
        })
    }
}

fn respond(
    request: &Message<'_>,
    class: Class,
    key: Option<&(IntegrityKey, bool)>,
    attributes: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mtype = MessageType::new(request.method(), class);
    let mut b = MessageBuilder::new(&mut buf, mtype, request.transaction_id()).unwrap();
    attributes(&mut b);
    match key {
        Some((k, true)) => b.add_message_integrity_sha256(k).unwrap(),
        Some((k, false)) => b.add_message_integrity(k).unwrap(),
        None => &mut b,
    };
    b.finish().to_vec()
}

// ---------------------------------------------------------------------------------------
// The network: zero latency, optional loss of every n-th datagram, a virtual clock

struct Net {
    client: Client,
    servers: Vec<Scripted>,
    start: Instant,
    now: Instant,
    /// Everything the client sent, with its time.
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, ClientEvent)>,
    /// Everything the servers answered.
    responses: Vec<Vec<u8>>,
    loss_every: usize,
    datagrams: usize,
}

impl Net {
    fn new(config: ClientConfig, servers: Vec<Scripted>) -> Self {
        Net::with_seed(config, servers, 1)
    }

    fn with_seed(config: ClientConfig, servers: Vec<Scripted>, seed: u64) -> Self {
        let start = Instant::now();
        let client = Client::new(config, seed, start);
        assert!(client.poll_timeout().is_some() || client.state().is_final());
        Net {
            client,
            servers,
            start,
            now: start,
            sent: Vec::new(),
            events: Vec::new(),
            responses: Vec::new(),
            loss_every: 0,
            datagrams: 0,
        }
    }

    fn at(&self) -> Duration {
        self.now - self.start
    }

    fn lose(&mut self) -> bool {
        self.datagrams += 1;
        self.loss_every != 0 && self.datagrams % self.loss_every == 0
    }

    /// Delivers everything the client sends, and the servers' answers, until quiet.
    fn pump(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            self.deliver(t);
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push((self.at(), e));
        }
    }

    fn deliver(&mut self, t: Transmit) {
        assert_eq!(
            t.source,
            sa(LOCAL),
            "everything leaves from the local address"
        );
        let at = self.at();
        self.sent.push((at, t.clone()));
        if self.lose() {
            return;
        }
        let Some(server) = self.servers.iter_mut().find(|s| s.addr == t.destination) else {
            return;
        };
        let Some(response) = server.handle(at, t.source, &t.payload) else {
            return;
        };
        self.responses.push(response.clone());
        if self.lose() {
            return;
        }
        let input = Input {
            transport: t.transport,
            source: t.destination,
            destination: t.source,
            data: &response,
        };
        assert_eq!(
            self.client.handle_input(self.now, input),
            Received::Consumed
        );
    }

    /// Runs the virtual clock to `until` (since the start), firing every timeout on time.
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        for _ in 0..1_000_000 {
            self.pump();
            match self.client.poll_timeout() {
                Some(t) if t <= end => {
                    assert!(
                        t >= self.now - Duration::from_secs(1),
                        "timeout in the past"
                    );
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
        panic!("the client does not settle");
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.at() + d;
        self.run_until(until);
    }

    /// Requests of `method` the servers received: time and bytes.
    fn requests(&self, method: Method) -> Vec<(Duration, Vec<u8>)> {
        let mut out: Vec<_> = self
            .servers
            .iter()
            .flat_map(|s| s.log.iter())
            .filter(|(_, b)| {
                Message::parse(b).is_ok_and(|m| m.method() == method && m.class() == Class::Request)
            })
            .cloned()
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out
    }

    fn request_times(&self, method: Method) -> Vec<Duration> {
        self.requests(method).into_iter().map(|(t, _)| t).collect()
    }

    fn event_times(&self, pred: impl Fn(&ClientEvent) -> bool) -> Vec<Duration> {
        self.events
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(t, _)| *t)
            .collect()
    }

    fn allocation_failure(&self) -> AllocationFailure {
        self.events
            .iter()
            .find_map(|(_, e)| match e {
                ClientEvent::AllocationFailed { reason } => Some(reason.clone()),
                _ => None,
            })
            .expect("an AllocationFailed event")
    }

    /// Runs until allocated (at most 40 s) and returns the Allocated event.
    fn allocate(&mut self) -> ClientEvent {
        let limit = self.now + secs(40.0);
        loop {
            self.pump();
            let allocated = self
                .events
                .iter()
                .find(|(_, e)| matches!(e, ClientEvent::Allocated { .. }));
            if let Some((_, e)) = allocated {
                return e.clone();
            }
            match self.client.poll_timeout() {
                Some(t) if t <= limit => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                }
                _ => panic!("not allocated: {:?}", self.events),
            }
        }
    }

    /// A command's output goes out at the current time.
    fn command<T>(&mut self, f: impl FnOnce(&mut Client, Instant) -> T) -> T {
        let now = self.now;
        let r = f(&mut self.client, now);
        self.pump();
        r
    }
}

fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse(bytes).unwrap()
}

fn rejected(code: u16) -> impl Fn(&AllocationFailure) -> bool {
    move |f| matches!(f, AllocationFailure::Request(RequestFailure::Rejected(e)) if e.code == code)
}

// ---------------------------------------------------------------------------------------
// Allocate and the credential dance

#[test]
fn md5_dance_with_an_rfc5389_server() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    let allocated = net.allocate();
    assert_eq!(
        allocated,
        ClientEvent::Allocated {
            relayed: vec![sa(RELAYED)],
            mapped: Some(sa(LOCAL)),
            lifetime: secs(600.0),
            reservation_token: None,
            refused_family: None,
        }
    );
    assert_eq!(net.client.state(), ClientState::Allocated);
    assert_eq!(net.client.relayed_addresses(), [sa(RELAYED)]);
    assert_eq!(net.client.mapped_address(), Some(sa(LOCAL)));

    let allocates = net.requests(Method::ALLOCATE);
    assert_eq!(allocates.len(), 2);
    // RFC 8489 §9.2.3.1: the first request carries no credentials.
    let first = parse(&allocates[0].1);
    assert_eq!(
        first.require::<RequestedTransport>().unwrap(),
        RequestedTransport::UDP
    );
    assert_eq!(first.require::<Lifetime>().unwrap().0, 600);
    for t in [
        AttributeType::USERNAME,
        AttributeType::REALM,
        AttributeType::NONCE,
    ] {
        assert!(!first.has(t));
    }
    assert!(!first.has_message_integrity() && !first.has_message_integrity_sha256());
    // The retry: USERNAME, REALM, NONCE and MESSAGE-INTEGRITY with the MD5 key; no SHA-256
    // integrity and no password algorithms for an RFC 5389 server.
    let second = parse(&allocates[1].1);
    assert_ne!(first.transaction_id(), second.transaction_id());
    assert_eq!(second.require::<Username<'_>>().unwrap().as_str(), USER);
    assert_eq!(
        second.require::<Realm<'_>>().unwrap().as_str(),
        "example.org"
    );
    assert_eq!(second.require::<Nonce<'_>>().unwrap().as_bytes(), b"nonce1");
    assert!(!second.has_message_integrity_sha256());
    assert!(!second.has(AttributeType::PASSWORD_ALGORITHM));
    let md5 = LongTermKey::derive(Algorithm::Md5, USER, "example.org", PASS).integrity_key();
    second.verify_message_integrity(&md5).unwrap();
}

#[test]
fn sha256_dance_echoes_password_algorithms() {
    let mut net = Net::new(config(), vec![Scripted::rfc8489(SERVER, &[2, 1])]);
    net.allocate();
    let allocates = net.requests(Method::ALLOCATE);
    let second = parse(&allocates[1].1);
    // RFC 8489 §9.2.5: PASSWORD-ALGORITHMS echoed byte for byte, PASSWORD-ALGORITHM the
    // first supported entry, MESSAGE-INTEGRITY-SHA256 with the SHA-256 key.
    assert_eq!(
        second.raw(AttributeType::PASSWORD_ALGORITHMS).unwrap(),
        [0, 2, 0, 0, 0, 1, 0, 0]
    );
    assert_eq!(
        second.require::<PasswordAlgorithm<'_>>().unwrap().algorithm,
        2
    );
    assert!(!second.has_message_integrity());
    let key = LongTermKey::derive(Algorithm::Sha256, USER, "example.org", PASS).integrity_key();
    second.verify_message_integrity_sha256(&key).unwrap();
}

#[test]
fn the_servers_first_supported_algorithm_is_used() {
    // MD5 listed first: RFC 8489 §9.2.5 says the first supported algorithm on the list.
    let mut net = Net::new(config(), vec![Scripted::rfc8489(SERVER, &[9, 1, 2])]);
    net.allocate();
    let allocates = net.requests(Method::ALLOCATE);
    let second = parse(&allocates[1].1);
    assert_eq!(
        second.require::<PasswordAlgorithm<'_>>().unwrap().algorithm,
        1
    );
    let md5 = LongTermKey::derive(Algorithm::Md5, USER, "example.org", PASS).integrity_key();
    second.verify_message_integrity_sha256(&md5).unwrap();

    let mut net = Net::new(config(), vec![Scripted::rfc8489(SERVER, &[9])]);
    net.run_for(secs(1.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::Request(RequestFailure::Auth(AuthFailure::NoSupportedAlgorithm))
    );
}

#[test]
fn userhash_when_the_cookie_asks_for_anonymity() {
    let mut server = Scripted::rfc8489(SERVER, &[2]);
    server.features =
        Some(SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY));
    server.fresh_nonce();
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    let allocates = net.requests(Method::ALLOCATE);
    let second = parse(&allocates[1].1);
    assert!(!second.has(AttributeType::USERNAME));
    assert_eq!(
        second.require::<UserHash>().unwrap().0,
        credentials::userhash(USER, "example.org")
    );
}

#[test]
fn a_cookie_without_password_algorithms_is_a_bid_down() {
    let mut server = Scripted::rfc8489(SERVER, &[2]);
    server.algorithms = None; // the cookie still promises them
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::Request(RequestFailure::Auth(AuthFailure::PasswordAlgorithmsMissing))
    );
    assert_eq!(
        net.requests(Method::ALLOCATE).len(),
        1,
        "no retry (RFC 8489 §9.2.5)"
    );
}

#[test]
fn stale_nonce_on_allocate_is_retried_with_the_new_nonce() {
    let server = Scripted::rfc8489(SERVER, &[2]).with(Method::ALLOCATE, Action::Stale);
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    let allocates = net.requests(Method::ALLOCATE);
    assert_eq!(allocates.len(), 3);
    let nonce = |i: usize| {
        parse(&allocates[i].1)
            .require::<Nonce<'_>>()
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    assert_eq!(nonce(1), b"obMatJos2AAABnonce1");
    assert_eq!(nonce(2), b"obMatJos2AAABnonce2");
}

#[test]
fn stale_nonce_retries_are_bounded() {
    let mut server = Scripted::rfc8489(SERVER, &[2]);
    for _ in 0..10 {
        server = server.with(Method::ALLOCATE, Action::Stale);
    }
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    let failure = net.allocation_failure();
    assert!(rejected(438)(&failure), "{failure:?}");
    // The challenge, the first authenticated try and three retries.
    assert_eq!(net.requests(Method::ALLOCATE).len(), 5);
}

#[test]
fn stale_nonce_on_refresh_is_retried() {
    let server = Scripted::rfc5389(SERVER).with(Method::REFRESH, Action::Stale);
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.run_until(secs(1100.0));
    assert_eq!(
        net.request_times(Method::REFRESH),
        [secs(540.0), secs(540.0), secs(1080.0)]
    );
    let refreshed = net.event_times(|e| matches!(e, ClientEvent::Refreshed { .. }));
    assert_eq!(refreshed, [secs(540.0), secs(1080.0)]);
    let refreshes = net.requests(Method::REFRESH);
    assert_eq!(
        parse(&refreshes[1].1)
            .require::<Nonce<'_>>()
            .unwrap()
            .as_bytes(),
        b"nonce2"
    );
}

#[test]
fn authenticated_redirect_moves_to_the_alternate() {
    let main = Scripted::rfc8489(SERVER, &[2]).with(
        Method::ALLOCATE,
        Action::Redirect {
            to: sa(ALTERNATE),
            protected: true,
        },
    );
    let mut alternate = Scripted::rfc5389(ALTERNATE);
    alternate.realm = "alt.example.org".into();
    let mut net = Net::new(config(), vec![main, alternate]);
    net.allocate();
    let redirected = net.event_times(|e| {
        *e == ClientEvent::Redirected {
            from: sa(SERVER),
            to: sa(ALTERNATE),
        }
    });
    assert_eq!(redirected.len(), 1);
    assert_eq!(net.client.server(), sa(ALTERNATE));
    // The alternate got a fresh dance from the same local address (checked by `deliver`),
    // with its own realm; refreshes go there too.
    let log = &net.servers[1].log;
    assert_eq!(log.len(), 2);
    assert!(!parse(&log[0].1).has_message_integrity());
    assert_eq!(
        parse(&log[1].1).require::<Realm<'_>>().unwrap().as_str(),
        "alt.example.org"
    );
    net.run_until(secs(541.0));
    assert_eq!(net.servers[1].log.len(), 3);
}

#[test]
fn unauthenticated_redirect_is_not_followed() {
    // A server that does not authenticate answers the first Allocate with a 300: nothing
    // proves it came from the server, so the client reports it instead of following it.
    let mut open = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::Redirect {
            to: sa(ALTERNATE),
            protected: false,
        },
    );
    open.open = true;
    let mut net = Net::new(config(), vec![open, Scripted::rfc5389(ALTERNATE)]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::UnverifiedRedirect {
            alternate: Some(sa(ALTERNATE))
        }
    );
    assert!(net.servers[1].log.is_empty());
}

#[test]
fn unprotected_redirect_to_an_authenticated_request_is_ignored() {
    // RFC 8489 §9.2.5: without integrity the 300 is discarded; the retransmission succeeds.
    let server = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::Redirect {
            to: sa(ALTERNATE),
            protected: false,
        },
    );
    let mut net = Net::new(config(), vec![server, Scripted::rfc5389(ALTERNATE)]);
    net.allocate();
    assert_eq!(net.client.server(), sa(SERVER));
    assert!(net.servers[1].log.is_empty());
    assert_eq!(net.client.stats().dropped_unauthenticated, 1);
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::Allocated { .. })),
        [secs(0.5)]
    );
}

#[test]
fn redirects_are_bounded() {
    // Two servers redirecting to each other: the loop is refused.
    let a = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::Redirect {
            to: sa(ALTERNATE),
            protected: true,
        },
    );
    let b = Scripted::rfc5389(ALTERNATE).with(
        Method::ALLOCATE,
        Action::Redirect {
            to: sa(SERVER),
            protected: true,
        },
    );
    let mut net = Net::new(config(), vec![a, b]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::TooManyRedirects {
            alternate: sa(SERVER)
        }
    );
}

#[test]
fn error_codes_end_as_typed_failures() {
    let cases = [
        (401, ErrorKind::Unauthenticated),
        (400, ErrorKind::BadRequest),
        (403, ErrorKind::Forbidden),
        (437, ErrorKind::AllocationMismatch),
        (440, ErrorKind::AddressFamilyNotSupported),
        (441, ErrorKind::WrongCredentials),
        (442, ErrorKind::UnsupportedTransportProtocol),
        (443, ErrorKind::PeerAddressFamilyMismatch),
        (486, ErrorKind::AllocationQuotaReached),
        (500, ErrorKind::ServerError),
        (508, ErrorKind::InsufficientCapacity),
        (599, ErrorKind::Other),
    ];
    for (code, kind) in cases {
        let server = Scripted::rfc8489(SERVER, &[2]).with(Method::ALLOCATE, Action::Error(code));
        let mut net = Net::new(config(), vec![server]);
        net.run_for(secs(60.0));
        match net.allocation_failure() {
            AllocationFailure::Request(RequestFailure::Rejected(e)) => {
                assert_eq!((e.code, e.kind), (code, kind));
            }
            other => panic!("{code}: {other:?}"),
        }
        assert_eq!(net.client.state(), ClientState::Failed);
        assert_eq!(net.requests(Method::ALLOCATE).len(), 2, "{code}: no retry");
        assert_eq!(net.client.poll_timeout(), None);
    }
}

#[test]
fn allocate_timeout() {
    let mut server = Scripted::rfc5389(SERVER);
    for _ in 0..7 {
        server = server.with(Method::ALLOCATE, Action::Drop);
    }
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::Request(RequestFailure::Timeout)
    );
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::AllocationFailed { .. })),
        [secs(39.5)]
    );
    // RFC 8489 §6.2.1: Rc = 7 requests at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    let times = net.request_times(Method::ALLOCATE);
    assert_eq!(times[1..], [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5].map(secs));
}

#[test]
fn responses_with_bad_integrity_are_ignored_and_retransmission_continues() {
    for action in [Action::BadIntegrity, Action::Unprotected] {
        let server = Scripted::rfc8489(SERVER, &[2]).with(Method::ALLOCATE, action);
        let mut net = Net::new(config(), vec![server]);
        net.allocate();
        assert_eq!(net.client.stats().dropped_unauthenticated, 1);
        assert_eq!(
            net.event_times(|e| matches!(e, ClientEvent::Allocated { .. })),
            [secs(0.5)]
        );
    }
}

#[test]
fn only_bad_integrity_is_reported_as_an_integrity_violation() {
    let mut server = Scripted::rfc5389(SERVER);
    for _ in 0..7 {
        server = server.with(Method::ALLOCATE, Action::BadIntegrity);
    }
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::Request(RequestFailure::IntegrityViolation)
    );
}

#[test]
fn unknown_comprehension_required_attribute_fails_the_allocate() {
    let server = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::Extra(AttributeType(0x7F00), vec![0; 4]),
    );
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::Request(RequestFailure::UnknownAttributes(vec![0x7F00]))
    );
    // Comprehension-optional ones are fine.
    let server = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::Extra(AttributeType(0xC001), vec![0; 4]),
    );
    Net::new(config(), vec![server]).allocate();
}

#[test]
fn dont_fragment_is_dropped_after_420() {
    let mut c = config();
    c.dont_fragment = true;
    let server = Scripted::rfc5389(SERVER).with(
        Method::ALLOCATE,
        Action::UnknownAttribute(AttributeType::DONT_FRAGMENT),
    );
    let mut net = Net::new(c.clone(), vec![server]);
    net.allocate();
    let allocates = net.requests(Method::ALLOCATE);
    assert_eq!(allocates.len(), 3);
    assert!(parse(&allocates[1].1).has(AttributeType::DONT_FRAGMENT));
    assert!(!parse(&allocates[2].1).has(AttributeType::DONT_FRAGMENT));
    assert!(!net.client.dont_fragment());
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    let t = net.command(|c, now| c.send_to(now, peer(1), b"x")).unwrap();
    assert!(!parse(&t.payload).has(AttributeType::DONT_FRAGMENT));

    // Accepted: every Send indication asks for DF.
    let mut net = Net::new(c, vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    assert!(net.client.dont_fragment());
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    let t = net.command(|c, now| c.send_to(now, peer(1), b"x")).unwrap();
    assert!(parse(&t.payload).has(AttributeType::DONT_FRAGMENT));
}

#[test]
fn dual_allocation_and_a_refused_family() {
    let mut c = config();
    c.additional_family = true;
    let mut server = Scripted::rfc5389(SERVER);
    server.relayed = vec![sa(RELAYED), sa(RELAYED6)];
    let mut net = Net::new(c.clone(), vec![server]);
    let ClientEvent::Allocated { relayed, .. } = net.allocate() else {
        unreachable!()
    };
    assert_eq!(relayed, [sa(RELAYED), sa(RELAYED6)]);
    let allocates = net.requests(Method::ALLOCATE);
    assert!(parse(&allocates[1].1).has(AttributeType::ADDITIONAL_ADDRESS_FAMILY));
    // Peers of both families work.
    let v6: IpAddr = "2001:db8::9".parse().unwrap();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip(), v6]))
        .unwrap();

    let mut server = Scripted::rfc5389(SERVER);
    server.address_error = Some((AddressFamily::Ipv6, 440));
    let mut net = Net::new(c, vec![server]);
    let ClientEvent::Allocated {
        relayed,
        refused_family,
        ..
    } = net.allocate()
    else {
        unreachable!()
    };
    assert_eq!(relayed, [sa(RELAYED)]);
    let refused = refused_family.unwrap();
    assert_eq!(
        (refused.family, refused.error.code),
        (AddressFamily::Ipv6, 440)
    );
    assert_eq!(
        net.command(|c, now| c.create_permission(now, &[v6])),
        Err(ClientError::PeerFamilyMismatch(v6))
    );
}

#[test]
fn even_port_reservation_token_is_reported() {
    let mut c = config();
    c.even_port = Some(true);
    let mut server = Scripted::rfc5389(SERVER);
    server.reservation_token = Some(*b"token-42");
    let mut net = Net::new(c, vec![server]);
    let ClientEvent::Allocated {
        reservation_token, ..
    } = net.allocate()
    else {
        unreachable!()
    };
    assert_eq!(reservation_token, Some(*b"token-42"));
    let allocates = net.requests(Method::ALLOCATE);
    assert_eq!(
        parse(&allocates[1].1).require::<EvenPort>().unwrap(),
        EvenPort { reserve: true }
    );
}

#[test]
fn a_relayed_address_of_the_wrong_family_is_deleted() {
    let mut server = Scripted::rfc5389(SERVER);
    server.relayed = vec![sa(RELAYED6)];
    let mut net = Net::new(config(), vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(
        net.allocation_failure(),
        AllocationFailure::UnexpectedFamily {
            relayed: sa(RELAYED6)
        }
    );
    // RFC 8656 §7.3: the client MUST delete it.
    let refreshes = net.requests(Method::REFRESH);
    assert_eq!(refreshes.len(), 1);
    assert_eq!(parse(&refreshes[0].1).require::<Lifetime>().unwrap().0, 0);
}

#[test]
fn invalid_config_fails_at_once() {
    let mut c = config();
    c.requested_family = Some(AddressFamily::Ipv6);
    c.additional_family = true;
    let mut net = Net::new(c, vec![Scripted::rfc5389(SERVER)]);
    net.pump();
    assert!(matches!(
        net.allocation_failure(),
        AllocationFailure::InvalidConfig(_)
    ));
    assert!(net.sent.is_empty());
    assert_eq!(net.client.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------
// Refresh, expiry, delete

#[test]
fn refreshes_of_allocation_permissions_and_channels_happen_on_time_for_hours() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.run_until(secs(10.0));
    net.command(|c, now| c.create_permission(now, &[peer(1).ip(), peer(2).ip()]))
        .unwrap();
    net.run_until(secs(20.0));
    let channel = net.command(|c, now| c.bind_channel(now, peer(3))).unwrap();
    assert!((0x4000..=0x4FFF).contains(&channel));
    let end = 3.0 * 3600.0;
    net.run_until(secs(end));

    let every = |first: f64, period: f64| {
        let mut v = Vec::new();
        let mut t = first;
        while t <= end {
            v.push(secs(t));
            t += period;
        }
        v
    };
    // The allocation a minute before each 600 s lifetime ends.
    assert_eq!(net.request_times(Method::REFRESH), every(540.0, 540.0));
    // Permissions every 240 s; the channel's permission joins the first refresh at 250 s
    // (it was due at 260 s) and stays with the others.
    let mut permissions = vec![secs(10.0)];
    permissions.extend(every(250.0, 240.0));
    assert_eq!(net.request_times(Method::CREATE_PERMISSION), permissions);
    let refresh = net.requests(Method::CREATE_PERMISSION)[1].1.clone();
    let peers: Vec<IpAddr> = parse(&refresh)
        .attributes()
        .filter(|a| a.attr_type == AttributeType::XOR_PEER_ADDRESS)
        .map(|a| {
            XorPeerAddress::decode(a.value, &parse(&refresh).transaction_id())
                .unwrap()
                .0
                .ip()
        })
        .collect();
    assert_eq!(peers, [peer(1).ip(), peer(2).ip(), peer(3).ip()]);
    // The channel every 540 s, same number and peer.
    assert_eq!(net.request_times(Method::CHANNEL_BIND), every(20.0, 540.0));
    for (_, b) in net.requests(Method::CHANNEL_BIND) {
        let m = parse(&b);
        assert_eq!(m.require::<ChannelNumber>().unwrap().0, channel);
        assert_eq!(m.require::<XorPeerAddress>().unwrap().0, peer(3));
    }
    // News once, not on every refresh.
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::PermissionCreated { .. })),
        [secs(10.0)]
    );
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::ChannelBound { .. })),
        [secs(20.0)]
    );
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::Refreshed { .. })),
        every(540.0, 540.0)
    );
    assert_eq!(net.client.state(), ClientState::Allocated);
}

#[test]
fn a_short_lifetime_is_refreshed_a_fifth_before_its_end() {
    let mut server = Scripted::rfc5389(SERVER);
    server.lifetime = 100;
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.run_until(secs(250.0));
    assert_eq!(
        net.request_times(Method::REFRESH),
        [secs(80.0), secs(160.0), secs(240.0)]
    );
}

#[test]
fn failing_refreshes_expire_the_allocation_at_its_end() {
    let mut server = Scripted::rfc5389(SERVER);
    for _ in 0..20 {
        server = server.with(Method::REFRESH, Action::Drop);
    }
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.run_until(secs(700.0));
    assert_eq!(
        net.events.last().unwrap(),
        &(
            secs(600.0),
            ClientEvent::Expired {
                reason: ExpiryReason::Failure(RequestFailure::Timeout)
            }
        )
    );
    // The first Refresh at 540 s timed out at 579.5 s and was tried again.
    let times = net.request_times(Method::REFRESH);
    assert_eq!(times[0], secs(540.0));
    assert!(times.contains(&secs(579.5)));
    assert!(times.iter().all(|t| *t < secs(600.0)));
    assert_eq!(net.client.state(), ClientState::Expired);
    assert!(net.client.relayed_addresses().is_empty());
    assert_eq!(net.client.poll_timeout(), None);
}

#[test]
fn allocation_mismatch_on_refresh_means_the_allocation_is_gone() {
    let server = Scripted::rfc5389(SERVER).with(Method::REFRESH, Action::Error(437));
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.run_until(secs(700.0));
    let (at, event) = net.events.last().unwrap();
    assert_eq!(*at, secs(540.0));
    assert!(matches!(
        event,
        ClientEvent::Expired { reason: ExpiryReason::Failure(RequestFailure::Rejected(e)) } if e.code == 437
    ));
}

#[test]
fn allocation_mismatch_on_create_permission_means_the_allocation_is_gone() {
    let server = Scripted::rfc5389(SERVER).with(Method::CREATE_PERMISSION, Action::Error(437));
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    assert_eq!(net.client.state(), ClientState::Expired);
}

#[test]
fn delete_sends_lifetime_zero() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    net.run_until(secs(100.0));
    net.command(|c, now| c.delete(now));
    assert_eq!(net.client.state(), ClientState::Deleted);
    assert_eq!(
        net.events.last().unwrap(),
        &(secs(100.0), ClientEvent::Deleted)
    );
    let refreshes = net.requests(Method::REFRESH);
    assert_eq!(refreshes.len(), 1);
    assert_eq!(parse(&refreshes[0].1).require::<Lifetime>().unwrap().0, 0);
    // Nothing more: no permission refresh, no timer.
    assert_eq!(net.client.poll_timeout(), None);
    let sent = net.sent.len();
    net.run_until(secs(3600.0));
    assert_eq!(net.sent.len(), sent);
    assert_eq!(
        net.command(|c, now| c.send_to(now, peer(1), b"x")),
        Err(SendError::NotAllocated)
    );
}

#[test]
fn delete_of_a_vanished_allocation_still_ends_in_deleted() {
    let server = Scripted::rfc5389(SERVER).with(Method::REFRESH, Action::Error(437));
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.command(|c, now| c.delete(now));
    assert_eq!(net.client.state(), ClientState::Deleted);
}

#[test]
fn connection_lost_ends_the_allocation() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.connection_lost(now));
    assert_eq!(
        net.events.last().unwrap().1,
        ClientEvent::Expired {
            reason: ExpiryReason::ConnectionLost
        }
    );
    assert_eq!(net.client.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------
// Permissions, channels and data

#[test]
fn send_indication_until_the_channel_is_confirmed_then_channel_data() {
    let server = Scripted::rfc5389(SERVER).with(Method::CHANNEL_BIND, Action::Drop);
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    assert_eq!(
        net.command(|c, now| c.send_to(now, peer(1), b"hi")),
        Err(SendError::NoPermission(peer(1).ip()))
    );
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    let send = net
        .command(|c, now| c.send_to(now, peer(1), b"hi"))
        .unwrap();
    assert_eq!((send.source, send.destination), (sa(LOCAL), sa(SERVER)));
    let m = parse(&send.payload);
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::SEND, Class::Indication)
    );
    assert_eq!(m.require::<XorPeerAddress>().unwrap().0, peer(1));
    assert_eq!(m.require::<Data<'_>>().unwrap().0, b"hi");

    // The first ChannelBind is lost: still Send indications until the retransmission is
    // answered at 0.5 s.
    let channel = net.command(|c, now| c.bind_channel(now, peer(1))).unwrap();
    assert_eq!(
        net.command(|c, now| c.bind_channel(now, peer(1))),
        Ok(channel)
    );
    let before = net
        .command(|c, now| c.send_to(now, peer(1), b"hi"))
        .unwrap();
    assert!(Message::parse(&before.payload).is_ok());
    net.run_for(secs(1.0));
    assert!(net.events.iter().any(|(_, e)| *e
        == ClientEvent::ChannelBound {
            peer: peer(1),
            channel
        }));
    let after = net
        .command(|c, now| c.send_to(now, peer(1), b"hello"))
        .unwrap();
    let mut expected = channel.to_be_bytes().to_vec();
    expected.extend_from_slice(&[0, 5]);
    expected.extend_from_slice(b"hello");
    assert_eq!(after.payload, expected, "unpadded over UDP");
    assert_eq!(net.client.stats().channel_data_sent, 1);
    assert_eq!(net.client.stats().send_indications_sent, 2);

    // Other peers of the same IP still go by Send indication; other families are refused.
    let same_ip = SocketAddr::new(peer(1).ip(), 9);
    assert!(
        Message::parse(
            &net.command(|c, now| c.send_to(now, same_ip, b"x"))
                .unwrap()
                .payload
        )
        .is_ok()
    );
    let v6: SocketAddr = "[2001:db8::9]:1".parse().unwrap();
    assert_eq!(
        net.command(|c, now| c.send_to(now, v6, b"x")),
        Err(SendError::PeerFamilyMismatch(v6.ip()))
    );
}

#[test]
fn stream_transports_pad_channel_data_and_do_not_retransmit() {
    let mut c = config();
    c.transport = TransportProtocol::Tcp;
    let mut net = Net::new(c.clone(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.bind_channel(now, peer(1))).unwrap();
    let t = net
        .command(|c, now| c.send_to(now, peer(1), b"hello"))
        .unwrap();
    assert_eq!(t.transport, TransportProtocol::Tcp);
    assert_eq!(
        t.payload.len(),
        12,
        "RFC 8656 §12.5: padded to 4 bytes on streams"
    );
    assert_eq!(&t.payload[2..4], &[0, 5]);

    let server = Scripted::rfc5389(SERVER).with(Method::ALLOCATE, Action::Drop);
    let mut net = Net::new(c, vec![server]);
    net.run_for(secs(60.0));
    assert_eq!(net.request_times(Method::ALLOCATE), [secs(0.0), secs(0.0)]);
    assert_eq!(
        net.event_times(|e| matches!(e, ClientEvent::AllocationFailed { .. })),
        [secs(39.5)]
    );
}

fn data_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let t = MessageType::new(Method::DATA, Class::Indication);
    let mut b = MessageBuilder::new(&mut buf, t, TransactionId::new([5; 12])).unwrap();
    b.add(&XorPeerAddress(peer)).unwrap();
    b.add(&Data(data)).unwrap();
    b.finish().to_vec()
}

fn from_server(data: &[u8]) -> Input<'_> {
    Input {
        transport: TransportProtocol::Udp,
        source: sa(SERVER),
        destination: sa(LOCAL),
        data,
    }
}

#[test]
fn peer_data_points_into_the_input_buffer() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    let now = net.now;

    let indication = data_indication(peer(1), b"hello");
    let Received::PeerData { peer: from, data } =
        net.client.handle_input(now, from_server(&indication))
    else {
        panic!("no peer data")
    };
    assert_eq!((from, data), (peer(1), &b"hello"[..]));
    // Zero copy: DATA is the last attribute, its value 5 bytes + 3 padding before the end.
    let offset = indication.len() - 8;
    assert!(std::ptr::eq(data.as_ptr(), indication[offset..].as_ptr()));

    let channel = net.command(|c, now| c.bind_channel(now, peer(1))).unwrap();
    let mut cd = channel.to_be_bytes().to_vec();
    cd.extend_from_slice(&[0, 3]);
    cd.extend_from_slice(b"abc\0"); // UDP may carry padding
    let Received::PeerData { peer: from, data } = net.client.handle_input(now, from_server(&cd))
    else {
        panic!("no peer data")
    };
    assert_eq!((from, data), (peer(1), &b"abc"[..]));
    assert!(std::ptr::eq(data.as_ptr(), cd[4..].as_ptr()));
    assert_eq!(net.client.stats().peer_data_received, 2);
}

#[test]
fn icmp_in_a_data_indication_is_reported() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    let mut buf = vec![0u8; 128];
    let t = MessageType::new(Method::DATA, Class::Indication);
    let mut b = MessageBuilder::new(&mut buf, t, TransactionId::new([6; 12])).unwrap();
    b.add(&XorPeerAddress(peer(1))).unwrap();
    b.add(&Icmp {
        icmp_type: 3,
        code: 4,
        error_data: 1400,
    })
    .unwrap();
    let bytes = b.finish().to_vec();
    let now = net.now;
    assert_eq!(
        net.client.handle_input(now, from_server(&bytes)),
        Received::Consumed
    );
    net.pump();
    assert_eq!(
        net.events.last().unwrap().1,
        ClientEvent::Icmp {
            peer: peer(1),
            icmp_type: 3,
            code: 4,
            error_data: 1400
        }
    );
}

/// A small deterministic generator for the robustness test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_and_mutated_responses_never_panic() {
    // Every response the server sends in a full run, then each mutated many times and fed
    // back in every state: the client drops what is wrong and keeps working.
    let mut net = Net::new(config(), vec![Scripted::rfc8489(SERVER, &[2, 1])]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    net.command(|c, now| c.bind_channel(now, peer(2))).unwrap();
    net.run_until(secs(600.0));
    let mut samples = net.responses.clone();
    assert!(samples.len() >= 8);
    samples.push(data_indication(peer(1), b"data"));
    samples.push(vec![0x40, 0x01, 0, 4, 1, 2, 3, 4]);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut clients = vec![
        Client::new(config(), 1, net.start),
        Client::new(config(), 2, net.start),
    ];
    clients.push(net.client);
    for client in &mut clients {
        for sample in &samples {
            for _ in 0..200 {
                let mut m = sample.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % m.len();
                    m[i] ^= 1 << (rng.next() % 8);
                }
                if rng.next() % 4 == 0 {
                    m.truncate((rng.next() as usize) % (m.len() + 1));
                }
                let _ = client.handle_input(net.now, from_server(&m));
            }
        }
        client.handle_timeout(net.now + secs(1.0));
        while client.poll_transmit().is_some() {}
        while client.poll_event().is_some() {}
    }
}

#[test]
fn data_without_permission_or_channel_is_dropped() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    let now = net.now;
    let indication = data_indication(peer(9), b"spam");
    assert_eq!(
        net.client.handle_input(now, from_server(&indication)),
        Received::Consumed
    );
    assert_eq!(net.client.stats().dropped_no_permission, 1);
    assert_eq!(
        net.client
            .handle_input(now, from_server(&[0x40, 0x01, 0, 1, 7, 0, 0, 0])),
        Received::Consumed
    );
    assert_eq!(net.client.stats().dropped_unknown_channel, 1);
    // Someone else's traffic.
    let elsewhere = Input {
        source: peer(1),
        ..from_server(&indication)
    };
    assert_eq!(net.client.handle_input(now, elsewhere), Received::NotMine);
    let mut buf = [0u8; 64];
    let binding = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_SUCCESS,
        TransactionId::new([1; 12]),
    )
    .unwrap()
    .finish()
    .to_vec();
    assert_eq!(
        net.client.handle_input(now, from_server(&binding)),
        Received::NotMine
    );
    assert_eq!(
        net.client.handle_input(now, from_server(&[0x80, 0, 0, 0])),
        Received::NotMine
    );
    // Garbage on the 5-tuple never panics.
    for junk in [&[0u8][..], &[1, 2, 3], &[0x40], &[0x4F, 0xFF, 0xFF, 0xFF]] {
        assert_eq!(
            net.client.handle_input(now, from_server(junk)),
            Received::Consumed
        );
    }
}

#[test]
fn permission_failure_is_reported_and_sending_refused() {
    let server = Scripted::rfc5389(SERVER).with(Method::CREATE_PERMISSION, Action::Error(403));
    let mut net = Net::new(config(), vec![server]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    assert!(net.events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::PermissionFailed { peers, reason: RequestFailure::Rejected(err) }
            if *peers == [peer(1).ip()] && err.kind == ErrorKind::Forbidden
    )));
    assert!(!net.client.has_permission(peer(1).ip()));
    assert_eq!(
        net.command(|c, now| c.send_to(now, peer(1), b"x")),
        Err(SendError::NoPermission(peer(1).ip()))
    );
    assert_eq!(
        net.command(|c, now| c.create_permission(now, &[])),
        Err(ClientError::NoPeers)
    );
}

#[test]
fn removed_permissions_are_not_refreshed() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip()]))
        .unwrap();
    net.run_until(secs(100.0));
    assert!(net.client.remove_permission(peer(1).ip()));
    net.run_until(secs(1000.0));
    assert_eq!(net.request_times(Method::CREATE_PERMISSION), [secs(0.0)]);
    assert!(!net.client.has_permission(peer(1).ip()), "lapsed at 300 s");
}

#[test]
fn commands_before_the_allocation_are_refused() {
    let mut net = Net::new(config(), vec![]);
    assert_eq!(
        net.command(|c, now| c.create_permission(now, &[peer(1).ip()])),
        Err(ClientError::NotAllocated)
    );
    assert_eq!(
        net.command(|c, now| c.bind_channel(now, peer(1))),
        Err(ClientError::NotAllocated)
    );
    assert_eq!(
        net.command(|c, now| c.send_to(now, peer(1), b"x")),
        Err(SendError::NotAllocated)
    );
}

// ---------------------------------------------------------------------------------------
// Loss and determinism

#[test]
fn allocation_survives_20_percent_loss() {
    let mut net = Net::new(config(), vec![Scripted::rfc8489(SERVER, &[2, 1])]);
    net.loss_every = 5;
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip(), peer(2).ip()]))
        .unwrap();
    net.command(|c, now| c.bind_channel(now, peer(3))).unwrap();
    net.run_until(secs(2.0 * 3600.0));
    assert_eq!(net.client.state(), ClientState::Allocated);
    assert!(
        net.events
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::PermissionCreated { .. }))
    );
    assert!(
        net.events
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::ChannelBound { .. }))
    );
    assert!(!net.events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::PermissionFailed { .. } | ClientEvent::ChannelBindFailed { .. }
    )));
    // Retransmissions happened: more datagrams were sent than distinct transactions.
    let mut tids: Vec<_> = net
        .sent
        .iter()
        .filter_map(|(_, t)| Message::parse(&t.payload).ok().map(|m| m.transaction_id()))
        .collect();
    let sent = tids.len();
    tids.sort();
    tids.dedup();
    assert!(tids.len() < sent);
    assert!(
        net.event_times(|e| matches!(e, ClientEvent::Refreshed { .. }))
            .len()
            >= 13
    );
}

/// A scenario touching every kind of output; returns all bytes sent.
fn scenario(seed: u64) -> Vec<(Duration, Vec<u8>)> {
    let server = Scripted::rfc8489(SERVER, &[2]).with(Method::REFRESH, Action::Stale);
    let mut net = Net::with_seed(config(), vec![server], seed);
    net.loss_every = 7;
    net.allocate();
    net.command(|c, now| c.create_permission(now, &[peer(1).ip(), peer(2).ip()]))
        .unwrap();
    net.command(|c, now| c.bind_channel(now, peer(3))).unwrap();
    for i in 0..10u8 {
        net.run_for(secs(100.0));
        let t = net
            .command(|c, now| c.send_to(now, peer(1 + i % 3), &[i; 20]))
            .unwrap();
        net.sent.push((net.at(), t));
    }
    net.run_until(secs(3600.0));
    net.sent.into_iter().map(|(t, x)| (t, x.payload)).collect()
}

#[test]
fn same_seed_same_bytes() {
    let a = scenario(42);
    assert!(a.len() > 50);
    assert_eq!(a, scenario(42));
    assert_ne!(a, scenario(43));
}

/// The times at which the client sent Binding indications (keepalives).
fn keepalive_times(net: &Net) -> Vec<Duration> {
    net.sent
        .iter()
        .filter(|(_, t)| {
            stun_proto::Message::parse(&t.payload)
                .is_ok_and(|m| m.message_type() == stun_proto::MessageType::BINDING_INDICATION)
        })
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn keepalives_go_out_while_the_allocation_is_idle() {
    let mut c = config();
    c.keepalive_interval = Some(secs(15.0));
    let mut net = Net::new(c, vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.run_until(secs(100.0));
    // Nothing was sent after the Allocate (at 0 s), so one every 15 s.
    assert_eq!(
        keepalive_times(&net),
        [
            secs(15.0),
            secs(30.0),
            secs(45.0),
            secs(60.0),
            secs(75.0),
            secs(90.0)
        ]
    );
    assert_eq!(net.client.stats().keepalives_sent, 6);
    // Each is a valid STUN message with a FINGERPRINT the server can ignore.
    let (_, t) = net.sent.last().unwrap();
    stun_proto::Message::parse(&t.payload)
        .unwrap()
        .verify_fingerprint()
        .unwrap();
}

#[test]
fn keepalives_pause_while_data_flows() {
    let mut c = config();
    c.keepalive_interval = Some(secs(15.0));
    let mut net = Net::new(c, vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    let peer = sa("198.51.100.7:4000");
    net.client.create_permission(net.now, &[peer.ip()]).unwrap();
    net.pump();
    // Data every 10 s until 60 s: no keepalive is needed in that time.
    for i in 1..=6 {
        net.run_until(secs(10.0 * f64::from(i)));
        let t = net.client.send_to(net.now, peer, b"x").unwrap();
        net.deliver(t);
    }
    net.run_until(secs(80.0));
    assert_eq!(keepalive_times(&net), [secs(75.0)]);
}

#[test]
fn no_keepalives_when_disabled() {
    let mut net = Net::new(config(), vec![Scripted::rfc5389(SERVER)]);
    net.allocate();
    net.run_until(secs(200.0));
    assert!(keepalive_times(&net).is_empty());
}
