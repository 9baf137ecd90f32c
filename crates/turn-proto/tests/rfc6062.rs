//! RFC 6062 TCP allocations: `turn_proto::Client` against `turn_proto::Server` through
//! in-memory TCP/TLS connections (real `StreamFramer`s, reference drivers in `common`), and
//! the server's rules against requests written by hand.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

mod common;

use common::*;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use stun_proto::attributes::{
    ConnectionId, DontFragment, EncodeAttribute, ErrorCode, EvenPort, Nonce, Realm,
    RequestedTransport, ReservationToken, Username, XorPeerAddress, XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
    TransportProtocol,
};
use turn_proto::client::{
    ClientError, ClientEvent, ClientState, DataConnectionFailure, ErrorKind, RequestFailure,
    SendError,
};
use turn_proto::server::{
    ConnectFailure, IncomingPeer, PeerRefusal, RelayBinding, ServerEvent, ServerInput,
};
use turn_proto::{Input, TransportProtocol as Tp};

const PEER3: &str = "198.51.100.3:7000";

fn tcp_world(control: TransportProtocol, reads: Reads) -> World {
    let mut world = World::new(server_config(true), client_config(control, Tp::Tcp), reads);
    world.advance(Duration::from_millis(1));
    assert_eq!(world.client.state(), ClientState::Allocated);
    world
}

/// A `ConnectFailed` with this error code (and its kind).
fn rejected(code: u16) -> impl Fn(&ClientEvent) -> bool {
    let kind = ErrorKind::from_code(code);
    move |e| {
        matches!(e, ClientEvent::ConnectFailed { reason: RequestFailure::Rejected(s), .. }
            if s.code == code && s.kind == kind)
    }
}

fn ip(s: &str) -> IpAddr {
    sa(s).ip()
}

#[test]
fn connect_bind_and_relay_both_ways() {
    for control in [Tp::Tcp, Tp::Tls] {
        let mut world = tcp_world(control, Reads::Whole);
        let relayed = world.relayed();
        assert!(world.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::BindRelay { relayed: r, transport: Tp::Tcp } if *r == relayed
        )));

        // Connect: a CreatePermission goes first (none was asked for), the server connects
        // from the relayed address, the client opens and binds a data connection.
        world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
        assert_eq!(
            world.count_client(|e| matches!(e, ClientEvent::PermissionCreated { .. })),
            1
        );
        let connect = world.server_events.iter().find_map(|(_, e)| match e {
            ServerEvent::ConnectPeer {
                connection_id,
                relayed,
                peer,
            } => Some((*connection_id, *relayed, *peer)),
            _ => None,
        });
        let (id, from, to) = connect.unwrap();
        assert_eq!((from, to), (relayed, sa(PEER)));
        assert_eq!(world.peer_connections(), [(id, sa(PEER))]);
        let bridge = world.server_events.iter().find_map(|(_, e)| match e {
            ServerEvent::Bridge {
                connection_id,
                transport,
                client,
                peer,
            } => Some((*connection_id, *transport, *client, *peer)),
            _ => None,
        });
        let (bid, transport, (local, remote), peer) = bridge.unwrap();
        assert_eq!((bid, transport, local), (id, control, sa(LISTEN)));
        assert_ne!(remote, sa(LOCAL), "a data connection of its own");
        assert_eq!(peer, (relayed, sa(PEER)));

        // Raw bytes both ways, without TURN framing; the core reads none of them.
        world.app_sends(id, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(world.peers[&id].received, b"GET / HTTP/1.1\r\n\r\n");
        world.peer_sends(id, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(world.app_received[&id], b"HTTP/1.1 200 OK\r\n\r\n");
        let stats = world.server.stats();
        assert_eq!(
            (
                stats.tcp.connects,
                stats.tcp.bridged,
                stats.tcp.connections,
                stats.tcp.unbound
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(
            stats.drops.bridged, 0,
            "the driver keeps bridged bytes from the core"
        );

        // 446: a connection with this peer exists.
        world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
        assert_eq!(world.count_client(rejected(446)), 1);
        assert_eq!(
            ErrorKind::from_code(446),
            ErrorKind::ConnectionAlreadyExists
        );

        // 447: the peer refuses.
        world.connect_policy = ConnectPolicy::Fail(ConnectFailure::Refused);
        world.command(|c, now| c.connect(now, sa(PEER2))).unwrap();
        assert_eq!(world.count_client(rejected(447)), 1);

        // 447 after the connect timeout (30 s) when the driver never reports; the attempt
        // is abandoned with ClosePeerConnection; 446 while it runs.
        world.connect_policy = ConnectPolicy::Hold;
        world.command(|c, now| c.connect(now, sa(PEER3))).unwrap();
        let held = world.held_connects[0];
        world.command(|c, now| c.connect(now, sa(PEER3))).unwrap();
        assert_eq!(world.count_client(rejected(446)), 2);
        world.advance(Duration::from_secs(29));
        assert_eq!(world.count_client(rejected(447)), 1);
        world.advance(Duration::from_secs(1));
        assert_eq!(world.count_client(rejected(447)), 2);
        assert!(world.held_connects.is_empty());
        assert!(world.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::ClosePeerConnection { connection_id } if *connection_id == held
        )));
        // A late report is refused: the driver closes what it opened.
        assert!(
            world
                .server
                .peer_connected(world.now, held, Ok(()))
                .is_err()
        );

        // The application closes its connection: the pair goes, the peer can be reached
        // again.
        world.app_closes(id);
        assert!(world.peers[&id].closed);
        assert_eq!(world.server.stats().tcp.connections, 0);
        world.connect_policy = ConnectPolicy::Accept;
        world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
        assert_eq!(world.peer_connections().len(), 2);
        let second = world.peer_connections()[1].0;
        assert_ne!(second, id);
        // The peer closes: the driver closes the data connection and tells the core.
        world.peer_closes(second);
        assert_eq!(world.server.stats().tcp.connections, 0);
        assert!(world.conns.values().filter(|c| c.closed).count() >= 2);
        // The control connection still works.
        assert_eq!(world.client.state(), ClientState::Allocated);
        assert_eq!(world.server.allocation_count(), 1);
    }
}

