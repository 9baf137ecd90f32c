//! Relayed candidates through TURN servers reached over TCP and TLS (RFC 8656 §3.1), on the
//! in-memory network: the agents ask for the connections (`Event::TurnConnect`), the
//! network opens them to the turn-proto server and frames both directions with the real
//! `StreamFramer` (`Framing::StunAndChannelData`), and the relay talks UDP between the
//! relayed addresses. TLS is the driver's business: both ends see plaintext frames.

mod common;

use common::*;
use ice_core::{
    AgentConfig, Candidate, CandidateType, ConnectionState, Event, GatheringState, Role,
    TransportProtocol, TurnConnectionId, TurnServer,
};
use std::net::SocketAddr;
use std::time::Duration;

const A_IP: &str = "198.51.100.1";
const B_IP: &str = "203.0.113.1";
const TURN_IP: &str = "192.0.2.20";
const TURN_UDP: &str = "192.0.2.20:3478";
const TURN_TCP: &str = "192.0.2.20:3478";
const TURN_TLS: &str = "192.0.2.20:443";
const TLS_NAME: &str = "turn.example.org";

fn server(addr: &str, transport: TransportProtocol) -> TurnServer {
    TurnServer {
        server: sa(addr),
        transport,
        username: "user".into(),
        password: "secret".into(),
    }
}

fn config(role: Role, servers: Vec<TurnServer>) -> AgentConfig {
    AgentConfig {
        role,
        turn_servers: servers,
        turn_server_names: vec![(sa(TURN_TLS), TLS_NAME.into())],
        ..AgentConfig::default()
    }
}

fn is_agent(ip_: std::net::IpAddr) -> bool {
    ip_ == ip(A_IP) || ip_ == ip(B_IP)
}

/// No UDP reaches or leaves the agents: only TCP (and TLS) to the TURN server gets out.
fn no_udp_for_agents(s: &SocketAddr, d: &SocketAddr) -> bool {
    is_agent(s.ip()) || is_agent(d.ip())
}

/// The agents reach the TURN server's UDP port and nothing else: relay to relay is the
/// only path between them, whatever transport each allocation was made over.
fn udp_only_to_turn(s: &SocketAddr, d: &SocketAddr) -> bool {
    (is_agent(s.ip()) && *d != sa(TURN_UDP)) || (is_agent(d.ip()) && *s != sa(TURN_UDP))
}

/// A (controlling) and B (controlled) on public addresses with one UDP host candidate each
/// and the given TURN servers, behind `filter`.
fn relay_pair(
    seed: u64,
    a_servers: Vec<TurnServer>,
    b_servers: Vec<TurnServer>,
    filter: fn(&SocketAddr, &SocketAddr) -> bool,
    setup: impl FnOnce(&mut Net),
) -> Pair {
    let mut net = Net::new();
    net.filter = Some(Box::new(filter));
    net.add_turn_server("turn", TURN_IP);
    setup(&mut net);
    let a = net.add_agent(
        "A",
        &[A_IP],
        config(Role::Controlling, a_servers),
        seed,
        None,
    );
    let b = net.add_agent(
        "B",
        &[B_IP],
        config(Role::Controlled, b_servers),
        seed + 1,
        None,
    );
    net.connect(a, b);
    let stream = add_hosts(&mut net, a, 1, &[A_IP], 5000);
    add_hosts(&mut net, b, 1, &[B_IP], 6000);
    Pair { net, a, b, stream }
}

fn completed(p: &mut Pair, within: Duration) -> bool {
    let (a, b) = (p.a, p.b);
    let ok = p
        .net
        .run_until(within, |n| both(n, a, b, ConnectionState::Completed));
    if !ok {
        dump(&p.net, a, p.stream);
        dump(&p.net, b, p.stream);
    }
    ok
}

fn relayed(p: &Pair, node: usize) -> Vec<Candidate> {
    p.net
        .agent_ref(node)
        .local_candidates(p.stream)
        .into_iter()
        .filter(|c| c.kind == CandidateType::Relayed)
        .collect()
}

