//! TCP: handshake, reliable in-order delivery over lossy links, close and reset, simultaneous
//! open, RFC 5382 NAT behaviour (filtering of inbound SYNs, idle timeouts, hairpinning), the
//! per-transport firewall, IPv6, and captures Wireshark decodes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{base, ip, ms, parse_pcap, sa};
use netsim::nodes::{Echo, Probe, TcpEcho, TcpProbe};
use netsim::{
    CaptureSink, CloseReason, ConnectError, Datagram, DropReason, Firewall, HostId, LinkConfig,
    NatConfig, NatId, NodeId, PortAssignment, RealmId, Sim, TcpCommand, TcpConfig, TcpEvent, TcpId,
    Transport,
};

const CLIENT: &str = "198.51.100.2";
const SERVER: &str = "192.0.2.1:3478";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A test-sized byte pattern that shows any reordering, loss or duplication.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A client host (TCP probe) and a server host (TCP echo on 192.0.2.1:3478), both on the
/// internet.
struct Pair {
    sim: Sim,
    client_host: HostId,
    server_host: HostId,
    client: NodeId<TcpProbe>,
    server: NodeId<TcpEcho>,
}

impl Pair {
    fn new(seed: u64, client_link: LinkConfig, server_link: LinkConfig) -> Self {
        let mut sim = Sim::new(seed, base());
        let client_host = sim.add_host(RealmId::INTERNET, &[ip(CLIENT)], client_link);
        let server_host = sim.add_host(RealmId::INTERNET, &[sa(SERVER).ip()], server_link);
        let server = sim
            .add_node(server_host, &[], TcpEcho::new(&[sa(SERVER)]))
            .unwrap();
        let client = sim.add_node(client_host, &[], TcpProbe::new()).unwrap();
        Pair {
            sim,
            client_host,
            server_host,
            client,
            server,
        }
    }

    /// Connect from an ephemeral port and wait for the handshake; the connection id.
    fn connect(&mut self) -> TcpId {
        let client = self.client;
        let before = self.sim.node(client).log().established().len();
        self.sim
            .node_mut(client)
            .connect(SocketAddr::new(ip(CLIENT), 0), sa(SERVER));
        let deadline = self.sim.now() + secs(600);
        assert!(
            self.sim.run_until_condition(deadline, |s| {
                s.node(client).log().established().len() > before
            }),
            "connected: {:?}",
            self.sim.node(client).log().events()
        );
        self.sim.node(client).log().established()[before].0
    }

    /// Send `data` and wait until all of it has come back; how long that took.
    fn echo(&mut self, id: TcpId, data: &[u8]) -> Duration {
        let (client, start) = (self.client, self.sim.now());
        let want = self.sim.node(client).log().received(id).len() + data.len();
        self.sim.node_mut(client).send(id, data.to_vec());
        let deadline = start + secs(3600);
        assert!(
            self.sim.run_until_condition(deadline, |s| {
                s.node(client).log().received(id).len() >= want
            }),
            "echoed {} of {want} bytes",
            self.sim.node(client).log().received(id).len()
        );
        self.sim.now() - start
    }
}

#[test]
fn connect_accept_echo_and_close() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(1, link.clone(), link);
    let t0 = p.sim.now();
    let id = p.connect();
    // SYN out (2 x 10 ms), SYN-ACK back (2 x 10 ms): connected after one round trip...
    assert_eq!(p.sim.now() - t0, ms(40));
    let (_, local, remote) = p.sim.node(p.client).log().established()[0];
    assert_eq!(local, sa("198.51.100.2:49152"), "first ephemeral port");
    assert_eq!(remote, sa(SERVER));
    // ...and the server accepts when the ACK arrives, half a round trip later.
    p.sim.run_for(ms(100));
    let accepted = p.sim.node(p.server).log().established();
    assert_eq!(accepted.len(), 1);
    let (server_id, server_local, peer) = accepted[0];
    assert_eq!((server_local, peer), (sa(SERVER), local));
    assert_eq!(
        p.sim
            .node(p.server)
            .log()
            .established_at(server_id)
            .unwrap()
            - t0,
        ms(60)
    );

    let data = pattern(10_000);
    let took = p.echo(id, &data);
    assert_eq!(p.sim.node(p.client).log().received(id), data);
    assert_eq!(p.sim.node(p.server).log().received(server_id), data);
    assert_eq!(
        took,
        ms(40),
        "there and back in one round trip (no congestion control holds 10 kB back)"
    );

    // The client closes: the server sees it after all the data, and closes in turn.
    p.sim.node_mut(p.client).close(id);
    p.sim.run_for(ms(100));
    assert_eq!(
        p.sim.node(p.server).log().closed(server_id),
        Some(CloseReason::Fin)
    );
    assert_eq!(
        p.sim.node(p.client).log().closed(id),
        None,
        "no event for the node's own close"
    );
    // The closer keeps the connection in TIME-WAIT, then everything is gone.
    assert_eq!(p.sim.tcp_connection_count(), 1);
    assert!(p.sim.run_until_idle(p.sim.now() + secs(120)));
    assert_eq!(p.sim.tcp_connection_count(), 0);

    let (client, server) = (
        &p.sim.host(p.client_host).stats().tcp,
        &p.sim.host(p.server_host).stats().tcp,
    );
    assert_eq!((client.connected, server.accepted), (1, 1));
    assert_eq!((client.closed, server.closed), (1, 1));
    assert_eq!(client.bytes_sent, 10_000);
    assert_eq!(client.bytes_delivered, 10_000);
    assert_eq!(client.retransmitted + server.retransmitted, 0);
    assert_eq!(p.sim.stats().tcp.connected, 1);
    assert_eq!(p.sim.stats().dropped_total(), 0);
}

