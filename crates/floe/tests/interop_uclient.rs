//! coturn's `turnutils_uclient` through `floe server` on 127.0.0.1: over UDP, over TCP
//! (`-t`) and TLS (`-t -S`) control connections, and with RFC 6062 TCP relays (`-T`, and
//! `-T -P` where the peer connects to the relay).
//!
//! The tools (`turnutils_uclient`, and `openssl` for the TLS certificate) are looked up like
//! every interop tool (`floe_tests::interop::tool`): missing, the test reports itself
//! skipped, or fails when `FLOE_INTEROP=1`.
//!
//! uclient runs in its Send-indication mode (`-s`): in channel mode it picks channel numbers
//! from RFC 5766's 0x4000-0x7FFF, and floe follows RFC 8656 §12.2, which answers numbers
//! above 0x4FFF with 400, so most of its ChannelBinds are refused by design. (`-T` ignores
//! `-s`: its data goes over data connections.)
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use common::{FloeServer, free_port_below_relays, stat};
use floe_tests::interop::tool;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// uclient's totals: messages sent, received, and the loss it reports in percent.
#[derive(Debug)]
struct Totals {
    sent: u64,
    received: u64,
    lost_percent: f64,
}

/// The number at the start of `text`.
fn number(text: &str) -> Option<f64> {
    let end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

fn totals(output: &str) -> Option<Totals> {
    // "start_mclient: tot_send_msgs=200, tot_recv_msgs=200": the last such line is the total.
    let last = |key: &str| number(&output[output.rfind(key)? + key.len()..]);
    // "Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)"
    let lost = output
        .lines()
        .rev()
        .find(|l| l.contains("Total lost packets"))?;
    Some(Totals {
        sent: last("tot_send_msgs=")? as u64,
        received: last("tot_recv_msgs=")? as u64,
        lost_percent: number(&lost[lost.find('(')? + 1..])?,
    })
}

/// Runs `program args` with `env`, killing it (by PID) after `limit`; returns success and
/// stdout.
fn run_bounded(
    program: &std::path::Path,
    args: &[&str],
    limit: Duration,
    env: &[(&str, &std::ffi::OsStr)],
) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("uclient starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = reader.join().unwrap_or_default();
    assert!(
        status.is_some(),
        "uclient did not finish in {limit:?}:\n{output}"
    );
    (status.is_some_and(|s| s.success()), output)
}

/// uclient through a `floe server` relaying on `relay_ports` (each test its own range, so
/// that tests running at once do not take each other's ports).
fn uclient_through_floe(test: &str, relay_ports: &str, extra: &[&str]) {
    let Some(run) = uclient_run(test, relay_ports, &[], &["-s", "-y"], extra) else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert!(t.received * 100 >= t.sent * 95, "more than 5% lost: {t:?}");
    assert!(t.lost_percent < 5.0, "{t:?}");
    // Everything uclient received went through floe, as Data indications (-s).
    assert!(stat(&floe, "to_client_packets") >= t.received, "{floe:?}");
    assert!(stat(&floe, "data_indications") >= t.received);
    assert_eq!(stat(&floe, "send_errors"), 0);
}

/// What a uclient run through floe gave: uclient's totals, and floe's output (its last
/// `stats` line printed on exit).
struct Run {
    totals: Totals,
    floe: Vec<String>,
}

/// Runs uclient (`mode` flags, then the common ones, then `extra`) against a `floe server`
/// on 127.0.0.1 with `server_args` added, relaying on `relay_ports`; the server listens on
/// one port number for UDP and for whatever `server_args` add with `{port}`. `None` if a
/// tool is missing and not required.
fn uclient_run(
    test: &str,
    relay_ports: &str,
    server_args: &[&str],
    mode: &[&str],
    extra: &[&str],
) -> Option<Run> {
    let uclient = tool("turnutils_uclient", test)?;
    let port = free_port_below_relays();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--listen",
        &listen,
        "--realm",
        "floe.test",
        "--user",
        "alice:wonderland",
        "--allow-loopback-peers",
        "--relay-ports",
        relay_ports,
    ];
    let server_args: Vec<String> = server_args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    args.extend(server_args.iter().map(String::as_str));
    let server = FloeServer::start(&args);
    let port = port.to_string();
    let mut args: Vec<&str> = mode.to_vec();
    args.extend(["-u", "alice", "-w", "wonderland"]);
    // 50 messages of 120 bytes per session, 10 ms apart; two clients, RTP and RTCP each.
    args.extend(["-n", "50", "-l", "120", "-z", "10"]);
    // -e/-r name a peer, unused with -y (the clients are each other's peers).
    args.extend(["-e", "127.0.0.1", "-r", "3480", "-p", &port]);
    args.extend(extra);
    args.push("127.0.0.1");
    let (ok, output) = run_bounded(&uclient, &args, Duration::from_secs(60), &[]);
    assert!(ok, "uclient failed:\n{output}");
    let totals = totals(&output).unwrap_or_else(|| panic!("no totals in:\n{output}"));
    assert!(totals.sent >= 100, "{totals:?}");
    let (status, floe) = server.signal_and_wait("INT");
    assert!(status.success());
    Some(Run { totals, floe })
}

