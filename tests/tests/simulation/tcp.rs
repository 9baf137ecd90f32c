//! Over TCP: TURN over TCP and TLS (RFC 8656 §3.1) and ICE-TCP (RFC 6544) where a firewall
//! drops UDP, UDP still preferred where it gets through, connections closed on both sides,
//! RFC 6062 TCP allocations, and byte-identical captures with TCP in them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use floe_tests::sim::{
    Call, MESSAGES, NatKind, PathType, Profile, SideSpec, Spec, TCP_SEED, TURN_TLS_NAME,
    TURN_TLS_PORT, TcpScenario, derive_seed, run_tcp_scenario,
};
use ice_core::{CandidateType, ConnectionState, Event, TcpType, TransportProtocol};
use netsim::DropReason;
use turn_proto::server::{DeleteReason, ServerEvent};

/// A's NAT outside address (`tests/src/sim.rs`).
const A_NAT: &str = "198.51.100.1";
/// B's public address.
const B_PUBLIC: &str = "203.0.113.10";

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

fn run(scenario: TcpScenario, profile: &Profile, k: u64) -> Call {
    let (call, outcome) = run_tcp_scenario(scenario, profile, derive_seed(TCP_SEED, 100 + k));
    let t = outcome.connected_after.expect("both agents completed");
    assert!(
        t < Duration::from_secs(3),
        "{scenario:?}: completed after {t:?}"
    );
    let e = outcome.exchange.expect("data exchanged");
    assert_eq!(
        (
            e.sent_by_a,
            e.sent_by_b,
            e.received_by_a,
            e.received_by_b,
            e.off_path
        ),
        (MESSAGES, MESSAGES, MESSAGES, MESSAGES, 0),
        "{scenario:?}: every message, over the selected pair"
    );
    call
}

/// The TURN allocations the server made: (client as the server saw it, transport, relayed).
fn allocations(call: &Call) -> Vec<(SocketAddr, TransportProtocol, Vec<SocketAddr>)> {
    (call.sim.node(call.turn).events())
        .filter_map(|(_, e)| match e {
            ServerEvent::AllocationCreated {
                five_tuple,
                relayed,
                ..
            } => Some((five_tuple.client, five_tuple.transport, relayed.clone())),
            _ => None,
        })
        .collect()
}

/// A's firewall drops UDP; A gets a relayed candidate from the TURN server over a stream of
/// `transport`, and the call goes through it: A's relayed candidate (UDP at the relay) to
/// B's host candidate.
fn turn_over_stream(scenario: TcpScenario, transport: TransportProtocol, k: u64) {
    let mut call = run(scenario, &Profile::clean(), k);
    let nat = call.a.nat.expect("A's NAT");
    assert!(
        call.sim.nat(nat).stats().dropped(DropReason::Firewall) > 0,
        "A's UDP (STUN, TURN over UDP, checks) went nowhere"
    );

    // The only allocation of A came over the stream, through the NAT.
    let a_allocations: Vec<_> = (allocations(&call).into_iter())
        .filter(|(client, ..)| client.ip() == ip(A_NAT))
        .collect();
    assert_eq!(a_allocations.len(), 1, "{a_allocations:?}");
    let (_, over, relayed) = &a_allocations[0];
    assert_eq!(*over, transport);

    // Both agents selected the pair of that relayed candidate and B's host candidate.
    let (local, remote) = call.selected(0).expect("A's selected pair");
    assert_eq!(local.kind, CandidateType::Relayed);
    assert_eq!(local.transport, TransportProtocol::Udp, "a UDP relay");
    assert!(relayed.contains(&local.address));
    assert_eq!(call.relay_transport(local.address), Some(transport));
    assert_eq!(
        (remote.kind, remote.address),
        (CandidateType::Host, sa(&format!("{B_PUBLIC}:6000")))
    );
    let (b_local, b_remote) = call.selected(1).expect("B's selected pair");
    assert_eq!(
        (b_local.address, b_remote.address),
        (remote.address, local.address)
    );
    assert_eq!(call.path(), Some(PathType::Relay));

    // The agent asked for the connection (with the server's name, for TLS), the adapter
    // opened it, and it stays open to carry the relayed traffic.
    let asked: Vec<_> = (call.a.log.iter())
        .filter_map(|(_, e)| match e {
            Event::TurnConnect {
                transport,
                server_name,
                server,
                ..
            } => Some((*transport, server_name.clone(), *server)),
            _ => None,
        })
        .collect();
    let name = (transport == TransportProtocol::Tls).then(|| TURN_TLS_NAME.to_string());
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!((asked[0].0, &asked[0].1), (transport, &name));
    if transport == TransportProtocol::Tls {
        assert_eq!(asked[0].2.port(), TURN_TLS_PORT);
    }
    assert_eq!(call.sim.node(call.a.node).tcp_connections(), 1);
    assert_eq!(call.sim.node(call.turn).tcp_connections(), 1);
    assert_eq!(call.agent(0).stats().turn_connects, 1);

    // More data: all of it through the relay.
    let before = call.sim.node(call.turn).server().stats();
    let e = call.exchange("more", 10, Duration::from_millis(20));
    assert_eq!((e.received_by_a, e.received_by_b), (10, 10));
    let after = call.sim.node(call.turn).server().stats();
    assert!(after.to_peer.packets - before.to_peer.packets >= 10);
    assert!(after.to_client.packets - before.to_client.packets >= 10);
}

