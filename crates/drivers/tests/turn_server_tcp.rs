//! The TURN server runner over TCP and TLS on loopback (RFC 8656 §3.1) and its RFC 6062 TCP
//! allocations, through a small blocking client: `turn_proto::client::Client` over a std
//! `TcpStream` (or a rustls `ClientConnection` on one), framed with `StreamFramer`, data
//! connections cut with `first_message_len`, as `Client`'s documentation describes.
#![allow(clippy::disallowed_methods)] // tests read the clock

use floe_drivers::turn_server::{
    TurnServerHandle, TurnServerOptions, TurnServerStats, spawn, tls_config_from_pem,
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stun_proto::framing::{Framing, StreamFramer};
use turn_proto::client::{Client, ClientConfig, ClientEvent, Received};
use turn_proto::server::{RelayRange, ServerConfig};
use turn_proto::stream::first_message_len;
use turn_proto::{Input, TransportProtocol};

const T: Duration = Duration::from_secs(5);
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn any_port() -> SocketAddr {
    SocketAddr::new(loopback(), 0)
}

/// A config with the test user, loopback peers allowed, relay ports `ports` on 127.0.0.1
/// (each test its own, between the other tests' and the kernel's ephemeral range).
fn config(ports: std::ops::RangeInclusive<u16>, tcp_allocations: bool) -> ServerConfig {
    let mut c = ServerConfig::new("floe.test");
    c.add_user(USER, PASSWORD);
    c.relays.push(RelayRange {
        ip: loopback(),
        ports,
    });
    c.peer_policy.allow.push("127.0.0.0/8".parse().unwrap());
    c.tcp_allocations = tcp_allocations;
    c
}

/// A server listening on TCP only (and TLS when a configuration is given).
fn options(config: ServerConfig, tls: Option<&Certificate>) -> TurnServerOptions {
    let mut o = TurnServerOptions::new(Vec::new(), config);
    o.listen_tcp = vec![any_port()];
    if let Some(cert) = tls {
        o.listen_tls = vec![any_port()];
        o.tls = Some(tls_config_from_pem(&cert.cert, &cert.key).unwrap());
    }
    o.stats_interval = Duration::from_millis(50);
    o
}

/// Waits until the published counters satisfy `done` (they lag by a stats interval).
fn wait_stats(server: &TurnServerHandle, done: impl Fn(&TurnServerStats) -> bool) {
    let end = Instant::now() + T;
    while Instant::now() < end {
        if done(&server.stats()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("counters never matched: {:#?}", server.stats());
}

// --- a self-signed certificate ------------------------------------------------------------

/// A certificate for 127.0.0.1 and localhost made by the `openssl` CLI, in a directory
/// removed on drop.
struct Certificate {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes the certificate, or returns `None` (the test skips) when `openssl` is missing and
/// `FLOE_INTEROP=1` is not set (`.ci/run` installs it and sets it).
fn certificate(test: &str) -> Option<Certificate> {
    let dir = std::env::temp_dir().join(format!("floe-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // An end-entity certificate (openssl marks self-signed ones as CAs by default,
        // which webpki refuses as a server's certificate).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let certificate = Certificate { dir, cert, key };
    match made {
        Ok(status) if status.success() => Some(certificate),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if std::env::var("FLOE_INTEROP").is_ok_and(|v| v == "1") {
                panic!("{test}: `openssl` is not installed and FLOE_INTEROP=1");
            }
            eprintln!("SKIPPED {test}: `openssl` is not installed");
            None
        }
        other => panic!("openssl failed: {other:?}"),
    }
}

/// A rustls client configuration that trusts `cert` alone.
fn client_tls(cert: &Certificate) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&cert.cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

// --- a blocking stream client -------------------------------------------------------------

trait Duplex: Read + Write + Send {}
impl<S: Read + Write + Send> Duplex for S {}

/// What one read gave.
enum Got {
    Bytes(usize),
    Nothing,
    Closed,
}

fn read_some(stream: &mut dyn Duplex, buf: &mut [u8]) -> Got {
    match stream.read(buf) {
        Ok(0) => Got::Closed,
        Ok(n) => Got::Bytes(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Got::Nothing,
        Err(e) if e.kind() == ErrorKind::Interrupted => Got::Nothing,
        Err(_) => Got::Closed,
    }
}

/// A data connection whose ConnectionBind runs: its CONNECTION-ID, the stream, and what
/// was read on it so far.
type Binding = (u32, Box<dyn Duplex>, Vec<u8>);

/// A TURN client over a TCP or TLS control connection, with its RFC 6062 data connections.
struct StreamClient {
    client: Client,
    transport: TransportProtocol,
    tls: Option<Arc<rustls::ClientConfig>>,
    control: Box<dyn Duplex>,
    framer: StreamFramer,
    control_closed: bool,
    /// Data connections whose ConnectionBind runs, by local address: (id, stream, bytes).
    binding: HashMap<SocketAddr, Binding>,
    /// Peer connections handed over, by CONNECTION-ID: the stream and the bytes read after
    /// the ConnectionBind response.
    peers: HashMap<u32, (Box<dyn Duplex>, Vec<u8>)>,
    events: Vec<ClientEvent>,
    /// Peer data relayed over UDP: (peer, bytes).
    received: Vec<(SocketAddr, Vec<u8>)>,
}

impl StreamClient {
    /// Connects to `server` and starts allocating (`relay` UDP or TCP).
    fn new(
        server: SocketAddr,
        tls: Option<Arc<rustls::ClientConfig>>,
        relay: TransportProtocol,
    ) -> StreamClient {
        let (control, local) = connect(server, tls.as_ref());
        let mut config = ClientConfig::new(server, local, USER, PASSWORD);
        config.transport = if tls.is_some() {
            TransportProtocol::Tls
        } else {
            TransportProtocol::Tcp
        };
        config.relay_transport = relay;
        StreamClient {
            transport: config.transport,
            client: Client::new(config, 7, Instant::now()),
            tls,
            control,
            framer: StreamFramer::new(Framing::StunAndChannelData),
            control_closed: false,
            binding: HashMap::new(),
            peers: HashMap::new(),
            events: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Runs the client until `done` holds (panics after `T`).
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&StreamClient) -> bool) {
        let end = Instant::now() + T;
        while !done(self) {
            assert!(
                Instant::now() < end,
                "{what}: not in time; events {:?}",
                self.events
            );
            self.turn();
        }
    }

    /// Allocates; returns the relayed address.
    fn allocate(&mut self) -> SocketAddr {
        self.run_until("allocation", |c| {
            c.events.iter().any(|e| {
                matches!(
                    e,
                    ClientEvent::Allocated { .. } | ClientEvent::AllocationFailed { .. }
                )
            })
        });
        match self.events.iter().find_map(|e| match e {
            ClientEvent::Allocated { relayed, .. } => Some(relayed[0]),
            _ => None,
        }) {
            Some(r) => r,
            None => panic!("allocation failed: {:?}", self.events),
        }
    }

    /// One round: write, read, timers.
    fn turn(&mut self) {
        let now = Instant::now();
        self.flush();
        while let Some(e) = self.client.poll_event() {
            self.on_event(now, &e);
            self.events.push(e);
        }
        self.flush();
        self.read_control(now);
        self.read_data_connections(now);
        self.client.handle_timeout(Instant::now());
    }

    fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let stream = match self.binding.get_mut(&t.source) {
                Some((_, s, _)) => s,
                None => &mut self.control,
            };
            stream.write_all(&t.payload).unwrap();
            stream.flush().unwrap();
        }
    }

    fn on_event(&mut self, now: Instant, e: &ClientEvent) {
        match e {
            ClientEvent::OpenDataConnection { connection_id, .. } => {
                // RFC 6062 §4.3: a new connection with the control connection's transport.
                let (stream, local) = connect(self.client.server(), self.tls.as_ref());
                self.binding
                    .insert(local, (*connection_id, stream, Vec::new()));
                self.client
                    .data_connection_opened(now, *connection_id, local)
                    .unwrap();
            }
            ClientEvent::PeerConnection {
                connection_id,
                local,
                ..
            } => {
                let (_, stream, rest) = self.binding.remove(local).expect("a binding connection");
                self.peers.insert(*connection_id, (stream, rest));
            }
            ClientEvent::DataConnectionFailed { .. } => panic!("{e:?}"),
            _ => {}
        }
    }

    fn read_control(&mut self, now: Instant) {
        if self.control_closed {
            return;
        }
        let mut buf = [0u8; 4096];
        match read_some(&mut *self.control, &mut buf) {
            Got::Bytes(n) => self.framer.push(&buf[..n]).unwrap(),
            Got::Nothing => return,
            Got::Closed => {
                self.control_closed = true;
                self.client.connection_lost(now);
                return;
            }
        }
        let (server, local, transport) =
            (self.client.server(), self.client.local(), self.transport);
        while let Some(frame) = self.framer.next_frame().unwrap() {
            let input = Input {
                transport,
                source: server,
                destination: local,
                data: frame.data,
            };
            if let Received::PeerData { peer, data } = self.client.handle_input(now, input) {
                self.received.push((peer, data.to_vec()));
            }
        }
    }

    fn read_data_connections(&mut self, now: Instant) {
        let locals: Vec<SocketAddr> = self.binding.keys().copied().collect();
        for local in locals {
            let Some((_, stream, buf)) = self.binding.get_mut(&local) else {
                continue;
            };
            let mut chunk = [0u8; 4096];
            if let Got::Bytes(n) = read_some(&mut **stream, &mut chunk) {
                buf.extend_from_slice(&chunk[..n]);
            }
            // The response, cut off; what follows is the peer's (kept for PeerConnection).
            if let Ok(Some(len)) = first_message_len(buf) {
                let message: Vec<u8> = buf.drain(..len).collect();
                let input = Input {
                    transport: self.transport,
                    source: self.client.server(),
                    destination: local,
                    data: &message,
                };
                let _ = self.client.handle_input(now, input);
                while let Some(e) = self.client.poll_event() {
                    self.on_event(now, &e);
                    self.events.push(e);
                }
            }
        }
    }

    /// Waits for the peer connection `id` to deliver `n` bytes (with those read behind the
    /// ConnectionBind response); returns them.
    fn read_peer(&mut self, id: u32, n: usize) -> Vec<u8> {
        let end = Instant::now() + T;
        loop {
            let (stream, got) = self.peers.get_mut(&id).expect("peer connection");
            if got.len() >= n {
                return got.drain(..n).collect();
            }
            assert!(Instant::now() < end, "only {got:?} from the peer");
            let mut chunk = [0u8; 4096];
            match read_some(&mut **stream, &mut chunk) {
                Got::Bytes(k) => got.extend_from_slice(&chunk[..k]),
                Got::Nothing => {}
                Got::Closed => panic!("the peer connection closed after {got:?}"),
            }
        }
    }

    /// The first peer connection's CONNECTION-ID.
    fn peer_connection(&mut self) -> u32 {
        self.run_until("a peer connection", |c| !c.peers.is_empty());
        *self.peers.keys().next().unwrap()
    }
}

/// A connection with reads that time out after 20 ms.
fn connect(
    server: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> (Box<dyn Duplex>, SocketAddr) {
    let mut tcp = TcpStream::connect(server).unwrap();
    tcp.set_nodelay(true).unwrap();
    let local = tcp.local_addr().unwrap();
    let stream: Box<dyn Duplex> = match tls {
        None => Box::new(tcp.try_clone().unwrap()),
        Some(config) => {
            let name = ServerName::try_from("localhost").unwrap();
            let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
            tcp.set_read_timeout(Some(T)).unwrap();
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp).expect("TLS handshake");
            }
            Box::new(rustls::StreamOwned::new(conn, tcp.try_clone().unwrap()))
        }
    };
    tcp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    (stream, local)
}

/// Reads from a std stream until `n` bytes came (panics after `T` or on EOF).
fn read_exact_in_time(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    stream.set_read_timeout(Some(T)).unwrap();
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// True once the other side closed `stream` (EOF or reset) within `T`.
fn closes_in_time(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn udp_peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(any_port()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Allocates a UDP relay over `client`, relays to a UDP peer by Send indication and by
/// channel, and back (a ChannelData of 5 bytes: padded on the stream, unpadded for the
/// client).
fn relay_udp_both_ways(client: &mut StreamClient) {
    let relayed = client.allocate();
    assert_eq!(relayed.ip(), loopback());
    let (peer, peer_addr) = udp_peer();
    client
        .client
        .create_permission(Instant::now(), &[peer_addr.ip()])
        .unwrap();
    client.run_until("permission", |c| {
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::PermissionCreated { .. }))
    });
    let t = client
        .client
        .send_to(Instant::now(), peer_addr, b"by send indication")
        .unwrap();
    client.control.write_all(&t.payload).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by send indication"[..], relayed));

    // Back as a Data indication (no channel yet).
    peer.send_to(b"data indication", relayed).unwrap();
    client.run_until("a Data indication", |c| !c.received.is_empty());
    assert_eq!(
        client.received.remove(0),
        (peer_addr, b"data indication".to_vec())
    );

    client
        .client
        .bind_channel(Instant::now(), peer_addr)
        .unwrap();
    client.run_until("channel", |c| {
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::ChannelBound { .. }))
    });
    let t = client
        .client
        .send_to(Instant::now(), peer_addr, b"by channel")
        .unwrap();
    client.control.write_all(&t.payload).unwrap();
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by channel"[..], relayed));
    for payload in [&b"hello"[..], b"", b"four"] {
        peer.send_to(payload, relayed).unwrap();
        client.run_until("ChannelData", |c| !c.received.is_empty());
        assert_eq!(client.received.remove(0), (peer_addr, payload.to_vec()));
    }
}

#[test]
fn tcp_client_allocates_and_relays_udp_both_ways() {
    let server = spawn(options(config(30000..=30099, false), None)).unwrap();
    assert!(server.local_addrs().is_empty(), "no UDP listener asked for");
    let mut client = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Udp);
    relay_udp_both_ways(&mut client);
    wait_stats(&server, |s| s.core.to_client.packets == 4);
    let s = server.stats();
    assert_eq!((s.stream.tcp_connections, s.stream.tls_connections), (1, 0));
    assert_eq!(s.stream.accepted, 1);
    assert_eq!((s.core.allocations, s.io.relay_sockets), (1, 1));
    assert_eq!(s.core.data_indications, 1);
    assert!(s.stream.bytes_in > 0 && s.stream.bytes_out > 0);
    assert_eq!(s.stream.dropped_datagrams, 0);
    server.stop().unwrap();
}

#[test]
fn tls_client_allocates_and_relays_udp_both_ways() {
    let test = "tls_client_allocates_and_relays_udp_both_ways";
    let Some(cert) = certificate(test) else {
        return;
    };
    let server = spawn(options(config(30100..=30199, false), Some(&cert))).unwrap();
    let tls = client_tls(&cert);
    let mut client = StreamClient::new(server.tls_addrs()[0], Some(tls), TransportProtocol::Udp);
    relay_udp_both_ways(&mut client);
    wait_stats(&server, |s| s.core.to_client.packets == 4);
    let s = server.stats();
    assert_eq!((s.stream.tcp_connections, s.stream.tls_connections), (0, 1));
    assert_eq!(s.stream.tls_failures, 0);
    // A client that does not trust the certificate fails its handshake; the server counts it.
    let untrusting = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let mut tcp = TcpStream::connect(server.tls_addrs()[0]).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(untrusting), name).unwrap();
    let mut failed = false;
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the handshake must fail");
    drop(tcp);
    wait_stats(&server, |s| {
        s.stream.tls_failures == 1 && s.stream.tls_connections == 1
    });
    server.stop().unwrap();
}