/// A self-signed certificate for 127.0.0.1 made with `openssl`, in a directory removed on
/// drop.
struct Certificate {
    dir: std::path::PathBuf,
}

impl Certificate {
    fn make(test: &str) -> Option<Certificate> {
        let openssl = tool("openssl", test)?;
        let dir = std::env::temp_dir().join(format!("floe-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let status = Command::new(openssl)
            .current_dir(&dir)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl failed");
        Some(Certificate { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn uclient_client_to_client_through_floe() {
    uclient_through_floe("uclient_client_to_client_through_floe", "29000-29499", &[]);
}

#[test]
fn uclient_with_dont_fragment_through_floe() {
    // -g: DONT-FRAGMENT in Allocate and Send indications (RFC 8656 §7.2 step 4, §11.2).
    uclient_through_floe(
        "uclient_with_dont_fragment_through_floe",
        "29500-29999",
        &["-g"],
    );
}

#[test]
fn uclient_output_is_parsed() {
    let sample = "5: : start_mclient: msz=4, tot_send_msgs=168, tot_recv_msgs=168\n\
                  5: : start_mclient: tot_send_msgs=200, tot_recv_msgs=199\n\
                  5: : Total lost packets 1 (0.500000%), total send dropped 0 (0.000000%)\n";
    let t = totals(sample).unwrap();
    assert_eq!((t.sent, t.received), (200, 199));
    assert!((t.lost_percent - 0.5).abs() < 1e-9);
}

/// Wildcard listeners (`0.0.0.0`, `[::]`) answer from the address the client used (the
/// destination IP from `IP_PKTINFO`, the source IP set per datagram): uclient's connected
/// sockets would drop anything else. Run in a private network namespace (`unshare -rn`),
/// where only loopback exists, so binding the wildcard address exposes nothing.
#[test]
fn uclient_through_wildcard_listeners_in_a_private_namespace() {
    let test = "uclient_through_wildcard_listeners_in_a_private_namespace";
    let (Some(uclient), Some(unshare)) = (tool("turnutils_uclient", test), tool("unshare", test))
    else {
        return;
    };
    let probe = Command::new(&unshare)
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED {test}: no user and network namespaces (unshare -rn) or no `ip`");
        return;
    }
    let script = r#"
        ip link set lo up
        "$FLOE" server --listen 0.0.0.0:3478 --listen '[::]:3478' \
            --relay-ip 127.0.0.1 --relay-ip ::1 --relay-ports 29000-29999 \
            --user alice:wonderland --allow-loopback-peers --duration 50 >"$OUT" 2>/dev/null &
        P=$!
        sleep 0.5
        U="-s -y -u alice -w wonderland -n 20 -z 5 -l 120 -r 3480 -p 3478"
        echo "== IPv4"; "$UCLIENT" $U -e 127.0.0.1 127.0.0.7
        echo "== IPv6"; "$UCLIENT" $U -x -e ::1 ::1
        kill -INT $P; wait $P
        echo "== floe"; cat "$OUT"
    "#;
    let out = std::env::temp_dir().join(format!("floe-ns-{}.out", std::process::id()));
    let (ok, output) = run_bounded(
        &unshare,
        &["-rn", "sh", "-c", script],
        Duration::from_secs(60),
        &[
            ("FLOE", env!("CARGO_BIN_EXE_floe").as_ref()),
            ("UCLIENT", uclient.as_os_str()),
            ("OUT", out.as_os_str()),
        ],
    );
    let _ = std::fs::remove_file(&out);
    assert!(ok, "{output}");
    let (v4, rest) = output
        .split_once("== IPv6")
        .unwrap_or_else(|| panic!("{output}"));
    let (v6, floe) = rest
        .split_once("== floe")
        .unwrap_or_else(|| panic!("{output}"));
    for (family, text) in [("IPv4", v4), ("IPv6", v6)] {
        let t = totals(text).unwrap_or_else(|| panic!("{family}: no totals in:\n{text}"));
        assert!(t.sent >= 40, "{family}: {t:?}");
        assert!(t.received * 100 >= t.sent * 95, "{family}: {t:?}");
    }
    let floe: Vec<String> = floe.lines().map(String::from).collect();
    assert!(
        floe.iter().any(|l| l == "listening udp 0.0.0.0:3478"),
        "{floe:?}"
    );
    assert_eq!(stat(&floe, "send_errors"), 0);
}

#[test]
fn uclient_over_tcp_through_floe() {
    // -t: TCP to the server (RFC 8656 §3.1), UDP relays; Send and Data indications on the
    // TCP connections.
    let test = "uclient_over_tcp_through_floe";
    let server = ["--listen-tcp", "127.0.0.1:{port}"];
    let Some(run) = uclient_run(test, "31000-31199", &server, &["-t", "-s", "-y"], &[]) else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert!(t.received * 100 >= t.sent * 95, "more than 5% lost: {t:?}");
    assert!(stat(&floe, "data_indications") >= t.received, "{floe:?}");
    assert!(stat(&floe, "stream_bytes_in") > 0);
    assert_eq!(stat(&floe, "stream_dropped"), 0);
    assert_eq!(stat(&floe, "tcp_connections"), 0, "all closed by the end");
}

#[test]
fn uclient_tcp_relay_through_floe() {
    // -T: RFC 6062 TCP allocations; each client Connects to the other's relayed address,
    // binds the data connection, and sends its messages through the bridge.
    let test = "uclient_tcp_relay_through_floe";
    let server = ["--listen-tcp", "127.0.0.1:{port}", "--tcp-allocations"];
    let Some(run) = uclient_run(test, "31200-31399", &server, &["-T"], &[]) else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert_eq!(t.received, t.sent, "{t:?}");
    assert!(stat(&floe, "tcp_connects") >= 1, "{floe:?}");
    assert!(stat(&floe, "bridged_bytes") >= t.sent * 120, "{floe:?}");
    assert_eq!(stat(&floe, "peer_connections"), 0, "all closed by the end");
}

#[test]
fn uclient_passive_tcp_relay_through_floe() {
    // -T -P: the peer connects to the relayed address (RFC 6062 §5.3, ConnectionAttempt).
    // uclient counts both directions but only one carries data in this mode: coturn's own
    // server shows the same 50% "loss" with it.
    let test = "uclient_passive_tcp_relay_through_floe";
    let server = ["--listen-tcp", "127.0.0.1:{port}", "--tcp-allocations"];
    let Some(run) = uclient_run(test, "31400-31599", &server, &["-T", "-P"], &[]) else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert!(t.received * 2 >= t.sent, "{t:?}");
    assert!(stat(&floe, "tcp_attempts") >= 1, "{floe:?}");
    assert!(stat(&floe, "bridged_bytes") >= t.received * 120, "{floe:?}");
}

#[test]
fn uclient_over_tls_through_floe() {
    // -t -S: TLS to the server with a self-signed certificate (uclient does not verify
    // it without -E). uclient loses a few percent of the last messages over TLS against
    // coturn's own server too, so the bar here is 90%.
    let test = "uclient_over_tls_through_floe";
    let Some(cert) = Certificate::make(test) else {
        return;
    };
    let (c, k) = (cert.path("cert.pem"), cert.path("key.pem"));
    let server = [
        "--listen-tls",
        "127.0.0.1:{port}",
        "--cert",
        &c,
        "--key",
        &k,
    ];
    let Some(run) = uclient_run(test, "31600-31799", &server, &["-t", "-S", "-s", "-y"], &[])
    else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert!(t.received * 100 >= t.sent * 90, "more than 10% lost: {t:?}");
    // floe relayed every message and queued it to its TLS connection.
    assert!(stat(&floe, "to_client_packets") >= t.sent, "{floe:?}");
    assert_eq!(stat(&floe, "stream_dropped"), 0);
}

#[test]
fn uclient_tcp_relay_over_tls_through_floe() {
    // -T -S: RFC 6062 with TLS control and data connections.
    let test = "uclient_tcp_relay_over_tls_through_floe";
    let Some(cert) = Certificate::make(test) else {
        return;
    };
    let (c, k) = (cert.path("cert.pem"), cert.path("key.pem"));
    let server = [
        "--listen-tls",
        "127.0.0.1:{port}",
        "--cert",
        &c,
        "--key",
        &k,
        "--tcp-allocations",
    ];
    let Some(run) = uclient_run(test, "31800-31999", &server, &["-T", "-S"], &[]) else {
        return;
    };
    let (t, floe) = (run.totals, run.floe);
    assert_eq!(t.received, t.sent, "{t:?}");
    assert!(stat(&floe, "bridged_bytes") >= t.sent * 120, "{floe:?}");
}
