//! ICE-TCP (RFC 6544) end to end on the in-memory network, whose TCP emulation opens,
//! accepts, refuses and closes connections as the agents ask and frames their byte streams
//! with the real RFC 4571 `StreamFramer`.

mod common;

use common::*;
use ice_core::sdp::CandidateLine;
use ice_core::{
    AgentConfig, CandidateType, ConnectionState, Event, Input, Received, TcpType, TransportProtocol,
};
use std::net::SocketAddr;
use std::time::Duration;

const A_IP: &str = "198.51.100.1";
const B_IP: &str = "203.0.113.1";

/// Two agents, A controlling and B controlled, one stream of one component, with the given
/// TCP candidates (port, type) and optionally a UDP host candidate each.
fn tcp_pair(seed: u64, a_tcp: &[(u16, TcpType)], b_tcp: &[(u16, TcpType)], udp: bool) -> Pair {
    tcp_pair_with(seed, a_tcp, b_tcp, udp, |_| {})
}

fn tcp_pair_with(
    seed: u64,
    a_tcp: &[(u16, TcpType)],
    b_tcp: &[(u16, TcpType)],
    udp: bool,
    setup: impl FnOnce(&mut Net),
) -> Pair {
    let mut net = Net::new();
    setup(&mut net);
    let a = net.add_agent("A", &[A_IP], AgentConfig::default(), seed, None);
    let b = net.add_agent("B", &[B_IP], controlled(), seed + 1, None);
    net.connect(a, b);
    let mut stream = None;
    for (node, ip, tcp, udp_port) in [(a, A_IP, a_tcp, 5000), (b, B_IP, b_tcp, 6000)] {
        let now = net.now;
        let s = net.agent(node).add_stream(1).unwrap();
        if udp {
            let addr = SocketAddr::new(ip.parse().unwrap(), udp_port);
            net.agent(node)
                .add_host_candidate(now, s, 1, addr, TransportProtocol::Udp)
                .unwrap();
        }
        for &(port, t) in tcp {
            add_tcp_host(&mut net, node, s, &format!("{ip}:{port}"), t);
        }
        net.agent(node).finish_host_candidates(now);
        stream = Some(s);
    }
    Pair {
        net,
        a,
        b,
        stream: stream.unwrap(),
    }
}

fn completed(p: &mut Pair, within: Duration) -> bool {
    let (a, b) = (p.a, p.b);
    let ok = p
        .net
        .run_until(within, |n| both(n, a, b, ConnectionState::Completed));
    if !ok {
        dump(&p.net, p.a, p.stream);
        dump(&p.net, p.b, p.stream);
    }
    ok
}

fn selected_cands(p: &Pair, node: usize) -> (ice_core::Candidate, ice_core::Candidate) {
    p.net.agent_ref(node).selected_pair(p.stream, 1).unwrap()
}

/// Data both ways over the selected pair; returns what each side received.
fn exchange(p: &mut Pair, n: usize) {
    let s = p.stream;
    for i in 0..n {
        let size = 1 + (i * 37) % 1400;
        let msg = vec![b'a' + (i % 26) as u8; size];
        p.net.send_data(p.a, s, 1, &msg).unwrap();
        p.net.send_data(p.b, s, 1, &msg).unwrap();
    }
    p.net.run_for(Duration::from_millis(200));
    let expect: Vec<String> = (0..n)
        .map(|i| String::from_utf8(vec![b'a' + (i % 26) as u8; 1 + (i * 37) % 1400]).unwrap())
        .collect();
    assert_eq!(p.net.received(p.b), expect, "A to B");
    assert_eq!(p.net.received(p.a), expect, "B to A");
}

fn never_failed(p: &Pair, node: usize) -> bool {
    p.net.reached(node, ConnectionState::Failed).is_none()
}