/// Sends `n` messages each way (one every 20 ms) and checks they all arrive, in order.
fn exchange(p: &mut Pair, tag: &str, n: usize) {
    let (a, b, s) = (p.a, p.b, p.stream);
    let (before_a, before_b) = (p.net.received(a).len(), p.net.received(b).len());
    for i in 0..n {
        p.net
            .send_data(a, s, 1, format!("{tag}a{i}").as_bytes())
            .unwrap();
        p.net
            .send_data(b, s, 1, format!("{tag}b{i}").as_bytes())
            .unwrap();
        p.net.run_for(Duration::from_millis(20));
    }
    p.net.run_for(Duration::from_millis(100));
    let expect =
        |side: &str| -> Vec<String> { (0..n).map(|i| format!("{tag}{side}{i}")).collect() };
    assert_eq!(p.net.received(b)[before_b..], expect("a"), "A to B");
    assert_eq!(p.net.received(a)[before_a..], expect("b"), "B to A");
}

/// The transmits `node` sent to `to`, last first.
fn sent_to(p: &Pair, node: usize, to: &str) -> Vec<ice_core::Transmit> {
    p.net
        .log
        .iter()
        .rev()
        .filter(|(_, n, t)| *n == node && t.destination == sa(to))
        .map(|(_, _, t)| t.clone())
        .collect()
}

fn turn_connects(p: &Pair, node: usize) -> Vec<TurnAttempt> {
    p.net
        .tcp
        .turn_attempts
        .iter()
        .filter(|a| a.0 == node)
        .cloned()
        .collect()
}

/// RFC 8656 §3.1 with RFC 8445 §5.1.1.2: no UDP gets in or out of either agent. A gathers
/// over a TCP connection to the TURN server, B over TLS (with the configured name for SNI);
/// each relayed candidate is a UDP candidate whose traffic to the server travels on the
/// connection. The agents connect relay to relay and data flows both ways, ending up in
/// ChannelData padded for the stream. Closing an agent closes its connection, which
/// releases the allocation on the server.
#[test]
fn tcp_and_tls_relays_connect_agents_when_udp_is_blocked() {
    let mut p = relay_pair(
        301,
        vec![server(TURN_TCP, TransportProtocol::Tcp)],
        vec![server(TURN_TLS, TransportProtocol::Tls)],
        no_udp_for_agents,
        |_| {},
    );
    let (a, b) = (p.a, p.b);
    assert!(completed(&mut p, Duration::from_secs(15)));

    // One connection each, asked for from the host candidate's base.
    let ca = turn_connects(&p, a);
    assert_eq!(ca.len(), 1);
    assert_eq!(
        (ca[0].2, ca[0].3, ca[0].4, ca[0].5.clone()),
        (
            sa("198.51.100.1:5000"),
            sa(TURN_TCP),
            TransportProtocol::Tcp,
            None
        )
    );
    let cb = turn_connects(&p, b);
    assert_eq!(cb.len(), 1);
    assert_eq!(
        (cb[0].3, cb[0].4, cb[0].5.as_deref()),
        (sa(TURN_TLS), TransportProtocol::Tls, Some(TLS_NAME)),
        "TLS gets the configured server name"
    );
    for node in [a, b] {
        let agent = p.net.agent_ref(node);
        assert_eq!(agent.gathering_state(), GatheringState::Complete);
        assert_eq!(agent.stats().turn_connects, 1);
        let kinds: Vec<_> = agent
            .local_candidates(p.stream)
            .iter()
            .map(|c| (c.kind, c.transport))
            .collect();
        assert_eq!(
            kinds,
            [
                (CandidateType::Host, TransportProtocol::Udp),
                (CandidateType::Relayed, TransportProtocol::Udp)
            ],
            "a UDP relayed candidate, and no server-reflexive one from a TCP mapping"
        );
        let (local, remote) = agent.selected_pair(p.stream, 1).unwrap();
        assert_eq!(
            (local.kind, remote.kind),
            (CandidateType::Relayed, CandidateType::Relayed)
        );
        // The related address is where the server saw the connection come from.
        assert_eq!(local.related.unwrap().ip(), p.net.nodes[node].ips[0]);
        assert_eq!(p.net.tcp.open_turn(node).len(), 1);
    }
    exchange(&mut p, "x", 10);
    // The agents never sent a datagram that got through; everything to the server went
    // over the stream, the last of it as padded ChannelData.
    for (node, to, transport) in [
        (a, TURN_TCP, TransportProtocol::Tcp),
        (b, TURN_TLS, TransportProtocol::Tls),
    ] {
        let sent = sent_to(&p, node, to);
        assert!(sent.iter().all(|t| t.transport == transport));
        let last = &sent[0];
        assert!((0x40..=0x4f).contains(&last.payload[0]), "ChannelData");
        assert_eq!(last.payload.len() % 4, 0, "padded (RFC 8656 §12.5)");
        assert!(
            !p.net.log.iter().any(|(_, n, t)| *n == node
                && t.transport == TransportProtocol::Udp
                && t.destination.port() == sa(to).port()
                && t.destination.ip() == ip(TURN_IP)),
            "nothing over UDP to the TURN server (only checks towards relayed addresses)"
        );
    }
    let Machine::Turn(turn) = &p.net.nodes[0].machine else {
        unreachable!()
    };
    assert_eq!(turn.allocation_count(), 2);

    // Closing A closes its connection; the server deletes the allocation.
    let now = p.net.now;
    p.net.agent(a).close(now);
    p.net.flush();
    assert_eq!(p.net.tcp.turn_closes, [(a, ca[0].1)]);
    p.net.run_for(Duration::from_millis(100));
    assert!(p.net.tcp.open_turn(a).is_empty());
    let Machine::Turn(turn) = &p.net.nodes[0].machine else {
        unreachable!()
    };
    assert_eq!(turn.allocation_count(), 1);
}