#[test]
fn connection_attempts_need_a_permission_and_keep_early_bytes() {
    let mut world = tcp_world(Tp::Tcp, Reads::Whole);
    let relayed = world.relayed();

    // RFC 6062 §5.3: without a permission the connection is closed; the client hears of
    // nothing.
    assert_eq!(
        world.peer_connects(sa(PEER), relayed),
        IncomingPeer::Refused(PeerRefusal::NoPermission)
    );
    assert_eq!(
        world.count_client(|e| matches!(e, ClientEvent::OpenDataConnection { .. })),
        0
    );
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER)]))
        .unwrap();

    // With it: a ConnectionAttempt, a data connection, a ConnectionBind. The peer speaks
    // first, before the bind: its bytes are buffered and written right behind the
    // ConnectionBind response, in the same read; the client-side driver cuts them off
    // with `first_message_len` and hands them to the application.
    world.open_data_connections = false;
    let IncomingPeer::Accepted { connection_id: id } = world.peer_connects(sa(PEER), relayed)
    else {
        panic!("refused")
    };
    assert!(world.client_events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::OpenDataConnection { connection_id, peer } if (*connection_id, *peer) == (id, sa(PEER))
    )));
    world.peer_sends(id, b"early bytes, ");
    world.open_data_connection(id);
    world.pump();
    assert_eq!(world.peer_connections(), [(id, sa(PEER))]);
    world.peer_sends(id, b"then more");
    assert_eq!(world.app_received[&id], b"early bytes, then more");
    world.app_sends(id, b"answer");
    assert_eq!(world.peers[&id].received, b"answer");
    assert_eq!(world.server.stats().tcp.attempts, 1);

    // The same peer transport address again: refused (one connection per peer address).
    assert_eq!(
        world.peer_connects(sa(PEER), relayed),
        IncomingPeer::Refused(PeerRefusal::AlreadyConnected)
    );
    // Another port of the permitted IP is fine (permissions are by IP).
    let other_port = SocketAddr::new(ip(PEER), 7001);
    assert!(matches!(
        world.peer_connects(other_port, relayed),
        IncomingPeer::Accepted { .. }
    ));
    // Denied by the peer policy, or not a TCP relayed address.
    assert_eq!(
        world.peer_connects(sa("127.0.0.1:7000"), relayed),
        IncomingPeer::Refused(PeerRefusal::DeniedPeer)
    );
    assert_eq!(
        world.peer_connects(sa(PEER), sa("192.0.2.1:50999")),
        IncomingPeer::Refused(PeerRefusal::NoAllocation)
    );
    assert_eq!(world.server.stats().tcp.refused, 4);
}

