//! ICE restart (RFC 8445 §9): new credentials, checking starts over, data keeps flowing.

mod common;

use common::*;
use ice_core::{ConnectionState, Event};
use std::time::Duration;

#[test]
fn restart_keeps_data_flowing() {
    let mut p = host_pair(1, 131);
    let (a, b, s) = (p.a, p.b, p.stream);
    let net = &mut p.net;
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    let old = (
        net.agent_ref(a).local_credentials().clone(),
        net.agent_ref(b).local_credentials().clone(),
    );
    let selected_before = count_events(net, a, |e| matches!(e, Event::SelectedPair { .. }));
    let mut sent = 0;
    let mut restarted = false;
    // Send a packet each way every 20 ms for 3 s; restart both agents after 1 s.
    for tick in 0..150 {
        if tick == 50 {
            let now = net.now;
            let ca = net.agent(a).restart(now).unwrap();
            let cb = net.agent(b).restart(now).unwrap();
            assert_ne!(ca, old.0);
            assert_ne!(cb, old.1);
            // Signalling: the new credentials first, the re-announced candidates follow.
            net.agent(a)
                .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
                .unwrap();
            net.agent(b)
                .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
                .unwrap();
            net.flush();
            restarted = true;
            // The previous pair still carries data.
            assert!(net.agent_ref(a).selected_pair(s, 1).is_some());
        }
        net.send_data(a, s, 1, format!("a{tick}").as_bytes())
            .unwrap();
        net.send_data(b, s, 1, format!("b{tick}").as_bytes())
            .unwrap();
        sent += 1;
        net.run_for(Duration::from_millis(20));
    }
    assert!(restarted);
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.received(b).len(),
        sent,
        "no packet lost across the restart"
    );
    assert_eq!(net.received(a).len(), sent);
    assert!(both(net, a, b, ConnectionState::Completed));
    let selected_after = count_events(net, a, |e| matches!(e, Event::SelectedPair { .. }));
    assert_eq!(
        selected_after,
        selected_before + 1,
        "a pair was selected in the new generation"
    );
    // Candidates were announced again with the new ufrag.
    let new_ufrag = net.agent_ref(a).local_credentials().ufrag.clone();
    assert!(
        net.events(a)
            .any(|e| matches!(e, Event::LocalCandidate { ufrag, .. } if *ufrag == new_ufrag))
    );
    // Candidates of the old generation are refused now.
    let now = net.now;
    let stale = format!(
        "candidate:1 1 udp 2130706431 203.0.113.1 6000 typ host ufrag {}",
        old.1.ufrag
    );
    assert_eq!(
        net.agent(a).add_remote_candidate_str(now, s, &stale),
        Err(ice_core::RemoteCandidateError::StaleGeneration)
    );
}

/// The peer alone restarting (new remote credentials) also starts checking over.
#[test]
fn remote_credentials_change_starts_a_new_generation() {
    let mut p = host_pair(1, 141);
    let (a, b, s) = (p.a, p.b, p.stream);
    let net = &mut p.net;
    assert!(net.run_until(Duration::from_secs(5), |n| both(
        n,
        a,
        b,
        ConnectionState::Completed
    )));
    assert!(net.agent_ref(a).remote_candidates(s).len() == 1);
    let now = net.now;
    let cb = net.agent(b).restart(now).unwrap();
    net.agent(a)
        .set_remote_credentials(now, &cb.ufrag, &cb.pwd)
        .unwrap();
    assert!(
        net.agent_ref(a).remote_candidates(s).is_empty(),
        "remote candidates of the old generation are gone"
    );
    let ca = net.agent_ref(a).local_credentials().clone();
    net.agent(b)
        .set_remote_credentials(now, &ca.ufrag, &ca.pwd)
        .unwrap();
    net.flush();
    assert!(net.run_until(Duration::from_secs(5), |n| {
        both(n, a, b, ConnectionState::Completed) && n.agent_ref(a).remote_candidates(s).len() == 1
    }));
    net.send_data(a, s, 1, b"after").unwrap();
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.received(b), ["after"]);
}
