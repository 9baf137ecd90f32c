//! The TURN server runner on loopback, through floe's TURN client (`drivers::turn::Session`).
#![allow(clippy::disallowed_methods)] // tests read the clock

use floe_drivers::stun::discover;
use floe_drivers::turn::Session;
use floe_drivers::turn_server::{TurnServerHandle, TurnServerOptions, spawn};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use stun_proto::nat::{NatDiscoveryConfig, NatDiscoveryEvent};
use stun_proto::server::{AlternateAddress, BindingServerConfig};
use turn_proto::client::ClientConfig;
use turn_proto::server::{RelayRange, ServerConfig};

const T: Duration = Duration::from_secs(5);
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// A config with the test user, loopback peers allowed, and relay ports `ports` on
/// 127.0.0.1. Each test uses its own ports (below the ephemeral range) so that tests
/// running at once do not take each other's.
fn config(ports: std::ops::RangeInclusive<u16>) -> ServerConfig {
    let mut c = ServerConfig::new("floe.test");
    c.add_user(USER, PASSWORD);
    c.relays.push(RelayRange {
        ip: loopback(),
        ports,
    });
    c.peer_policy.allow.push("127.0.0.0/8".parse().unwrap());
    c
}

fn options(ports: std::ops::RangeInclusive<u16>, workers: usize) -> TurnServerOptions {
    let mut o = TurnServerOptions::new(vec![SocketAddr::new(loopback(), 0)], config(ports));
    o.workers = workers;
    o.stats_interval = Duration::from_millis(50);
    o
}

fn allocate(server: &TurnServerHandle) -> std::io::Result<Session> {
    let c = ClientConfig::new(
        server.local_addrs()[0],
        SocketAddr::new(loopback(), 0),
        USER,
        PASSWORD,
    );
    Session::allocate(c, T)
}

fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(SocketAddr::new(loopback(), 0)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Waits until the published counters satisfy `done` (they lag by a stats interval).
fn wait_stats(
    server: &TurnServerHandle,
    done: impl Fn(&floe_drivers::turn_server::TurnServerStats) -> bool,
) {
    let end = Instant::now() + T;
    while Instant::now() < end {
        if done(&server.stats()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("counters never matched: {:?}", server.stats());
}

#[test]
fn allocate_and_relay_both_ways() {
    let server = spawn(options(21000..=21099, 1)).unwrap();
    let (peer, peer_addr) = peer();
    let mut session = allocate(&server).unwrap();
    let relayed = session.relayed()[0];
    assert_eq!(relayed.ip(), loopback());
    assert!((21000..=21099).contains(&relayed.port()));

    // A Send indication (permission only), then a channel.
    session.create_permission(&[peer_addr.ip()], T).unwrap();
    session.send_to(peer_addr, b"by send indication").unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by send indication"[..], relayed));
    session.bind_channel(peer_addr, T).unwrap();
    session.send_to(peer_addr, b"by channel").unwrap();
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by channel"[..], relayed));

    // Back through the relay as ChannelData (header written into the headroom).
    peer.send_to(b"pong", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.as_slice()), (peer_addr, &b"pong"[..]));
    // An empty datagram is relayed too (an empty ChannelData).
    peer.send_to(b"", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.len()), (peer_addr, 0));

    wait_stats(&server, |s| s.core.to_client.packets == 2);
    let s = server.stats();
    assert_eq!((s.core.allocations, s.core.channels), (1, 1));
    assert_eq!(s.core.to_peer.packets, 2);
    assert_eq!(s.io.relay_sockets, 1);
    assert_eq!(s.io.no_route, 0);

    session.delete(T).unwrap();
    wait_stats(&server, |s| s.io.relay_sockets == 0);
    let last = server.stop().unwrap();
    assert_eq!(last.core.allocations, 0);
    assert_eq!(last.io.send_errors, 0);
}

#[test]
fn two_workers_share_clients_and_split_relay_ports() {
    let server = spawn(options(22000..=22099, 2)).unwrap();
    assert_eq!(server.workers(), 2);
    let mut sessions: Vec<Session> = (0..8).map(|_| allocate(&server).unwrap()).collect();
    let mut per_half = [0; 2];
    for session in &mut sessions {
        let relayed = session.relayed()[0];
        // Worker 0 has 22000-22049, worker 1 22050-22099.
        per_half[usize::from(relayed.port() >= 22050)] += 1;
        let (peer, peer_addr) = peer();
        session.bind_channel(peer_addr, T).unwrap();
        session
            .send_to(peer_addr, relayed.to_string().as_bytes())
            .unwrap();
        let mut buf = [0u8; 100];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(from, relayed);
        assert_eq!(&buf[..n], relayed.to_string().as_bytes());
        peer.send_to(b"back", relayed).unwrap();
        let (from, data) = session.recv(T).unwrap();
        assert_eq!((from, data.as_slice()), (peer_addr, &b"back"[..]));
    }
    wait_stats(&server, |s| s.core.to_client.packets == 8);
    // Allocations are wherever the kernel hashed each client; together they are all there,
    // and each worker's count matches the relay ports handed out from its half.
    let workers = server.worker_stats();
    assert_eq!(workers.iter().map(|w| w.core.allocations).sum::<usize>(), 8);
    assert_eq!(
        [workers[0].core.allocations, workers[1].core.allocations],
        per_half
    );
    eprintln!("allocations per worker: {per_half:?}");
    server.stop().unwrap();
}

#[test]
fn a_relay_port_already_taken_gets_508_then_recovers() {
    let port = 23000;
    let mut o = options(port..=port, 1);
    o.config.failed_port_quarantine = Duration::from_millis(1);
    let server = spawn(o).unwrap();
    let blocker = UdpSocket::bind(SocketAddr::new(loopback(), port)).unwrap();
    let err = allocate(&server).unwrap_err();
    assert!(err.to_string().contains("508"), "{err}");
    wait_stats(&server, |s| s.io.bind_failures == 1);
    let s = server.stats();
    assert_eq!(s.core.failed_binds, 1);
    assert_eq!(s.core.errors.insufficient_capacity, 1);
    assert_eq!((s.core.allocations, s.io.relay_sockets), (0, 0));

    drop(blocker);
    std::thread::sleep(Duration::from_millis(20));
    let session = allocate(&server).unwrap();
    assert_eq!(session.relayed()[0].port(), port);
    server.stop().unwrap();
}

#[test]
fn a_burst_from_a_peer_arrives_whole_and_in_order() {
    let server = spawn(options(24000..=24099, 1)).unwrap();
    let (peer, peer_addr) = peer();
    let mut session = allocate(&server).unwrap();
    let relayed = session.relayed()[0];
    session.bind_channel(peer_addr, T).unwrap();
    // Bursts of datagrams of one size: the relay socket reads them in batches and the
    // worker sends them on to the client with GSO where the kernel has it.
    const N: u32 = 300;
    for burst in 0..N / 50 {
        for i in burst * 50..(burst + 1) * 50 {
            let mut payload = [0u8; 100];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            peer.send_to(&payload, relayed).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..N {
        let (from, data) = session.recv(T).unwrap();
        assert_eq!(from, peer_addr);
        assert_eq!(data.len(), 100);
        assert_eq!(&data[..4], &i.to_be_bytes(), "datagram {i} out of order");
    }
    wait_stats(&server, |s| s.core.to_client.packets == u64::from(N));
    let s = server.stop().unwrap();
    eprintln!(
        "sends {} of which GSO {}, datagrams sent {}",
        s.io.send_calls, s.io.gso_sends, s.io.datagrams_sent
    );
    assert_eq!(s.io.send_errors, 0);
}

#[test]
fn rfc5780_binding_answers_beside_turn() {
    // Two loopback IPs and two ports: the four listening addresses of RFC 5780.
    let (a1, a2) = (loopback(), IpAddr::from([127, 0, 0, 2]));
    let first = spawn(options(25000..=25009, 1)).unwrap();
    let p1 = first.local_addrs()[0].port();
    drop(first);
    let p2 = UdpSocket::bind(SocketAddr::new(a1, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: Vec<SocketAddr> = [(a1, p1), (a1, p2), (a2, p1), (a2, p2)]
        .into_iter()
        .map(|(ip, p)| SocketAddr::new(ip, p))
        .collect();
    let mut o = TurnServerOptions::new(listen, config(25000..=25009));
    o.stun = Some(BindingServerConfig {
        alternate: Some(AlternateAddress {
            primary_ip: a1,
            alternate_ip: a2,
            primary_port: p1,
            alternate_port: p2,
        }),
        ..BindingServerConfig::default()
    });
    let server = spawn(o).unwrap();
    let event = discover(
        SocketAddr::new(a1, p1),
        SocketAddr::new(a1, 0),
        NatDiscoveryConfig::default(),
    )
    .unwrap();
    match event {
        NatDiscoveryEvent::Finished(r) => {
            assert_eq!(r.mapping, Some(stun_proto::nat::MappingBehavior::NoNat));
            assert_eq!(r.other_address, Some(SocketAddr::new(a2, p2)));
        }
        other => panic!("{other:?}"),
    }
    // TURN still works on the primary address.
    let session = allocate(&server).unwrap();
    session.delete(T).unwrap();
    server.stop().unwrap();
}

#[test]
fn bad_options_are_refused() {
    let inside = TurnServerOptions::new(
        vec!["127.0.0.1:26005".parse().unwrap()],
        config(26000..=26009),
    );
    let err = spawn(inside).unwrap_err();
    assert!(err.to_string().contains("inside the relay range"), "{err}");

    let mut too_many = options(26000..=26002, 4);
    too_many.workers = 4;
    assert!(spawn(too_many).is_err());

    let mut no_relays = options(26000..=26009, 1);
    no_relays.config.relays.clear();
    let err = spawn(no_relays).unwrap_err();
    assert!(err.to_string().contains("no relay addresses"), "{err}");

    let none = TurnServerOptions::new(Vec::new(), config(26000..=26009));
    assert!(spawn(none).is_err());
}

/// A UDP socket read and written with quinn-udp, which reports and sets ECN.
struct EcnSocket {
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
}

impl EcnSocket {
    fn new(socket: UdpSocket) -> EcnSocket {
        let state = quinn_udp::UdpSocketState::new((&socket).into()).unwrap();
        EcnSocket { socket, state }
    }

    fn send(&self, to: SocketAddr, data: &[u8], ecn: quinn_udp::EcnCodepoint) {
        let t = quinn_udp::Transmit {
            destination: to,
            ecn: Some(ecn),
            contents: data,
            segment_size: None,
            src_ip: None,
        };
        self.state.try_send((&self.socket).into(), &t).unwrap();
    }

    /// The next datagram and its ECN bits (the socket is non-blocking: poll until `T`).
    fn recv(&self) -> (Vec<u8>, Option<quinn_udp::EcnCodepoint>) {
        let mut buf = vec![0u8; 2048];
        let mut meta = [quinn_udp::RecvMeta::default()];
        let end = Instant::now() + T;
        while Instant::now() < end {
            let mut slices = [std::io::IoSliceMut::new(&mut buf)];
            if let Ok(1) = self
                .state
                .recv((&self.socket).into(), &mut slices, &mut meta)
            {
                return (buf[..meta[0].len].to_vec(), meta[0].ecn);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("nothing received");
    }
}

#[test]
fn ecn_is_carried_over_both_ways() {
    use floe_drivers::blocking::Runner;
    use floe_drivers::turn::{ClientMachine, TurnOutput};
    use quinn_udp::EcnCodepoint::{Ce, Ect0, Ect1};
    use std::ops::ControlFlow;
    use turn_proto::client::{Client, ClientEvent};

    let server = spawn(options(26100..=26199, 1)).unwrap();
    let peer = EcnSocket::new(UdpSocket::bind(SocketAddr::new(loopback(), 0)).unwrap());
    let peer_addr = peer.socket.local_addr().unwrap();
    // Set up through floe's client on the blocking runner, keeping a duplicate of the
    // client's socket to send and read ChannelData with ECN afterwards.
    let socket = UdpSocket::bind(SocketAddr::new(loopback(), 0)).unwrap();
    let raw = socket.try_clone().unwrap();
    let config = ClientConfig::new(
        server.local_addrs()[0],
        socket.local_addr().unwrap(),
        USER,
        PASSWORD,
    );
    let client = Client::new(config, 1, Instant::now());
    let mut runner = Runner::new(ClientMachine::new(client));
    runner.add_socket(socket).unwrap();
    let mut relayed = None;
    runner
        .run(Some(Instant::now() + T), |machine, out| match out {
            TurnOutput::Event(ClientEvent::Allocated { relayed: r, .. }) => {
                relayed = Some(r[0]);
                let _ = machine.client().bind_channel(Instant::now(), peer_addr);
                ControlFlow::Continue(())
            }
            TurnOutput::Event(ClientEvent::ChannelBound { .. }) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .unwrap();
    let relayed = relayed.expect("allocated");
    let message = runner
        .machine_mut()
        .client()
        .send_to(Instant::now(), peer_addr, b"ecn?")
        .unwrap()
        .payload;
    drop(runner);
    // The runner's reader thread stops within 100 ms; the socket is then ours alone.
    std::thread::sleep(Duration::from_millis(300));
    let client = EcnSocket::new(raw);

    for ecn in [Ect0, Ect1, Ce] {
        client.send(server.local_addrs()[0], &message, ecn);
        let (data, got) = peer.recv();
        assert_eq!((data.as_slice(), got), (&b"ecn?"[..], Some(ecn)));
        peer.send(relayed, b"back", ecn);
        let (data, got) = client.recv();
        assert_eq!(&data[4..], b"back", "ChannelData");
        assert_eq!(got, Some(ecn));
    }
    server.stop().unwrap();
}
