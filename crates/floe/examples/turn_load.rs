//! A TURN relay load generator: two allocations on one server, each with a channel to the
//! other's relayed address, 100-byte ChannelData blasted both ways, relayed packets counted.
//!
//! ```text
//! cargo run --release -p floe --example turn_load -- \
//!     --server 127.0.0.1:3478 --user alice:wonderland --duration 10 --server-pid PID
//! ```
//!
//! Setup goes through floe's TURN client on the blocking driver (`drivers::blocking::Runner`
//! with `drivers::turn::ClientMachine`): Allocate for A and B, then ChannelBind A -> B's
//! relayed address and B -> A's. Then the runners are dropped and the generator takes the
//! same sockets (a duplicated descriptor) for the blast: one busy thread that sends a burst
//! from A and from B (one `sendmsg` per datagram, or GSO batches with `--gso`) and drains
//! both sockets (`recvmmsg`, GRO), counting ChannelData. A packet is counted when it has
//! crossed the server twice: client A -> server -> relayed A -> relayed B -> server ->
//! client B.
//!
//! Reported: relayed packets per second over the measurement window (both directions
//! summed), what was offered, and with `--server-pid` the server's CPU time from
//! `/proc/PID/stat` (utime + stime, all threads) per million relayed packets.
#![allow(clippy::disallowed_methods)] // a load generator reads the clock

use clap::Parser;
use drivers::blocking::Runner;
use drivers::turn::{ClientMachine, TurnOutput};
use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use turn_proto::client::{Client, ClientConfig, ClientEvent};

