//! `floe ice` resolving a peer's mDNS candidate over real multicast (224.0.0.251:5353), in a
//! network namespace this test makes, whose loopback carries multicast: nothing reaches the
//! machine's own network. The responder and the silent peer are
//! tests/peers/mdns_responder.py, in the same namespace.
//!
//! Needs root, `ip` (iproute2) and python3: without them the test reports itself skipped, or
//! fails when `FLOE_INTEROP=1` (as `.ci/run` sets).
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;
mod peers;

use floe_tests::interop::{required, tool};
use peers::run_alone;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const NAME: &str = "5e0f6a2b-93c4-4d7e-8b1a-2c3d4e5f6a7b.local";

/// A network namespace, deleted when dropped.
struct Namespace(String);

impl Namespace {
    /// A namespace with loopback up, multicast on it, and the multicast route through it
    /// from 127.0.0.1; `None` (after saying why) when that cannot be made here.
    fn new(ip: &Path, test: &str) -> Option<Namespace> {
        let name = format!("floe-mdns-{}", std::process::id());
        let ns = Namespace(name.clone());
        let steps: [&[&str]; 4] = [
            &["netns", "add", &name],
            &["-n", &name, "link", "set", "lo", "up", "multicast", "on"],
            &[
                "-n",
                &name,
                "route",
                "add",
                "224.0.0.0/4",
                "dev",
                "lo",
                "src",
                "127.0.0.1",
            ],
            &["-n", &name, "addr", "show", "lo"],
        ];
        for args in steps {
            let out = Command::new(ip).args(args).output().ok()?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                if required() {
                    panic!("{test}: `ip {}` failed: {why}", args.join(" "));
                }
                eprintln!("SKIPPED {test}: `ip {}` failed: {why}", args.join(" "));
                return None;
            }
        }
        Some(ns)
    }

    /// `program args` run inside the namespace.
    fn command(&self, ip: &Path, program: &Path) -> Command {
        let mut c = Command::new(ip);
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn an_mdns_name_is_resolved_over_multicast() {
    let test = "an_mdns_name_is_resolved_over_multicast";
    let (Some(ip), Some(python)) = (tool("ip", test), tool("python3", test)) else {
        return;
    };
    let Some(ns) = Namespace::new(&ip, test) else {
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/peers/mdns_responder.py"
    );
    let mut responder = ns
        .command(&ip, &python)
        .args([script, NAME])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the responder starts");
    let mut lines = BufReader::new(responder.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let port: u16 = first
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PORT <port> first, not {first:?}"));
    let input = format!(
        "a=ice-ufrag:abcd\na=ice-pwd:abcdefghijklmnopqrstuvwx\n\
         a=candidate:1 1 udp 2130706431 {NAME} {port} typ host\n"
    );
    // Default resolution: multicast queries from an ephemeral port.
    let mut floe = ns.command(&ip, Path::new(env!("CARGO_BIN_EXE_floe")));
    floe.args([
        "ice",
        "--controlling",
        "--timeout",
        "3",
        "--host-ip",
        "127.0.0.1",
    ]);
    let out = run_alone(floe, &input, false, Duration::from_secs(30));
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = responder.kill();
    let _ = responder.wait();
    assert_eq!(
        said,
        ["QUERY", "CHECK"],
        "the multicast query answered, then a check at the name's address; floe: {out:?}"
    );
    assert_eq!(out.code, Some(3), "the silent peer never answers: {out:?}");
}
