//! `floe ice`: an ICE peer whose signalling is SDP attribute lines on stdin and stdout, so
//! that two peers (floe or another implementation speaking the same lines) connect through a
//! pipe.
//!
//! stdout: `a=ice-ufrag:`, `a=ice-pwd:`, `a=ice-pacing:` when `--ta-ms` is not the default
//! 50 ms, one `a=candidate:` line per local candidate as it becomes known,
//! `a=end-of-candidates`; then status lines `CONNECTED <local> <remote>`,
//! `SENT <text>`, `RECEIVED <text>`, `ECHOED <text>`, `FAILED <reason>`. stdin: the peer's
//! lines, in any order; other lines are ignored and EOF counts as end-of-candidates. Logs go
//! to stderr.

use crate::resolve::resolve;
use drivers::ice::tokio::{IceAgent, IceConnection};
use drivers::ice::{IceError, MdnsResolution};
use ice_core::sdp::IceAttribute;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Retries of `--send` before the echo counts as missing.
const SEND_TRIES: u32 = 10;
/// Time between `--send` retries.
const SEND_INTERVAL: Duration = Duration::from_millis(500);

/// Exit code: ICE failed (or could not start).
const EXIT_FAILED: u8 = 1;
/// Exit code: a usage error (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit code: `--timeout` passed before success.
const EXIT_TIMEOUT: u8 = 3;
/// Exit code: the `--send` text did not come back, or something else did.
const EXIT_ECHO: u8 = 4;

/// The default port of TURN over TLS (RFC 8656 §18.5: "turns").
const TURNS_PORT: u16 = 5349;

/// Arguments of `floe ice`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("role").required(true).args(["controlling", "controlled"])),
    after_help = "\
Signalling is SDP attribute lines: this peer prints a=ice-ufrag, a=ice-pwd, a=ice-pacing
(only when --ta-ms is not 50), a=candidate and a=end-of-candidates lines on stdout and reads
the peer's on stdin (in any order; other lines are ignored; EOF counts as
end-of-candidates). Both peers pace checks at the higher of the two Ta values; a peer that
sends no a=ice-pacing counts as 50 ms (RFC 8445 section 14.2). Status lines follow on stdout:
CONNECTED <local> <remote>, SENT <text>, RECEIVED <text>, ECHOED <text>, FAILED <reason>.

Exit codes: 0 success, 1 ICE failed, 2 usage, 3 timeout, 4 echo missing or wrong.

Two peers wired to each other (with a tool that pumps lines both ways, e.g. socat):
  floe ice --controlling --send hello --host-ip 192.0.2.10
  floe ice --controlled --echo --host-ip 192.0.2.10

Where UDP is blocked: a relayed candidate through TURN over TLS (RFC 8656 section 3.1),
trusting the CA (or self-signed certificate) in ca.pem; the certificate must name the
server (its DNS name as given in --turn, else its IP address):
  floe ice --controlling --send hello --relay-only \\
      --turn turn.example.org:443 --turn-tls --turn-ca ca.pem --turn-user U --turn-pass P
Or ICE-TCP host candidates (RFC 6544), without UDP at all:
  floe ice --controlling --send hello --tcp --no-udp --host-ip 192.0.2.10