/// (a) Where a firewall lets no UDP out, TURN over TCP does: the relayed candidate
/// allocated over TCP is selected and data flows both ways.
#[test]
fn udp_blocked_client_connects_through_turn_over_tcp() {
    turn_over_stream(TcpScenario::TurnOverTcp, TransportProtocol::Tcp, 0);
}

/// (a) The same over "TLS" (port 5349; TCP carrying plaintext in the simulation).
#[test]
fn udp_blocked_client_connects_through_turn_over_tls() {
    turn_over_stream(TcpScenario::TurnOverTls, TransportProtocol::Tls, 1);
}

/// (b) Where a firewall lets no UDP out, ICE-TCP does: A's active candidate connects
/// through its NAT to B's passive candidate, B learns A's NAT mapping as a peer-reflexive
/// active candidate, the TCP host pair is selected and data flows both ways, RFC 4571
/// framed, without the relay.
#[test]
fn udp_blocked_client_connects_through_ice_tcp() {
    let call = run(TcpScenario::IceTcp, &Profile::clean(), 2);
    let (local, remote) = call.selected(0).expect("A's selected pair");
    assert_eq!(
        (local.transport, local.tcp_type, local.base.port()),
        (TransportProtocol::Tcp, Some(TcpType::Active), 5002)
    );
    assert_eq!(
        (remote.kind, remote.tcp_type, remote.address),
        (
            CandidateType::Host,
            Some(TcpType::Passive),
            sa(&format!("{B_PUBLIC}:6001"))
        )
    );
    let (b_local, b_remote) = call.selected(1).expect("B's selected pair");
    assert_eq!(b_local.address, remote.address);
    assert_eq!(
        (b_remote.kind, b_remote.tcp_type, b_remote.address.ip()),
        (
            CandidateType::PeerReflexive,
            Some(TcpType::Active),
            ip(A_NAT)
        ),
        "RFC 6544 §7.2: the NAT's mapping of A's connection"
    );
    // One connection: asked for by A only, accepted by B's listener.
    let connects = call.a.count(|e| matches!(e, Event::TcpConnect { .. }));
    assert_eq!(connects, 1);
    assert_eq!(call.b.count(|e| matches!(e, Event::TcpConnect { .. })), 0);
    assert_eq!(call.sim.node(call.a.node).tcp_connections(), 1);
    assert_eq!(call.sim.node(call.b.node).tcp_connections(), 1);
    assert_eq!(call.sim.stats().tcp.connected, 1);
    assert_eq!(call.sim.stats().tcp.accepted, 1);
    let relayed = call.sim.node(call.turn).server().stats();
    assert_eq!(relayed.to_peer.packets + relayed.to_client.packets, 0);
    assert_eq!(call.agent(0).stats().tcp_connect_failures, 0);
    assert_eq!(call.agent(1).stats().tcp_frames_dropped, 0);
}