/// RFC 6544 §6.2, §7.1: A's active candidate connects to B's passive one; the check goes
/// over the connection, B learns A's ephemeral port as a peer-reflexive active candidate and
/// answers with a triggered check over the same connection; A nominates; data flows both
/// ways as RFC 4571 frames.
#[test]
fn active_connects_to_passive_and_carries_data() {
    let mut p = tcp_pair(
        1,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        false,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let (la, ra) = selected_cands(&p, p.a);
    assert_eq!(
        (la.tcp_type, ra.tcp_type),
        (Some(TcpType::Active), Some(TcpType::Passive))
    );
    assert_eq!(
        la.address.port(),
        9,
        "RFC 6544 §4.5: active candidates show port 9"
    );
    assert_eq!(ra.address, sa("203.0.113.1:6100"));
    let (lb, rb) = selected_cands(&p, p.b);
    assert_eq!(lb.tcp_type, Some(TcpType::Passive));
    assert_eq!(
        (rb.kind, rb.tcp_type),
        (CandidateType::PeerReflexive, Some(TcpType::Active)),
        "§7.2: the peer-reflexive candidate of an active peer"
    );
    assert_eq!(rb.address.ip(), ip(A_IP));
    assert_ne!(rb.address.port(), 9, "the connection's ephemeral port");
    // Exactly one connection, asked for by the active side only.
    assert_eq!(p.net.tcp.attempts.len(), 1);
    assert_eq!(p.net.tcp.attempts[0].0, p.a);
    assert_eq!(p.net.tcp.attempts[0].3, TcpType::Active);
    assert_eq!(p.net.tcp.open(), 1);
    assert!(
        p.net
            .log
            .iter()
            .all(|(_, _, t)| t.transport == TransportProtocol::Tcp)
    );
    // The passive-only agent waited for the peer instead of failing.
    assert!(never_failed(&p, p.a) && never_failed(&p, p.b));
    exchange(&mut p, 20);
    assert_eq!(p.net.tcp.dropped_writes, 0);
    // Closing the agent closes its connections.
    let now = p.net.now;
    p.net.agent(p.a).close(now);
    p.net.flush();
    assert_eq!(p.net.tcp.closes, [(p.a, la.base, ra.address)]);
    p.net.run_for(Duration::from_millis(100));
    assert_eq!(p.net.tcp.open(), 0);
}

/// The other direction: the controlling agent is the passive one and nominates the pair its
/// triggered check validated over the connection the peer opened.
#[test]
fn passive_controlling_agent_nominates_over_the_accepted_connection() {
    let mut p = tcp_pair(
        11,
        &[(6100, TcpType::Passive)],
        &[(9000, TcpType::Active)],
        false,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let (la, ra) = selected_cands(&p, p.a);
    assert_eq!(la.tcp_type, Some(TcpType::Passive));
    assert_eq!(ra.kind, CandidateType::PeerReflexive);
    let (lb, _) = selected_cands(&p, p.b);
    assert_eq!(lb.tcp_type, Some(TcpType::Active));
    assert_eq!(p.net.tcp.attempts.len(), 1);
    assert_eq!(p.net.tcp.attempts[0].0, p.b);
    exchange(&mut p, 10);
}

/// RFC 6544 §7.1: simultaneous open. Both agents connect from their bound port to the
/// other's; the emulation makes one connection of the two attempts.
#[test]
fn simultaneous_open_pairs_connect() {
    let mut p = tcp_pair(
        21,
        &[(7000, TcpType::SimultaneousOpen)],
        &[(7100, TcpType::SimultaneousOpen)],
        false,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let (la, ra) = selected_cands(&p, p.a);
    assert_eq!(la.address, sa("198.51.100.1:7000"));
    assert_eq!(ra.address, sa("203.0.113.1:7100"));
    assert_eq!(
        ra.kind,
        CandidateType::Host,
        "no peer-reflexive candidate: real ports"
    );
    let kinds: Vec<_> = p.net.tcp.attempts.iter().map(|a| (a.0, a.3)).collect();
    assert_eq!(
        kinds,
        [
            (p.a, TcpType::SimultaneousOpen),
            (p.b, TcpType::SimultaneousOpen)
        ]
    );
    assert_eq!(p.net.tcp.open(), 1, "one connection from two attempts");
    // Each side's check crossed the other's on the connection: neither triggered a second
    // one (RFC 8489 §6.2.2: the request in flight arrives); A's nomination is the extra one.
    assert_eq!(p.net.agent_ref(p.a).stats().checks_sent, 2);
    assert_eq!(p.net.agent_ref(p.b).stats().checks_sent, 1);
    exchange(&mut p, 10);
}

/// RFC 6544 §6.2: active pairs with passive, passive with active, so with so; our passive
/// candidates are pruned from our checklist; TCP never pairs with UDP.
#[test]
fn pairing_follows_rfc6544_table() {
    let all = [
        (9000, TcpType::Active),
        (6100, TcpType::Passive),
        (7000, TcpType::SimultaneousOpen),
    ];
    let mut p = tcp_pair(31, &all, &all, true);
    let (a, s) = (p.a, p.stream);
    assert!(
        p.net
            .run_until(Duration::from_secs(1), |n| n.agent_ref(a).pairs(s).len()
                >= 3)
    );
    let pairs = p.net.agent_ref(p.a).pairs(p.stream);
    let mut kinds: Vec<_> = pairs
        .iter()
        .map(|i| {
            (
                i.local.transport,
                i.local.tcp_type,
                i.remote.transport,
                i.remote.tcp_type,
            )
        })
        .collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    kinds.dedup();
    let tcp = TransportProtocol::Tcp;
    let udp = TransportProtocol::Udp;
    let mut expected = vec![
        (tcp, Some(TcpType::Active), tcp, Some(TcpType::Passive)),
        (
            tcp,
            Some(TcpType::SimultaneousOpen),
            tcp,
            Some(TcpType::SimultaneousOpen),
        ),
        (udp, None, udp, None),
    ];
    // B's active candidate connects to A's passive one: A answers with a triggered check.
    let triggered = (tcp, Some(TcpType::Passive), tcp, Some(TcpType::Active));
    if kinds.contains(&triggered) {
        expected.push(triggered);
        let t = pairs
            .iter()
            .find(|i| i.local.tcp_type == Some(TcpType::Passive))
            .unwrap();
        assert_eq!(
            t.remote.kind,
            CandidateType::PeerReflexive,
            "never the signalled port 9"
        );
    }
    expected.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, expected);
    assert!(completed(&mut p, Duration::from_secs(5)));
    // UDP is preferred (RFC 6544 §4.2): the UDP pair wins; the default candidate is UDP.
    let (la, _) = selected_cands(&p, p.a);
    assert_eq!(la.transport, udp);
    let default = p.net.agent_ref(p.a).default_candidate(p.stream, 1).unwrap();
    assert_eq!(default.transport, udp);
}

/// With UDP and TCP both working, UDP is selected (RFC 6544 §4.2 type preferences), and the
/// TCP connection that carried the losing checks is closed once ICE completes.
#[test]
fn udp_is_preferred_and_unused_connections_are_closed() {
    let mut p = tcp_pair(
        41,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        true,
    );
    let local = p.net.agent_ref(p.a).local_candidates(p.stream);
    let udp = local
        .iter()
        .find(|c| c.transport == TransportProtocol::Udp)
        .unwrap();
    let tcp = local
        .iter()
        .find(|c| c.transport == TransportProtocol::Tcp)
        .unwrap();
    assert!(udp.priority > tcp.priority, "{local:?}");
    assert_eq!(tcp.priority >> 24, 90, "TCP host type preference");
    // The first UDP checks are lost, so the TCP pair is checked and valid first.
    p.net.block_udp = true;
    p.net.run_for(Duration::from_millis(400));
    let (a, s) = (p.a, p.stream);
    assert!(
        p.net
            .agent_ref(a)
            .pairs(s)
            .iter()
            .any(|i| i.valid && i.local.transport == TransportProtocol::Tcp)
    );
    p.net.block_udp = false;
    assert!(completed(&mut p, Duration::from_secs(5)));
    assert_eq!(selected_cands(&p, p.a).0.transport, TransportProtocol::Udp);
    assert_eq!(selected_cands(&p, p.b).0.transport, TransportProtocol::Udp);
    assert_eq!(p.net.tcp.attempts.len(), 1);
    p.net.run_for(Duration::from_secs(1));
    assert!(
        p.net.tcp.closes.iter().any(|c| c.0 == p.a),
        "{:?}",
        p.net.tcp.closes
    );
    assert_eq!(p.net.tcp.open(), 0, "no connection left open");
    exchange(&mut p, 5);
    assert!(
        p.net
            .log
            .iter()
            .rev()
            .take(10)
            .all(|(_, _, t)| t.transport == TransportProtocol::Udp)
    );
}

/// A network that blocks UDP: the TCP pair is selected and carries the data.
#[test]
fn udp_blocked_tcp_works() {
    let mut p = tcp_pair_with(
        51,
        &[(9000, TcpType::Active), (6100, TcpType::Passive)],
        &[(9000, TcpType::Active), (6100, TcpType::Passive)],
        true,
        |n| n.block_udp = true,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let (la, ra) = selected_cands(&p, p.a);
    assert_eq!(la.transport, TransportProtocol::Tcp);
    assert_eq!(ra.transport, TransportProtocol::Tcp);
    exchange(&mut p, 10);
}

/// RFC 6544 §7.1: a connection that cannot be established fails the check. A reset fails it
/// at once; the checklist of the TCP-only active agent fails; the passive agent, which can
/// only wait for the peer, fails after `tcp_accept_wait`.
#[test]
fn refused_connection_fails_the_pair() {
    let mut p = tcp_pair_with(
        61,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        false,
        |n| n.tcp.refuse.push(sa("203.0.113.1:6100")),
    );
    let (a, b) = (p.a, p.b);
    assert!(p.net.run_until(Duration::from_secs(2), |n| n.state(a)
        == ConnectionState::Failed));
    let pairs = p.net.agent_ref(a).pairs(p.stream);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].state, ice_core::PairState::Failed);
    assert_eq!(p.net.agent_ref(a).stats().tcp_connect_failures, 1);
    assert_eq!(
        p.net.agent_ref(a).stats().checks_sent,
        0,
        "no check without a connection"
    );
    assert_eq!(
        p.net.state(b),
        ConnectionState::Checking,
        "B still waits for a connection"
    );
    assert!(p.net.run_until(Duration::from_secs(30), |n| n.state(b)
        == ConnectionState::Failed));
    let waited = p.net.reached(b, ConnectionState::Failed).unwrap();
    assert!(
        waited >= Duration::from_secs(20),
        "tcp_accept_wait: {waited:?}"
    );
}

/// A connection attempt that gets no answer (a firewall drops it) is abandoned after
/// `tcp_connect_timeout`: the agent asks the driver to close it and the pair fails.
#[test]
fn connect_timeout_fails_the_pair_and_closes_the_attempt() {
    let mut p = tcp_pair_with(
        71,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        false,
        |n| n.tcp.blackhole.push(sa("203.0.113.1:6100")),
    );
    let a = p.a;
    assert!(p.net.run_until(Duration::from_secs(15), |n| n.state(a)
        == ConnectionState::Failed));
    let failed = p.net.reached(a, ConnectionState::Failed).unwrap();
    assert!(
        failed >= Duration::from_secs(10) && failed < Duration::from_secs(11),
        "{failed:?}"
    );
    let closes: Vec<_> = p
        .net
        .events(a)
        .filter(|e| matches!(e, Event::TcpClose { .. }))
        .collect();
    assert_eq!(
        closes,
        [&Event::TcpClose {
            local: sa("198.51.100.1:9000"),
            remote: sa("203.0.113.1:6100")
        }]
    );
}

/// The driver's reads may cut the byte stream anywhere: every segment size from one byte
/// up to beyond the largest frame, split and coalesced, goes through the real
/// `StreamFramer`, and the agents still connect and exchange data.
#[test]
fn framing_survives_a_split_at_every_offset() {
    let mut largest = 0;
    for segment in (1..=160).chain([500, 1500, 4000]) {
        for coalesce in [false, true] {
            let mut p = tcp_pair_with(
                81,
                &[(9000, TcpType::Active)],
                &[(6100, TcpType::Passive)],
                false,
                |n| {
                    n.tcp.segment = Some(segment);
                    n.tcp.coalesce = coalesce;
                },
            );
            assert!(
                completed(&mut p, Duration::from_secs(5)),
                "segment {segment}"
            );
            exchange(&mut p, 6);
            largest = p
                .net
                .log
                .iter()
                .filter(|(_, _, t)| common::is_check(common::message_of(t)))
                .map(|(_, _, t)| t.payload.len())
                .max()
                .unwrap_or(0)
                .max(largest);
        }
    }
    assert!(
        largest < 160,
        "every offset of a check was a split point: {largest}"
    );
}

/// RFC 7675 over TCP: consent checks go over the selected pair's connection and keep it;
/// the connection closing loses consent at once.
#[test]
fn consent_over_tcp_and_a_closed_connection_loses_the_pair() {
    let mut p = tcp_pair(
        91,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        false,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let start = p.net.elapsed();
    p.net.run_for(Duration::from_secs(60));
    let consent: Vec<Duration> = check_times(&p.net, p.a)
        .into_iter()
        .filter(|t| *t > start)
        .collect();
    assert!(consent.len() >= 10, "{consent:?}");
    for w in consent.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_secs(4) && gap <= Duration::from_secs(6),
            "{gap:?}"
        );
    }
    assert_eq!(p.net.state(p.a), ConnectionState::Completed);
    assert_eq!(p.net.state(p.b), ConnectionState::Completed);
    assert!(p.net.agent_ref(p.a).stats().consent_checks_sent >= 10);
    // The peer's side of the connection goes away.
    let (lb, rb) = selected_cands(&p, p.b);
    p.net.tcp_break(p.b, lb.base, rb.address);
    p.net.run_for(Duration::from_millis(100));
    for node in [p.a, p.b] {
        assert_eq!(p.net.state(node), ConnectionState::Failed);
        assert_eq!(
            count_events(&p.net, node, |e| matches!(e, Event::ConsentLost { .. })),
            1
        );
    }
    assert_eq!(
        p.net.send_data(p.a, p.stream, 1, b"x"),
        Err(ice_core::SendError::ConsentExpired)
    );
}