#[test]
fn closing_the_connection_deletes_the_allocation() {
    let server = spawn(options(config(30200..=30299, false), None)).unwrap();
    let mut client = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Udp);
    client.allocate();
    wait_stats(&server, |s| {
        s.core.allocations == 1 && s.io.relay_sockets == 1
    });
    drop(client);
    wait_stats(&server, |s| {
        s.core.allocations == 0 && s.io.relay_sockets == 0 && s.stream.tcp_connections == 0
    });
    server.stop().unwrap();
}

/// A TCP peer on loopback: a listener, and what it accepted.
fn tcp_peer() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(any_port()).unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

#[test]
fn rfc6062_connect_and_bridge_with_a_tcp_peer_on_two_workers() {
    let mut o = options(config(30300..=30399, true), None);
    o.workers = 2;
    let server = spawn(o).unwrap();
    let mut client = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Tcp);
    let relayed = client.allocate();
    // Three peers, each connected by a Connect and bridged to a data connection of its own
    // (each data connection reaches the worker holding the allocation: worker 0).
    let mut accepted = Vec::new();
    for i in 0..3u8 {
        let (listener, peer_addr) = tcp_peer();
        client.client.connect(Instant::now(), peer_addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut incoming = None;
        client.run_until("the relay connects to the peer", |_| {
            incoming = incoming.take().or_else(|| listener.accept().ok());
            incoming.is_some()
        });
        let (mut at_peer, from) = incoming.unwrap();
        at_peer.set_nonblocking(false).unwrap();
        assert_eq!(
            from, relayed,
            "the server connects from the relayed address"
        );
        // Bytes the peer sends before the bridge are held and delivered after it.
        at_peer.write_all(&[b'p', i]).unwrap();
        client.run_until("a peer connection", |c| c.peers.len() == usize::from(i) + 1);
        let id = client
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::PeerConnection { connection_id, .. } => Some(*connection_id),
                _ => None,
            })
            .unwrap();
        assert_eq!(client.read_peer(id, 2), vec![b'p', i]);
        let (stream, _) = client.peers.get_mut(&id).unwrap();
        stream.write_all(&[b'c', i]).unwrap();
        assert_eq!(read_exact_in_time(&mut at_peer, 2), vec![b'c', i]);
        accepted.push((id, at_peer));
    }
    // A larger transfer both ways across one bridge.
    let (id, at_peer) = &mut accepted[0];
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = at_peer.try_clone().unwrap();
        let big = big.clone();
        std::thread::spawn(move || w.write_all(&big).unwrap())
    };
    assert_eq!(client.read_peer(*id, big.len()), big);
    writer.join().unwrap();
    wait_stats(&server, |s| s.stream.bridges == 3);
    let workers = server.worker_stats();
    assert_eq!(
        workers[0].stream.tcp_connections, 4,
        "control + 3 data connections"
    );
    assert_eq!(workers[1].stream.tcp_connections, 0);
    assert_eq!(workers[0].core.tcp.bridged, 3);

    // The peer closes: the data connection closes with it; the others stay.
    let (id, at_peer) = accepted.remove(0);
    drop(at_peer);
    let (stream, _) = client.peers.get_mut(&id).unwrap();
    let end = Instant::now() + T;
    let mut buf = [0u8; 64];
    loop {
        match read_some(&mut **stream, &mut buf) {
            Got::Closed => break,
            _ => assert!(Instant::now() < end, "the data connection stays open"),
        }
    }
    wait_stats(&server, |s| {
        s.stream.bridges == 2 && s.stream.peer_connections == 2
    });
    // The control connection closes: the allocation ends and so do all its bridges
    // (RFC 6062 §5.5).
    drop(client);
    for (_, mut at_peer) in accepted {
        assert!(closes_in_time(&mut at_peer));
    }
    wait_stats(&server, |s| {
        s.stream.peer_connections == 0 && s.stream.tcp_relays == 0 && s.core.allocations == 0
    });
    let s = server.stop().unwrap();
    assert!(s.stream.bridged_bytes >= 200_000 + 12);
}

