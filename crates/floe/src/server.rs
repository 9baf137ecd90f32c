//! `floe server`: a STUN and TURN server over UDP, TCP and TLS (RFC 8489, RFC 8656), with
//! RFC 6062 TCP allocations on request and RFC 5780 NAT behaviour discovery when given a
//! second address.
//!
//! With a user or a REST secret it runs floe's TURN server driver (worker threads, batched
//! I/O, GSO, TCP and TLS listeners); without either it serves STUN Binding over UDP only.
//! Settings come from flags and/or a TOML file (see [`settings`]). It prints `listening udp
//! ADDR` (and `listening tcp ADDR`, `listening tls ADDR`) for every listener, a `stats` line
//! every `--stats-interval` seconds and one on exit (Ctrl-C, SIGTERM, or the end of
//! `--duration`), and logs allocations to stderr.

mod report;
mod settings;

use drivers::stun::BindingService;
use drivers::turn_server::{self, TurnServerOptions};
use report::stats_line;
use settings::{Plan, Settings};
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Arguments of `floe server`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without --user or --secret the server answers STUN Binding requests only (TURN requests get
400 Bad Request). With them it is a TURN server too, over UDP and, with --listen-tcp and
--listen-tls, over TCP and TLS (for networks that block UDP; TLS on port 443 passes most
firewalls). --tcp-allocations adds RFC 6062 TCP relays to TCP peers.

Examples:
  floe server --listen 127.0.0.1:3478 --realm example.org --user alice:wonderland --allow-loopback-peers
  floe server --listen 0.0.0.0:3478 --relay-ip 203.0.113.7 --secret s3cret --workers 2
  floe server --listen 0.0.0.0:3478 --listen-tcp 0.0.0.0:3478 --listen-tls 0.0.0.0:443 \\
      --cert /etc/floe/cert.pem --key /etc/floe/key.pem --relay-ip 203.0.113.7 --secret s3cret
  floe server --config /etc/floe/server.toml

The TOML file takes the flags' names as keys; repeatable flags take arrays, switches take
booleans. Flags given on the command line override the file (a repeated flag replaces the
file's list):
  listen = [\"0.0.0.0:3478\"]
  listen-tcp = [\"0.0.0.0:3478\"]
  listen-tls = [\"0.0.0.0:443\"]
  cert = \"/etc/floe/cert.pem\"
  key = \"/etc/floe/key.pem\"
  tcp-allocations = true
  relay-ip = [\"203.0.113.7\"]
  relay-ports = \"49152-65535\"
  realm = \"example.org\"
  user = [\"alice:wonderland\"]
  stats-interval = 60")]
pub struct Args {
    /// Read settings from this TOML file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Runs `floe server`.
pub fn run(args: Args) -> io::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => {
            let shown = path.display();
            let text = std::fs::read_to_string(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
            Settings::from_toml(&text).map_err(|e| invalid(format!("{shown}: {e}")))?
        }
        None => Settings::default(),
    };
    let settings = args.settings.over(file);
    let plan = settings.plan().map_err(invalid)?;
    let signals = signals()?;
    let deadline = settings.duration().map(|d| Instant::now() + d);
    match plan {
        Plan::StunOnly { listen, config } => {
            eprintln!("floe server: no --user or --secret: serving STUN only");
            let service = BindingService::spawn(&listen, config)?;
            for addr in service.local_addrs() {
                say(format_args!("listening udp {addr}"));
            }
            let why = wait(&signals, deadline, None, || {}, || true);
            eprintln!("floe server: stopping ({why})");
            service.stop()?;
        }
        Plan::Turn(options) => run_turn(*options, &signals, deadline, &settings)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn run_turn(
    options: TurnServerOptions,
    signals: &Receiver<()>,
    deadline: Option<Instant>,
    settings: &Settings,
) -> io::Result<()> {
    let relays = options.config.relays.clone();
    let (realm, workers) = (options.config.realm.clone(), options.workers);
    let started = Instant::now();
    let server = turn_server::spawn(options)?;
    for addr in server.local_addrs() {
        say(format_args!("listening udp {addr}"));
    }
    for addr in server.tcp_addrs() {
        say(format_args!("listening tcp {addr}"));
    }
    for addr in server.tls_addrs() {
        say(format_args!("listening tls {addr}"));
    }
    for r in &relays {
        say(format_args!(
            "relay {} ports {}-{}",
            r.ip,
            r.ports.start(),
            r.ports.end()
        ));
    }
    say(format_args!("turn realm {realm} workers {workers}"));
    let why = wait(
        signals,
        deadline,
        settings.stats_interval(),
        || {
            say(format_args!(
                "{}",
                stats_line(started.elapsed(), &server.stats())
            ))
        },
        || server.is_running(),
    );
    eprintln!("floe server: stopping ({why})");
    // A worker that stopped by itself returns its error here: the exit status says so.
    let last = server.stop()?;
    say(format_args!("{}", stats_line(started.elapsed(), &last)));
    Ok(())
}

/// Prints a line to stdout. A server keeps running when nobody reads its output any more
/// (`println!` would panic on a closed pipe).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(io::stdout(), "{line}");
}

/// SIGINT, SIGTERM and SIGHUP, as messages on a channel.
fn signals() -> io::Result<Receiver<()>> {
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| io::Error::other(format!("cannot handle signals: {e}")))?;
    Ok(rx)
}

/// How often [`wait`] checks that the server still runs.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// Waits for a signal, the deadline, or `alive` turning false, calling `tick` every
/// `interval`. Returns why it stopped waiting.
fn wait(
    signals: &Receiver<()>,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    mut tick: impl FnMut(),
    alive: impl Fn() -> bool,
) -> &'static str {
    let mut next_tick = interval.map(|i| Instant::now() + i);
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return "--duration elapsed";
        }
        if !alive() {
            return "a worker stopped";
        }
        if let (Some(at), Some(every)) = (next_tick, interval) {
            if at <= now {
                tick();
                next_tick = Some(at + every);
                continue;
            }
        }
        let wake = [deadline, next_tick, Some(now + LIVENESS_CHECK)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
        let received = signals.recv_timeout(wake.saturating_duration_since(now));
        match received {
            Ok(()) => return "signal",
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return "signal handler gone",
        }
    }
}