#[test]
fn segments_fit_the_smallest_mtu_on_the_path() {
    let small = LinkConfig {
        mtu: 576,
        ..LinkConfig::with_latency(ms(5))
    };
    let mut p = Pair::new(2, LinkConfig::default(), small);
    let cap = p.sim.capture_host(p.client_host, CaptureSink::memory());
    let id = p.connect();
    let data = pattern(50_000);
    p.echo(id, &data);
    assert_eq!(p.sim.node(p.client).log().received(id), data);
    assert_eq!(p.sim.stats().dropped(DropReason::Mtu), 0);
    let records = parse_pcap(&p.sim.finish_capture(cap).unwrap().unwrap());
    let largest = records.iter().map(|r| r.packet.len()).max().unwrap();
    assert_eq!(
        largest, 576,
        "MSS 536 on a 576-byte path: full-size segments"
    );
    // The client's SYN advertised its own link's MSS; the server saw it clamped.
    let syn = tcp_view(&records[0]);
    assert_eq!((syn.flags, syn.mss), (SYN, Some(1460)));
}

#[test]
fn lossy_links_delay_bytes_but_never_lose_reorder_or_duplicate_them() {
    let lossless = {
        let link = LinkConfig::with_latency(ms(20));
        let mut p = Pair::new(3, link.clone(), link);
        let id = p.connect();
        p.echo(id, &pattern(200_000))
    };
    let bad = LinkConfig {
        latency: ms(20),
        jitter: ms(10),
        loss: 0.3,
        duplicate: 0.05,
        reorder: 0.05,
        ..LinkConfig::default()
    };
    let mut p = Pair::new(3, bad.clone(), bad);
    let id = p.connect();
    let data = pattern(200_000);
    let lossy = p.echo(id, &data);
    assert_eq!(p.sim.node(p.client).log().received(id), data, "byte-exact");
    let server_id = p.sim.node(p.server).log().established()[0].0;
    assert_eq!(p.sim.node(p.server).log().received(server_id), data);
    let stats = p.sim.stats();
    assert!(stats.dropped(DropReason::Loss) > 100, "{stats:?}");
    assert!(stats.tcp.retransmitted > 100, "{stats:?}");
    assert!(
        lossy > lossless * 3,
        "loss costs time: {lossy:?} vs {lossless:?}"
    );
    assert_eq!(p.sim.node(p.client).log().closed(id), None, "still open");
    // Closing over the same links completes too, and leaves nothing behind.
    p.sim.node_mut(p.client).close(id);
    assert!(p.sim.run_until_idle(p.sim.now() + secs(3600)));
    assert_eq!(
        p.sim.node(p.server).log().closed(server_id),
        Some(CloseReason::Fin)
    );
    assert_eq!(p.sim.tcp_connection_count(), 0);
}

#[test]
fn connecting_to_a_closed_port_is_refused_with_a_reset() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(4, link.clone(), link);
    let closed = sa("192.0.2.1:9");
    let local = SocketAddr::new(ip(CLIENT), 0);
    p.sim.node_mut(p.client).connect(local, closed);
    p.sim.run_for(ms(100));
    let log = p.sim.node(p.client).log();
    assert_eq!(
        log.connect_failures(),
        [(local, closed, ConnectError::Refused)]
    );
    assert_eq!(
        log.events()[0].0 - p.sim.base(),
        ms(40),
        "after one round trip"
    );
    let server = p.sim.host(p.server_host).stats();
    assert_eq!(server.dropped(DropReason::UnboundPort), 1);
    assert_eq!(server.tcp.resets_sent, 1);
    assert_eq!(p.sim.host(p.client_host).stats().tcp.connect_failed, 1);
    assert_eq!(p.sim.tcp_connection_count(), 0);
}

#[test]
fn an_abort_resets_the_peer() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(5, link.clone(), link);
    let id = p.connect();
    p.echo(id, b"before");
    p.sim.node_mut(p.client).abort(id);
    p.sim.run_for(ms(100));
    let server_id = p.sim.node(p.server).log().established()[0].0;
    assert_eq!(
        p.sim.node(p.server).log().closed(server_id),
        Some(CloseReason::Reset)
    );
    assert_eq!(
        p.sim.tcp_connection_count(),
        0,
        "no TIME-WAIT after a reset"
    );
    assert_eq!(p.sim.stats().tcp.reset, 1);
    // Commands on the finished connection are ignored.
    p.sim.node_mut(p.client).send(id, b"late".to_vec());
    p.sim.run_for(ms(100));
    assert_eq!(p.sim.host(p.client_host).stats().tcp.bytes_sent, 6);
}

#[test]
fn command_errors_come_back_as_events() {
    let mut p = Pair::new(6, LinkConfig::default(), LinkConfig::default());
    let c = p.client;
    let here = SocketAddr::new(ip(CLIENT), 4000);
    let elsewhere = sa("203.0.113.9:4000");
    let node = p.sim.node_mut(c);
    node.listen(here);
    node.listen(here);
    node.listen(elsewhere);
    node.connect(elsewhere, sa(SERVER));
    node.connect(here, sa("[2001:db8::1]:3478"));
    node.connect(here, sa(SERVER));
    node.connect(here, sa(SERVER));
    p.sim.run_for(ms(10));
    let events: Vec<_> = p
        .sim
        .node(c)
        .log()
        .events()
        .iter()
        .map(|(_, e)| e.clone())
        .collect();
    use netsim::BindError;
    assert_eq!(
        events[..5],
        [
            TcpEvent::ListenFailed {
                local: here,
                error: BindError::InUse(here)
            },
            TcpEvent::ListenFailed {
                local: elsewhere,
                error: BindError::AddressNotOnHost(elsewhere)
            },
            TcpEvent::ConnectFailed {
                local: elsewhere,
                remote: sa(SERVER),
                error: ConnectError::AddressNotOnHost
            },
            TcpEvent::ConnectFailed {
                local: here,
                remote: sa("[2001:db8::1]:3478"),
                error: ConnectError::AddressFamily
            },
            TcpEvent::ConnectFailed {
                local: here,
                remote: sa(SERVER),
                error: ConnectError::InUse
            },
        ]
    );
    // The one good connect, from the port the probe also listens on, went through.
    assert!(matches!(
        events[5],
        TcpEvent::Connected { local, .. } if local == here
    ));
}