#[test]
fn rfc6062_incoming_peer_over_tls_is_held_until_bound() {
    let test = "rfc6062_incoming_peer_over_tls_is_held_until_bound";
    let Some(cert) = certificate(test) else {
        return;
    };
    let server = spawn(options(config(30400..=30499, true), Some(&cert))).unwrap();
    let tls = client_tls(&cert);
    let mut client = StreamClient::new(server.tls_addrs()[0], Some(tls), TransportProtocol::Tcp);
    let relayed = client.allocate();
    // Without a permission the relay refuses the peer (RFC 6062 §5.3).
    let mut refused = TcpStream::connect(relayed).unwrap();
    assert!(closes_in_time(&mut refused));
    wait_stats(&server, |s| s.core.tcp.refused == 1);

    client
        .client
        .create_permission(Instant::now(), &[loopback()])
        .unwrap();
    client.run_until("permission", |c| {
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::PermissionCreated { .. }))
    });
    let mut peer = TcpStream::connect(relayed).unwrap();
    peer.write_all(b"early bytes").unwrap();
    let id = client.peer_connection();
    assert_eq!(client.read_peer(id, 11), b"early bytes");
    let (stream, _) = client.peers.get_mut(&id).unwrap();
    stream.write_all(b"over TLS").unwrap();
    assert_eq!(read_exact_in_time(&mut peer, 8), b"over TLS");
    wait_stats(&server, |s| {
        s.stream.bridges == 1 && s.stream.tls_connections == 2
    });

    // The application closes its data connection: the peer's connection closes too, and
    // the allocation stays.
    client.peers.clear();
    assert!(closes_in_time(&mut peer));
    wait_stats(&server, |s| {
        s.stream.bridges == 0 && s.stream.tls_connections == 1
    });
    assert_eq!(server.stats().core.allocations, 1);
    server.stop().unwrap();
}

