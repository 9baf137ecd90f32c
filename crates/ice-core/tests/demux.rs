//! Many sessions on one port: an AgentSet routes checks by ufrag and data by validated
//! address, and paces all its agents with one Pacer (RFC 8445 §14.2).

mod common;

use common::*;
use ice_core::{AgentConfig, AgentSet, ConnectionState, Pacer, TransportProtocol};
use std::time::Duration;

const SERVER: &str = "203.0.113.1:3478";

#[test]
fn lite_sessions_share_one_port() {
    let mut net = Net::new();
    let server = net.add_node(
        "sfu",
        &["203.0.113.1"],
        Machine::Set(AgentSet::default()),
        None,
    );
    let mut clients = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..3u64 {
        let now = net.now;
        let mut lite = ice_core::Agent::new(AgentConfig::lite(), 300 + i, now);
        let s = lite.add_stream(1).unwrap();
        lite.add_host_candidate(now, s, 1, sa(SERVER), TransportProtocol::Udp)
            .unwrap();
        lite.finish_host_candidates(now);
        let lite_creds = lite.local_credentials().clone();
        let id = net.set(server).insert(lite);
        let public = ["198.51.100.10", "198.51.100.11", "198.51.100.12"][i as usize];
        let nat = net.add_nat(public, Filtering::AddressAndPortDependent);
        let client = net.add_agent(
            "client",
            &[["10.0.0.1", "10.0.1.1", "10.0.2.1"][i as usize]],
            AgentConfig::default(),
            400 + i,
            Some(nat),
        );
        let cs = add_hosts(
            &mut net,
            client,
            1,
            &[["10.0.0.1", "10.0.1.1", "10.0.2.1"][i as usize]],
            5000,
        );
        let client_creds = net.agent_ref(client).local_credentials().clone();
        net.agent(client)
            .set_remote_credentials(now, &lite_creds.ufrag, &lite_creds.pwd)
            .unwrap();
        net.agent(client).set_remote_lite(true);
        net.agent(client)
            .add_remote_candidate_str(
                now,
                cs,
                "candidate:1 1 udp 2130706431 203.0.113.1 3478 typ host",
            )
            .unwrap();
        net.agent(client)
            .end_of_remote_candidates(now, cs, None)
            .unwrap();
        net.set(server)
            .command(id, |a| {
                a.set_remote_credentials(now, &client_creds.ufrag, &client_creds.pwd)
            })
            .unwrap()
            .unwrap();
        clients.push((client, cs));
        sessions.push((id, s));
    }
    net.flush();
    let done = net.run_until(Duration::from_secs(5), |n| {
        clients
            .iter()
            .all(|&(c, _)| n.state(c) == ConnectionState::Completed)
    });
    assert!(done);
    for &(id, _) in &sessions {
        assert_eq!(
            net.set(server).get(id).unwrap().connection_state(),
            ConnectionState::Completed
        );
    }
    let (ufrags, paths) = net.set(server).demux().len();
    assert_eq!(ufrags, 3);
    assert!(paths >= 3, "validated paths are routed: {paths}");
    for (i, &(client, cs)) in clients.iter().enumerate() {
        net.send_data(client, cs, 1, format!("client {i}").as_bytes())
            .unwrap();
    }
    net.run_for(Duration::from_millis(50));
    let got: Vec<(usize, String)> = net.nodes[server]
        .set_data
        .iter()
        .map(|(id, d)| (id.index(), String::from_utf8_lossy(d).into_owned()))
        .collect();
    let expected: Vec<(usize, String)> = sessions
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.index(), format!("client {i}")))
        .collect();
    assert_eq!(got, expected, "each client's data reached its own session");
    // And back: each session answers its own client.
    for (i, &(id, stream)) in sessions.iter().enumerate() {
        let now = net.now;
        let t = net
            .set(server)
            .command(id, |a| {
                a.send(now, stream, 1, format!("session {i}").as_bytes())
            })
            .unwrap()
            .unwrap();
        net.inject(server, t);
    }
    net.run_for(Duration::from_millis(50));
    for (i, &(client, _)) in clients.iter().enumerate() {
        assert_eq!(net.received(client), [format!("session {i}")]);
    }
}

/// Twenty agents in one set start checking at the same moment; the shared pacer spaces
/// their new transactions at least 5 ms apart (RFC 8445 §14.2).
#[test]
fn one_pacer_for_all_agents() {
    let mut net = Net::new();
    let fleet = net.add_node(
        "fleet",
        &["198.51.100.1"],
        Machine::Set(AgentSet::new(Pacer::new(Duration::from_millis(5)))),
        None,
    );
    net.add_node("void", &["192.0.2.99"], Machine::Sink, None);
    for i in 0..20u16 {
        let now = net.now;
        let mut agent = ice_core::Agent::new(AgentConfig::default(), 500 + u64::from(i), now);
        let s = agent.add_stream(1).unwrap();
        agent
            .add_host_candidate(
                now,
                s,
                1,
                std::net::SocketAddr::new(ip("198.51.100.1"), 5000 + i),
                TransportProtocol::Udp,
            )
            .unwrap();
        agent.finish_host_candidates(now);
        agent
            .set_remote_credentials(now, "peer", "peerpasswordpeerpassword")
            .unwrap();
        let line = format!(
            "candidate:1 1 udp 2130706431 192.0.2.99 {} typ host",
            7000 + i
        );
        agent.add_remote_candidate_str(now, s, &line).unwrap();
        net.set(fleet).insert(agent);
    }
    net.run_for(Duration::from_millis(300));
    let times = check_times(&net, fleet);
    assert!(times.len() >= 20, "every agent checked: {}", times.len());
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(5),
            "paced together: {times:?}"
        );
    }
    assert!(net.set(fleet).pacer().granted() >= 20);
}