/// (c) With UDP open, the same agents — TURN over UDP, TCP and TLS, active and passive
/// ICE-TCP candidates on both sides — still select a UDP pair: TCP candidates and relays
/// obtained over TCP rank below UDP ones. The TCP machinery ran meanwhile.
#[test]
fn with_udp_open_udp_pairs_still_win() {
    let call = run(TcpScenario::UdpAvailable, &Profile::clean(), 3);
    assert_eq!(call.path(), Some(PathType::Srflx), "as in the matrix");
    for i in 0..2 {
        let (local, remote) = call.selected(i).expect("selected");
        assert_eq!(
            (local.transport, remote.transport),
            (TransportProtocol::Udp, TransportProtocol::Udp)
        );
    }
    // Both agents allocated over UDP, TCP and TLS.
    let transports: Vec<_> = allocations(&call).into_iter().map(|(_, t, _)| t).collect();
    for t in [
        TransportProtocol::Udp,
        TransportProtocol::Tcp,
        TransportProtocol::Tls,
    ] {
        assert_eq!(
            transports.iter().filter(|x| **x == t).count(),
            2,
            "{transports:?}"
        );
    }
    // Both checked TCP pairs (A's active candidate reached B's passive one), and closed
    // the ICE-TCP connections once a UDP pair was selected; the TURN connections stay, for
    // the relayed candidates.
    for i in 0..2 {
        let side = call.side(i);
        assert!(
            side.count(|e| matches!(e, Event::TcpConnect { .. })) > 0,
            "{}",
            side.name
        );
        assert!(
            side.count(|e| matches!(e, Event::TcpClose { .. })) > 0,
            "{}",
            side.name
        );
        assert_eq!(
            call.sim.node(side.node).tcp_connections(),
            2,
            "{}",
            side.name
        );
    }
    assert!(
        call.sim.stats().tcp.accepted >= 5,
        "4 to the TURN server, 1 ICE-TCP"
    );
    let relayed = call.sim.node(call.turn).server().stats();
    assert_eq!(relayed.to_peer.packets + relayed.to_client.packets, 0);
}

/// The same scenarios on a network with 10% loss, jitter, reordering and duplication:
/// TCP retransmits what the links lose, and every scenario still connects on its path.
#[test]
fn tcp_paths_survive_a_lossy_network() {
    let profile = Profile::matrix()[1].clone();
    for (k, scenario) in TcpScenario::ALL.into_iter().enumerate() {
        let (call, outcome) =
            run_tcp_scenario(scenario, &profile, derive_seed(TCP_SEED, 200 + k as u64));
        let t = outcome.connected_after;
        assert!(
            t.is_some_and(|t| t < Duration::from_secs(15)),
            "{scenario:?}: {t:?}"
        );
        let (local, _) = call.selected(0).expect("selected");
        match scenario {
            TcpScenario::TurnOverTcp | TcpScenario::TurnOverTls => {
                assert_eq!(local.kind, CandidateType::Relayed, "{scenario:?}");
            }
            TcpScenario::IceTcp => {
                assert_eq!(local.transport, TransportProtocol::Tcp);
                // Over one TCP connection nothing is lost, however lossy the links.
                let e = outcome.exchange.expect("exchanged");
                assert_eq!(
                    (e.received_by_a, e.received_by_b),
                    (MESSAGES, MESSAGES),
                    "{e:?}"
                );
            }
            TcpScenario::UdpAvailable => assert_eq!(local.transport, TransportProtocol::Udp),
        }
    }
}

