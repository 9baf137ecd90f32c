//! Running real peers (coturn, aioice, tshark) from tests.
//!
//! A test that needs a tool calls [`tool`]: when the tool is missing, the test fails if
//! `FLOE_INTEROP=1` (as `.ci/run` sets it) and otherwise reports itself skipped. Every process
//! a test starts is a [`Process`], killed by PID when dropped, so a failing test leaves
//! nothing running; servers bind loopback only.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when interop tests must not skip (`FLOE_INTEROP=1`).
pub fn required() -> bool {
    std::env::var("FLOE_INTEROP").is_ok_and(|v| v == "1")
}

/// Looks `name` up on `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The path of `name`, or `None` after printing that `test` is skipped. Panics instead when
/// interop is required.
pub fn tool(name: &str, test: &str) -> Option<PathBuf> {
    match find(name) {
        Some(p) => Some(p),
        None if required() => panic!("{test}: `{name}` is not installed and FLOE_INTEROP=1"),
        None => {
            eprintln!(
                "SKIPPED {test}: `{name}` is not installed (set FLOE_INTEROP=1 to fail instead)"
            );
            None
        }
    }
}

/// A child process killed (by PID) when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    /// Starts `command` with its output discarded (stderr kept for diagnostics).
    pub fn spawn(name: &str, command: &mut Command) -> std::io::Result<Process> {
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).spawn()?;
        Ok(Process {
            child,
            name: name.to_string(),
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the process has already exited (it failed to start).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port on `ip` that was free a moment ago.
pub fn free_udp_port(ip: IpAddr) -> u16 {
    UdpSocket::bind(SocketAddr::new(ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Polls `ready` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A coturn `turnserver` on loopback with long-term credentials.
#[derive(Debug)]
pub struct Coturn {
    /// The process.
    pub process: Process,
    /// Where it listens (UDP).
    pub addr: SocketAddr,
}

impl Coturn {
    /// The test user.
    pub const USER: &'static str = "alice";
    /// The test password.
    pub const PASSWORD: &'static str = "wonderland";
    /// The realm.
    pub const REALM: &'static str = "floe.test";

    /// Starts coturn on 127.0.0.1 with the test user, loopback peers allowed, and `extra`
    /// arguments; waits until it answers STUN. `None` if coturn is not installed and not
    /// required.
    pub fn start(test: &str, extra: &[&str]) -> Option<Coturn> {
        let binary = tool("turnserver", test)?;
        let ip: IpAddr = [127, 0, 0, 1].into();
        let port = free_udp_port(ip);
        let addr = SocketAddr::new(ip, port);
        let mut cmd = Command::new(binary);
        cmd.args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-stdout-log",
            "--simple-log",
        ])
        .args([
            "--log-file",
            "/dev/null",
            "--listening-ip",
            "127.0.0.1",
            "--relay-ip",
            "127.0.0.1",
        ])
        .args([
            "--listening-port",
            &port.to_string(),
            "--min-port",
            "40000",
            "--max-port",
            "49999",
        ])
        .args(["--lt-cred-mech", "--fingerprint", "--allow-loopback-peers"])
        .args([
            "--realm",
            Self::REALM,
            "--user",
            &format!("{}:{}", Self::USER, Self::PASSWORD),
        ])
        .args(extra);
        let mut process = Process::spawn("turnserver", &mut cmd).expect("turnserver starts");
        let answered = wait_until(Duration::from_secs(10), || {
            process.assert_running();
            let config = stun_proto::client::BindingClientConfig {
                transactions: stun_proto::transaction::TransactionConfig {
                    max_requests: 2,
                    last_wait_factor: 2,
                    initial_rto: Duration::from_millis(100),
                    ..Default::default()
                },
                ..Default::default()
            };
            matches!(
                drivers::stun::query(addr, "127.0.0.1:0".parse().expect("address"), config),
                Ok(stun_proto::client::BindingEvent::Success(_))
            )
        });
        assert!(answered, "turnserver did not answer STUN on {addr}");
        Some(Coturn { process, addr })
    }
}