#[test]
fn connections_without_an_allocation_are_closed() {
    let test = "connections_without_an_allocation_are_closed";
    let Some(cert) = certificate(test) else {
        return;
    };
    let mut o = options(config(30500..=30509, false), Some(&cert));
    o.unallocated_timeout = Duration::from_millis(300);
    let server = spawn(o).unwrap();
    // Silent over TCP, and a TLS connection that never starts its handshake.
    let mut silent = TcpStream::connect(server.tcp_addrs()[0]).unwrap();
    let mut no_handshake = TcpStream::connect(server.tls_addrs()[0]).unwrap();
    assert!(closes_in_time(&mut silent));
    assert!(closes_in_time(&mut no_handshake));
    wait_stats(&server, |s| s.stream.closed_idle == 2);
    // Bytes that are neither STUN nor ChannelData close the connection at once.
    let mut garbage = TcpStream::connect(server.tcp_addrs()[0]).unwrap();
    // (A TLS ClientHello on the TCP port: its first byte, 0x16, starts neither.)
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    assert!(closes_in_time(&mut garbage));
    wait_stats(&server, |s| s.stream.framing_errors == 1);
    // An allocation keeps a connection open past the timeout.
    let mut client = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Udp);
    client.allocate();
    std::thread::sleep(Duration::from_millis(600));
    let s = server.stats();
    assert_eq!((s.stream.tcp_connections, s.stream.closed_idle), (1, 2));
    server.stop().unwrap();
}

