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
    let (ca, cb) = (gather(&mut a), gather(&mut b));
    assert_eq!(ca.len(), 1);
    assert!(ca[0].sdp().starts_with("a=candidate:"), "{}", ca[0]);
    let (creds_a, creds_b) = (a.local_credentials().clone(), b.local_credentials().clone());
    a.set_remote_credentials(&creds_b.ufrag, &creds_b.pwd)
        .unwrap();
    b.set_remote_credentials(&creds_a.ufrag, &creds_a.pwd)
        .unwrap();
    for c in &cb {
        a.add_remote_candidate(&c.sdp()).unwrap();
    }
    for c in &ca {
        b.add_remote_candidate(&c.sdp()).unwrap();
    }
    a.end_of_remote_candidates().unwrap();
    b.end_of_remote_candidates().unwrap();
    // The blocking flavour runs inside its calls: one thread per agent.
    let echo = std::thread::spawn(move || {
        let mut conn = b.connect(5 * SECOND).unwrap();
        let got = conn.recv(5 * SECOND).unwrap();
        conn.send(&got).unwrap();
        conn.poll(SECOND / 5).unwrap();
        conn.close().unwrap();
        got
    });
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