/// The connection to the TURN server breaks (RFC 8656 §3.1: the allocation ends with it):
/// the relayed candidate is retired at once (its pairs fail, the selected path through it
/// loses consent), and a new allocation is made on a new connection, with a new id. After an
/// ICE restart announces the new relayed candidate, the agents connect through it again.
#[test]
fn lost_connection_retires_the_candidate_and_reallocates() {
    let mut p = relay_pair(
        311,
        vec![server(TURN_TCP, TransportProtocol::Tcp)],
        vec![server(TURN_TCP, TransportProtocol::Tcp)],
        no_udp_for_agents,
        |_| {},
    );
    let (a, b, s) = (p.a, p.b, p.stream);
    assert!(completed(&mut p, Duration::from_secs(15)));
    exchange(&mut p, "before", 3);
    let old = relayed(&p, a);
    assert_eq!(old.len(), 1);
    let [(id, _, _)] = p.net.tcp.open_turn(a)[..] else {
        panic!("one TURN connection")
    };

    p.net.turn_break(a, id);
    // At once: consent on the path through the lost relay is gone and its pairs failed.
    assert!(
        p.net
            .events(a)
            .any(|e| matches!(e, Event::ConsentLost { .. }))
    );
    assert_eq!(p.net.state(a), ConnectionState::Failed);
    assert!(
        p.net
            .agent_ref(a)
            .pairs(s)
            .iter()
            .filter(|q| q.local.address == old[0].address)
            .all(|q| q.state == ice_core::PairState::Failed && !q.valid)
    );
    assert_eq!(p.net.agent_ref(a).stats().turn_connections_lost, 1);
    // A new connection for a new allocation.
    let attempts = turn_connects(&p, a);
    assert_eq!(attempts.len(), 2);
    assert_ne!(attempts[0].1, attempts[1].1, "a new connection id");
    assert_eq!(attempts[1].2, attempts[0].2, "from the same host candidate");
    p.net.run_for(Duration::from_secs(1));
    let now_relayed = relayed(&p, a);
    assert_eq!(
        now_relayed.len(),
        2,
        "the retired candidate stays in the list"
    );
    assert_ne!(now_relayed[1].address, old[0].address);
    assert_eq!(p.net.tcp.open_turn(a).len(), 1);
    let Machine::Turn(turn) = &p.net.nodes[0].machine else {
        unreachable!()
    };
    assert_eq!(
        turn.allocation_count(),
        2,
        "the old allocation went with its connection"
    );

    // RFC 8838 §13: the new candidate is announced after a restart; the agents connect
    // through it.
    let now = p.net.now;
    let ca = p.net.agent(a).restart(now).unwrap();
    let cb = p.net.agent(b).restart(now).unwrap();
    p.net
        .agent(a)
        .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
        .unwrap();
    p.net
        .agent(b)
        .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
        .unwrap();
    p.net.flush();
    assert!(completed(&mut p, Duration::from_secs(15)));
    let (local, _) = p.net.agent_ref(a).selected_pair(s, 1).unwrap();
    assert_eq!(local.address, now_relayed[1].address);
    exchange(&mut p, "after", 3);
}