#[test]
fn unlisten_stops_accepting_but_keeps_accepted_connections() {
    let mut p = Pair::new(19, LinkConfig::default(), LinkConfig::default());
    let web = sa("192.0.2.1:80");
    let listener = p.sim.add_node(p.server_host, &[], TcpProbe::new()).unwrap();
    p.sim.node_mut(listener).listen(web);
    let any = SocketAddr::new(ip(CLIENT), 0);
    p.sim.node_mut(p.client).connect(any, web);
    p.sim.run_for(ms(10));
    let (accepted, _, _) = p.sim.node(listener).log().established()[0];
    p.sim
        .node_mut(listener)
        .command(TcpCommand::Unlisten { local: web });
    p.sim.node_mut(p.client).connect(any, web);
    p.sim.run_for(ms(10));
    assert_eq!(
        p.sim.node(p.client).log().connect_failures(),
        [(any, web, ConnectError::Refused)]
    );
    let (id, _, _) = p.sim.node(p.client).log().established()[0];
    p.sim.node_mut(p.client).send(id, b"still here".to_vec());
    p.sim.run_for(ms(10));
    assert_eq!(p.sim.node(listener).log().received(accepted), b"still here");
}

#[test]
fn a_tcp_datagram_from_a_node_is_refused() {
    let mut sim = Sim::new(7, base());
    let a = sa("192.0.2.1:1");
    let h = sim.add_host(RealmId::INTERNET, &[a.ip()], LinkConfig::default());
    let probe = sim.add_node(h, &[a], Probe::new(a)).unwrap();
    let mut dg = Datagram::udp(a, sa("192.0.2.2:2"), b"x".to_vec());
    dg.transport = Transport::Tcp;
    sim.node_mut(probe).send_datagram(dg);
    sim.run_for(ms(10));
    assert_eq!(sim.host(h).stats().dropped(DropReason::BadTransport), 1);
    assert_eq!(sim.host(h).stats().sent, 0);
}

// ---- simultaneous open (RFC 9293 §3.5), as ICE-TCP "so" candidates use it ----

/// Each probe (node, local, remote) connects to the other at the same instant; returns both
/// connection ids once data has gone both ways.
fn simultaneous(
    sim: &mut Sim,
    a: (NodeId<TcpProbe>, SocketAddr, SocketAddr),
    b: (NodeId<TcpProbe>, SocketAddr, SocketAddr),
) -> (TcpId, TcpId) {
    let before = (
        sim.node(a.0).log().events().len(),
        sim.node(b.0).log().events().len(),
    );
    sim.node_mut(a.0).connect(a.1, a.2);
    sim.node_mut(b.0).connect(b.1, b.2);
    let deadline = sim.now() + secs(30);
    let new_events = |s: &Sim, node: NodeId<TcpProbe>, skip: usize| -> Vec<TcpEvent> {
        let events = s.node(node).log().events();
        events[skip..].iter().map(|(_, e)| e.clone()).collect()
    };
    assert!(
        sim.run_until_condition(deadline, |s| {
            !new_events(s, a.0, before.0).is_empty() && !new_events(s, b.0, before.1).is_empty()
        }),
        "no connection"
    );
    // Both ends connected; neither accepted (no listener was involved).
    let connected = |events: Vec<TcpEvent>, local: SocketAddr, remote: SocketAddr| match events[..]
    {
        [
            TcpEvent::Connected {
                id,
                local: l,
                remote: r,
            },
        ] if (l, r) == (local, remote) => id,
        _ => panic!("expected one Connected from {local} to {remote}: {events:?}"),
    };
    let ids = (
        connected(new_events(sim, a.0, before.0), a.1, a.2),
        connected(new_events(sim, b.0, before.1), b.1, b.2),
    );
    // Data both ways.
    sim.node_mut(a.0).send(ids.0, b"from a".to_vec());
    sim.node_mut(b.0).send(ids.1, b"from b".to_vec());
    sim.run_for(secs(1));
    assert_eq!(sim.node(b.0).log().received(ids.1), b"from a");
    assert_eq!(sim.node(a.0).log().received(ids.0), b"from b");
    ids
}

#[test]
fn simultaneous_open_between_public_hosts_that_also_listen() {
    let mut sim = Sim::new(8, base());
    let (la, lb) = (sa("198.51.100.1:7000"), sa("203.0.113.2:8000"));
    let link = |l| LinkConfig::with_latency(ms(l));
    let ha = sim.add_host(RealmId::INTERNET, &[la.ip()], link(10));
    let hb = sim.add_host(RealmId::INTERNET, &[lb.ip()], link(15));
    let a = sim.add_node(ha, &[], TcpProbe::new()).unwrap();
    let b = sim.add_node(hb, &[], TcpProbe::new()).unwrap();
    // As ICE-TCP simultaneous-open candidates do: listen and connect on the same port.
    sim.node_mut(a).listen(la);
    sim.node_mut(b).listen(lb);
    simultaneous(&mut sim, (a, la, lb), (b, lb, la));
    assert_eq!(sim.stats().tcp.connected, 2);
    assert_eq!(sim.stats().tcp.accepted, 0);
    assert_eq!(sim.stats().dropped_total(), 0);
}