#[test]
fn unbound_attempts_time_out_and_bad_connection_ids_get_400() {
    let mut world = tcp_world(Tp::Tcp, Reads::Whole);
    let relayed = world.relayed();
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER), ip(PEER2)]))
        .unwrap();
    world.open_data_connections = false;
    let IncomingPeer::Accepted { connection_id: id } = world.peer_connects(sa(PEER), relayed)
    else {
        panic!("refused")
    };
    let t0 = world.elapsed();

    // Nobody binds it: after 30 s the server closes the peer connection; the client gave up
    // on it at the same time.
    world.advance(Duration::from_secs(30));
    let closed_at = world.server_events.iter().find_map(|(at, e)| {
        matches!(e, ServerEvent::ClosePeerConnection { connection_id } if *connection_id == id)
            .then_some(*at)
    });
    assert_eq!(closed_at, Some(t0 + Duration::from_secs(30)));
    assert_eq!(world.server.stats().tcp.bind_timeouts, 1);
    assert_eq!(world.server.stats().tcp.connections, 0);
    assert!(world.client_events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::DataConnectionFailed { connection_id, reason: DataConnectionFailure::OpenTimeout, .. } if *connection_id == id
    )));
    assert_eq!(
        world
            .client
            .data_connection_opened(world.now, id, sa("10.0.0.2:6999")),
        Err(ClientError::UnknownConnection(id))
    );

    // A ConnectionBind for the expired ID, an unknown one, none at all: 400 (RFC 6062 §5.4).
    let mut alice = Manual::open(&mut world, "10.0.0.2:7100", USER, PASSWORD, Tp::Tcp);
    assert_eq!(alice.connection_bind(&mut world, Some(id)), Some(400));
    assert_eq!(alice.connection_bind(&mut world, Some(id ^ 1)), Some(400));
    assert_eq!(alice.connection_bind(&mut world, None), Some(400));

    // A pending connection bound by another user: 441; the owner can still bind it.
    let IncomingPeer::Accepted { connection_id: id2 } = world.peer_connects(sa(PEER2), relayed)
    else {
        panic!("refused")
    };
    let mut bob = Manual::open(&mut world, "10.0.0.2:7101", "bob", "builder", Tp::Tcp);
    assert_eq!(bob.connection_bind(&mut world, Some(id2)), Some(441));
    let mut owner = Manual::open(&mut world, "10.0.0.2:7102", USER, PASSWORD, Tp::Tcp);
    assert_eq!(
        owner.connection_bind(&mut world, Some(id2)),
        None,
        "success"
    );
    assert!(world.server_events.iter().any(|(_, e)| matches!(
        e,
        ServerEvent::Bridge { connection_id, client: (_, remote), .. } if *connection_id == id2 && *remote == sa("10.0.0.2:7102")
    )));
    // Bound once: a second ConnectionBind for it is a 400.
    let mut again = Manual::open(&mut world, "10.0.0.2:7103", USER, PASSWORD, Tp::Tcp);
    assert_eq!(again.connection_bind(&mut world, Some(id2)), Some(400));
    // From now on the core reads nothing on the bound connection.
    world.peer_sends(id2, b"raw");
    assert!(world.take_raw(sa("10.0.0.2:7102")).ends_with(b"raw"));
    world.write_as_client(sa("10.0.0.2:7102"), b"\x00\x01 not parsed");
    world.pump();
    assert_eq!(world.peers[&id2].received, b"\x00\x01 not parsed");
    assert_eq!(world.server.stats().drops.bridged, 0);
}