/// Load generator options.
#[derive(Debug, Parser)]
struct Args {
    /// The TURN server.
    #[arg(long)]
    server: SocketAddr,
    /// NAME:PASSWORD.
    #[arg(long, default_value = "alice:wonderland")]
    user: String,
    /// Local IP to send from.
    #[arg(long, default_value = "127.0.0.1")]
    local: std::net::IpAddr,
    /// Payload bytes per ChannelData message.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Offered packets per second in each direction (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Datagrams per burst from each client.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Send each burst as one GSO `sendmsg` (`UDP_SEGMENT`) instead of one `sendmsg` per
    /// datagram.
    #[arg(long)]
    gso: bool,
    /// Only A sends (B only receives).
    #[arg(long)]
    one_way: bool,
    /// The server's process ID, to report its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The CPU the server is pinned to, to report that core's busy time (the server's own
    /// time plus the kernel's softirq work on that core, which /proc/PID/stat may miss).
    #[arg(long)]
    server_core: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

const T: Duration = Duration::from_secs(5);

/// One side: its socket (blocking runner's view) and its relayed address.
struct Side {
    runner: Runner<ClientMachine>,
    socket: UdpSocket,
    relayed: SocketAddr,
}

/// Runs `runner` until `pick` returns a value for an event, or fails after `T`.
fn wait_for<R>(
    runner: &mut Runner<ClientMachine>,
    mut pick: impl FnMut(ClientEvent) -> Option<R>,
) -> io::Result<R> {
    let mut found = None;
    runner.run(Some(Instant::now() + T), |_, out| match out {
        TurnOutput::Event(e) => match pick(e) {
            Some(r) => {
                found = Some(r);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        },
        TurnOutput::PeerData { .. } => ControlFlow::Continue(()),
    })?;
    found.ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no answer from the server"))
}

fn allocate(args: &Args, name: &str, password: &str) -> io::Result<Side> {
    let socket = drivers::net::bind_udp(SocketAddr::new(args.local, 0), false)?;
    let raw = socket.try_clone()?;
    let config = ClientConfig::new(args.server, socket.local_addr()?, name, password);
    let client = Client::new(config, drivers::os::seed()?, Instant::now());
    let mut runner = Runner::new(ClientMachine::new(client));
    runner.add_socket(socket)?;
    let relayed = wait_for(&mut runner, |e| match e {
        ClientEvent::Allocated { relayed, .. } => Some(Ok(relayed[0])),
        ClientEvent::AllocationFailed { reason } => Some(Err(io::Error::other(reason.to_string()))),
        _ => None,
    })??;
    Ok(Side {
        runner,
        socket: raw,
        relayed,
    })
}

/// Binds a channel from `side` to `peer`; returns one ChannelData message carrying `size`
/// bytes, as floe's client builds it.
fn channel_to(side: &mut Side, peer: SocketAddr, size: usize) -> io::Result<Vec<u8>> {
    let now = Instant::now();
    side.runner
        .machine_mut()
        .client()
        .bind_channel(now, peer)
        .map_err(|e| io::Error::other(e.to_string()))?;
    side.runner.flush();
    wait_for(&mut side.runner, |e| match e {
        ClientEvent::ChannelBound { .. } => Some(Ok(())),
        ClientEvent::ChannelBindFailed { .. } => Some(Err(io::Error::other(format!("{e:?}")))),
        _ => None,
    })??;
    let payload = vec![0x5a; size];
    let t = side
        .runner
        .machine_mut()
        .client()
        .send_to(Instant::now(), peer, &payload)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(t.payload)
}

/// A socket under load: quinn-udp state, the message it sends, and its counters.
struct Flow {
    socket: UdpSocket,
    state: UdpSocketState,
    /// The ChannelData message, repeated `burst` times back to back (for GSO).
    batch: Vec<u8>,
    message_len: usize,
    destination: SocketAddr,
    sent: u64,
    received: u64,
}

impl Flow {
    fn new(
        socket: UdpSocket,
        message: &[u8],
        burst: usize,
        destination: SocketAddr,
    ) -> io::Result<Flow> {
        let state = UdpSocketState::new((&socket).into())?;
        // Room to absorb the server's bursts.
        let _ = state.set_recv_buffer_size((&socket).into(), 4 << 20);
        Ok(Flow {
            socket,
            state,
            batch: message.repeat(burst),
            message_len: message.len(),
            destination,
            sent: 0,
            received: 0,
        })
    }

    fn send(&mut self, count: usize, gso: bool) {
        let count = count.min(self.batch.len() / self.message_len);
        let segments = if gso {
            self.state.max_gso_segments()
        } else {
            1
        };
        let mut left = count;
        while left > 0 {
            let n = left.min(segments);
            let t = Transmit {
                destination: self.destination,
                ecn: None,
                contents: &self.batch[..n * self.message_len],
                segment_size: (n > 1).then_some(self.message_len),
                src_ip: None,
            };
            if self.state.try_send((&self.socket).into(), &t).is_err() {
                return;
            }
            self.sent += n as u64;
            left -= n;
        }
    }

    /// Reads what is waiting (a few batches at most), counting ChannelData messages.
    fn drain(&mut self, rx: &mut RxBufs) {
        for _ in 0..4 {
            let mut slices = rx.bufs.each_mut().map(|b| IoSliceMut::new(b));
            let Ok(n) = self
                .state
                .recv((&self.socket).into(), &mut slices, &mut rx.meta)
            else {
                return;
            };
            for (m, buf) in rx.meta[..n].iter().zip(rx.bufs.iter()) {
                let stride = m.stride.max(1);
                self.received += (0..m.len)
                    .step_by(stride)
                    .filter(|&at| (0x40..=0x4f).contains(&buf[at]))
                    .count() as u64;
            }
            if n < BATCH_SIZE {
                return;
            }
        }
    }
}

/// Receive buffers, reused (64 KiB each: a GRO batch).
struct RxBufs {
    bufs: [Vec<u8>; BATCH_SIZE],
    meta: [RecvMeta; BATCH_SIZE],
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// Busy time (all but idle and iowait) of one CPU (`cpuN`) or of all (`cpu`), in seconds,
/// from /proc/stat.
fn busy_seconds(cpu: &str) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(cpu))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Counters at one instant.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    sent: [u64; 2],
    received: [u64; 2],
    server_cpu: Option<f64>,
    core_busy: Option<f64>,
    /// All CPUs' busy time and the generator's own CPU time: what is left is other load.
    machine_busy: Option<f64>,
    own_cpu: Option<f64>,
}

fn snapshot(flows: &[Flow; 2], args: &Args) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        sent: [flows[0].sent, flows[1].sent],
        received: [flows[0].received, flows[1].received],
        server_cpu: args.server_pid.and_then(cpu_seconds),
        core_busy: args
            .server_core
            .and_then(|c| busy_seconds(&format!("cpu{c}"))),
        machine_busy: busy_seconds("cpu"),
        own_cpu: cpu_seconds(std::process::id()),
    }
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let (name, password) = args
        .user
        .split_once(':')
        .ok_or_else(|| io::Error::other("--user NAME:PASSWORD"))?;
    let mut a = allocate(&args, name, password)?;
    let mut b = allocate(&args, name, password)?;
    let to_b = channel_to(&mut a, b.relayed, args.size)?;
    let to_a = channel_to(&mut b, a.relayed, args.size)?;
    let (a_relayed, b_relayed) = (a.relayed, b.relayed);
    // The runners' reader threads notice the stop within 100 ms; after that the sockets
    // are ours alone (quinn-udp makes them non-blocking, which they would spin on).
    drop((a.runner, b.runner));
    std::thread::sleep(Duration::from_millis(300));
    let burst = args.burst.max(1);
    let mut flows = [
        Flow::new(a.socket, &to_b, burst, args.server)?,
        Flow::new(b.socket, &to_a, burst, args.server)?,
    ];
    let mut rx = RxBufs {
        bufs: std::array::from_fn(|_| vec![0u8; 1 << 16]),
        meta: [RecvMeta::default(); BATCH_SIZE],
    };
    let senders = if args.one_way { 1 } else { 2 };

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut first: Option<Snapshot> = None;
    loop {
        let now = Instant::now();
        if first.is_none() && now >= measure_from {
            first = Some(snapshot(&flows, &args));
        }
        if now >= end {
            break;
        }
        for flow in flows.iter_mut().take(senders) {
            let count = if args.rate == 0 {
                burst
            } else {
                let due = (args.rate as f64 * (now - start).as_secs_f64()) as u64;
                (due.saturating_sub(flow.sent) as usize).min(burst)
            };
            if count > 0 {
                flow.send(count, args.gso);
            }
        }
        for flow in &mut flows {
            flow.drain(&mut rx);
        }
    }
    let last = snapshot(&flows, &args);
    let first = first.unwrap_or(last);
    report(&args, a_relayed, b_relayed, &flows[0], first, last);
    Ok(())
}