Loopback addresses are left out of the default host candidates (RFC 8445 section 5.1.1.1);
an explicit --host-ip 127.0.0.1 is used, for two peers on one machine."
)]
pub struct Args {
    /// Take the controlling role: this peer nominates the selected pair.
    #[arg(long)]
    controlling: bool,
    /// Take the controlled role.
    #[arg(long)]
    controlled: bool,
    /// A STUN server for a server-reflexive candidate (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    stun: Option<String>,
    /// A TURN server for a relayed candidate (HOST:PORT), over UDP unless --turn-tcp or
    /// --turn-tls.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["turn_user", "turn_pass"])]
    turn: Option<String>,
    /// Reach the --turn server over TCP instead of UDP (RFC 8656 section 3.1; the relayed
    /// candidate is still UDP).
    #[arg(long, requires = "turn", conflicts_with = "turn_tls")]
    turn_tcp: bool,
    /// Reach the --turn server over TLS instead of UDP (default port 5349; 443 gets through
    /// most firewalls). Needs --turn-ca.
    #[arg(long, requires = "turn")]
    turn_tls: bool,
    /// The CA certificate(s) to trust for --turn-tls, PEM (a self-signed server certificate
    /// can be its own CA). Required: the platform's trust store is not used.
    #[arg(long, value_name = "FILE", requires = "turn_tls")]
    turn_ca: Option<PathBuf>,
    /// The TURN username.
    #[arg(long, value_name = "USER", requires = "turn")]
    turn_user: Option<String>,
    /// The TURN password.
    #[arg(long, value_name = "PASSWORD", requires = "turn")]
    turn_pass: Option<String>,
    /// Use only the relayed candidate (needs --turn).
    #[arg(long, requires = "turn")]
    relay_only: bool,
    /// ICE-TCP host candidates too (RFC 6544): per host address a passive one (listening)
    /// and an active one (connecting; signalled with port 9). Not with --relay-only.
    #[arg(long, conflicts_with = "relay_only")]
    tcp: bool,
    /// No UDP host candidates (needs --tcp): every pair is TCP. Not with --stun or --turn,
    /// which gather from UDP host candidates.
    #[arg(long, requires = "tcp", conflicts_with_all = ["stun", "turn"])]
    no_udp: bool,
    /// A local address for a host candidate (repeatable; default: the machine's interface
    /// addresses, without loopback and link-local).
    #[arg(long = "host-ip", value_name = "IP")]
    host_ip: Vec<IpAddr>,
    /// Resolve the peer's mDNS candidate names (`<uuid>.local`, as browsers send) by asking
    /// this responder at IP:PORT instead of multicasting queries on the local network
    /// (224.0.0.251:5353, the default).
    #[arg(long, value_name = "IP:PORT", conflicts_with = "no_mdns")]
    mdns_server: Option<SocketAddr>,
    /// Do not resolve the peer's mDNS candidate names: drop those candidates.
    #[arg(long)]
    no_mdns: bool,
    /// After connecting, send TEXT (retrying every 0.5 s, up to 10 times) and expect it
    /// echoed back.
    #[arg(long, value_name = "TEXT")]
    send: Option<String>,
    /// Send back whatever arrives.
    #[arg(long)]
    echo: bool,
    /// Seconds to stay up after success (answering the peer), then exit.
    #[arg(long, value_name = "S", default_value = "1", value_parser = seconds)]
    linger: Duration,
    /// Seconds to wait for success before giving up (exit 3).
    #[arg(long, value_name = "S", default_value = "20", value_parser = seconds)]
    timeout: Duration,
    /// Ta, the pacing of new checks, in milliseconds: RFC 8445's 50 by default, never less
    /// than 5. Any other value is sent as a=ice-pacing, and both peers use the larger of
    /// their values (RFC 8445 section 14.2), so a lower one helps only with a peer that
    /// proposes as low a value.
    #[arg(long, value_name = "MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(5..))]
    ta_ms: u64,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} is not a duration in seconds"))
}

/// Runs `floe ice`.
pub fn run(args: Args) -> std::io::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(session(args));
    // The stdin reader thread may still be blocked in read(): do not wait for it.
    runtime.shutdown_background();
    Ok(ExitCode::from(code))
}

/// Writes one line to stdout. A peer that went away (EPIPE) is not an error worth more
/// than the exit code.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Data as a status line shows it: lossy UTF-8, control characters replaced.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Reads stdin lines on a thread of its own: a blocking read must not hold up the exit.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("floe-ice-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot read stdin");
    }
    rx
}

/// The agent's settings from the arguments; `Err` is a usage error.
fn builder(args: &Args) -> Result<drivers::ice::Builder<drivers::ice::tokio::Tokio>, String> {
    let mut b = IceAgent::builder()
        .controlling(args.controlling)
        .relay_only(args.relay_only)
        .tcp_candidates(args.tcp)
        .udp_candidates(!args.no_udp)
        .ta(Duration::from_millis(args.ta_ms))
        .mdns(match (args.no_mdns, args.mdns_server) {
            (true, _) => MdnsResolution::Off,
            (false, Some(server)) => MdnsResolution::Server(server),
            (false, None) => MdnsResolution::Multicast,
        });
    if let Some(stun) = &args.stun {
        b = b.stun(resolve(stun).map_err(|e| format!("--stun {stun}: {e}"))?);
    }
    if let (Some(turn), Some(user), Some(pass)) = (&args.turn, &args.turn_user, &args.turn_pass) {
        let (user, pass) = (user.clone(), pass.clone());
        b = match (args.turn_tcp, args.turn_tls) {
            (false, false) => b.turn(resolve_turn(turn, false)?, user, pass),
            (true, _) => b.turn_tcp(resolve_turn(turn, false)?, user, pass),
            (false, true) => {
                let Some(ca) = &args.turn_ca else {
                    return Err(
                        "--turn-tls needs --turn-ca FILE, the CA certificate (PEM) that \
                                signed the server's: the platform's trust store is not used"
                            .into(),
                    );
                };
                let server = resolve_turn(turn, true)?;
                b = b.turn_tls(server, user, pass).turn_tls_ca(ca);
                match host_name(turn) {
                    Some(name) => b.turn_tls_name(server, name),
                    None => b,
                }
            }
        };
    }
    if !args.host_ip.is_empty() {
        b = b.host_ips(args.host_ip.iter().copied());
    }
    Ok(b)
}