#[test]
fn a_client_that_does_not_read_loses_datagrams_and_nothing_else() {
    let server = spawn(options(config(30600..=30699, false), None)).unwrap();
    let mut client = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Udp);
    let relayed = client.allocate();
    let (peer, peer_addr) = udp_peer();
    client
        .client
        .bind_channel(Instant::now(), peer_addr)
        .unwrap();
    client.run_until("channel", |c| {
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::ChannelBound { .. }))
    });
    // The client stops reading; the peer floods its relayed address.
    let payload = [7u8; 1200];
    let end = Instant::now() + Duration::from_secs(20);
    while server.stats().stream.dropped_datagrams == 0 {
        assert!(
            Instant::now() < end,
            "nothing dropped: {:#?}",
            server.stats()
        );
        for _ in 0..500 {
            let _ = peer.send_to(&payload, relayed);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The server still serves others, and the slow client keeps its connection.
    let mut other = StreamClient::new(server.tcp_addrs()[0], None, TransportProtocol::Udp);
    other.allocate();
    wait_stats(&server, |s| {
        s.stream.tcp_connections == 2 && s.core.allocations == 2
    });
    assert_eq!(server.stats().stream.closed_slow, 0);
    server.stop().unwrap();
}

#[test]
fn a_client_that_does_not_read_its_responses_is_closed() {
    let server = spawn(options(config(30710..=30719, false), None)).unwrap();
    // A small receive window, so that the responses pile up at the server quickly.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.tcp_addrs()[0].into()).unwrap();
    let mut stream: TcpStream = socket.into();
    // Binding requests, never reading an answer.
    let mut burst = Vec::with_capacity(20 * 1000);
    let end = Instant::now() + Duration::from_secs(30);
    let mut n: u32 = 0;
    'writing: loop {
        assert!(Instant::now() < end, "never closed: {:#?}", server.stats());
        burst.clear();
        for _ in 0..1000 {
            n += 1;
            burst.extend_from_slice(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]);
            burst.extend_from_slice(&[0, 0, 0, 0]);
            burst.extend_from_slice(&n.to_be_bytes());
        }
        if stream.write_all(&burst).is_err() {
            break 'writing;
        }
        if server.stats().stream.closed_slow == 1 {
            break;
        }
    }
    wait_stats(&server, |s| {
        s.stream.closed_slow == 1 && s.stream.tcp_connections == 0
    });
    server.stop().unwrap();
}

#[test]
fn stream_options_are_checked() {
    let mut tls_without_config = TurnServerOptions::new(Vec::new(), config(30700..=30709, false));
    tls_without_config.listen_tls = vec![any_port()];
    let err = spawn(tls_without_config).unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");

    let mut inside = TurnServerOptions::new(Vec::new(), config(30700..=30709, false));
    inside.listen_tcp = vec!["127.0.0.1:30705".parse().unwrap()];
    let err = spawn(inside).unwrap_err();
    assert!(err.to_string().contains("inside the relay range"), "{err}");

    let missing = PathBuf::from("/nonexistent/cert.pem");
    let err = tls_config_from_pem(&missing, &missing).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}
