//! Wiring two ICE peers that signal with SDP lines on stdin/stdout (`floe ice`,
//! `tests/peers/aioice_peer.py`): every `a=` line one prints goes to the other's stdin, as a
//! pipe would carry it; status lines are collected. Every process is killed by PID when the
//! time limit passes or the test panics.
#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The TURN test user.
pub const USER: &str = "alice";
/// The TURN test password.
pub const PASSWORD: &str = "wonderland";

/// `floe ice` with `args`.
pub fn floe_ice(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
    c.arg("ice").args(args);
    c
}

/// The address test peers use for host candidates: loopback (an explicit `--host-ip` makes
/// loopback a candidate), so no test traffic leaves the machine. Always `Some`; the `Option`
/// keeps the call sites' shape.
pub fn own_ip(_test: &str) -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, 1]))
}

/// What one peer did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The exit code (`None`: killed at the time limit).
    pub code: Option<i32>,
    /// Status lines (not `a=`), with the time since both started.
    pub status: Vec<(Duration, String)>,
    /// The `a=` lines it printed.
    pub signalling: Vec<String>,
    /// Its stderr.
    pub stderr: String,
}

impl Outcome {
    /// The first status line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.status
            .iter()
            .map(|(_, l)| l.as_str())
            .find(|l| l.starts_with(prefix))
    }

    /// When the first status line starting with `prefix` came.
    pub fn time_of(&self, prefix: &str) -> Option<Duration> {
        self.status
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(t, _)| *t)
    }

    /// The addresses of the `CONNECTED <local> <remote>` line.
    pub fn connected(&self) -> Option<(SocketAddr, SocketAddr)> {
        let mut words = self.line("CONNECTED ")?.split(' ').skip(1);
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }
}

/// A child killed (by PID) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type SharedStdin = Arc<Mutex<Option<ChildStdin>>>;
type Shared<T> = Arc<Mutex<T>>;

/// Reads `child`'s stdout: `a=` lines to `to`, the rest into `outcome`. At EOF the peer's
/// stdin closes too, as a pipe from an exited process does.
fn forward(
    stdout: impl Read + Send + 'static,
    to: SharedStdin,
    outcome: Shared<Outcome>,
    start: Instant,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut o = outcome.lock().unwrap();
            if line.starts_with("a=") {
                if let Some(stdin) = to.lock().unwrap().as_mut() {
                    let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
                }
                o.signalling.push(line);
            } else {
                o.status.push((start.elapsed(), line));
            }
        }
        to.lock().unwrap().take();
    })
}

fn collect_stderr(stderr: impl Read + Send + 'static, outcome: Shared<Outcome>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        outcome.lock().unwrap().stderr = text;
    })
}

/// Starts `a` and `b`, pumps their signalling lines to each other until both exit, and
/// kills them at `limit`.
pub fn pump(mut a: Command, mut b: Command, limit: Duration) -> (Outcome, Outcome) {
    let start = Instant::now();
    let spawn = |c: &mut Command| {
        Killed(
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("peer starts"),
        )
    };
    let mut children = [spawn(&mut a), spawn(&mut b)];
    let outcomes: [Shared<Outcome>; 2] = Default::default();
    let stdins: [SharedStdin; 2] = [0, 1].map(|i| Arc::new(Mutex::new(children[i].0.stdin.take())));
    let mut threads = Vec::new();
    for i in 0..2 {
        let stdout = children[i].0.stdout.take().expect("piped");
        let stderr = children[i].0.stderr.take().expect("piped");
        threads.push(forward(
            stdout,
            stdins[1 - i].clone(),
            outcomes[i].clone(),
            start,
        ));
        threads.push(collect_stderr(stderr, outcomes[i].clone()));
    }
    let mut codes = [None, None];
    let mut done = [false, false];
    while done.contains(&false) && start.elapsed() < limit {
        for i in 0..2 {
            if let Ok(Some(status)) = children[i].0.try_wait() {
                codes[i] = status.code();
                done[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(children); // kills what is still running
    for t in threads {
        let _ = t.join();
    }
    let [mut oa, mut ob] = outcomes.map(|o| std::mem::take(&mut *o.lock().unwrap()));
    oa.code = codes[0];
    ob.code = codes[1];
    (oa, ob)
}

/// `floe server` as a TURN server on 127.0.0.1 with the test user, loopback peers allowed
/// (the relayed addresses of two clients on one loopback server are loopback addresses).
pub fn floe_turn_server() -> crate::common::FloeServer {
    let listen = format!("127.0.0.1:{}", crate::common::free_port_below_relays());
    let user = format!("{USER}:{PASSWORD}");
    crate::common::FloeServer::start(&[
        "--listen",
        &listen,
        "--user",
        &user,
        "--allow-loopback-peers",
        "--duration",
        "60",
    ])
}

/// The `--turn ... --relay-only` arguments for a server.
pub fn relay_args(server: SocketAddr) -> Vec<String> {
    [
        "--turn",
        &server.to_string(),
        "--turn-user",
        USER,
        "--turn-pass",
        PASSWORD,
        "--relay-only",
    ]
    .map(String::from)
    .to_vec()
}

/// Asserts that the `--send hello` peer `sender` and the `--echo` peer `echo` succeeded.
pub fn assert_echoed(sender: &Outcome, echo: &Outcome) {
    let both = format!("sender: {sender:#?}\necho peer: {echo:#?}");
    assert_eq!(sender.code, Some(0), "{both}");
    assert_eq!(echo.code, Some(0), "{both}");
    assert_eq!(sender.line("ECHOED"), Some("ECHOED hello"), "{both}");
    assert_eq!(echo.line("RECEIVED"), Some("RECEIVED hello"), "{both}");
    let (s, e) = (sender.connected(), echo.connected());
    let ((sl, sr), (el, er)) = (s.expect("sender CONNECTED"), e.expect("echo CONNECTED"));
    // Each side's remote is the other's local, unless a side only knows a relayed or
    // reflexive address of the other.
    assert!(sr == el || er == sl, "{both}");
    for kind in [
        "a=ice-ufrag:",
        "a=ice-pwd:",
        "a=candidate:",
        "a=end-of-candidates",
    ] {
        assert!(
            sender.signalling.iter().any(|l| l.starts_with(kind)),
            "{both}"
        );
    }
}

/// Runs one peer alone: writes `input` to its stdin (closing it when `close_stdin`), and
/// waits at most `limit` for it to exit.
pub fn run_alone(mut peer: Command, input: &str, close_stdin: bool, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = Killed(
        peer.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peer starts"),
    );
    let mut stdin = child.0.stdin.take();
    if let Some(s) = stdin.as_mut() {
        let _ = s.write_all(input.as_bytes()).and_then(|()| s.flush());
    }
    if close_stdin {
        drop(stdin.take());
    }
    let outcome: Shared<Outcome> = Default::default();
    let nowhere: SharedStdin = Arc::new(Mutex::new(None));
    let threads = [
        forward(
            child.0.stdout.take().expect("piped"),
            nowhere,
            outcome.clone(),
            start,
        ),
        collect_stderr(child.0.stderr.take().expect("piped"), outcome.clone()),
    ];
    let mut code = None;
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.0.try_wait() {
            code = status.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(stdin);
    drop(child);
    for t in threads {
        let _ = t.join();
    }
    let mut o = std::mem::take(&mut *outcome.lock().unwrap());
    o.code = code;
    o
}