#[test]
fn allocate_connect_and_channel_rules() {
    let mut world = World::new(
        server_config(true),
        client_config(Tp::Tcp, Tp::Udp),
        Reads::Whole,
    );
    // RFC 6062 §5.1: TCP over UDP is a 400, as are the UDP-only attributes.
    let mut udp = Manual::udp("10.0.0.5:5000", USER, PASSWORD);
    assert_eq!(
        udp.allocate(&mut world, &[&RequestedTransport::TCP]),
        Some(400)
    );
    let mut m = Manual::open(&mut world, "10.0.0.5:5001", USER, PASSWORD, Tp::Tcp);
    let tcp = RequestedTransport::TCP;
    assert_eq!(
        m.allocate(&mut world, &[&tcp, &EvenPort { reserve: false }]),
        Some(400)
    );
    assert_eq!(m.allocate(&mut world, &[&tcp, &DontFragment]), Some(400));
    assert_eq!(
        m.allocate(&mut world, &[&tcp, &ReservationToken([1; 8])]),
        Some(400)
    );
    // Without a CONNECT-able allocation: 437.
    assert_eq!(m.connect(&mut world, sa(PEER)), Some(437));
    assert_eq!(m.allocate(&mut world, &[&tcp]), None);
    let relayed = m.relayed.unwrap();
    // ChannelBind belongs to UDP allocations.
    let channel = stun_proto::attributes::ChannelNumber(0x4000);
    assert_eq!(
        m.request(
            &mut world,
            Method::CHANNEL_BIND,
            &[&channel, &XorPeerAddress(sa(PEER))]
        ),
        Some(400)
    );
    // Connect: no XOR-PEER-ADDRESS 400; no permission 403; policy 403; family 443.
    assert_eq!(m.request(&mut world, Method::CONNECT, &[]), Some(400));
    assert_eq!(m.connect(&mut world, sa(PEER)), Some(403));
    assert_eq!(
        m.request(
            &mut world,
            Method::CREATE_PERMISSION,
            &[&XorPeerAddress(sa(PEER))]
        ),
        None
    );
    world.connect_policy = ConnectPolicy::Hold;
    assert_eq!(m.connect(&mut world, sa("127.0.0.1:80")), Some(403));
    assert_eq!(m.connect(&mut world, sa("[2001:db8::1]:80")), Some(443));
    // Connects run: the answer waits for the driver; the peer's IP is permitted.
    m.send(&mut world, Method::CONNECT, &[&XorPeerAddress(sa(PEER))]);
    let id = world.held_connects[0];
    world.complete_connect(id, Ok(()));
    let answer = m.last_answer(&mut world);
    assert_eq!(code(&answer), None);
    let got = Message::parse(&answer)
        .unwrap()
        .get::<ConnectionId>()
        .unwrap();
    assert_eq!(got, Some(ConnectionId(id)));
    assert_eq!(relayed.ip(), ip("192.0.2.1:0"));

    // A Connect on a UDP allocation: 400.
    let mut u = Manual::open(&mut world, "10.0.0.5:5002", USER, PASSWORD, Tp::Tcp);
    assert_eq!(u.allocate(&mut world, &[&RequestedTransport::UDP]), None);
    assert_eq!(u.connect(&mut world, sa(PEER)), Some(400));

    // With TCP allocations off, REQUESTED-TRANSPORT TCP is 442 (RFC 8656 §7.2 step 3) and
    // Connect and ConnectionBind are unknown methods.
    let mut world = World::new(
        server_config(false),
        client_config(Tp::Tcp, Tp::Udp),
        Reads::Whole,
    );
    let mut m = Manual::open(&mut world, "10.0.0.5:5001", USER, PASSWORD, Tp::Tcp);
    assert_eq!(
        m.allocate(&mut world, &[&RequestedTransport::TCP]),
        Some(442)
    );
    assert_eq!(m.request(&mut world, Method::CONNECT, &[]), Some(400));
}