/// Resolves `--turn`; over TLS, without a port, on the TURN-over-TLS port.
fn resolve_turn(target: &str, tls: bool) -> Result<SocketAddr, String> {
    let target = match tls && !has_port(target) {
        true => match target.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, TURNS_PORT).to_string(),
            Err(_) => format!("{target}:{TURNS_PORT}"),
        },
        false => target.to_string(),
    };
    resolve(&target).map_err(|e| format!("--turn {target}: {e}"))
}

/// True if `target` (`HOST:PORT`, `HOST`, `IP`, `[IPv6]:PORT`, `IPv6`) names a port.
fn has_port(target: &str) -> bool {
    if target.parse::<SocketAddr>().is_ok() {
        return true;
    }
    if target.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return false;
    }
    target
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
}

/// The DNS name in `--turn`, for TLS to verify (`None` for an IP address: the certificate
/// must then name the address).
fn host_name(target: &str) -> Option<String> {
    let host = match has_port(target) {
        true => target.rsplit_once(':').map_or(target, |(h, _)| h),
        false => target,
    };
    let host = host.trim_matches(['[', ']']);
    (host.parse::<IpAddr>().is_err() && !host.is_empty()).then(|| host.to_string())
}

/// The peer's credentials as they trickle in.
#[derive(Default)]
struct Remote {
    ufrag: Option<String>,
    pwd: Option<String>,
    credentials_set: bool,
    /// The peer's Ta proposal is known: an `a=ice-pacing` line came, or a candidate came
    /// first.
    pacing: bool,
    end_of_candidates: bool,
}

/// How the run ends, short of success.
struct Failure {
    code: u8,
    reason: String,
}

impl Failure {
    fn new(code: u8, reason: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            reason: reason.to_string(),
        }
    }
}

/// Handles one line from the peer.
async fn remote_line(agent: &IceAgent, remote: &mut Remote, line: &str) -> Result<(), Failure> {
    let line = line.trim();
    if !line.starts_with("a=") {
        return Ok(());
    }
    match line.parse::<IceAttribute>() {
        Ok(IceAttribute::Ufrag(u)) => remote.ufrag = Some(u),
        Ok(IceAttribute::Pwd(p)) => remote.pwd = Some(p),
        Ok(IceAttribute::Candidate(_)) => {
            pacing_known(agent, remote).await;
            if let Err(e) = agent.add_remote_candidate(line).await {
                tracing::warn!(error = %e, line, "remote candidate ignored");
            }
        }
        Ok(IceAttribute::EndOfCandidates) => {
            pacing_known(agent, remote).await;
            end_of_candidates(agent, remote).await
        }
        Ok(IceAttribute::Pacing(ms)) => {
            remote.pacing = true;
            let proposed = Some(Duration::from_millis(u64::from(ms)));
            if let Err(e) = agent.set_remote_pacing(proposed).await {
                tracing::warn!(error = %e, "ice-pacing");
            }
        }
        Ok(_) => tracing::debug!(line, "ignored"),
        Err(e) => tracing::warn!(error = %e, line, "line ignored"),
    }
    if let (false, Some(u), Some(p)) = (remote.credentials_set, &remote.ufrag, &remote.pwd) {
        agent
            .set_remote_credentials(u, p)
            .await
            .map_err(|e| Failure::new(EXIT_FAILED, e))?;
        remote.credentials_set = true;
    }
    Ok(())
}

