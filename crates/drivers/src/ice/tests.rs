//! Both flavours end to end on loopback (explicit loopback host addresses are candidates).

use super::blocking;
use super::{IceError, LocalCandidate};
use ice_core::{AddCandidateError, CandidateType};
use std::net::IpAddr;
use std::time::Duration;

/// The address every test peer uses.
fn own_ip() -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, 1]))
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn explicit_loopback_host_addresses_become_candidates() {
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let mut agent = blocking::IceAgent::builder()
        .host_ips([loopback])
        .build()
        .unwrap();
    let candidates = gather(&mut agent);
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].candidate.address.ip(), loopback);
    assert_eq!(candidates[0].candidate.kind, CandidateType::Host);
}

#[test]
fn unspecified_host_addresses_are_refused_by_the_agent() {
    let any: IpAddr = [0, 0, 0, 0].into();
    match blocking::IceAgent::builder().host_ips([any]).build() {
        Err(IceError::HostCandidate(addr, AddCandidateError::UnusableAddress)) => {
            assert_eq!(addr.ip(), any);
        }
        other => panic!("{other:?}"),
    }
}

/// Gathers all of an agent's candidates (host only here: no servers).
fn gather(agent: &mut blocking::IceAgent) -> Vec<LocalCandidate> {
    let mut out = Vec::new();
    while let Some(c) = agent.next_candidate(SECOND).unwrap() {
        out.push(c);
    }
    out
}

/// Gathers both agents' candidates and signals each one's credentials, candidates and
/// end-of-candidates to the other, B's candidate lines passed through `to_a` on their way to
/// A. Returns the candidates (A's, B's).
fn exchange(
    a: &mut blocking::IceAgent,
    b: &mut blocking::IceAgent,
    to_a: impl Fn(&str) -> String,
) -> (Vec<LocalCandidate>, Vec<LocalCandidate>) {
    let (ca, cb) = (gather(a), gather(b));
    let (creds_a, creds_b) = (a.local_credentials().clone(), b.local_credentials().clone());
    a.set_remote_credentials(&creds_b.ufrag, &creds_b.pwd)
        .unwrap();
    b.set_remote_credentials(&creds_a.ufrag, &creds_a.pwd)
        .unwrap();
    for c in &cb {
        a.add_remote_candidate(&to_a(&c.sdp())).unwrap();
    }
    for c in &ca {
        b.add_remote_candidate(&c.sdp()).unwrap();
    }
    a.end_of_remote_candidates().unwrap();
    b.end_of_remote_candidates().unwrap();
    (ca, cb)
}

/// B, on a thread of its own (the blocking flavour runs inside its calls): connects within
/// `connect`, sends back the first datagram, which must come within `recv`, closes, and
/// returns it.
fn echo_once(
    b: blocking::IceAgent,
    connect: Duration,
    recv: Duration,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut conn = b.connect(connect).unwrap();
        let got = conn.recv(recv).unwrap();
        conn.send(&got).unwrap();
        conn.poll(SECOND / 5).unwrap();
        conn.close().unwrap();
        got
    })
}

