//! Running `floe server` from tests: start it, read what it prints, signal it, and read its
//! `stats` line. The process is killed by PID when dropped, so a failing test leaves nothing
//! running.
#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long `start` waits for the server to say where it listens.
const START: Duration = Duration::from_secs(10);
/// After the last `listening` line of a STUN-only server (which prints nothing else), how
/// long to wait for more.
const QUIET: Duration = Duration::from_millis(300);

/// A UDP port on 127.0.0.1, free a moment ago, below the default relay range (49152-65535)
/// and the ranges the tests give their relays (27000-29999).
pub fn free_port_below_relays() -> u16 {
    for _ in 0..10_000 {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && port < 49152 && !(27000..30000).contains(&port) {
            return port;
        }
    }
    panic!("no free port below 49152");
}

/// The value of `key` in the last `stats key=value ...` line of `output`.
pub fn stat(output: &[String], key: &str) -> u64 {
    let line = output
        .iter()
        .rev()
        .find(|l| l.starts_with("stats "))
        .unwrap_or_else(|| panic!("no stats line in {output:?}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// A running `floe server`.
#[derive(Debug)]
pub struct FloeServer {
    child: Child,
    lines: Receiver<String>,
    /// The `listening udp ADDR` addresses.
    pub listening: Vec<SocketAddr>,
    /// Everything it printed on stdout so far.
    pub output: Vec<String>,
}

impl FloeServer {
    /// Starts `floe server ARGS` and reads its first lines: the listening addresses, and
    /// for a TURN server the relay ranges and the `turn realm` line.
    pub fn start(args: &[&str]) -> FloeServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
            .arg("server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("floe server starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = FloeServer {
            child,
            lines,
            listening: Vec::new(),
            output: Vec::new(),
        };
        let deadline = Instant::now() + START;
        loop {
            // A STUN-only server prints its listening lines and nothing more.
            let wait = match server.listening.is_empty() {
                true => deadline.saturating_duration_since(Instant::now()),
                false => QUIET,
            };
            match server.lines.recv_timeout(wait) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening udp ") {
                        server.listening.push(addr.parse().expect("an address"));
                    }
                    let done = line.starts_with("turn realm ");
                    server.output.push(line);
                    if done {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) if !server.listening.is_empty() => break,
                Err(_) => panic!(
                    "floe server {args:?} did not start: {:?} {:?}",
                    server.output,
                    server.child.try_wait()
                ),
            }
        }
        server
    }

    /// Reads lines until one matches `pred` (panics after `timeout`).
    pub fn wait_line(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pred(&line);
                    self.output.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no matching line in {:?}", self.output),
            }
        }
    }

    /// Sends `signal` (`INT`, `TERM`, ...) by PID and waits for the exit.
    pub fn signal_and_wait(mut self, signal: &str) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
        self.wait_exit(START)
    }

    /// Waits at most `timeout` for the server to exit by itself (killed and a panic after
    /// that); returns its status and everything it printed.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("floe server did not exit in {timeout:?}: {:?}", self.output);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader stops at EOF: take the last lines.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.output.push(line);
        }
        (status, self.output.clone())
    }
}

impl Drop for FloeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