/// Both agents have a UDP, a TCP and a TLS TURN server and every combination of relayed
/// candidates works: the UDP ones are chosen (their local preference is highest, RFC 8445
/// §5.1.2.2, as browsers rank TURN/UDP > TURN/TCP > TURN/TLS). Priorities and foundations
/// tell the three apart.
#[test]
fn udp_relay_preferred_over_tcp_and_tls() {
    let all = || {
        vec![
            server(TURN_UDP, TransportProtocol::Udp),
            server(TURN_TCP, TransportProtocol::Tcp),
            server(TURN_TLS, TransportProtocol::Tls),
        ]
    };
    let mut p = relay_pair(321, all(), all(), udp_only_to_turn, |_| {});
    let (a, b, s) = (p.a, p.b, p.stream);
    assert!(completed(&mut p, Duration::from_secs(15)));
    for node in [a, b] {
        let relays = relayed(&p, node);
        assert_eq!(relays.len(), 3, "{relays:?}");
        // Gathered in server order: UDP, TCP (after its connection), TLS.
        let mut by_priority = relays.clone();
        by_priority.sort_by_key(|c| std::cmp::Reverse(c.priority));
        let foundations: std::collections::HashSet<_> =
            relays.iter().map(|c| c.foundation).collect();
        assert_eq!(
            foundations.len(),
            3,
            "foundations differ by server transport"
        );
        let (local, remote) = p.net.agent_ref(node).selected_pair(s, 1).unwrap();
        assert_eq!(
            local, by_priority[0],
            "the best relayed candidate is selected"
        );
        assert_eq!(remote.kind, CandidateType::Relayed);
        // The UDP server's: data to the peer leaves as a UDP datagram to it.
        let now = p.net.now;
        let t = p.net.agent(node).send(now, s, 1, b"probe").unwrap();
        assert_eq!(
            (t.transport, t.destination),
            (TransportProtocol::Udp, sa(TURN_UDP))
        );
        // The remote one is the peer's UDP relayed candidate: its highest.
        let peer = if node == a { b } else { a };
        let best_remote = relayed(&p, peer).into_iter().max_by_key(|c| c.priority);
        assert_eq!(Some(remote.address), best_remote.map(|c| c.address));
    }
    exchange(&mut p, "udp", 5);
    // The TCP and TLS allocations are there all along, unused.
    for node in [a, b] {
        assert_eq!(p.net.tcp.open_turn(node).len(), 2);
    }
}

