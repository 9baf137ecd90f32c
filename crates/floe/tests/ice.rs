//! `floe ice` against itself: two processes wired by their stdin and stdout, on
//! loopback and relayed through `floe server` on loopback; and the exit codes.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;
mod peers;

use common::stat;
use peers::{assert_echoed, floe_ice, floe_turn_server, own_ip, pump, relay_args, run_alone};
use std::net::IpAddr;
use std::time::Duration;

/// Most any of these runs may take; processes still running then are killed.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn two_floe_peers_connect_and_echo() {
    let Some(ip) = own_ip("two_floe_peers_connect_and_echo") else {
        return;
    };
    let ip = ip.to_string();
    let (a, b) = pump(
        floe_ice(&["--controlling", "--send", "hello", "--host-ip", &ip]),
        floe_ice(&["--controlled", "--echo", "--host-ip", &ip]),
        LIMIT,
    );
    assert_echoed(&a, &b);
    // Signalling comes in the documented order, candidates as RFC 8839 lines.
    for peer in [&a, &b] {
        let s = &peer.signalling;
        assert!(s[0].starts_with("a=ice-ufrag:"), "{s:?}");
        assert!(s[1].starts_with("a=ice-pwd:"), "{s:?}");
        assert!(s[2].starts_with("a=candidate:1 1 udp "), "{s:?}");
        assert!(s[2].ends_with(" typ host"), "{s:?}");
        assert_eq!(s.last().map(String::as_str), Some("a=end-of-candidates"));
    }
    let ((al, ar), (bl, br)) = (a.connected().unwrap(), b.connected().unwrap());
    assert_eq!(
        (al, ar),
        (br, bl),
        "host to host, each side's view of the same pair"
    );
    assert_eq!(al.ip().to_string(), ip);
    let status: Vec<&str> = a.status.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(status[1..], ["SENT hello", "ECHOED hello"], "{status:?}");
    eprintln!(
        "start to echo (debug build, with the test's pumping): {:?}",
        a.time_of("ECHOED")
    );
}

#[test]
fn relay_only_peers_connect_through_floe_server_and_release_their_allocations() {
    let Some(ip) = own_ip("relay_only_peers_connect_through_floe_server") else {
        return;
    };
    let ip = ip.to_string();
    let server = floe_turn_server();
    let relay = relay_args(server.listening[0]);
    let relay: Vec<&str> = relay.iter().map(String::as_str).collect();
    let mut args_a = vec!["--controlling", "--send", "hello", "--host-ip", &ip];
    let mut args_b = vec!["--controlled", "--echo", "--host-ip", &ip];
    args_a.extend(&relay);
    args_b.extend(&relay);
    let (a, b) = pump(floe_ice(&args_a), floe_ice(&args_b), LIMIT);
    assert_echoed(&a, &b);
    // Only relayed candidates were signalled, and the pair is relay to relay.
    for peer in [&a, &b] {
        let candidates: Vec<&String> = peer
            .signalling
            .iter()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert!(!candidates.is_empty());
        assert!(
            candidates.iter().all(|l| l.contains(" typ relay ")),
            "{candidates:?}"
        );
    }
    let (local, remote) = a.connected().unwrap();
    let loopback: IpAddr = [127, 0, 0, 1].into();
    assert_eq!((local.ip(), remote.ip()), (loopback, loopback));
    // Both peers deleted their allocations on the way out (none left, none expired).
    let (status, output) = server.signal_and_wait("INT");
    assert!(status.success());
    assert_eq!(stat(&output, "allocations"), 0, "{output:?}");
    assert_eq!(stat(&output, "expired_allocations"), 0, "{output:?}");
    assert!(stat(&output, "to_peer_packets") >= 2, "{output:?}");
}

/// Explicit loopback host addresses are candidates, so two `floe ice` connect on a
/// loopback-only machine.
#[test]
fn peers_connect_on_loopback_host_candidates() {
    let (a, b) = pump(
        floe_ice(&["--controlling", "--send", "hello", "--host-ip", "127.0.0.1"]),
        floe_ice(&["--controlled", "--echo", "--host-ip", "127.0.0.1"]),
        LIMIT,
    );
    assert_echoed(&a, &b);
}