/// An agent that closes asks for its connections to be closed; the adapters close them with
/// a FIN, and the peers hear of it at once: over ICE-TCP the peer's selected pair loses
/// consent (no 30 s wait), and over TURN/TCP the server deletes the allocation.
#[test]
fn closing_an_agent_closes_its_connections_and_the_peers_notice() {
    let mut call = run(TcpScenario::IceTcp, &Profile::clean(), 4);
    let closed_at = call.elapsed();
    let now = call.sim.now();
    call.sim
        .node_mut(call.a.node)
        .command(now, |agent| agent.close(now));
    call.run_for(Duration::from_millis(500));
    assert!(call.a.count(|e| matches!(e, Event::TcpClose { .. })) >= 1);
    assert_eq!(call.sim.node(call.a.node).tcp_connections(), 0);
    assert_eq!(call.sim.node(call.b.node).tcp_connections(), 0);
    let lost = (call.b.log.iter())
        .find_map(|(t, e)| matches!(e, Event::ConsentLost { .. }).then_some(*t))
        .expect("B lost consent on the closed connection");
    assert!(
        lost - closed_at <= Duration::from_millis(100),
        "after {:?}",
        lost - closed_at
    );
    assert_eq!(call.state(1), ConnectionState::Failed);

    let mut call = run(TcpScenario::TurnOverTcp, &Profile::clean(), 5);
    let now = call.sim.now();
    call.sim
        .node_mut(call.a.node)
        .command(now, |agent| agent.close(now));
    call.run_for(Duration::from_millis(500));
    assert!(call.a.count(|e| matches!(e, Event::TurnClose { .. })) >= 1);
    assert_eq!(call.sim.node(call.turn).tcp_connections(), 0);
    let deleted = (call.sim.node(call.turn).events())
        .filter(|(_, e)| {
            matches!(
                e,
                ServerEvent::AllocationDeleted {
                    reason: DeleteReason::ConnectionClosed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        deleted, 1,
        "RFC 8656 §3.1: the allocation ends with its connection"
    );
}

/// The pcap records' IP protocol numbers (LINKTYPE_RAW: each record is an IP packet).
fn ip_protocols(pcap: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = &pcap[24..];
    while rest.len() >= 16 {
        let len = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let packet = &rest[16..16 + len];
        out.push(match packet[0] >> 4 {
            4 => packet[9],
            _ => packet[6],
        });
        rest = &rest[16 + len..];
    }
    out
}

/// A lossy call that uses everything over TCP — TURN over TCP and TLS, ICE-TCP — captured
/// on every host: the pcaps of all four hosts.
fn tcp_captures(seed: u64) -> Vec<Vec<u8>> {
    use TransportProtocol::{Tcp, Tls, Udp};
    let spec = Spec::v4(
        NatKind::PortRestricted,
        NatKind::None,
        Profile::impaired("10% loss", 0.10),
        seed,
    )
    .with_side(
        0,
        SideSpec {
            udp_blocked: true,
            turn: vec![Tcp, Tls],
            ice_tcp: vec![TcpType::Active],
        },
    )
    .with_side(
        1,
        SideSpec {
            udp_blocked: false,
            turn: vec![Udp, Tcp],
            ice_tcp: vec![TcpType::Passive],
        },
    );
    let mut call = Call::new(spec);
    let ids = call.capture_all();
    assert!(call.connect(Duration::from_secs(30)).is_some());
    call.exchange("pcap", 20, Duration::from_millis(100));
    call.run_for(Duration::from_secs(20));
    (ids.into_iter())
        .map(|id| {
            call.sim
                .finish_capture(id)
                .expect("in memory")
                .expect("bytes")
        })
        .collect()
}

/// (d) Same seed, byte-identical captures, TCP segments (handshakes, retransmissions) and
/// all; another seed, other bytes.
#[test]
fn same_seed_same_pcap_with_tcp() {
    let first = tcp_captures(51);
    let again = tcp_captures(51);
    let other = tcp_captures(52);
    // A's host, B's host, the STUN server, the TURN server: TCP on all but the STUN server.
    for (host, pcap) in first.iter().enumerate() {
        let protocols = ip_protocols(pcap);
        let tcp = protocols.iter().filter(|p| **p == 6).count();
        if host == 2 {
            assert_eq!(tcp, 0, "the STUN server speaks UDP only");
        } else {
            assert!(tcp > 10, "host {host}: {tcp} TCP segments");
        }
    }
    assert!(first == again, "same seed, byte-identical captures");
    for (host, (a, b)) in first.iter().zip(&other).enumerate() {
        assert!(a != b, "host {host}: another seed, other bytes");
    }
}

/// RFC 6062 through the simulated network: a TURN client behind a UDP-blocking NAT makes a
/// TCP allocation over TCP; it connects to a TCP peer through the relay (Connect, data
/// connection, ConnectionBind, bridge), a second peer connects to the relayed address and
/// its first bytes wait for the bridge; closing a data connection closes the peer's side,
/// and deleting the allocation closes the rest (§5.5).
#[test]
fn rfc6062_tcp_allocation_through_a_udp_blocking_nat() {
    use std::time::Instant;

    use drivers::sim::{TurnClientNode, TurnServerNode};
    use drivers::turn::TurnOutput;
    use netsim::nodes::{TcpEcho, TcpProbe};
    use netsim::{CloseReason, LinkConfig, NatConfig, RealmId, Sim};
    use turn_proto::client::{ClientConfig, ClientEvent};
    use turn_proto::server::{RelayBinding, RelayRange, ServerConfig};

    let start = Instant::now();
    let mut sim = Sim::new(61, start);
    let link = LinkConfig::with_latency(Duration::from_millis(10));
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip("198.51.100.1")],
        NatConfig::udp_blocked(),
        link.clone(),
    );
    let office = sim.nat(nat).inside_realm();
    let client_host = sim.add_host(office, &[ip("10.0.0.2")], LinkConfig::default());
    let server_host = sim.add_host(RealmId::INTERNET, &[ip("192.0.2.2")], link.clone());
    let peer_host = sim.add_host(
        RealmId::INTERNET,
        &[ip("203.0.113.7"), ip("203.0.113.8")],
        link,
    );

    let mut config = ServerConfig::new("floe.sim");
    config.relays.push(RelayRange::dynamic(ip("192.0.2.2")));
    config.relay_binding = RelayBinding::Driver;
    config.tcp_allocations = true;
    config.add_user("floe", "secret");
    let listen = sa("192.0.2.2:3478");
    let turn = TurnServerNode::new(config, &[listen], 1, start)
        .expect("configuration")
        .with_tcp(&[listen])
        .add_to(&mut sim, server_host)
        .expect("sockets");

    let echo = sim
        .add_node(peer_host, &[], TcpEcho::new(&[sa("203.0.113.7:7000")]))
        .expect("echo");
    let probe = sim
        .add_node(peer_host, &[], TcpProbe::new())
        .expect("probe");
    let local = sa("10.0.0.2:5000");
    let mut config = ClientConfig::new(listen, local, "floe", "secret");
    config.transport = TransportProtocol::Tcp;
    config.relay_transport = TransportProtocol::Tcp;
    let client = sim
        .add_node(
            client_host,
            &[local],
            TurnClientNode::turn_client(config, 2, start),
        )
        .expect("client");
    sim.run_for(Duration::from_secs(1));
    let relayed = sim.node_mut(client).client_mut().relayed_addresses()[0];
    assert_eq!(relayed.ip(), listen.ip());

    // Outgoing: Connect, then a data connection bound to the peer connection.
    let (now, echo_addr) = (sim.now(), sa("203.0.113.7:7000"));
    sim.node_mut(client)
        .client_mut()
        .connect(now, echo_addr)
        .expect("connect");
    sim.run_for(Duration::from_secs(1));
    let conns: Vec<(u32, SocketAddr)> = (sim.node(client).peer_connections().iter())
        .map(|(id, p)| (*id, p.peer))
        .collect();
    assert_eq!(
        conns.len(),
        1,
        "{:?}",
        sim.node(client).events().collect::<Vec<_>>()
    );
    let (out_id, peer) = conns[0];
    assert_eq!(peer, echo_addr);
    let (echo_id, _, from) = sim.node(echo).log().established()[0];
    assert_eq!(from, relayed, "the peer sees the relayed address");
    assert!(
        sim.node_mut(client)
            .send_on_peer_connection(out_id, b"ping over the relay")
    );
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sim.node(echo).log().received(echo_id),
        b"ping over the relay"
    );
    assert_eq!(
        sim.node(client).peer_connections()[&out_id].received,
        b"ping over the relay",
        "echoed"
    );

    // Incoming: a permitted peer connects to the relayed address and talks at once.
    let now = sim.now();
    sim.node_mut(client)
        .client_mut()
        .create_permission(now, &[ip("203.0.113.8")])
        .expect("permission");
    sim.run_for(Duration::from_secs(1));
    sim.node_mut(probe).connect(sa("203.0.113.8:0"), relayed);
    sim.run_for(Duration::from_millis(100));
    let (probe_id, _, _) = sim.node(probe).log().established()[0];
    sim.node_mut(probe).send(probe_id, b"early bytes".to_vec());
    sim.run_for(Duration::from_secs(1));
    let incoming: Vec<u32> = (sim.node(client).peer_connections().keys().copied())
        .filter(|id| *id != out_id)
        .collect();
    assert_eq!(incoming.len(), 1);
    let in_id = incoming[0];
    let p = &sim.node(client).peer_connections()[&in_id];
    assert_eq!(
        (p.peer.ip(), &p.received[..]),
        (ip("203.0.113.8"), &b"early bytes"[..])
    );
    assert!(
        sim.node_mut(client)
            .send_on_peer_connection(in_id, b"and back")
    );
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.node(probe).log().received(probe_id), b"and back");
    let attempts = (sim.node(client).events())
        .filter(|(_, e)| matches!(e, TurnOutput::Event(ClientEvent::OpenDataConnection { .. })))
        .count();
    assert_eq!(attempts, 2);
    // Control, two data connections, two peer connections.
    assert_eq!(sim.node(turn).tcp_connections(), 5);
    assert_eq!(sim.node(client).tcp_connections(), 3);

    // The client closes the incoming one: the peer's side closes too.
    sim.node_mut(client).close_peer_connection(in_id);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sim.node(probe).log().closed(probe_id),
        Some(CloseReason::Fin)
    );
    assert_eq!(sim.node(turn).tcp_connections(), 3);

    // Deleting the allocation closes the rest (RFC 6062 §5.5).
    let now = sim.now();
    sim.node_mut(client).client_mut().delete(now);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.node(echo).log().closed(echo_id), Some(CloseReason::Fin));
    assert!(
        sim.node(client)
            .peer_connections()
            .values()
            .all(|p| p.closed)
    );
    assert_eq!(sim.node(turn).server().allocation_count(), 0);
}