/// The peer's session attributes come before its candidates: with no `a=ice-pacing` by its
/// first candidate it proposes none, which counts as the default 50 ms (RFC 8445 §14.2). A
/// later `a=ice-pacing` still replaces that.
async fn pacing_known(agent: &IceAgent, remote: &mut Remote) {
    if !remote.pacing {
        remote.pacing = true;
        if let Err(e) = agent.set_remote_pacing(None).await {
            tracing::warn!(error = %e, "ice-pacing");
        }
    }
}

async fn end_of_candidates(agent: &IceAgent, remote: &mut Remote) {
    if !remote.end_of_candidates {
        remote.end_of_candidates = true;
        if let Err(e) = agent.end_of_remote_candidates().await {
            tracing::warn!(error = %e, "end-of-candidates");
        }
    }
}

async fn session(args: Args) -> u8 {
    let deadline = Instant::now() + args.timeout;
    let builder = match builder(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("floe ice: {e}");
            return EXIT_USAGE;
        }
    };
    let agent = match builder.build().await {
        Ok(a) => a,
        Err(e) => {
            say(format_args!("FAILED {e}"));
            return EXIT_FAILED;
        }
    };
    let creds = agent.local_credentials();
    say(format_args!("a=ice-ufrag:{}", creds.ufrag));
    say(format_args!("a=ice-pwd:{}", creds.pwd));
    // RFC 8445 §14.2: a Ta other than the default must be proposed to the peer.
    if args.ta_ms != ice_core::DEFAULT_TA.as_millis() as u64 {
        say(format_args!("a=ice-pacing:{}", args.ta_ms));
    }
    let outcome = converse(&args, &agent, deadline).await;
    let code = match outcome {
        Ok(()) => 0,
        Err(f) => {
            say(format_args!("FAILED {}", f.reason));
            f.code
        }
    };
    // Releases TURN allocations (bounded by the driver's close timeout).
    agent.close().await;
    code
}