fn report(args: &Args, a: SocketAddr, b: SocketAddr, flow: &Flow, first: Snapshot, last: Snapshot) {
    let secs = (last.at - first.at).as_secs_f64().max(1e-9);
    let rate = |x: u64, y: u64| (y - x) as f64 / secs;
    let a_to_b = rate(first.received[1], last.received[1]);
    let b_to_a = rate(first.received[0], last.received[0]);
    let offered = rate(first.sent[0] + first.sent[1], last.sent[0] + last.sent[1]);
    let relayed = a_to_b + b_to_a;
    let diff = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
    let cpu = diff(first.server_cpu, last.server_cpu);
    let core = diff(first.core_busy, last.core_busy);
    // Busy time of the machine not spent by the server or the generator: other load (and
    // softirq work charged to no process). Runs with much of it are not clean.
    let other = diff(first.machine_busy, last.machine_busy)
        .zip(diff(first.own_cpu, last.own_cpu))
        .map(|(m, own)| m - own - cpu.unwrap_or(0.0));
    let millions = relayed * secs / 1e6;
    let per_million = cpu.map(|c| c / millions);
    let core_per_million = core.map(|c| c / millions);
    let show = |v: Option<f64>| v.map_or("null".into(), |c| format!("{c:.2}"));
    let gso_segments = flow.state.max_gso_segments();
    if args.json {
        println!(
            "{{\"relayed_pps\":{relayed:.0},\"a_to_b_pps\":{a_to_b:.0},\"b_to_a_pps\":{b_to_a:.0},\
             \"offered_pps\":{offered:.0},\"seconds\":{secs:.2},\"server_cpu_s\":{},\
             \"server_cpu_s_per_million\":{},\"core_busy_s\":{},\"core_busy_s_per_million\":{},\
             \"other_cpu_s\":{},\"gso\":{},\"size\":{}}}",
            show(cpu),
            show(per_million),
            show(core),
            show(core_per_million),
            show(other),
            args.gso,
            args.size
        );
        return;
    }
    println!(
        "allocations: A relayed {a}, B relayed {b}; ChannelData of {} bytes",
        args.size + 4
    );
    println!(
        "sending: {} (bursts of {}), {}",
        if args.gso {
            format!("GSO, up to {gso_segments} datagrams per sendmsg")
        } else {
            "one sendmsg per datagram".into()
        },
        args.burst,
        if args.rate == 0 {
            "as fast as possible".into()
        } else {
            format!("{} pps per direction", args.rate)
        }
    );
    println!(
        "relayed: {relayed:.0} pps (A->B {a_to_b:.0}, B->A {b_to_a:.0}) over {secs:.1} s; offered {offered:.0} pps"
    );
    if let (Some(cpu), Some(per_million)) = (cpu, per_million) {
        println!(
            "server CPU: {cpu:.2} s ({:.0}% of one core), {per_million:.2} s per million relayed packets",
            100.0 * cpu / secs
        );
    }
    if let Some(other) = other {
        println!("other load on the machine: {other:.2} CPU seconds");
    }
    if let (Some(core), Some(per_million), Some(n)) = (core, core_per_million, args.server_core) {
        println!(
            "server core {n}: busy {core:.2} s ({:.0}%), {per_million:.2} s per million relayed packets",
            100.0 * core / secs
        );
    }
}