#[test]
fn reconnecting_from_the_same_port_replaces_a_connection_in_time_wait() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(20, link.clone(), link);
    let local = SocketAddr::new(ip(CLIENT), 5000);
    for round in 0..2 {
        p.sim.node_mut(p.client).connect(local, sa(SERVER));
        p.sim.run_for(ms(100));
        let (id, l, _) = *p.sim.node(p.client).log().established().last().unwrap();
        assert_eq!(
            p.sim.node(p.client).log().established().len(),
            round + 1,
            "{:?}",
            p.sim.node(p.client).log().connect_failures()
        );
        assert_eq!(l, local);
        p.echo(id, b"x");
        // The client closes first, so its side lingers in TIME-WAIT for a minute...
        p.sim.node_mut(p.client).close(id);
        p.sim.run_for(ms(100));
        assert_eq!(p.sim.tcp_connection_count(), 1);
    }
    // ...yet the second connect, a moment later, took its place.
    assert_eq!(p.sim.stats().tcp.connected, 2);
}

#[test]
fn a_listener_on_port_0_takes_every_port_of_its_address() {
    let mut p = Pair::new(21, LinkConfig::default(), LinkConfig::default());
    let relay = p.sim.add_node(p.server_host, &[], TcpProbe::new()).unwrap();
    p.sim.node_mut(relay).listen(sa("192.0.2.1:0"));
    let any = SocketAddr::new(ip(CLIENT), 0);
    for port in [50_000, 50_001] {
        p.sim
            .node_mut(p.client)
            .connect(any, SocketAddr::new(sa(SERVER).ip(), port));
    }
    // The echo's own listener is more specific and keeps its port.
    p.sim.node_mut(p.client).connect(any, sa(SERVER));
    p.sim.run_for(ms(10));
    let ports: Vec<u16> = p
        .sim
        .node(relay)
        .log()
        .established()
        .iter()
        .map(|(_, local, _)| local.port())
        .collect();
    assert_eq!(ports, [50_000, 50_001]);
    assert_eq!(p.sim.node(p.server).log().established().len(), 1);
}

/// A host behind its own NAT, running a TCP probe, with a TCP echo server on the internet
/// it can learn its mapping from (as an ICE agent does with STUN over TCP).
struct Behind {
    nat: NatId,
    probe: NodeId<TcpProbe>,
    local: SocketAddr,
}

/// `access` is the link between the host and its NAT (the NAT's uplink has 5 ms).
fn behind(
    sim: &mut Sim,
    nat_ip: &str,
    local: &str,
    config: NatConfig,
    access: LinkConfig,
) -> Behind {
    let uplink = LinkConfig::with_latency(ms(5));
    let nat = sim.add_nat(RealmId::INTERNET, &[ip(nat_ip)], config, uplink);
    let realm = sim.nat(nat).inside_realm();
    let local = sa(local);
    let host = sim.add_host(realm, &[local.ip()], access);
    let probe = sim.add_node(host, &[], TcpProbe::new()).unwrap();
    Behind { nat, probe, local }
}

/// The external address the echo server at `SERVER` sees for a connection from `b.local`.
fn learn_mapping(sim: &mut Sim, b: &Behind, server: NodeId<TcpEcho>) -> SocketAddr {
    sim.node_mut(b.probe).connect(b.local, sa(SERVER));
    sim.run_for(secs(1));
    let id = sim.node(b.probe).log().established().last().unwrap().0;
    let seen = sim.node(server).log().established().last().unwrap().2;
    sim.node_mut(b.probe).close(id);
    sim.run_for(secs(1));
    seen
}

fn stun_like_server(sim: &mut Sim) -> NodeId<TcpEcho> {
    let h = sim.add_host(
        RealmId::INTERNET,
        &[sa(SERVER).ip()],
        LinkConfig::with_latency(ms(5)),
    );
    sim.add_node(h, &[], TcpEcho::new(&[sa(SERVER)])).unwrap()
}

#[test]
fn simultaneous_open_through_two_port_restricted_nats() {
    let mut sim = Sim::new(9, base());
    let server = stun_like_server(&mut sim);
    let prc = NatConfig::port_restricted_cone;
    // B's access link is slower: A's SYN reaches B's NAT before B's own SYN has left it.
    let a = behind(
        &mut sim,
        "203.0.113.1",
        "192.168.1.10:5000",
        prc(),
        LinkConfig::with_latency(ms(2)),
    );
    let b = behind(
        &mut sim,
        "203.0.113.2",
        "10.0.0.20:6000",
        prc(),
        LinkConfig::with_latency(ms(40)),
    );
    let (ma, mb) = (
        learn_mapping(&mut sim, &a, server),
        learn_mapping(&mut sim, &b, server),
    );
    assert_eq!((ma, mb), (sa("203.0.113.1:5000"), sa("203.0.113.2:6000")));

    simultaneous(&mut sim, (a.probe, a.local, mb), (b.probe, b.local, ma));
    // B's NAT dropped A's early SYN (unsolicited then); B's SYN got through A's NAT because
    // A's SYN to B had opened it, and A answered it with a SYN-ACK.
    assert_eq!(sim.nat(b.nat).stats().dropped(DropReason::Filtered), 1);
    assert_eq!(sim.nat(a.nat).stats().dropped(DropReason::Filtered), 0);
    let sessions: Vec<_> = sim
        .nat(a.nat)
        .tcp_sessions(sim.now())
        .filter(|s| s.remote == mb)
        .collect();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].established);
}