/// With UDP blocked, the UDP TURN server is no use and the TCP one takes over: the agents
/// connect through it long before the UDP allocation gives up.
#[test]
fn tcp_relay_used_when_udp_relay_fails() {
    let both_servers = || {
        vec![
            server(TURN_UDP, TransportProtocol::Udp),
            server(TURN_TCP, TransportProtocol::Tcp),
        ]
    };
    let mut p = relay_pair(
        331,
        both_servers(),
        both_servers(),
        no_udp_for_agents,
        |_| {},
    );
    assert!(completed(&mut p, Duration::from_secs(10)));
    for node in [p.a, p.b] {
        assert_eq!(
            relayed(&p, node).len(),
            1,
            "only the TCP allocation succeeded"
        );
        assert_ne!(
            p.net.agent_ref(node).gathering_state(),
            GatheringState::Complete,
            "the UDP allocation is still trying"
        );
    }
    exchange(&mut p, "tcp", 5);
    p.net.run_for(Duration::from_secs(60));
    for node in [p.a, p.b] {
        assert_eq!(
            p.net.agent_ref(node).gathering_state(),
            GatheringState::Complete
        );
    }
    assert!(both(&p.net, p.a, p.b, ConnectionState::Completed));
}

/// Connections that cannot be made: refused (reported failed), silently dropped (the agent
/// gives up after `tcp_connect_timeout` and asks for the attempt to be abandoned), and an
/// allocation refused by the server (wrong password: the agent closes its connection).
/// Gathering completes in each case, without a relayed candidate.
#[test]
fn failed_connections_and_allocations_end_gathering() {
    let refused = server("192.0.2.30:443", TransportProtocol::Tls);
    let dropped = server("192.0.2.40:443", TransportProtocol::Tcp);
    let mut wrong = server(TURN_TCP, TransportProtocol::Tcp);
    wrong.password = "wrong".into();
    let mut p = relay_pair(
        341,
        vec![refused, dropped, wrong],
        vec![],
        no_udp_for_agents,
        |net| {
            net.tcp.blackhole.push(sa("192.0.2.40:443"));
        },
    );
    let a = p.a;
    p.net.run_for(Duration::from_secs(5));
    let attempts = turn_connects(&p, a);
    assert_eq!(attempts.len(), 3);
    let agent = p.net.agent_ref(a);
    assert_eq!(agent.stats().turn_connect_failures, 1, "the refused one");
    assert!(relayed(&p, a).is_empty());
    // The refused connection is not closed by the agent; the rejected allocation's is.
    let wrong_id = attempts[2].1;
    assert_eq!(p.net.tcp.turn_closes, [(a, wrong_id)]);
    assert_ne!(
        agent.gathering_state(),
        GatheringState::Complete,
        "the dropped one"
    );
    // tcp_connect_timeout (10 s) later the silent attempt is abandoned.
    p.net.run_for(Duration::from_secs(6));
    let agent = p.net.agent_ref(a);
    assert_eq!(agent.gathering_state(), GatheringState::Complete);
    assert_eq!(agent.stats().turn_connect_failures, 2);
    assert_eq!(p.net.tcp.turn_closes, [(a, wrong_id), (a, attempts[1].1)]);
    assert!(p.net.tcp.open_turn(a).is_empty());
}

/// Reports the agent does not expect change nothing: a second report for the same
/// connection, a connection reported open or closed after it was given up, and stream input
/// on a connection the agent does not have.
#[test]
fn unexpected_connection_reports_are_ignored() {
    let mut p = relay_pair(
        351,
        vec![server("192.0.2.40:443", TransportProtocol::Tcp)],
        vec![],
        no_udp_for_agents,
        |net| net.tcp.blackhole.push(sa("192.0.2.40:443")),
    );
    let a = p.a;
    p.net.flush();
    let [(_, id, ..)] = turn_connects(&p, a)[..] else {
        panic!("one attempt")
    };
    let now = p.net.now;
    let agent = p.net.agent(a);
    agent.turn_connect_failed(now, id);
    let after_failure = agent.stats();
    // Again, then as open, then as closed.
    agent.turn_connect_failed(now, id);
    agent.turn_connected(now, id, sa("198.51.100.1:50001"));
    agent.turn_closed(now, id);
    let ids: Vec<TurnConnectionId> = turn_connects(&p, a).iter().map(|a| a.1).collect();
    assert_eq!(ids, [id]);
    let agent = p.net.agent(a);
    assert_eq!(agent.stats(), after_failure);
    assert!(agent.poll_transmit().is_none(), "no client was started");
    assert_eq!(agent.gathering_state(), GatheringState::Complete);
    // TCP/TLS input for a connection the agent does not have is not its business.
    let data = [0u8; 20];
    let input = ice_core::Input {
        transport: TransportProtocol::Tls,
        source: sa("192.0.2.40:443"),
        destination: sa("198.51.100.1:50001"),
        data: &data,
    };
    assert_eq!(agent.handle_input(now, input), ice_core::Received::NotMine);
}