/// Signalling, connecting, then the `--send`/`--echo` exchange and the linger.
async fn converse(args: &Args, agent: &IceAgent, deadline: Instant) -> Result<(), Failure> {
    let mut lines = stdin_lines();
    let mut remote = Remote::default();
    let (mut stdin_open, mut gathered) = (true, false);
    let connecting = agent.connect();
    tokio::pin!(connecting);
    let mut exchange = Exchange::new(args);
    loop {
        let connected = exchange.connection.is_some();
        tokio::select! {
            candidate = agent.next_candidate(), if !gathered => match candidate {
                Some(c) => say(c),
                None => {
                    gathered = true;
                    say("a=end-of-candidates");
                }
            },
            line = lines.recv(), if stdin_open => match line {
                Some(line) => remote_line(agent, &mut remote, &line).await?,
                None => {
                    stdin_open = false;
                    if !remote.credentials_set && !connected {
                        let why = "stdin closed without the peer's credentials";
                        return Err(Failure::new(EXIT_FAILED, why));
                    }
                    end_of_candidates(agent, &mut remote).await;
                }
            },
            c = &mut connecting, if !connected => {
                exchange.connected(c.map_err(|e| Failure::new(EXIT_FAILED, e))?);
            }
            data = exchange.recv() => match data {
                Ok(data) => exchange.received(data).await?,
                // The peer closed first (over TCP that is at once): success stands.
                Err(e) if exchange.succeeded() => {
                    tracing::info!(error = %e, "connection ended after success");
                    return Ok(());
                }
                Err(e) => return Err(Failure::new(EXIT_FAILED, e)),
            },
            // Ctrl-C: still close properly, so that TURN allocations are deleted.
            _ = tokio::signal::ctrl_c() => return Err(Failure::new(EXIT_FAILED, "interrupted")),
            () = tokio::time::sleep_until(exchange.wake(deadline)) => {
                if exchange.tick(deadline).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// The `--send` side's progress.
struct Sending {
    text: String,
    sent: u32,
    next: Instant,
}

/// After connecting: `--send` retries, `--echo` answers, and the linger after success.
struct Exchange<'a> {
    args: &'a Args,
    connection: Option<IceConnection>,
    sending: Option<Sending>,
    /// Set at success: when to exit.
    linger_until: Option<Instant>,
}

impl<'a> Exchange<'a> {
    fn new(args: &'a Args) -> Self {
        Exchange {
            args,
            connection: None,
            sending: None,
            linger_until: None,
        }
    }

    /// True once the run succeeded (it only lingers now).
    fn succeeded(&self) -> bool {
        self.linger_until.is_some()
    }

    /// When [`tick`](Self::tick) is next due.
    fn wake(&self, deadline: Instant) -> Instant {
        match (self.linger_until, &self.sending) {
            (Some(t), _) => t,
            (None, Some(s)) => s.next.min(deadline),
            (None, None) => deadline,
        }
    }

    fn connected(&mut self, c: IceConnection) {
        if let Some((local, remote)) = c.selected_pair() {
            say(format_args!(
                "CONNECTED {} {}",
                local.address, remote.address
            ));
            tracing::info!(
                local = %local.kind,
                remote = %remote.kind,
                transport = ?local.transport,
                "selected pair"
            );
        }
        self.connection = Some(c);
        let now = Instant::now();
        match &self.args.send {
            Some(text) => {
                self.sending = Some(Sending {
                    text: text.clone(),
                    sent: 0,
                    next: now,
                })
            }
            // Connected is success.
            None if !self.args.echo => self.linger_until = Some(now + self.args.linger),
            None => {}
        }
    }

    /// Waits for data, once connected.
    async fn recv(&self) -> Result<Vec<u8>, IceError> {
        match &self.connection {
            Some(c) => c.recv().await,
            None => std::future::pending().await,
        }
    }

    async fn received(&mut self, data: Vec<u8>) -> Result<(), Failure> {
        let shown = text(&data);
        match self.sending.as_ref().map(|s| s.text.as_bytes()) {
            Some(t) if t == data.as_slice() => {
                say(format_args!("ECHOED {shown}"));
                self.sending = None;
                self.linger_until = Some(Instant::now() + self.args.linger);
            }
            Some(_) => {
                say(format_args!("RECEIVED {shown}"));
                let why = "the echo differs from the text sent";
                return Err(Failure::new(EXIT_ECHO, why));
            }
            None => say(format_args!("RECEIVED {shown}")),
        }
        if self.args.echo {
            if let Some(c) = &self.connection {
                if let Err(e) = c.send(&data).await {
                    tracing::warn!(error = %e, "echo not sent");
                }
            }
            // Success; each datagram keeps the peer company a while longer.
            self.linger_until = Some(Instant::now() + self.args.linger);
        }
        Ok(())
    }

    /// Sends or gives up on `--send`, ends the linger, or times out. True when done.
    async fn tick(&mut self, deadline: Instant) -> Result<bool, Failure> {
        let now = Instant::now();
        if self.linger_until.is_some_and(|t| now >= t) {
            return Ok(true);
        }
        if let (Some(s), Some(c)) = (&mut self.sending, &self.connection) {
            if now >= s.next {
                if s.sent == SEND_TRIES {
                    let why = format!("no echo after {SEND_TRIES} tries");
                    return Err(Failure::new(EXIT_ECHO, why));
                }
                match c.send(s.text.as_bytes()).await {
                    Ok(()) => say(format_args!("SENT {}", s.text)),
                    Err(e) => tracing::warn!(error = %e, "not sent"),
                }
                s.sent += 1;
                s.next = now + SEND_INTERVAL;
            }
        }
        if self.linger_until.is_none() && now >= deadline {
            let code = match self.connection.is_some() && self.args.send.is_some() {
                true => EXIT_ECHO,
                false => EXIT_TIMEOUT,
            };
            let why = format!("timeout after {:?}", self.args.timeout);
            return Err(Failure::new(code, why));
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_targets_over_tls() {
        assert!(has_port("192.0.2.1:443") && has_port("[2001:db8::1]:443"));
        assert!(has_port("turn.example.org:443"));
        assert!(!has_port("192.0.2.1") && !has_port("2001:db8::1") && !has_port("localhost"));
        assert_eq!(
            resolve_turn("192.0.2.1", true).unwrap(),
            "192.0.2.1:5349".parse().unwrap()
        );
        assert_eq!(
            resolve_turn("192.0.2.1", false).unwrap(),
            "192.0.2.1:3478".parse().unwrap()
        );
        assert_eq!(resolve_turn("localhost", true).unwrap().port(), 5349);
        assert_eq!(
            host_name("turn.example.org:443").as_deref(),
            Some("turn.example.org")
        );
        assert_eq!(host_name("localhost").as_deref(), Some("localhost"));
        assert_eq!(host_name("192.0.2.1:443"), None);
        assert_eq!(host_name("[2001:db8::1]:443"), None);
        assert_eq!(host_name("2001:db8::1"), None);
    }
}