#[test]
fn an_unsolicited_inbound_syn_is_filtered_unless_the_nat_filters_endpoint_independently() {
    for (filtering_config, gets_in) in [
        (NatConfig::port_restricted_cone(), false),
        (NatConfig::restricted_cone(), false),
        (NatConfig::full_cone(), true),
    ] {
        let mut sim = Sim::new(10, base());
        sim.set_tcp_config(TcpConfig {
            connect_timeout: secs(10),
            ..TcpConfig::default()
        });
        let server = stun_like_server(&mut sim);
        let inside = behind(
            &mut sim,
            "203.0.113.1",
            "192.168.1.10:5000",
            filtering_config.clone(),
            LinkConfig::default(),
        );
        // The inside host listens on the port it also connected out from: the mapping
        // exists (endpoint-independent), only the filter stands in the way.
        sim.node_mut(inside.probe).listen(inside.local);
        let mapping = learn_mapping(&mut sim, &inside, server);
        let stranger_host = sim.add_host(
            RealmId::INTERNET,
            &[ip("198.51.100.99")],
            LinkConfig::default(),
        );
        let stranger = sim.add_node(stranger_host, &[], TcpProbe::new()).unwrap();
        sim.node_mut(stranger)
            .connect(sa("198.51.100.99:0"), mapping);
        sim.run_for(secs(20));
        let accepted = sim
            .node(inside.probe)
            .log()
            .events()
            .iter()
            .any(|(_, e)| match e {
                TcpEvent::Accepted { remote, .. } => remote.ip() == ip("198.51.100.99"),
                _ => false,
            });
        assert_eq!(accepted, gets_in, "{filtering_config:?}");
        let failures = sim.node(stranger).log().connect_failures();
        if gets_in {
            assert!(failures.is_empty());
        } else {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].2, ConnectError::TimedOut);
            // The SYN and its retransmissions within the 10 s connect timeout: 0, 1, 3, 7 s.
            assert_eq!(sim.nat(inside.nat).stats().dropped(DropReason::Filtered), 4);
        }
    }
}

#[test]
fn an_inbound_syn_without_a_mapping_finds_no_way_in() {
    let mut sim = Sim::new(11, base());
    sim.set_tcp_config(TcpConfig {
        connect_timeout: secs(5),
        ..TcpConfig::default()
    });
    let inside = behind(
        &mut sim,
        "203.0.113.1",
        "192.168.1.10:5000",
        NatConfig::full_cone(),
        LinkConfig::default(),
    );
    sim.node_mut(inside.probe).listen(inside.local);
    let h = sim.add_host(
        RealmId::INTERNET,
        &[ip("198.51.100.99")],
        LinkConfig::default(),
    );
    let stranger = sim.add_node(h, &[], TcpProbe::new()).unwrap();
    sim.node_mut(stranger)
        .connect(sa("198.51.100.99:0"), sa("203.0.113.1:5000"));
    sim.run_for(secs(10));
    assert_eq!(
        sim.node(stranger).log().connect_failures()[0].2,
        ConnectError::TimedOut
    );
    assert!(sim.nat(inside.nat).stats().dropped(DropReason::NoMapping) >= 1);
}

// ---- firewall: UDP and TCP independently ----

#[test]
fn a_udp_blocking_firewall_lets_tcp_through_and_vice_versa() {
    for (firewall, udp_works, tcp_works) in [
        (Firewall::block_udp(), false, true),
        (Firewall::open().block(Transport::Tcp), true, false),
    ] {
        let mut sim = Sim::new(12, base());
        sim.set_tcp_config(TcpConfig {
            connect_timeout: secs(5),
            ..TcpConfig::default()
        });
        let config = NatConfig {
            firewall: firewall.clone(),
            ..NatConfig::port_restricted_cone()
        };
        let inside = behind(
            &mut sim,
            "203.0.113.1",
            "192.168.1.10:5000",
            config,
            LinkConfig::default(),
        );
        let server = stun_like_server(&mut sim);
        // A UDP probe next to the TCP one, and a UDP echo next to the TCP echo.
        let udp_local = sa("192.168.1.10:5001");
        let host = sim.node_host(inside.probe);
        let udp = sim
            .add_node(host, &[udp_local], Probe::new(udp_local))
            .unwrap();
        let server_host = sim.node_host(server);
        sim.add_node(server_host, &[sa(SERVER)], Echo::new())
            .unwrap();

        sim.node_mut(udp).send(sa(SERVER), b"udp".to_vec());
        sim.node_mut(inside.probe)
            .connect(sa("192.168.1.10:0"), sa(SERVER));
        sim.run_for(secs(10));
        assert_eq!(
            !sim.node(udp).received().is_empty(),
            udp_works,
            "{firewall:?}"
        );
        let log = sim.node(inside.probe).log();
        assert_eq!(!log.established().is_empty(), tcp_works, "{firewall:?}");
        if !tcp_works {
            assert_eq!(log.connect_failures()[0].2, ConnectError::TimedOut);
        }
        assert!(sim.nat(inside.nat).stats().dropped(DropReason::Firewall) >= 1);
    }
}

// ---- RFC 5382 §5: NAT idle timeouts for TCP ----

/// A client behind `config` connected to the echo server; the connection ids after a first
/// exchange.
fn through_nat(config: NatConfig, tcp: TcpConfig) -> (Sim, NatId, NodeId<TcpProbe>, TcpId) {
    let mut sim = Sim::new(13, base());
    sim.set_tcp_config(tcp);
    let server = stun_like_server(&mut sim);
    let inside = behind(
        &mut sim,
        "203.0.113.1",
        "192.168.1.10:5000",
        config,
        LinkConfig::with_latency(ms(10)),
    );
    sim.node_mut(inside.probe)
        .connect(sa("192.168.1.10:0"), sa(SERVER));
    sim.run_for(secs(1));
    let id = sim.node(inside.probe).log().established()[0].0;
    sim.node_mut(inside.probe).send(id, b"hello".to_vec());
    sim.run_for(secs(1));
    assert_eq!(sim.node(inside.probe).log().received(id), b"hello");
    let _ = server;
    (sim, inside.nat, inside.probe, id)
}