/// Same seeds, same run: every transmit (time, node, bytes) and every event is identical,
/// with connections and TLS names in the mix.
#[test]
fn deterministic() {
    let run = || {
        let mut p = relay_pair(
            361,
            vec![
                server(TURN_UDP, TransportProtocol::Udp),
                server(TURN_TLS, TransportProtocol::Tls),
            ],
            vec![server(TURN_TCP, TransportProtocol::Tcp)],
            udp_only_to_turn,
            |_| {},
        );
        assert!(completed(&mut p, Duration::from_secs(15)));
        exchange(&mut p, "d", 5);
        let [(id, _, _)] = p.net.tcp.open_turn(p.b)[..] else {
            panic!("one TURN connection")
        };
        p.net.turn_break(p.b, id);
        p.net.run_for(Duration::from_secs(2));
        let log: Vec<_> = p
            .net
            .log
            .iter()
            .map(|(t, n, x)| {
                (
                    *t,
                    *n,
                    x.transport,
                    x.source,
                    x.destination,
                    x.payload.clone(),
                )
            })
            .collect();
        let events: Vec<Vec<(Duration, Event)>> =
            p.net.nodes.iter().map(|n| n.events.clone()).collect();
        (log, events, p.net.tcp.turn_attempts.clone())
    };
    let first = run();
    assert!(first.0.len() > 100);
    assert!(first.2.len() >= 3);
    assert!(first == run(), "two runs with the same seeds differ");
}

/// What a transmit to the TURN server carries for a peer: the data of a Send indication or
/// of a ChannelData message.
fn relayed_payload(payload: &[u8]) -> Option<Vec<u8>> {
    match payload.first()? {
        0x40..=0x4f => {
            let len = usize::from(u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]));
            payload.get(4..4 + len).map(<[u8]>::to_vec)
        }
        0..=3 => {
            let m = stun_proto::Message::parse(payload).ok()?;
            let data = m.get::<stun_proto::attributes::Data<'_>>().ok()??;
            Some(data.0.to_vec())
        }
        _ => None,
    }
}

/// Checks from a relayed candidate of a TCP TURN client cross the relay's UDP leg, where
/// they can be lost: they are retransmitted like any UDP check (RFC 8489 §6.2.1), each copy
/// wrapped for the connection, instead of being sent once and waited for 39.5 s as a
/// request over TCP would be. With a fifth of the datagrams lost, the agents connect.
#[test]
fn checks_through_a_tcp_relay_are_retransmitted() {
    let mut p = relay_pair(
        371,
        vec![server(TURN_TCP, TransportProtocol::Tcp)],
        vec![server(TURN_TCP, TransportProtocol::Tcp)],
        no_udp_for_agents,
        |net| net.loss = 0.2,
    );
    assert!(completed(&mut p, Duration::from_secs(15)));
    let mut copies = std::collections::HashMap::<[u8; 12], usize>::new();
    for (_, n, t) in &p.net.log {
        if *n != p.a || t.transport != TransportProtocol::Tcp {
            continue;
        }
        let Some(inner) = relayed_payload(&t.payload) else {
            continue;
        };
        if is_check(&inner) {
            let m = stun_proto::Message::parse(&inner).unwrap();
            *copies.entry(*m.transaction_id().as_bytes()).or_default() += 1;
        }
    }
    assert!(!copies.is_empty(), "checks went through the relay");
    assert!(
        copies.values().any(|&n| n > 1),
        "some check was retransmitted: {copies:?}"
    );
    p.net.loss = 0.0;
    exchange(&mut p, "lossy", 3);
}