#[test]
fn blocking_agents_connect_and_exchange_data() {
    let Some(ip) = own_ip() else { return };
    let mut a = blocking::IceAgent::builder()
        .controlling(true)
        .host_ips([ip])
        .build()
        .unwrap();
    let mut b = blocking::IceAgent::builder()
        .host_ips([ip])
        .build()
        .unwrap();
    let (ca, _) = exchange(&mut a, &mut b, str::to_owned);
    assert_eq!(ca.len(), 1);
    assert!(ca[0].sdp().starts_with("a=candidate:"), "{}", ca[0]);
    let echo = echo_once(b, 5 * SECOND, 5 * SECOND);
    let mut conn = a.connect(5 * SECOND).unwrap();
    let (local, remote) = conn.selected_pair();
    assert_eq!(
        (local.kind, remote.kind),
        (CandidateType::Host, CandidateType::Host)
    );
    conn.send(b"ping").unwrap();
    assert_eq!(conn.recv(5 * SECOND).unwrap(), b"ping");
    assert_eq!(echo.join().unwrap(), b"ping");
    conn.close().unwrap();
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;
    use crate::ice::tokio::IceAgent;
    use crate::turn_server::{TurnServerOptions, spawn};
    use std::sync::Arc;
    use turn_proto::server::{RelayRange, ServerConfig};

    /// Forwards `from`'s credentials and candidates to `to` as they come.
    async fn signal(from: Arc<IceAgent>, to: Arc<IceAgent>) {
        let c = from.local_credentials().clone();
        to.set_remote_credentials(&c.ufrag, &c.pwd).await.unwrap();
        while let Some(candidate) = from.next_candidate().await {
            to.add_remote_candidate(&candidate.sdp()).await.unwrap();
        }
        to.end_of_remote_candidates().await.unwrap();
    }

    /// Connects two agents, exchanges a datagram each way, returns the selected pairs'
    /// candidate types (a's local, b's local).
    async fn connect_pair(a: IceAgent, b: IceAgent) -> (CandidateType, CandidateType) {
        let (a, b) = (Arc::new(a), Arc::new(b));
        ::tokio::spawn(signal(a.clone(), b.clone()));
        ::tokio::spawn(signal(b.clone(), a.clone()));
        let wait = ::tokio::time::timeout(10 * SECOND, async {
            let (ca, cb) = ::tokio::join!(a.connect(), b.connect());
            (ca.unwrap(), cb.unwrap())
        });
        let (ca, cb) = wait.await.expect("connected in time");
        ca.send(b"ping").await.unwrap();
        assert_eq!(cb.recv().await.unwrap(), b"ping");
        cb.send(b"pong").await.unwrap();
        assert_eq!(ca.recv().await.unwrap(), b"pong");
        let kinds = (
            ca.selected_pair().unwrap().0.kind,
            cb.selected_pair().unwrap().0.kind,
        );
        let snapshot = a.snapshot().await.unwrap();
        assert!(snapshot.stats.checks_sent > 0);
        ::tokio::join!(a.close(), b.close());
        assert!(a.status().stopped && b.status().stopped);
        assert!(matches!(ca.send(b"late").await, Err(IceError::Closed)));
        kinds
    }

    #[::tokio::test(flavor = "current_thread")]
    async fn tokio_agents_connect_on_host_candidates() {
        let Some(ip) = own_ip() else { return };
        let a = IceAgent::builder()
            .controlling(true)
            .host_ips([ip])
            .build()
            .await
            .unwrap();
        let b = IceAgent::builder().host_ips([ip]).build().await.unwrap();
        let kinds = connect_pair(a, b).await;
        assert_eq!(kinds, (CandidateType::Host, CandidateType::Host));
    }

    #[::tokio::test(flavor = "current_thread")]
    async fn tokio_agents_connect_over_tcp_only() {
        let Some(ip) = own_ip() else { return };
        let tcp = || {
            IceAgent::builder()
                .host_ips([ip])
                .tcp_candidates(true)
                .udp_candidates(false)
        };
        let a = tcp().controlling(true).build().await.unwrap();
        let b = tcp().build().await.unwrap();
        let kinds = connect_pair(a, b).await;
        assert_eq!(kinds, (CandidateType::Host, CandidateType::Host));
    }

    #[::tokio::test(flavor = "current_thread")]
    async fn with_udp_and_tcp_the_udp_pair_wins() {
        let Some(ip) = own_ip() else { return };
        let both = || IceAgent::builder().host_ips([ip]).tcp_candidates(true);
        let a = both().controlling(true).build().await.unwrap();
        let b = both().build().await.unwrap();
        let (a, b) = (Arc::new(a), Arc::new(b));
        ::tokio::spawn(signal(a.clone(), b.clone()));
        ::tokio::spawn(signal(b.clone(), a.clone()));
        let c = ::tokio::time::timeout(10 * SECOND, a.connect())
            .await
            .expect("connected in time")
            .unwrap();
        let (local, _) = c.selected_pair().unwrap();
        assert_eq!(local.transport, ice_core::TransportProtocol::Udp);
        ::tokio::join!(a.close(), b.close());
    }

    #[::tokio::test(flavor = "current_thread")]
    async fn relay_only_goes_through_turn_and_close_deletes_the_allocation() {
        let Some(ip) = own_ip() else { return };
        let mut config = ServerConfig::new("floe.test");
        config.add_user("alice", "wonderland");
        config.relays.push(RelayRange {
            ip: [127, 0, 0, 1].into(),
            ports: 50000..=50999,
        });
        config
            .peer_policy
            .allow
            .push(turn_proto::server::IpPrefix::host(ip));
        let mut options = TurnServerOptions::new(vec!["127.0.0.1:0".parse().unwrap()], config);
        options.stats_interval = Duration::from_millis(50);
        let server = spawn(options).unwrap();
        let turn = server.local_addrs()[0];

        let a = IceAgent::builder()
            .controlling(true)
            .host_ips([ip])
            .turn(turn, "alice", "wonderland")
            .relay_only(true)
            .build()
            .await
            .unwrap();
        let b = IceAgent::builder().host_ips([ip]).build().await.unwrap();
        let kinds = connect_pair(a, b).await;
        assert_eq!(kinds, (CandidateType::Relayed, CandidateType::Host));

        let stats = server.stop().unwrap();
        assert_eq!(stats.core.allocations, 0, "{stats:?}");
        assert_eq!(stats.core.expired_allocations, 0, "deleted, not expired");
        assert!(stats.core.to_peer.packets > 0);
    }
}