/// After `idle`, the client sends again; returns whether the echo came back, and how the
/// connection ended if it did.
fn after_idle(
    sim: &mut Sim,
    probe: NodeId<TcpProbe>,
    id: TcpId,
    idle: Duration,
) -> (bool, Option<CloseReason>) {
    sim.run_for(idle);
    sim.node_mut(probe).send(id, b"again".to_vec());
    sim.run_for(secs(120));
    let log = sim.node(probe).log();
    (log.received(id) == b"helloagain", log.closed(id))
}

#[test]
fn an_established_connection_survives_two_hours_idle_by_default() {
    let (mut sim, nat, probe, id) =
        through_nat(NatConfig::port_restricted_cone(), TcpConfig::default());
    assert_eq!(
        NatConfig::default().tcp_established_timeout,
        secs(2 * 3600 + 4 * 60),
        "RFC 5382 REQ-5"
    );
    let sessions: Vec<_> = sim.nat(nat).tcp_sessions(sim.now()).collect();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].established);
    assert_eq!(
        after_idle(&mut sim, probe, id, secs(2 * 3600)),
        (true, None)
    );
}

#[test]
fn the_nat_forgets_an_idle_connection_after_its_established_timeout() {
    let nat_config = NatConfig {
        tcp_established_timeout: secs(600),
        ..NatConfig::port_restricted_cone()
    };
    let tcp = TcpConfig {
        user_timeout: secs(30),
        ..TcpConfig::default()
    };
    let (mut sim, nat, probe, id) = through_nat(nat_config, tcp);
    sim.run_for(secs(601));
    assert_eq!(sim.nat(nat).tcp_sessions(sim.now()).count(), 0);
    // The client's next segment belongs to no connection the NAT knows: dropped, retried,
    // and after the user timeout the connection is given up.
    assert_eq!(
        after_idle(&mut sim, probe, id, Duration::ZERO),
        (false, Some(CloseReason::TimedOut))
    );
    assert!(sim.nat(nat).stats().dropped(DropReason::NoMapping) >= 2);
    assert_eq!(sim.stats().tcp.timed_out, 1);
}

#[test]
fn keepalives_keep_the_nat_session_alive() {
    let nat_config = NatConfig {
        tcp_established_timeout: secs(600),
        ..NatConfig::port_restricted_cone()
    };
    let tcp = TcpConfig {
        keepalive: Some(secs(300)),
        ..TcpConfig::default()
    };
    let (mut sim, nat, probe, id) = through_nat(nat_config, tcp);
    assert_eq!(after_idle(&mut sim, probe, id, secs(3600)), (true, None));
    assert_eq!(sim.nat(nat).tcp_sessions(sim.now()).count(), 1);
}

#[test]
fn a_closed_connection_lingers_in_the_nat_for_the_transitory_timeout() {
    let (mut sim, nat, probe, id) =
        through_nat(NatConfig::port_restricted_cone(), TcpConfig::default());
    sim.node_mut(probe).close(id);
    sim.run_for(secs(1));
    let sessions: Vec<_> = sim.nat(nat).tcp_sessions(sim.now()).collect();
    assert_eq!(sessions.len(), 1);
    assert!(!sessions[0].established, "FINs seen: transitory");
    sim.run_for(NatConfig::default().tcp_transitory_timeout);
    assert_eq!(sim.nat(nat).tcp_sessions(sim.now()).count(), 0);
}

// ---- link cuts ----

fn cut(sim: &mut Sim, host: HostId, down: bool) {
    let link = sim.host_link(host);
    let mut config = sim.link(link).config().clone();
    config.down = down;
    sim.link_mut(link).set_config(config);
}

#[test]
fn a_short_link_cut_delays_data_a_long_one_times_the_connection_out() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(14, link.clone(), link);
    p.sim.set_tcp_config(TcpConfig {
        user_timeout: secs(60),
        keepalive: Some(secs(60)),
        keepalive_interval: secs(15),
        ..TcpConfig::default()
    });
    let id = p.connect();
    p.echo(id, b"one");

    // Cut for 10 s: the data waits, retransmitted with back-off, then arrives whole.
    cut(&mut p.sim, p.client_host, true);
    p.sim.node_mut(p.client).send(id, b"two".to_vec());
    p.sim.run_for(secs(10));
    cut(&mut p.sim, p.client_host, false);
    p.sim.run_for(secs(30));
    assert_eq!(p.sim.node(p.client).log().received(id), b"onetwo");
    assert!(p.sim.stats().dropped(DropReason::LinkDown) >= 3);

    // Cut for longer than the user timeout: the client gives up.
    cut(&mut p.sim, p.client_host, true);
    p.sim.node_mut(p.client).send(id, b"three".to_vec());
    p.sim.run_for(secs(90));
    assert_eq!(
        p.sim.node(p.client).log().closed(id),
        Some(CloseReason::TimedOut)
    );
    // The server had nothing to send, and has not noticed yet. Once the link is back, its
    // next keepalive probe meets a host that has forgotten the connection, and a reset.
    let server_id = p.sim.node(p.server).log().established()[0].0;
    assert_eq!(p.sim.node(p.server).log().closed(server_id), None);
    cut(&mut p.sim, p.client_host, false);
    p.sim.run_for(secs(60));
    assert_eq!(
        p.sim.node(p.server).log().closed(server_id),
        Some(CloseReason::Reset)
    );
    assert_eq!(p.sim.host(p.client_host).stats().tcp.resets_sent, 1);
}

// ---- hairpinning (RFC 5382 REQ-8) ----

