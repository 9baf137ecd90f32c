//! The `floe` binary end to end on loopback.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn floe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floe"))
}

/// Kills the child when dropped, so a failing test leaves no server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn stun_against_floe_server() {
    let port = free_port();
    let mut server = Killed(
        floe()
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--duration",
                "20",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Query once the server says it listens (a request sent before would be retransmitted).
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(server.0.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("listening udp"), "{first}");
    let mut last = None;
    for _ in 0..20 {
        let out = floe()
            .args([
                "stun",
                &format!("127.0.0.1:{port}"),
                "--local",
                "127.0.0.1:0",
                "--json",
                "--rto-ms",
                "100",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["mapped"], v["local"], "no NAT on loopback");
            assert!(v["mapped"].as_str().unwrap().starts_with("127.0.0.1:"));
            // Under load a 100 ms RTO can expire once; the count is reported either way.
            assert!(v["retransmissions"].as_u64().is_some_and(|n| n < 7), "{v}");
            return;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("floe stun never succeeded: {last:?}");
}

#[test]
fn demo_succeeds() {
    let out = floe().arg("demo").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "XOR-MAPPED-ADDRESS",
        " typ relay ",
        " typ host",
        "connected: A relay 127.0.0.1:",
        "B received \"hello from A\"",
        "A received \"hello from B\"",
        "deleted its TURN allocation (0 left)",
        "done in ",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = floe().args(["stun"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = floe().args(["no-such-command"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `floe nat --lifetime` on loopback against an in-process RFC 5780 binding server: no NAT,
/// so the "mapping" never expires and the search ends at its maximum.
#[test]
fn nat_lifetime_without_a_nat_reaches_the_maximum() {
    let server = drivers::stun::BindingService::spawn(
        &["127.0.0.1:0".parse().unwrap()],
        stun_proto::server::BindingServerConfig::default(),
    )
    .unwrap();
    let addr = server.local_addrs()[0];
    let out = floe()
        .args([
            "nat",
            &addr.to_string(),
            "--local",
            "127.0.0.1:0",
            "--no-hairpin",
            "--lifetime",
            "--lifetime-max",
            "2",
            "--lifetime-precision",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mapped"], v["local"], "no NAT on loopback");
    let l = &v["binding_lifetime"];
    assert_eq!(l["at_least_secs"], 2.0, "{v}");
    assert!(l["less_than_secs"].is_null(), "{v}");
    // T = 0, then T = 2 s: both answered on the first socket.
    assert_eq!(l["rounds"], 2, "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("after 2 s idle: alive"), "{stderr}");
    server.stop().unwrap();
}