#[test]
fn quotas_on_peer_connections() {
    let mut config = server_config(true);
    config.quotas.tcp_connections_per_allocation = 2;
    config.quotas.unbound_tcp_connections = 3;
    let mut world = World::new(config, client_config(Tp::Tcp, Tp::Tcp), Reads::Whole);
    world.advance(Duration::from_millis(1));
    let relayed = world.relayed();
    world.connect_policy = ConnectPolicy::Hold;
    world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
    world.command(|c, now| c.connect(now, sa(PEER2))).unwrap();
    // The third for this allocation: 508, and an incoming one is refused.
    world.command(|c, now| c.connect(now, sa(PEER3))).unwrap();
    assert_eq!(world.count_client(rejected(508)), 1);
    world
        .command(|c, now| c.create_permission(now, &["198.51.100.4".parse::<IpAddr>().unwrap()]))
        .unwrap();
    assert_eq!(
        world.peer_connects(sa("198.51.100.4:1"), relayed),
        IncomingPeer::Refused(PeerRefusal::TooManyConnections)
    );
    // Unbound connections on the whole server: another allocation gets one more, then no
    // more.
    let mut m = Manual::open(&mut world, "10.0.0.6:5000", "bob", "builder", Tp::Tcp);
    assert_eq!(m.allocate(&mut world, &[&RequestedTransport::TCP]), None);
    assert_eq!(
        m.request(
            &mut world,
            Method::CREATE_PERMISSION,
            &[&XorPeerAddress(sa(PEER))]
        ),
        None
    );
    m.send(&mut world, Method::CONNECT, &[&XorPeerAddress(sa(PEER))]);
    assert_eq!(world.server.stats().tcp.unbound, 3);
    assert_eq!(
        m.connect(&mut world, SocketAddr::new(ip(PEER), 1)),
        Some(508)
    );
}

#[test]
fn the_end_of_the_allocation_closes_its_connections() {
    // Deleted: bridged pairs and attempts in progress are closed (RFC 6062 §5.5).
    let mut world = tcp_world(Tp::Tcp, Reads::Whole);
    world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
    world.command(|c, now| c.connect(now, sa(PEER2))).unwrap();
    let ids: Vec<u32> = world.peer_connections().iter().map(|p| p.0).collect();
    assert_eq!(ids.len(), 2);
    world.connect_policy = ConnectPolicy::Hold;
    world.command(|c, now| c.connect(now, sa(PEER3))).unwrap();
    let held = world.held_connects[0];
    world.command(|c, now| c.delete(now));
    world.pump();
    assert_eq!(world.client.state(), ClientState::Deleted);
    for id in ids.iter().chain([&held]) {
        assert!(world.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::ClosePeerConnection { connection_id } if connection_id == id
        )));
    }
    for id in &ids {
        assert!(world.peers[id].closed);
    }
    assert_eq!(world.server.stats().tcp.connections, 0);
    assert!(world.server_events.iter().any(|(_, e)| matches!(
        e,
        ServerEvent::ReleaseRelay {
            transport: Tp::Tcp,
            ..
        }
    )));

    // The control connection is lost while a data connection is being opened: the server
    // deletes the allocation and closes the peer side; the client fails the data
    // connection.
    let mut world = tcp_world(Tp::Tls, Reads::Whole);
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER)]))
        .unwrap();
    world.open_data_connections = false;
    let relayed = world.relayed();
    let IncomingPeer::Accepted { connection_id: id } = world.peer_connects(sa(PEER), relayed)
    else {
        panic!("refused")
    };
    world.close(sa(LOCAL));
    world.pump();
    assert_eq!(world.server.allocation_count(), 0);
    assert!(world.peers[&id].closed);
    assert_eq!(world.client.state(), ClientState::Expired);
    assert!(world.client_events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::DataConnectionFailed {
            reason: DataConnectionFailure::AllocationEnded,
            ..
        }
    )));
}

