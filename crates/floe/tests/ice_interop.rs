//! `floe ice` against aioice (tests/peers/aioice_peer.py, the same SDP-line signalling) in
//! both roles: on host candidates of this machine's own address, and relay-only through
//! `floe server` and through coturn, both on 127.0.0.1.
//!
//! A missing python3, aioice or coturn makes a test report itself skipped, or fail when
//! `FLOE_INTEROP=1`. Every process is killed by PID after at most `LIMIT`.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;
mod peers;

use floe_tests::interop::{Coturn, required, tool};
use peers::{Outcome, assert_echoed, floe_ice, floe_turn_server, own_ip, pump, relay_args};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Most one run may take (aioice alone takes over a second to gather and connect).
const LIMIT: Duration = Duration::from_secs(40);

/// The aioice peer with `args`, or `None` (skipped) when python3 or aioice is missing.
fn aioice(test: &str) -> Option<impl Fn(&[&str]) -> Command> {
    let python = tool("python3", test)?;
    let importable = Command::new(&python)
        .args(["-c", "import aioice"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        if required() {
            panic!("{test}: the python module aioice is missing and FLOE_INTEROP=1");
        }
        eprintln!("SKIPPED {test}: python module aioice missing (pip install aioice)");
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/peers/aioice_peer.py"
    );
    Some(move |args: &[&str]| {
        let mut c = Command::new(&python);
        c.arg(script).args(args);
        c
    })
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// floe and aioice, each in each role: `extra` goes to both (host or relay settings).
/// Returns the four outcomes (floe controlling: floe, aioice; aioice controlling: aioice,
/// floe), each run checked with [`assert_echoed`].
fn both_roles(test: &str, extra: &[&str]) -> Option<[Outcome; 4]> {
    let aioice = aioice(test)?;
    let with = |role: &[&str]| -> Vec<String> {
        role.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let sender = with(&["--controlling", "--send", "hello"]);
    let echo = with(&["--controlled", "--echo"]);
    let (f, a) = pump(floe_ice(&refs(&sender)), aioice(&refs(&echo)), LIMIT);
    assert_echoed(&f, &a);
    let (a2, f2) = pump(aioice(&refs(&sender)), floe_ice(&refs(&echo)), LIMIT);
    assert_echoed(&a2, &f2);
    Some([f, a, a2, f2])
}

fn relay_only_both_roles(test: &str, server: SocketAddr) {
    let Some(ip) = own_ip(test) else { return };
    let mut extra = relay_args(server);
    extra.extend(["--host-ip".to_string(), ip.to_string()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let Some(outcomes) = both_roles(test, &extra) else {
        return;
    };
    // Relay to relay: both ends of every selected pair are relayed addresses on 127.0.0.1.
    let loopback: IpAddr = [127, 0, 0, 1].into();
    for o in &outcomes {
        let (local, remote) = o.connected().expect("CONNECTED");
        assert_eq!((local.ip(), remote.ip()), (loopback, loopback), "{o:?}");
    }
}

#[test]
fn floe_and_aioice_connect_on_host_candidates_in_both_roles() {
    let test = "floe_and_aioice_connect_on_host_candidates_in_both_roles";
    let Some(ip) = own_ip(test) else { return };
    let ip = ip.to_string();
    let Some(outcomes) = both_roles(test, &["--host-ip", &ip]) else {
        return;
    };
    for o in &outcomes {
        let (local, remote) = o.connected().expect("CONNECTED");
        assert_eq!(
            (local.ip().to_string(), remote.ip().to_string()),
            (ip.clone(), ip.clone())
        );
    }
}

#[test]
fn floe_and_aioice_relay_only_through_floe_server() {
    let server = floe_turn_server();
    relay_only_both_roles(
        "floe_and_aioice_relay_only_through_floe_server",
        server.listening[0],
    );
    let (status, output) = server.signal_and_wait("INT");
    assert!(status.success());
    // Both implementations delete their allocations when they close.
    assert_eq!(common::stat(&output, "allocations"), 0, "{output:?}");
    assert_eq!(common::stat(&output, "expired_allocations"), 0);
}

#[test]
fn floe_and_aioice_relay_only_through_coturn() {
    let test = "floe_and_aioice_relay_only_through_coturn";
    let Some(coturn) = Coturn::start(test, &[]) else {
        return;
    };
    relay_only_both_roles(test, coturn.addr);
}

#[test]
fn floe_peers_relay_only_through_coturn() {
    let test = "floe_peers_relay_only_through_coturn";
    let Some(ip) = own_ip(test) else { return };
    let Some(coturn) = Coturn::start(test, &[]) else {
        return;
    };
    let ip = ip.to_string();
    let relay = relay_args(coturn.addr);
    let relay: Vec<&str> = relay.iter().map(String::as_str).collect();
    let mut args_a = vec!["--controlling", "--send", "hello", "--host-ip", &ip];
    let mut args_b = vec!["--controlled", "--echo", "--host-ip", &ip];
    args_a.extend(&relay);
    args_b.extend(&relay);
    let (a, b) = pump(floe_ice(&args_a), floe_ice(&args_b), LIMIT);
    assert_echoed(&a, &b);
    let (local, _) = a.connected().unwrap();
    assert_eq!(local.ip(), IpAddr::from([127, 0, 0, 1]));
}

/// Two `floe ice` relay-only through coturn, reaching it with `extra` TURN flags (`--turn`
/// is `server`); returns the sender's outcome.
fn floe_peers_relay_only_over(test: &str, server: SocketAddr, extra: &[&str]) -> Option<Outcome> {
    let ip = own_ip(test)?.to_string();
    let relay = relay_args(server);
    let mut args_a = vec!["--controlling", "--send", "hello", "--host-ip", &ip];
    let mut args_b = vec!["--controlled", "--echo", "--host-ip", &ip];
    for args in [&mut args_a, &mut args_b] {
        args.extend(relay.iter().map(String::as_str));
        args.extend(extra);
    }
    let (a, b) = pump(floe_ice(&args_a), floe_ice(&args_b), LIMIT);
    assert_echoed(&a, &b);
    for peer in [&a, &b] {
        let candidates: Vec<&String> = peer
            .signalling
            .iter()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert!(!candidates.is_empty(), "{peer:?}");
        assert!(
            candidates
                .iter()
                .all(|l| l.contains(" udp ") && l.contains(" typ relay ")),
            "{candidates:?}"
        );
    }
    Some(a)
}

/// TURN over TLS (RFC 8656 §3.1): the relayed candidates come from allocations made over
/// TLS connections to coturn's TLS port, which speaks nothing else; the certificate is the
/// test's self-signed one, trusted with `--turn-ca`.
#[test]
fn floe_peers_relay_only_through_coturn_over_tls() {
    let test = "floe_peers_relay_only_through_coturn_over_tls";
    let Some(coturn) = Coturn::start_tls(test, &[]) else {
        return;
    };
    let ca = coturn.cert.cert.to_string_lossy().into_owned();
    let extra = ["--turn-tls", "--turn-ca", &ca];
    let Some(a) = floe_peers_relay_only_over(test, coturn.tls_addr, &extra) else {
        return;
    };
    let (local, remote) = a.connected().unwrap();
    let loopback: IpAddr = [127, 0, 0, 1].into();
    assert_eq!((local.ip(), remote.ip()), (loopback, loopback));
}

#[test]
fn floe_peers_relay_only_through_coturn_over_tcp() {
    let test = "floe_peers_relay_only_through_coturn_over_tcp";
    let Some(coturn) = Coturn::start(test, &[]) else {
        return;
    };
    floe_peers_relay_only_over(test, coturn.addr, &["--turn-tcp"]);
}

/// A TLS server whose certificate is not trusted gives no relayed candidate: with
/// relay-only there is nothing to connect with, and the peer says why it failed.
#[test]
fn floe_ice_refuses_an_untrusted_tls_turn_server() {
    let test = "floe_ice_refuses_an_untrusted_tls_turn_server";
    let Some(coturn) = Coturn::start_tls(test, &[]) else {
        return;
    };
    let Some(other) = floe_tests::interop::SelfSignedCert::make(test) else {
        return;
    };
    let Some(ip) = own_ip(test) else { return };
    let ip = ip.to_string();
    let ca = other.cert.to_string_lossy().into_owned();
    let mut args = vec!["--controlling", "--host-ip", &ip, "--timeout", "5"];
    let relay = relay_args(coturn.tls_addr);
    args.extend(relay.iter().map(String::as_str));
    args.extend(["--turn-tls", "--turn-ca", &ca]);
    let out = peers::run_alone(floe_ice(&args), "", false, LIMIT);
    // Gathering ends without a candidate (end-of-candidates at once after the failure).
    assert!(
        !out.signalling.iter().any(|l| l.starts_with("a=candidate:")),
        "{out:?}"
    );
    assert!(
        out.signalling.iter().any(|l| l == "a=end-of-candidates"),
        "{out:?}"
    );
    assert!(out.stderr.contains("invalid peer certificate"), "{out:?}");
    // Stdin stays open (no end-of-candidates from a peer): ICE times out.
    assert_eq!(out.code, Some(3), "{out:?}");
}