/// RFC 6544 §7.1 simultaneous open, when the peer's SYN comes first: public hosts with
/// simultaneous-open candidates (and UDP, which wins). B checks the so–so pair before A
/// does; its SYN finds A's listening so socket instead of a reset, A's agent takes the
/// connection as the pair's, and B's check goes over it: no failed connect, no reset.
#[test]
fn simultaneous_open_candidate_takes_the_peers_early_connection() {
    let so = SideSpec {
        ice_tcp: vec![TcpType::SimultaneousOpen],
        ..SideSpec::default()
    };
    let spec = Spec::v4(NatKind::None, NatKind::None, Profile::clean(), 9)
        .with_side(0, so.clone())
        .with_side(1, so);
    let mut call = Call::new(spec);
    assert!(call.connect(Duration::from_secs(5)).is_some());
    call.run_for(Duration::from_secs(1));
    assert_eq!(call.path(), Some(PathType::Host), "UDP still wins");
    let so_connects = |i: usize| {
        call.side(i).count(|e| {
            matches!(
                e,
                Event::TcpConnect {
                    tcp_type: TcpType::SimultaneousOpen,
                    ..
                }
            )
        })
    };
    assert_eq!(
        (so_connects(0), so_connects(1)),
        (0, 1),
        "only B checked it"
    );
    let tcp = &call.sim.stats().tcp;
    assert_eq!((tcp.connected, tcp.accepted), (1, 1), "{tcp:?}");
    assert_eq!((tcp.connect_failed, tcp.resets_sent), (0, 0), "{tcp:?}");
    assert_eq!(call.agent(1).stats().tcp_connect_failures, 0);
    // Unused once a UDP pair is selected: closed on both sides.
    for i in 0..2 {
        assert_eq!(call.sim.node(call.side(i).node).tcp_connections(), 0);
    }
}