#[test]
fn the_client_refuses_what_does_not_fit_the_relay_transport() {
    let mut world = World::new(
        server_config(true),
        client_config(Tp::Tcp, Tp::Udp),
        Reads::Whole,
    );
    world.advance(Duration::from_millis(1));
    assert_eq!(
        world.client.connect(world.now, sa(PEER)),
        Err(ClientError::RelayTransportMismatch)
    );
    let mut world = tcp_world(Tp::Tcp, Reads::Whole);
    let now = world.now;
    assert_eq!(
        world.client.bind_channel(now, sa(PEER)),
        Err(ClientError::RelayTransportMismatch)
    );
    world.client.create_permission(now, &[ip(PEER)]).unwrap();
    world.pump();
    assert_eq!(
        world.client.send_to(now, sa(PEER), b"x"),
        Err(SendError::RelayTransportMismatch)
    );
    assert_eq!(
        world
            .client
            .data_connection_opened(now, 42, sa("10.0.0.2:6000")),
        Err(ClientError::UnknownConnection(42))
    );
    // A ConnectionAttempt for a peer the client gave no permission to is dropped (the
    // server would not send one); a malformed one too.
    for peer in [Some(sa(PEER2)), None] {
        let mut buf = [0u8; 128];
        let t = MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication);
        let mut b = MessageBuilder::new(&mut buf, t, TransactionId::new([3; 12])).unwrap();
        if let Some(p) = peer {
            b.add(&XorPeerAddress(p)).unwrap();
        }
        b.add(&ConnectionId(7)).unwrap();
        let bytes = b.finish().to_vec();
        let input = Input {
            transport: Tp::Tcp,
            source: sa(LISTEN),
            destination: sa(LOCAL),
            data: &bytes,
        };
        assert_eq!(
            world.client.handle_input(now, input),
            turn_proto::client::Received::Consumed
        );
    }
    assert_eq!(world.client.stats().dropped_connection_attempts, 2);
    assert!(world.client.poll_event().is_none());
    // Only TCP/TLS control connections can carry a TCP allocation.
    let mut c = client_config(Tp::Udp, Tp::Tcp);
    c.transport = Tp::Udp;
    let client = turn_proto::client::Client::new(c, 1, world.now);
    assert_eq!(client.state(), ClientState::Failed);
}

/// A session exercising both directions of RFC 6062 and the errors; returns everything
/// observable.
fn session(reads: Reads, server_seed: u64) -> Transcript<Vec<(u32, Vec<u8>)>> {
    let mut world = World::with_seeds(
        server_config(true),
        client_config(Tp::Tcp, Tp::Tcp),
        reads,
        server_seed,
        22,
    );
    world.advance(Duration::from_millis(1));
    let relayed = world.relayed();
    world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER2)]))
        .unwrap();
    world.open_data_connections = false;
    let IncomingPeer::Accepted { connection_id } = world.peer_connects(sa(PEER2), relayed) else {
        panic!("refused")
    };
    world.peer_sends(connection_id, b"early");
    world.open_data_connection(connection_id);
    world.open_data_connections = true;
    world.pump();
    for (id, _) in world.peer_connections() {
        world.app_sends(id, b"from the app");
        world.peer_sends(id, b"from the peer");
    }
    world.command(|c, now| c.connect(now, sa(PEER))).unwrap(); // 446
    world.advance(Duration::from_secs(700));
    world.command(|c, now| c.delete(now));
    world.advance(Duration::from_secs(1));
    assert!(
        world.framing_errors.is_empty(),
        "{:?}",
        world.framing_errors
    );
    assert_eq!(world.peer_connections().len(), 2);
    world.transcript(|w| w.app_received.clone().into_iter().collect())
}

#[test]
fn data_connections_split_at_every_offset() {
    let whole = session(Reads::Whole, 11);
    let longest = whole.wire.iter().map(|w| w.bytes.len()).max().unwrap();
    for k in 1..=longest {
        assert_eq!(session(Reads::SplitAt(k), 11), whole, "split at {k}");
    }
    assert_eq!(session(Reads::Chunks(1), 11), whole);
}

#[test]
fn same_seed_same_bytes() {
    assert_eq!(session(Reads::Chunks(5), 11), session(Reads::Chunks(5), 11));
    // CONNECTION-IDs come from the server's seeded generator.
    let ids = |s: &Transcript<Vec<(u32, Vec<u8>)>>| -> Vec<u32> {
        s.delivered.iter().map(|(id, _)| *id).collect()
    };
    assert_ne!(
        ids(&session(Reads::Whole, 11)),
        ids(&session(Reads::Whole, 12))
    );
}

// ---------------------------------------------------------------------------------------
// Requests written by hand
// ---------------------------------------------------------------------------------------