/// ICE-TCP only (RFC 6544): passive and active TCP candidates, no UDP at all.
mod ice_tcp {
    use super::*;
    use ice_core::TransportProtocol;

    fn tcp_only(controlling: bool) -> blocking::IceAgent {
        blocking::IceAgent::builder()
            .controlling(controlling)
            .host_ips([IpAddr::from([127, 0, 0, 1])])
            .tcp_candidates(true)
            .udp_candidates(false)
            .build()
            .unwrap()
    }

    #[test]
    fn tcp_candidates_are_a_listener_and_an_active_one() {
        let mut agent = tcp_only(false);
        let candidates = gather(&mut agent);
        let lines: Vec<String> = candidates.iter().map(LocalCandidate::sdp).collect();
        assert_eq!(candidates.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains(" tcp ")), "{lines:?}");
        assert!(lines[0].ends_with("typ host tcptype passive"), "{lines:?}");
        assert_eq!(candidates[0].candidate.address, agent.local_addrs()[0]);
        assert!(
            lines[1].contains(" 127.0.0.1 9 typ host tcptype active"),
            "{lines:?}"
        );
    }

    #[test]
    fn relay_only_refuses_tcp_candidates() {
        let built = blocking::IceAgent::builder()
            .host_ips([IpAddr::from([127, 0, 0, 1])])
            .turn("127.0.0.1:3478".parse().unwrap(), "u", "p")
            .relay_only(true)
            .tcp_candidates(true)
            .build();
        assert!(matches!(built, Err(IceError::Io(_))), "{built:?}");
    }

    #[test]
    fn tls_turn_without_a_trust_anchor_is_refused() {
        let built = blocking::IceAgent::builder()
            .host_ips([IpAddr::from([127, 0, 0, 1])])
            .turn_tls("127.0.0.1:5349".parse().unwrap(), "u", "p")
            .build();
        match built {
            Err(IceError::Io(e)) => assert!(e.to_string().contains("trust anchor"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blocking_agents_connect_over_tcp_only() {
        let (mut a, mut b) = (tcp_only(true), tcp_only(false));
        exchange(&mut a, &mut b, str::to_owned);
        let echo = echo_once(b, 10 * SECOND, 5 * SECOND);
        let mut conn = a.connect(10 * SECOND).unwrap();
        let (local, remote) = conn.selected_pair();
        assert_eq!(
            (local.transport, remote.transport),
            (TransportProtocol::Tcp, TransportProtocol::Tcp)
        );
        conn.send(b"over tcp").unwrap();
        assert_eq!(conn.recv(5 * SECOND).unwrap(), b"over tcp");
        assert_eq!(echo.join().unwrap(), b"over tcp");
        assert!(conn.agent().stats().tcp_connects > 0);
        conn.close().unwrap();
    }
}

/// mDNS candidates (draft-ietf-mmusic-mdns-ice-candidates) resolved by the drivers, against
/// a responder on loopback that answers the way RFC 6762 §6.7 has responders answer one-shot
/// queries: to the querying port, with the query's ID.
mod mdns {
    use super::*;
    use crate::ice::MdnsResolution;
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NAME: &str = "3a0e9f5c-4d1b-4c61-9d59-5b0b6a1f7e21.local";

    /// A responder knowing `name` as `ip`, until `stop` queries have come (it runs on a
    /// thread). Returns its address and the count of queries seen.
    fn responder(name: &'static str, ip: [u8; 4]) -> (SocketAddr, Arc<AtomicUsize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(20 * SECOND)).unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                counter.fetch_add(1, Ordering::SeqCst);
                let q = &buf[..n];
                // The first question's name, written out (queries do not compress).
                let mut at = 12;
                let mut labels = Vec::new();
                while at < n && q[at] != 0 {
                    let len = usize::from(q[at]);
                    labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).into_owned());
                    at += 1 + len;
                }
                if !labels.join(".").eq_ignore_ascii_case(name) {
                    continue;
                }
                let question_end = at + 1 + 4;
                let mut reply = q[..question_end].to_vec();
                reply[2..4].copy_from_slice(&[0x84, 0]); // response, authoritative
                reply[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // 1 question, 1 answer
                reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4]);
                reply.extend_from_slice(&ip);
                let _ = socket.send_to(&reply, from);
            }
        });
        (addr, seen)
    }

    /// `line` with its connection address replaced by `name`.
    fn hide_address(line: &str, name: &str) -> String {
        let mut fields: Vec<&str> = line.split(' ').collect();
        fields[4] = name;
        fields.join(" ")
    }

    fn agents(server: SocketAddr) -> (blocking::IceAgent, blocking::IceAgent) {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = blocking::IceAgent::builder()
            .controlling(true)
            .host_ips([ip])
            .mdns(MdnsResolution::Server(server))
            .build()
            .unwrap();
        let b = blocking::IceAgent::builder()
            .host_ips([ip])
            .mdns(MdnsResolution::Off)
            .build()
            .unwrap();
        (a, b)
    }

    #[test]
    fn a_peer_behind_an_mdns_name_is_reached() {
        let (server, seen) = responder(NAME, [127, 0, 0, 1]);
        let (mut a, mut b) = agents(server);
        let b_addr = b.local_addrs()[0];
        exchange(&mut a, &mut b, |line| hide_address(line, NAME));
        let echo = echo_once(b, 10 * SECOND, 10 * SECOND);
        let mut conn = a.connect(10 * SECOND).unwrap();
        let (_, remote) = conn.selected_pair();
        assert_eq!(remote.address, b_addr, "the name's address, B's port");
        conn.send(b"ping").unwrap();
        assert_eq!(conn.recv(10 * SECOND).unwrap(), b"ping");
        assert_eq!(echo.join().unwrap(), b"ping");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "one query answered at once");
        conn.close().unwrap();
    }

    #[test]
    fn an_unanswered_name_is_given_up_and_ice_fails() {
        // The responder knows another name only: the queries go unanswered.
        let (server, seen) = responder("other.local", [127, 0, 0, 1]);
        let (mut a, mut b) = agents(server);
        exchange(&mut a, &mut b, |line| hide_address(line, NAME));
        let started = std::time::Instant::now();
        match a.connect(20 * SECOND) {
            Err(IceError::Failed) => {}
            other => panic!("{other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took >= 4 * SECOND,
            "failed only after the querier's timeout: {took:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 3, "queries at 0, 1 and 3 s");
    }

    #[cfg(feature = "tokio")]
    #[::tokio::test]
    async fn the_tokio_flavour_resolves_too() {
        use crate::ice::tokio::IceAgent;
        let (server, seen) = responder(NAME, [127, 0, 0, 1]);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = IceAgent::builder()
            .controlling(true)
            .host_ips([ip])
            .mdns(MdnsResolution::Server(server))
            .build()
            .await
            .unwrap();
        let b = IceAgent::builder()
            .host_ips([ip])
            .mdns(MdnsResolution::Off)
            .build()
            .await
            .unwrap();
        let b_addr = b.local_addrs()[0];
        let (ca, cb) = (a.local_credentials().clone(), b.local_credentials().clone());
        a.set_remote_credentials(&cb.ufrag, &cb.pwd).await.unwrap();
        b.set_remote_credentials(&ca.ufrag, &ca.pwd).await.unwrap();
        while let Some(c) = b.next_candidate().await {
            a.add_remote_candidate(&hide_address(&c.sdp(), NAME))
                .await
                .unwrap();
        }
        while let Some(c) = a.next_candidate().await {
            b.add_remote_candidate(&c.sdp()).await.unwrap();
        }
        a.end_of_remote_candidates().await.unwrap();
        b.end_of_remote_candidates().await.unwrap();
        let wait = ::tokio::time::timeout(10 * SECOND, async {
            let (x, y) = ::tokio::join!(a.connect(), b.connect());
            (x.unwrap(), y.unwrap())
        });
        let (conn_a, conn_b) = wait.await.expect("connected in time");
        assert_eq!(conn_a.selected_pair().unwrap().1.address, b_addr);
        conn_a.send(b"ping").await.unwrap();
        assert_eq!(conn_b.recv().await.unwrap(), b"ping");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