/// Same seeds, same bytes, TCP included.
#[test]
fn same_seed_same_bytes_over_tcp() {
    let run = |seed| {
        let mut p = tcp_pair(
            seed,
            &[(9000, TcpType::Active), (7000, TcpType::SimultaneousOpen)],
            &[(6100, TcpType::Passive), (7100, TcpType::SimultaneousOpen)],
            false,
        );
        assert!(completed(&mut p, Duration::from_secs(5)));
        exchange(&mut p, 10);
        p.net.run_for(Duration::from_secs(20));
        p.net
            .log
            .iter()
            .map(|(t, n, tr)| {
                (
                    *t,
                    *n,
                    tr.transport,
                    tr.source,
                    tr.destination,
                    tr.payload.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = run(100);
    assert!(first.len() > 30, "{}", first.len());
    assert_eq!(first, run(100));
    assert_ne!(first, run(200));
}

/// TCP candidates format as RFC 6544 SDP (active with port 9) and parse back to the same
/// candidates; Chrome's TCP line is accepted as a remote candidate.
#[test]
fn tcp_candidates_round_trip_through_sdp() {
    let mut p = tcp_pair(
        111,
        &[
            (9000, TcpType::Active),
            (6100, TcpType::Passive),
            (7000, TcpType::SimultaneousOpen),
        ],
        &[],
        false,
    );
    p.net.run_for(Duration::from_millis(100));
    let local = p.net.agent_ref(p.a).local_candidates(p.stream);
    assert_eq!(local.len(), 3);
    let lines: Vec<String> = local.iter().map(|c| c.to_sdp()).collect();
    assert!(
        lines[0].starts_with("candidate:1 1 tcp ")
            && lines[0].ends_with(" 198.51.100.1 9 typ host tcptype active"),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(" 198.51.100.1 6100 typ host tcptype passive"));
    assert!(lines[2].ends_with(" 198.51.100.1 7000 typ host tcptype so"));
    // RFC 6544 §4.3: the default candidate is never an active one (it has no port).
    let default = p.net.agent_ref(p.a).default_candidate(p.stream, 1).unwrap();
    assert_eq!(default.tcp_type, Some(TcpType::Passive));
    for (line, c) in lines.iter().zip(&local) {
        let parsed: CandidateLine = line.parse().unwrap();
        assert_eq!(parsed.to_string(), *line);
        assert_eq!(parsed.priority, c.priority);
        assert_eq!(parsed.tcp_type, c.tcp_type);
    }
    // B received them through signalling: same address, type, priority, foundation.
    let remote = p.net.agent_ref(p.b).remote_candidates(p.stream);
    let strip =
        |c: &ice_core::Candidate| (c.address, c.transport, c.tcp_type, c.priority, c.foundation);
    assert_eq!(
        remote.iter().map(strip).collect::<Vec<_>>(),
        local.iter().map(strip).collect::<Vec<_>>()
    );
    // Chrome's active candidate, given to a fresh agent.
    let now = p.net.now;
    let mut agent = ice_core::Agent::new(controlled(), 5, now);
    let s = agent.add_stream(1).unwrap();
    let chrome = "candidate:1853887674 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 network-id 1";
    agent.add_remote_candidate_str(now, s, chrome).unwrap();
    let added = agent.remote_candidates(s);
    assert_eq!(
        added[0].to_sdp(),
        "candidate:1853887674 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active"
    );
    // A TCP line without tcptype is refused.
    assert_eq!(
        agent.add_remote_candidate_str(now, s, "candidate:2 1 tcp 5 192.0.2.2 9 typ host"),
        Err(ice_core::RemoteCandidateError::MissingTcpType)
    );
}

/// Network input never panics: frames on connections the agent does not know are refused,
/// accepted connections on addresses that are not passive candidates are refused, a flood
/// of accepted connections stops at the cap, and garbage frames change nothing.
#[test]
fn bad_tcp_input_is_refused_and_counted() {
    let mut p = tcp_pair(
        121,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        true,
    );
    let (b, now) = (p.b, p.net.now);
    let agent = p.net.agent(b);
    let listener = sa("203.0.113.1:6100");
    let stranger = sa("192.0.2.99:40000");
    let frame = Input {
        transport: TransportProtocol::Tcp,
        source: stranger,
        destination: listener,
        data: b"\x00\x01\x00\x00garbage",
    };
    assert_eq!(agent.handle_input(now, frame), Received::NotMine);
    assert_eq!(agent.stats().tcp_frames_dropped, 1);
    assert!(
        !agent.tcp_accepted(now, sa("203.0.113.1:6000"), stranger),
        "a UDP socket"
    );
    assert!(
        !agent.tcp_accepted(now, sa("203.0.113.1:9999"), stranger),
        "not ours"
    );
    agent.tcp_connected(now, listener, stranger);
    agent.tcp_connect_failed(now, listener, stranger);
    agent.tcp_closed(now, listener, stranger);
    let cap = AgentConfig::default().max_tcp_connections;
    let accepted = (0..cap + 10)
        .filter(|&i| {
            agent.tcp_accepted(
                now,
                listener,
                SocketAddr::new(stranger.ip(), 40000 + i as u16),
            )
        })
        .count();
    assert_eq!(accepted, cap);
    assert_eq!(agent.stats().tcp_refused, 2 + 10);
    for data in [
        &b""[..],
        b"\x00",
        b"\x00\x01\x00\x14\x21\x12\xa4\x42",
        &[0xff; 300],
        b"hello",
    ] {
        let input = Input {
            transport: TransportProtocol::Tcp,
            source: stranger,
            destination: listener,
            data,
        };
        assert!(!matches!(
            agent.handle_input(now, input),
            Received::Data { .. }
        ));
    }
    // The real session still works.
    assert!(completed(&mut p, Duration::from_secs(5)));
}

/// An ICE restart over TCP (RFC 8445 §9): the selected connection keeps carrying data, the
/// new generation's checks reuse it, and no packet is lost.
#[test]
fn restart_reuses_the_connection_and_keeps_data_flowing() {
    let mut p = tcp_pair(
        131,
        &[(9000, TcpType::Active)],
        &[(6100, TcpType::Passive)],
        false,
    );
    assert!(completed(&mut p, Duration::from_secs(5)));
    let (a, b, s) = (p.a, p.b, p.stream);
    let net = &mut p.net;
    let selected_before = count_events(net, a, |e| matches!(e, Event::SelectedPair { .. }));
    let mut sent = 0;
    for tick in 0..100 {
        if tick == 30 {
            let now = net.now;
            let ca = net.agent(a).restart(now).unwrap();
            let cb = net.agent(b).restart(now).unwrap();
            net.agent(a)
                .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
                .unwrap();
            net.agent(b)
                .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
                .unwrap();
            net.flush();
        }
        net.send_data(a, s, 1, format!("a{tick}").as_bytes())
            .unwrap();
        net.send_data(b, s, 1, format!("b{tick}").as_bytes())
            .unwrap();
        sent += 1;
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.received(a).len(), sent);
    assert_eq!(net.received(b).len(), sent);
    assert!(both(net, a, b, ConnectionState::Completed));
    assert_eq!(
        count_events(net, a, |e| matches!(e, Event::SelectedPair { .. })),
        selected_before + 1
    );
    assert_eq!(net.tcp.attempts.len(), 1, "the connection was reused");
    assert_eq!(net.tcp.open(), 1);
}

/// An ICE-lite server with a passive TCP candidate (the usual SFU set-up): the full client
/// connects, checks and nominates; the lite agent never opens a connection.
#[test]
fn lite_server_over_tcp() {
    let mut net = Net::new();
    let a = net.add_agent("A", &[A_IP], AgentConfig::default(), 141, None);
    let b = net.add_agent("B", &[B_IP], AgentConfig::lite(), 142, None);
    net.connect(a, b);
    let now = net.now;
    net.agent(a).set_remote_lite(true);
    let s = net.agent(a).add_stream(1).unwrap();
    net.agent(b).add_stream(1).unwrap();
    add_tcp_host(&mut net, a, s, "198.51.100.1:9000", TcpType::Active);
    add_tcp_host(&mut net, b, s, "203.0.113.1:443", TcpType::Passive);
    net.agent(a).finish_host_candidates(now);
    net.agent(b).finish_host_candidates(now);
    let mut p = Pair {
        net,
        a,
        b,
        stream: s,
    };
    assert!(completed(&mut p, Duration::from_secs(5)));
    assert!(p.net.tcp.attempts.iter().all(|t| t.0 == a));
    exchange(&mut p, 5);
}