#[test]
fn tcp_hairpins_through_the_nat_when_it_hairpins() {
    for hairpinning in [true, false] {
        let mut sim = Sim::new(15, base());
        sim.set_tcp_config(TcpConfig {
            connect_timeout: secs(5),
            ..TcpConfig::default()
        });
        let server = stun_like_server(&mut sim);
        let config = NatConfig {
            hairpinning,
            ..NatConfig::full_cone()
        };
        let b = behind(
            &mut sim,
            "203.0.113.1",
            "192.168.1.20:6000",
            config,
            LinkConfig::default(),
        );
        sim.node_mut(b.probe).listen(b.local);
        let mb = learn_mapping(&mut sim, &b, server);
        let realm = sim.nat(b.nat).inside_realm();
        let ha = sim.add_host(realm, &[ip("192.168.1.10")], LinkConfig::default());
        let a = sim.add_node(ha, &[], TcpProbe::new()).unwrap();
        sim.node_mut(a).connect(sa("192.168.1.10:5000"), mb);
        sim.run_for(secs(10));
        let accepted: Vec<_> = sim
            .node(b.probe)
            .log()
            .events()
            .iter()
            .filter_map(|(_, e)| match e {
                TcpEvent::Accepted { remote, .. } => Some(*remote),
                _ => None,
            })
            .collect();
        if hairpinning {
            // B sees A's external endpoint, not its private address.
            assert_eq!(accepted, [sa("203.0.113.1:5000")]);
        } else {
            assert!(accepted.is_empty());
            assert!(sim.nat(b.nat).stats().dropped(DropReason::Hairpin) >= 1);
        }
    }
}

#[test]
fn ipv6_connections_work_and_use_the_ipv6_mss() {
    let mut sim = Sim::new(16, base());
    let (c, s) = (sa("[2001:db8::c]:0"), sa("[2001:db8::5]:443"));
    let hc = sim.add_host(
        RealmId::INTERNET,
        &[c.ip()],
        LinkConfig::with_latency(ms(7)),
    );
    let hs = sim.add_host(RealmId::INTERNET, &[s.ip()], LinkConfig::default());
    let cap = sim.capture_host(hc, CaptureSink::memory());
    sim.add_node(hs, &[], TcpEcho::new(&[sa("[::]:443")]))
        .unwrap();
    let probe = sim.add_node(hc, &[], TcpProbe::new()).unwrap();
    sim.node_mut(probe).connect(c, s);
    sim.run_for(ms(100));
    let (id, local, remote) = sim.node(probe).log().established()[0];
    assert_eq!((local, remote), (sa("[2001:db8::c]:49152"), s));
    let data = pattern(5000);
    sim.node_mut(probe).send(id, data.clone());
    sim.run_for(ms(100));
    assert_eq!(sim.node(probe).log().received(id), data);
    let records = parse_pcap(&sim.finish_capture(cap).unwrap().unwrap());
    assert!(records.iter().all(|r| r.packet[0] >> 4 == 6));
    assert_eq!(tcp_view(&records[0]).mss, Some(1440));
    assert_eq!(
        records.iter().map(|r| r.packet.len()).max(),
        Some(1500),
        "full-size IPv6 segments"
    );
}

// ---- captures ----

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

/// The TCP header fields of a captured packet.
struct TcpView {
    flags: u8,
    seq: u32,
    ack: u32,
    mss: Option<u16>,
    payload: Vec<u8>,
}

fn tcp_view(r: &common::Record) -> TcpView {
    let p = &r.packet;
    let (ip_len, proto) = if p[0] >> 4 == 4 {
        (20, p[9])
    } else {
        (40, p[6])
    };
    assert_eq!(proto, 6, "a TCP packet");
    let t = &p[ip_len..];
    let word = |o: usize| u32::from_be_bytes(t[o..o + 4].try_into().unwrap());
    let header = usize::from(t[12] >> 4) * 4;
    let mss = (header > 20 && t[20] == 2).then(|| u16::from_be_bytes([t[22], t[23]]));
    TcpView {
        flags: t[13],
        seq: word(4),
        ack: word(8),
        mss,
        payload: t[header..].to_vec(),
    }
}

#[test]
fn captured_segments_carry_consistent_sequence_numbers() {
    let link = LinkConfig::with_latency(ms(10));
    let mut p = Pair::new(17, link.clone(), link);
    let cap = p.sim.capture_host(p.client_host, CaptureSink::memory());
    let id = p.connect();
    p.echo(id, b"hello");
    p.sim.node_mut(p.client).close(id);
    p.sim.run_for(secs(1));
    let records = parse_pcap(&p.sim.finish_capture(cap).unwrap().unwrap());
    let client = SocketAddr::new(ip(CLIENT), 49152);
    let views: Vec<_> = records
        .iter()
        .map(|r| (r.source() == client, tcp_view(r)))
        .collect();
    let summary: Vec<_> = views
        .iter()
        .map(|(out, v)| (*out, v.flags, v.payload.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (true, SYN, 0),
            (false, SYN | ACK, 0),
            (true, ACK, 0),
            (true, ACK | 0x08, 5),
            (false, ACK, 0),
            (false, ACK | 0x08, 5),
            (true, ACK, 0),
            (true, FIN | ACK, 0),
            (false, ACK, 0),
            (false, FIN | ACK, 0),
            (true, ACK, 0),
        ]
    );
    let (isn_c, isn_s) = (views[0].1.seq, views[1].1.seq);
    assert_eq!(
        views[1].1.ack,
        isn_c.wrapping_add(1),
        "SYN-ACK acknowledges the SYN"
    );
    assert_eq!(
        views[3].1.seq,
        isn_c.wrapping_add(1),
        "data follows the SYN"
    );
    assert_eq!(views[5].1.seq, isn_s.wrapping_add(1));
    assert_eq!(views[7].1.seq, isn_c.wrapping_add(6), "FIN after 5 bytes");
    assert_eq!(
        views[10].1.ack,
        isn_s.wrapping_add(7),
        "last ACK covers the server's FIN"
    );
}

