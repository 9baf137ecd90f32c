//! coturn's `turnutils_uclient` through `floe server` over UDP on 127.0.0.1.
//!
//! The tool is looked up like every interop tool (`floe_tests::interop::tool`): missing, the
//! test reports itself skipped, or fails when `FLOE_INTEROP=1`.
//!
//! uclient runs in its Send-indication mode (`-s`): in channel mode it picks channel numbers
//! from RFC 5766's 0x4000-0x7FFF, and floe follows RFC 8656 §12.2, which answers numbers
//! above 0x4FFF with 400, so most of its ChannelBinds are refused by design.
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
    let Some(uclient) = tool("turnutils_uclient", test) else {
        return;
    };
    let port = free_port_below_relays();
    let listen = format!("127.0.0.1:{port}");
    let server = FloeServer::start(&[
        "--listen",
        &listen,
        "--realm",
        "floe.test",
        "--user",
        "alice:wonderland",
        "--allow-loopback-peers",
        "--relay-ports",
        relay_ports,
    ]);
    let port = port.to_string();
    let mut args = vec!["-s", "-y", "-u", "alice", "-w", "wonderland"];
    // 50 messages of 120 bytes per session, 10 ms apart; two clients, RTP and RTCP each.
    args.extend(["-n", "50", "-l", "120", "-z", "10"]);
    // -e/-r name a peer, unused with -y (the clients are each other's peers).
    args.extend(["-e", "127.0.0.1", "-r", "3480", "-p", &port]);
    args.extend(extra);
    args.push("127.0.0.1");
    let (ok, output) = run_bounded(&uclient, &args, Duration::from_secs(60), &[]);
    assert!(ok, "uclient failed:\n{output}");
    let t = totals(&output).unwrap_or_else(|| panic!("no totals in:\n{output}"));
    assert!(t.sent >= 100, "{t:?}");
    assert!(t.received * 100 >= t.sent * 95, "more than 5% lost: {t:?}");
    assert!(t.lost_percent < 5.0, "{t:?}");

    let (status, floe) = server.signal_and_wait("INT");
    assert!(status.success());
    // Everything uclient received went through floe, as Data indications (-s).
    assert!(stat(&floe, "to_client_packets") >= t.received, "{floe:?}");
    assert!(stat(&floe, "data_indications") >= t.received);
    assert_eq!(stat(&floe, "send_errors"), 0);
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