fn code(resp: &[u8]) -> Option<u16> {
    let m = Message::parse(resp).unwrap();
    match m.class() {
        Class::Error => Some(m.get::<ErrorCode<'_>>().unwrap().unwrap().code()),
        _ => None,
    }
}

/// A client written by hand: long-term credentials (MD5), one connection.
struct Manual {
    local: SocketAddr,
    transport: Tp,
    user: &'static str,
    key: IntegrityKey,
    nonce: Vec<u8>,
    relayed: Option<SocketAddr>,
    next: u8,
}

impl Manual {
    fn open(world: &mut World, local: &str, user: &'static str, pw: &str, transport: Tp) -> Manual {
        world.open(sa(local), transport, true);
        Manual::new(local, user, pw, transport)
    }

    fn udp(local: &str, user: &'static str, pw: &str) -> Manual {
        Manual::new(local, user, pw, Tp::Udp)
    }

    fn new(local: &str, user: &'static str, pw: &str, transport: Tp) -> Manual {
        Manual {
            local: sa(local),
            transport,
            user,
            key: LongTermKey::derive(Algorithm::Md5, user, REALM, pw).integrity_key(),
            nonce: Vec::new(),
            relayed: None,
            next: 0,
        }
    }

    fn build(&mut self, method: Method, attrs: &[&dyn EncodeAttribute], auth: bool) -> Vec<u8> {
        self.next += 1;
        let mut buf = vec![0u8; 1024];
        let t = MessageType::new(method, Class::Request);
        let tid = TransactionId::new([self.next; 12]);
        let mut b = MessageBuilder::new(&mut buf, t, tid).unwrap();
        for a in attrs {
            b.add(*a).unwrap();
        }
        if auth {
            b.add(&Username::new(self.user).unwrap()).unwrap();
            b.add(&Realm::new(REALM).unwrap()).unwrap();
            b.add(&Nonce::new(&self.nonce).unwrap()).unwrap();
            b.add_message_integrity(&self.key).unwrap();
        }
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    /// Writes a request; the answer is read with `last_answer`.
    fn send(&mut self, world: &mut World, method: Method, attrs: &[&dyn EncodeAttribute]) {
        if self.nonce.is_empty() {
            let first = self.build(method, attrs, false);
            let challenge = self.exchange_bytes(world, &first);
            assert_eq!(code(&challenge), Some(401));
            let m = Message::parse(&challenge).unwrap();
            self.nonce = m.get::<Nonce<'_>>().unwrap().unwrap().as_bytes().to_vec();
        }
        let req = self.build(method, attrs, true);
        self.write(world, &req);
    }

    fn write(&mut self, world: &mut World, bytes: &[u8]) {
        match self.transport {
            Tp::Udp => {
                let mut buf = bytes.to_vec();
                let _ = world.server.handle_input(
                    world.now,
                    ServerInput::udp(self.local, sa(LISTEN), &mut buf),
                );
            }
            _ => world.write_as_client(self.local, bytes),
        }
        world.pump();
    }

    fn last_answer(&mut self, world: &mut World) -> Vec<u8> {
        let bytes = match self.transport {
            Tp::Udp => {
                let mut last = Vec::new();
                while let Some(t) = world.server.poll_transmit() {
                    last = t.payload;
                }
                return last;
            }
            _ => world.take_raw(self.local),
        };
        messages(&bytes).pop().unwrap_or_default()
    }

    fn exchange_bytes(&mut self, world: &mut World, bytes: &[u8]) -> Vec<u8> {
        if self.transport == Tp::Udp {
            // Nothing else is delivered over UDP here: read the transmit directly.
            let mut buf = bytes.to_vec();
            let _ = world.server.handle_input(
                world.now,
                ServerInput::udp(self.local, sa(LISTEN), &mut buf),
            );
            return world.server.poll_transmit().unwrap().payload;
        }
        self.write(world, bytes);
        self.last_answer(world)
    }

    /// An authenticated request; returns the error code, `None` for success.
    fn request(
        &mut self,
        world: &mut World,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> Option<u16> {
        if self.transport == Tp::Udp && self.nonce.is_empty() {
            let first = self.build(method, attrs, false);
            let challenge = self.exchange_bytes(world, &first);
            let m = Message::parse(&challenge).unwrap();
            self.nonce = m.get::<Nonce<'_>>().unwrap().unwrap().as_bytes().to_vec();
        }
        if self.transport == Tp::Udp {
            let req = self.build(method, attrs, true);
            let resp = self.exchange_bytes(world, &req);
            return code(&resp);
        }
        self.send(world, method, attrs);
        let resp = self.last_answer(world);
        let m = Message::parse(&resp).unwrap();
        assert_eq!(m.method(), method);
        if m.class() == Class::Success {
            if let Ok(Some(XorRelayedAddress(r))) = m.get::<XorRelayedAddress>() {
                self.relayed = Some(r);
            }
        }
        code(&resp)
    }

    fn allocate(&mut self, world: &mut World, attrs: &[&dyn EncodeAttribute]) -> Option<u16> {
        self.request(world, Method::ALLOCATE, attrs)
    }

    fn connect(&mut self, world: &mut World, peer: SocketAddr) -> Option<u16> {
        self.request(world, Method::CONNECT, &[&XorPeerAddress(peer)])
    }

    fn connection_bind(&mut self, world: &mut World, id: Option<u32>) -> Option<u16> {
        match id {
            Some(id) => self.request(world, Method::CONNECTION_BIND, &[&ConnectionId(id)]),
            None => self.request(world, Method::CONNECTION_BIND, &[]),
        }
    }
}

#[test]
fn driver_confirmed_tcp_relay_binds() {
    let mut config = server_config(true);
    config.relay_binding = RelayBinding::Driver;
    let mut world = World::new(config, client_config(Tp::Tcp, Tp::Tcp), Reads::Whole);
    world.advance(Duration::from_millis(1));
    // The Allocate waits for the driver's report on the TCP listener.
    let bind = world.server_events.iter().find_map(|(_, e)| match e {
        ServerEvent::BindRelay { relayed, transport } => Some((*relayed, *transport)),
        _ => None,
    });
    let (relayed, transport) = bind.unwrap();
    assert_eq!(transport, Tp::Tcp);
    assert_eq!(world.client.state(), ClientState::Allocating);
    world
        .server
        .relay_bound(world.now, relayed, Ok(()))
        .unwrap();
    world.pump();
    assert_eq!(world.client.state(), ClientState::Allocated);
    assert_eq!(world.relayed(), relayed);
}

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
fn mutated_stream_messages_never_panic() {
    // Every message of a full RFC 6062 session, mutated, fed again to both machines on
    // every connection of the session (control and data), then the real session goes on.
    let reference = session(Reads::Whole, 11);
    let mut world = World::new(
        server_config(true),
        client_config(Tp::Tcp, Tp::Tcp),
        Reads::Whole,
    );
    world.advance(Duration::from_millis(1));
    world.command(|c, now| c.connect(now, sa(PEER))).unwrap();
    let relayed = world.relayed();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let locals: Vec<SocketAddr> = reference.wire.iter().map(|w| w.client).collect();
    for w in &reference.wire {
        for _ in 0..20 {
            let mut bytes = w.bytes.clone();
            if bytes.is_empty() {
                continue;
            }
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] ^= 1 << (rng.next() % 8);
            }
            if rng.next() % 4 == 0 {
                let keep = (rng.next() as usize) % bytes.len();
                bytes.truncate(keep.max(1));
            }
            let local = locals[(rng.next() as usize) % locals.len()];
            let mut buf = bytes.clone();
            let input = ServerInput {
                transport: Tp::Tcp,
                source: local,
                destination: sa(LISTEN),
                buf: &mut buf,
                headroom: 0,
            };
            let _ = world.server.handle_input(world.now, input);
            let input = Input {
                transport: Tp::Tcp,
                source: sa(LISTEN),
                destination: local,
                data: &bytes,
            };
            let _ = world.client.handle_input(world.now, input);
            world.pump();
        }
        // Driver reports with unknown or stale IDs are harmless too.
        let id = rng.next() as u32;
        let _ = world.server.peer_connected(world.now, id, Ok(()));
        world.server.peer_connection_closed(world.now, id);
        let _ = world
            .server
            .incoming_peer_connection(world.now, relayed, sa(PEER2));
        world.client.data_connection_failed(world.now, id);
        world.pump();
    }
    world.advance(Duration::from_secs(120));
    // The allocation survived the garbage (nothing forged can pass integrity checks).
    assert_eq!(world.client.state(), ClientState::Allocated);
    assert_eq!(world.server.allocation_count(), 1);
}