/// A client behind a NAT echoing 20 kB over lossy links, captured on the client host, the
/// NAT uplink and the server host.
fn lossy_tcp_run(seed: u64) -> [Vec<u8>; 3] {
    let mut sim = Sim::new(seed, base());
    let bad = LinkConfig {
        latency: ms(20),
        jitter: ms(15),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        ..LinkConfig::default()
    };
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip("203.0.113.1")],
        NatConfig {
            port_assignment: PortAssignment::Random,
            ..NatConfig::symmetric()
        },
        bad.clone(),
    );
    let home = sim.nat(nat).inside_realm();
    let ch = sim.add_host(home, &[ip("192.168.1.10")], bad.clone());
    let sh = sim.add_host(RealmId::INTERNET, &[sa(SERVER).ip()], bad);
    sim.add_node(sh, &[], TcpEcho::new(&[sa(SERVER)])).unwrap();
    let probe = sim.add_node(ch, &[], TcpProbe::new()).unwrap();
    let captures = [
        sim.capture_host(ch, CaptureSink::memory()),
        sim.capture_link(sim.nat(nat).uplink(), CaptureSink::memory()),
        sim.capture_host(sh, CaptureSink::memory()),
    ];
    sim.node_mut(probe)
        .connect(sa("192.168.1.10:0"), sa(SERVER));
    sim.run_for(secs(5));
    let id = sim.node(probe).log().established()[0].0;
    sim.node_mut(probe).send(id, pattern(20_000));
    sim.run_for(secs(20));
    assert_eq!(sim.node(probe).log().received(id), pattern(20_000));
    captures.map(|c| sim.finish_capture(c).unwrap().unwrap())
}

#[test]
fn tcp_captures_are_a_pure_function_of_the_seed() {
    let a = lossy_tcp_run(7);
    let b = lossy_tcp_run(7);
    let c = lossy_tcp_run(8);
    for i in 0..3 {
        assert!(parse_pcap(&a[i]).len() > 30, "capture {i} has traffic");
        assert_eq!(a[i], b[i], "capture {i}: same seed, byte-identical");
        assert_ne!(a[i], c[i], "capture {i}: other seed, other bytes");
    }
}

/// Wireshark follows our TCP streams and finds STUN in them (port 3478), with good
/// checksums.
#[test]
fn tshark_decodes_stun_over_tcp() {
    let interop = std::env::var("FLOE_INTEROP").is_ok_and(|v| v == "1");
    let version = std::process::Command::new("tshark")
        .arg("--version")
        .output();
    if !version.is_ok_and(|o| o.status.success()) {
        assert!(!interop, "FLOE_INTEROP=1 but tshark is not installed");
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "tshark_decodes_stun_over_tcp: SKIPPED: tshark not installed (FLOE_INTEROP=1 requires it)"
        );
        return;
    }

    let mut sim = Sim::new(18, base());
    let (c4, s4) = (sa("192.0.2.1:0"), sa("192.0.2.2:3478"));
    let (c6, s6) = (sa("[2001:db8::1]:0"), sa("[2001:db8::2]:3478"));
    let hc = sim.add_host(
        RealmId::INTERNET,
        &[c4.ip(), c6.ip()],
        LinkConfig::with_latency(ms(3)),
    );
    let hs = sim.add_host(
        RealmId::INTERNET,
        &[s4.ip(), s6.ip()],
        LinkConfig::default(),
    );
    sim.add_node(hs, &[], TcpEcho::new(&[s4, s6])).unwrap();
    let probe = sim.add_node(hc, &[], TcpProbe::new()).unwrap();
    let cap = sim.capture_host(hc, CaptureSink::memory());
    sim.node_mut(probe).connect(c4, s4);
    sim.node_mut(probe).connect(c6, s6);
    sim.run_for(ms(100));
    // STUN Binding request: type 0x0001, length 0, magic cookie, 96-bit transaction id.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(b"netsim-tx-id");
    for (id, _, _) in sim.node(probe).log().established() {
        sim.node_mut(probe).send(id, stun.clone());
    }
    sim.run_for(ms(100));
    for (id, _, _) in sim.node(probe).log().established() {
        sim.node_mut(probe).close(id);
    }
    sim.run_for(ms(100));
    let bytes = sim.finish_capture(cap).unwrap().unwrap();

    let path = std::env::temp_dir().join(format!("netsim-tshark-tcp-{}.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new("tshark")
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.protocols",
            "-e",
            "tcp.checksum.status",
            "-e",
            "tcp.analysis.flags",
            "-e",
            "stun.type",
            "-r",
        ])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    // Per connection: 3 handshake, request + ACK, response + ACK, 4 for the close.
    assert_eq!(lines.len(), 2 * 11, "{text}");
    for fields in &lines {
        assert!(
            fields[0].starts_with("raw:ip:tcp") || fields[0].starts_with("raw:ipv6:tcp"),
            "{fields:?}"
        );
        assert_eq!(fields[1], "1", "TCP checksum good: {fields:?}");
        assert_eq!(
            fields.get(2).copied().unwrap_or(""),
            "",
            "no TCP analysis warnings: {fields:?}"
        );
    }
    let stun: Vec<_> = lines
        .iter()
        .filter(|f| f[0].ends_with(":tcp:stun"))
        .collect();
    assert_eq!(
        stun.len(),
        4,
        "two requests, two echoes decoded as STUN:\n{text}"
    );
    assert!(stun.iter().all(|f| f[3] == "0x0001"), "{stun:?}");
}