#[test]
fn unusable_host_ip_fails_with_the_reason() {
    let out = run_alone(
        floe_ice(&["--controlled", "--host-ip", "0.0.0.0"]),
        "",
        true,
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.line("FAILED").unwrap().contains("unspecified"),
        "{out:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["--controlling", "--controlled"],
        &["--controlling", "--relay-only"],
        &["--controlling", "--turn", "127.0.0.1:3478"],
        &["--controlling", "--timeout", "soon"],
        &["--controlling", "--ta-ms", "1"],
    ] {
        let out = run_alone(floe_ice(args), "", true, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn stdin_eof_without_credentials_fails_with_1() {
    let Some(ip) = own_ip("stdin_eof_without_credentials_fails_with_1") else {
        return;
    };
    let out = run_alone(
        floe_ice(&["--controlled", "--host-ip", &ip.to_string()]),
        "v=0\na=ice-options:trickle\n",
        true,
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.line("FAILED").is_some(), "{out:?}");
    assert!(out.signalling[0].starts_with("a=ice-ufrag:"), "{out:?}");
}

#[test]
fn an_unanswering_peer_times_out_with_3() {
    let Some(ip) = own_ip("an_unanswering_peer_times_out_with_3") else {
        return;
    };
    // Credentials and a candidate on a port nobody answers; stdin stays open, so no
    // end-of-candidates: ICE cannot fail, only time out.
    let silent = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let input = format!(
        "a=ice-ufrag:abcd\na=ice-pwd:abcdefghijklmnopqrstuvwx\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\n"
    );
    let started = std::time::Instant::now();
    let out = run_alone(
        floe_ice(&[
            "--controlling",
            "--timeout",
            "1",
            "--host-ip",
            &ip.to_string(),
        ]),
        &input,
        false,
        LIMIT,
    );
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.line("FAILED timeout").is_some(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_echo_exits_4() {
    let Some(ip) = own_ip("a_missing_echo_exits_4") else {
        return;
    };
    let ip = ip.to_string();
    // The controlled peer receives but does not echo; it stays up while the sender retries.
    let (a, b) = pump(
        floe_ice(&["--controlling", "--send", "hello", "--host-ip", &ip]),
        floe_ice(&["--controlled", "--linger", "6", "--host-ip", &ip]),
        LIMIT,
    );
    assert_eq!(a.code, Some(4), "{a:?}");
    assert_eq!(a.line("FAILED"), Some("FAILED no echo after 10 tries"));
    let sent = a.status.iter().filter(|(_, l)| l == "SENT hello").count();
    assert_eq!(sent, 10, "{a:?}");
    assert_eq!(b.code, Some(0), "{b:?}");
    assert!(b.line("RECEIVED hello").is_some(), "{b:?}");
}

/// ICE-TCP only (`--tcp --no-udp`): every candidate is TCP (passive listeners, active ones
/// on port 9), and the peers connect and echo over an RFC 4571-framed connection.
#[test]
fn two_floe_peers_connect_over_ice_tcp_only() {
    let Some(ip) = own_ip("two_floe_peers_connect_over_ice_tcp_only") else {
        return;
    };
    let ip = ip.to_string();
    let tcp = ["--tcp", "--no-udp", "--host-ip", &ip];
    let mut args_a = vec!["--controlling", "--send", "hello"];
    let mut args_b = vec!["--controlled", "--echo"];
    args_a.extend(tcp);
    args_b.extend(tcp);
    let (a, b) = pump(floe_ice(&args_a), floe_ice(&args_b), LIMIT);
    assert_echoed(&a, &b);
    for peer in [&a, &b] {
        let candidates: Vec<&String> = peer
            .signalling
            .iter()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert_eq!(candidates.len(), 2, "{candidates:?}");
        assert!(
            candidates.iter().all(|l| l.contains(" tcp ")),
            "{candidates:?}"
        );
        assert!(
            candidates[0].ends_with("typ host tcptype passive"),
            "{candidates:?}"
        );
        assert!(
            candidates[1].ends_with("typ host tcptype active"),
            "{candidates:?}"
        );
    }
    // The selected pair runs over one of the two connections: a's active candidate (named
    // with port 9) to b's listener, or b's active candidate to a's listener.
    let listener = |o: &peers::Outcome| -> u16 {
        let line = o.signalling.iter().find(|l| l.contains("tcptype passive"));
        let port = line.and_then(|l| l.split(' ').nth(5)?.parse().ok());
        port.expect("a passive candidate")
    };
    let (local, remote) = a.connected().unwrap();
    let a_to_b = local.port() == 9 && remote.port() == listener(&b);
    let b_to_a = local.port() == listener(&a);
    assert!(a_to_b || b_to_a, "{a:?}\n{b:?}");
}

#[test]
fn tcp_and_tls_usage_errors_exit_2() {
    for args in [
        &["--controlling", "--no-udp"][..],
        &[
            "--controlling",
            "--tcp",
            "--relay-only",
            "--turn",
            "127.0.0.1:3478",
        ],
        &["--controlling", "--turn-tls"],
        &["--controlling", "--turn-ca", "ca.pem"],
        &[
            "--controlling",
            "--turn",
            "127.0.0.1:3478",
            "--turn-user",
            "u",
            "--turn-pass",
            "p",
            "--turn-tcp",
            "--turn-tls",
        ],
        &[
            "--controlling",
            "--tcp",
            "--no-udp",
            "--stun",
            "127.0.0.1:3478",
        ],
    ] {
        let out = run_alone(floe_ice(args), "", true, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
    // TLS without a trust anchor: the platform's roots are not used, so say what is missing.
    let out = run_alone(
        floe_ice(&[
            "--controlling",
            "--turn",
            "127.0.0.1:5349",
            "--turn-user",
            "u",
            "--turn-pass",
            "p",
            "--turn-tls",
        ]),
        "",
        true,
        LIMIT,
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--turn-tls needs --turn-ca"), "{out:?}");
    // A trust anchor that cannot be read fails at start, with the reason.
    let out = run_alone(
        floe_ice(&[
            "--controlling",
            "--host-ip",
            "127.0.0.1",
            "--turn",
            "127.0.0.1:5349",
            "--turn-user",
            "u",
            "--turn-pass",
            "p",
            "--turn-tls",
            "--turn-ca",
            "/nonexistent/ca.pem",
        ]),
        "",
        true,
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.line("FAILED").unwrap().contains("ca.pem"), "{out:?}");
}

/// RFC 8445 §14.2 through `a=ice-pacing`: a peer configured with Ta = 5 ms sends its value,
/// and paces its checks at the peer's larger proposal, or at 50 ms when the peer proposes
/// none. The checks go to silent sockets whose first datagrams are timed.
#[test]
fn ta_is_negotiated_through_ice_pacing() {
    let Some(ip) = own_ip("ta_is_negotiated_through_ice_pacing") else {
        return;
    };
    for (pacing_line, least_gap) in [
        ("a=ice-pacing:200\n", Duration::from_millis(150)),
        ("", Duration::from_millis(40)),
    ] {
        let silent: Vec<std::net::UdpSocket> = (0..4)
            .map(|_| std::net::UdpSocket::bind((ip, 0)).unwrap())
            .collect();
        let mut input =
            format!("a=ice-ufrag:abcd\na=ice-pwd:abcdefghijklmnopqrstuvwx\n{pacing_line}");
        for (i, s) in silent.iter().enumerate() {
            let port = s.local_addr().unwrap().port();
            input += &format!(
                "a=candidate:{i} 1 udp {} {ip} {port} typ host\n",
                2_130_706_431 - i
            );
        }
        // One thread per socket notes when its first check arrives.
        let started = std::time::Instant::now();
        let watchers: Vec<_> = silent
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 1500];
                    s.recv(&mut buf).ok().map(|_| started.elapsed())
                })
            })
            .collect();
        let out = run_alone(
            floe_ice(&[
                "--controlling",
                "--ta-ms",
                "5",
                "--timeout",
                "2",
                "--host-ip",
                &ip.to_string(),
            ]),
            &input,
            false,
            LIMIT,
        );
        assert_eq!(out.code, Some(3), "{out:?}");
        assert_eq!(out.signalling[2], "a=ice-pacing:5", "{out:?}");
        let mut firsts: Vec<Duration> = watchers
            .into_iter()
            .map(|w| w.join().unwrap().expect("every candidate gets a check"))
            .collect();
        firsts.sort();
        for w in firsts.windows(2) {
            assert!(
                w[1] - w[0] >= least_gap,
                "{pacing_line:?}: checks at {firsts:?}"
            );
        }
    }
}

/// A peer's mDNS candidate (`<uuid>.local`, as browsers signal) is resolved through
/// `--mdns-server` (a responder on loopback answering like RFC 6762 §6.7 has it) and checked:
/// the check arrives at the address the name stands for.
#[test]
fn an_mdns_candidate_is_resolved_and_checked() {
    const NAME: &str = "0b6c4f1e-7d2a-4e0f-9a51-c1d2e3f40516.local";
    let responder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    responder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = responder.local_addr().unwrap();
    let answered = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = responder.recv_from(&mut buf).unwrap();
        // Echo the query's header and first question, then one A record: 127.0.0.1.
        let question_end = 12 + NAME.len() + 2 + 4;
        assert!(n >= question_end, "a query for the name: {:?}", &buf[..n]);
        let mut reply = buf[..question_end].to_vec();
        reply[2..12].copy_from_slice(&[0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
        reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 127, 0, 0, 1]);
        responder.send_to(&reply, from).unwrap();
    });
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let input = format!(
        "a=ice-ufrag:abcd\na=ice-pwd:abcdefghijklmnopqrstuvwx\n\
         a=candidate:1 1 udp 2130706431 {NAME} {} typ host\n",
        peer.local_addr().unwrap().port()
    );
    let checked = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let n = peer.recv(&mut buf).unwrap();
        buf[..2] == [0, 1] && n >= 20 // a STUN Binding request
    });
    let server = server.to_string();
    let out = run_alone(
        floe_ice(&[
            "--controlling",
            "--timeout",
            "2",
            "--host-ip",
            "127.0.0.1",
            "--mdns-server",
            &server,
        ]),
        &input,
        false,
        LIMIT,
    );
    assert_eq!(
        out.code,
        Some(3),
        "no answer to the check: a timeout. {out:?}"
    );
    answered.join().unwrap();
    assert!(
        checked.join().unwrap(),
        "a check reached the resolved address"
    );
}
