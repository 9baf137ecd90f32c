//! Running real peers (coturn, aioice, tshark) from tests.
//!
//! A test that needs a tool calls [`tool`]: when the tool is missing, the test fails if
//! `FLOE_INTEROP=1` (as `.ci/run` sets it) and otherwise reports itself skipped. Every process
//! a test starts is a [`Process`], killed by PID when dropped, so a failing test leaves
//! nothing running; servers bind loopback only.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
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
    /// required. It listens for UDP and TCP on [`addr`](Self::addr); TLS is off.
    pub fn start(test: &str, extra: &[&str]) -> Option<Coturn> {
        let binary = tool("turnserver", test)?;
        Some(Coturn::launch(binary, None, extra))
    }

    /// Starts coturn as [`start`](Self::start) does, plus a TLS listener on another port of
    /// 127.0.0.1 with a self-signed certificate for `127.0.0.1` and `localhost` (made with
    /// the `openssl` command, which must be installed too). `None` if a tool is missing and
    /// not required.
    pub fn start_tls(test: &str, extra: &[&str]) -> Option<CoturnTls> {
        let binary = tool("turnserver", test)?;
        let cert = SelfSignedCert::make(test)?;
        let tls_port = free_tcp_port([127, 0, 0, 1].into());
        let coturn = Coturn::launch(binary, Some((&cert, tls_port)), extra);
        let tls_addr = SocketAddr::new(coturn.addr.ip(), tls_port);
        let listening = wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&tls_addr, Duration::from_millis(200)).is_ok()
        });
        assert!(listening, "turnserver did not listen for TLS on {tls_addr}");
        Some(CoturnTls {
            coturn,
            tls_addr,
            cert,
        })
    }

    fn launch(binary: PathBuf, tls: Option<(&SelfSignedCert, u16)>, extra: &[&str]) -> Coturn {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let port = free_udp_port(ip);
        let addr = SocketAddr::new(ip, port);
        let mut cmd = Command::new(binary);
        cmd.args([
            "-n",
            "--no-cli",
            "--no-dtls",
            "--no-stdout-log",
            "--simple-log",
        ]);
        match tls {
            None => {
                cmd.arg("--no-tls");
            }
            Some((cert, tls_port)) => {
                cmd.arg("--cert")
                    .arg(&cert.cert)
                    .arg("--pkey")
                    .arg(&cert.key)
                    .args(["--tls-listening-port", &tls_port.to_string()]);
            }
        }
        cmd.args([
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
        Coturn { process, addr }
    }
}

/// A coturn with a TLS listener, from [`Coturn::start_tls`].
#[derive(Debug)]
pub struct CoturnTls {
    /// The server (UDP and TCP on `coturn.addr`).
    pub coturn: Coturn,
    /// Where it listens for TLS.
    pub tls_addr: SocketAddr,
    /// Its certificate (also the trust anchor clients need: it is self-signed).
    pub cert: SelfSignedCert,
}

/// A self-signed certificate (ECDSA P-256, one day) for `IP:127.0.0.1` and `DNS:localhost`,
/// in a directory of its own that is removed on drop.
#[derive(Debug)]
pub struct SelfSignedCert {
    /// The directory holding both files.
    pub dir: PathBuf,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

impl SelfSignedCert {
    /// Makes one with the `openssl` command; `None` (skipped) if it is not installed and
    /// not required.
    pub fn make(test: &str) -> Option<SelfSignedCert> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let openssl = tool("openssl", test)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("floe-cert-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl req failed: {status}");
        Some(SelfSignedCert { dir, cert, key })
    }
}

impl Drop for SelfSignedCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port on `ip` that was free a moment ago.
pub fn free_tcp_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
