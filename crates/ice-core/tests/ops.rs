//! Random sequences of operations on two agents: network events (deliver, drop, duplicate,
//! corrupt, delay), timeouts, restarts, trickled and broken candidates. Nothing panics, the
//! caps hold, and once the chaos stops the agents connect.

mod common;

use common::*;
use ice_core::{AgentConfig, ConnectionState, Input, Transmit};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    /// Deliver the oldest datagram in flight.
    Deliver,
    /// Drop it.
    Drop,
    /// Deliver it twice.
    Duplicate,
    /// Flip a byte, then deliver it.
    Corrupt(usize, u8),
    /// Advance the clock.
    Wait(u16),
    /// Restart one agent and re-exchange credentials.
    Restart(bool),
    /// Give an agent a remote candidate line (valid or not).
    Candidate(bool, String),
    /// Send application data.
    Data(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Deliver),
        1 => Just(Op::Drop),
        1 => Just(Op::Duplicate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Corrupt(i, b)),
        3 => (0u16..2000).prop_map(Op::Wait),
        1 => any::<bool>().prop_map(Op::Restart),
        1 => (any::<bool>(), prop_oneof![
            Just("candidate:9 1 udp 2130706431 203.0.113.9 7000 typ host".to_string()),
            Just("candidate:9 1 udp 1 203.0.113.1 6000 typ srflx raddr 10.0.0.1 rport 1".to_string()),
            "\\PC{0,60}",
        ]).prop_map(|(w, l)| Op::Candidate(w, l)),
        1 => any::<bool>().prop_map(Op::Data),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chaos_then_calm(ops in proptest::collection::vec(op(), 1..150)) {
        let mut p = host_pair(1, 271);
        let (a, b, s) = (p.a, p.b, p.stream);
        let net = &mut p.net;
        net.flush();
        // Take the wire over by hand: everything sent goes to our queue.
        net.filter = Some(Box::new(|_, _| true));
        let mut wire: Vec<Transmit> = Vec::new();
        let mut seen = 0;
        for op in ops {
            // Collect what the agents sent since the last step.
            for (_, _, t) in &net.log[seen..] {
                wire.push(t.clone());
            }
            seen = net.log.len();
            let now = net.now;
            match op {
                Op::Deliver | Op::Duplicate | Op::Corrupt(..) if !wire.is_empty() => {
                    let mut t = wire.remove(0);
                    if let Op::Corrupt(i, b) = op {
                        let n = t.payload.len();
                        if n > 0 {
                            t.payload[i % n] ^= b | 1;
                        }
                    }
                    let to = if t.destination.ip() == ip("203.0.113.1") { b } else { a };
                    for _ in 0..if matches!(op, Op::Duplicate) { 2 } else { 1 } {
                        let input = Input { transport: t.transport, source: t.source, destination: t.destination, data: &t.payload };
                        let _ = net.agent(to).handle_input(now, input);
                    }
                }
                Op::Drop if !wire.is_empty() => {
                    let _ = wire.remove(0);
                }
                Op::Wait(ms) => net.run_for(Duration::from_millis(u64::from(ms))),
                Op::Restart(which) => {
                    let (x, y) = if which { (a, b) } else { (b, a) };
                    let cx = net.agent(x).restart(now).unwrap();
                    let cy = net.agent(y).restart(now).unwrap();
                    net.agent(y).set_remote_credentials(now, &cx.ufrag, &cx.pwd).unwrap();
                    net.agent(x).set_remote_credentials(now, &cy.ufrag, &cy.pwd).unwrap();
                }
                Op::Candidate(which, line) => {
                    let _ = net.agent(if which { a } else { b }).add_remote_candidate_str(now, s, &line);
                }
                Op::Data(which) => {
                    let _ = net.agent(if which { a } else { b }).send(now, s, 1, b"x");
                }
                _ => {}
            }
            net.flush();
            for node in [a, b] {
                let agent = net.agent_ref(node);
                let config = AgentConfig::default();
                prop_assert!(agent.pairs(s).len() <= config.max_pairs);
                prop_assert!(agent.remote_candidates(s).len() <= config.max_remote_candidates);
            }
        }
        // Calm: a clean wire, fresh credentials and candidates, and they connect.
        net.filter = None;
        let now = net.now;
        let ca = net.agent(a).restart(now).unwrap();
        let cb = net.agent(b).restart(now).unwrap();
        net.agent(a).set_remote_credentials(now, &cb.ufrag, &cb.pwd).unwrap();
        net.agent(b).set_remote_credentials(now, &ca.ufrag, &ca.pwd).unwrap();
        net.flush();
        let ok = net.run_until(Duration::from_secs(10), |n| both(n, a, b, ConnectionState::Completed));
        prop_assert!(ok, "states {:?} {:?}", net.state(a), net.state(b));
    }
}
