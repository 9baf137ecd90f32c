//! A TURN server (RFC 8656) on std threads: [`spawn`] it with [`TurnServerOptions`], get a
//! [`TurnServerHandle`] back.
//!
//! # How it runs
//!
//! * **Workers.** `workers` threads (default 1), each with its own
//!   [`turn_proto::server::Server`] (seeded from the OS), its own mio poll and its own
//!   sockets. Nothing is shared on the data path: no locks, no channels.
//! * **Listeners.** Every worker binds every UDP listening address with `SO_REUSEPORT`, and the
//!   kernel spreads clients over the workers by hashing the 4-tuple. A client's 4-tuple
//!   always lands on the same worker, so its nonce, its allocation and its channels are all
//!   in one place.
//! * **Relay ports.** Each relay range is cut into `workers` disjoint ranges, one per worker:
//!   relay sockets never collide, and a peer's datagram to a relayed address reaches the
//!   worker that owns the allocation. A worker binds a relay socket when its core asks
//!   ([`ServerEvent::BindRelay`](turn_proto::server::ServerEvent::BindRelay)) and reports
//!   the outcome; a failed bind (the port is taken) gets the client a 508, and the core
//!   keeps the port out of its pool for a while. Sockets close on `ReleaseRelay`.
//! * **I/O.** quinn-udp: batched receive (`recvmmsg`, up to 32 buffers) with GRO, the
//!   destination IP of datagrams to wildcard listeners (`IP_PKTINFO`), and GSO sends
//!   (`UDP_SEGMENT`): relay outputs with the same socket, destination and ECN leave in one
//!   `sendmsg`. Where the kernel has no GSO, each datagram is sent on its own.
//! * **The hot path.** Datagrams are received 4 bytes into reused buffers, so the core writes
//!   a ChannelData header in place; the payload is copied once, into the send batch. No
//!   allocation; the only lookups are the core's one and an index into the worker's flat
//!   array of relay sockets.
//! * **IP header fields** (RFC 8656 §14). ECN is copied from the datagram that carried the
//!   data (the preferred behaviour). quinn-udp sets "do not fragment" on every socket
//!   (`IP_PMTUDISC_PROBE`, `IPV6_DONTFRAG`), so DONT-FRAGMENT is honoured
//!   ([`ServerConfig::dont_fragment`] stays as given); the DF bit is also set on datagrams
//!   that did not ask for it. DSCP and TTL are not carried over.
//! * **Timers and counters.** Each worker sleeps until its core's `poll_timeout`, runs
//!   `handle_timeout`, and publishes its counters every `stats_interval` (and when it
//!   stops); [`TurnServerHandle::stats`] sums them.
//! * **TCP and TLS** (RFC 8656 §3.1). [`listen_tcp`](TurnServerOptions::listen_tcp) and
//!   [`listen_tls`](TurnServerOptions::listen_tls) add stream listeners (TLS with rustls'
//!   sans-io `ServerConnection` inside the mio loop, [`tls_config_from_pem`] for PEM
//!   files). Every accepted connection is one client 5-tuple: its bytes are cut into
//!   messages with `StreamFramer` and handed to the core; what the core sends it is queued
//!   and written without blocking. Queues are bounded: relayed datagrams for a client whose
//!   queue holds 256 KiB are dropped (as UDP would lose them), and a client whose queue
//!   reaches 512 KiB with a response still to go is closed as too slow. A connection that
//!   cannot be framed, ends (EOF, reset, TLS error) or holds no allocation
//!   [`unallocated_timeout`](TurnServerOptions::unallocated_timeout) after it opened (or
//!   after its allocation ended) is closed and reported with `connection_closed`, which
//!   deletes its allocation. [`max_connections`](TurnServerOptions::max_connections) bounds
//!   the connections of a worker.
//! * **RFC 6062 TCP allocations** ([`ServerConfig::tcp_allocations`]). The worker listens on
//!   a TCP relayed address when asked (`BindRelay` with TCP), connects from it without
//!   blocking (`ConnectPeer`, reported with `peer_connected` when the socket says), reports
//!   the peers it accepts (`incoming_peer_connection`; refused ones are closed at once),
//!   holds up to 64 KiB a peer sends before its bridge, and after `Bridge` copies bytes
//!   both ways with at most 64 KiB queued per direction (the sending side is not read while
//!   the other is full, so TCP flow control slows the sender). When either half closes,
//!   the other is closed too after writing what it holds; closes linger up to 5 s so that
//!   data in flight is not reset.
//! * **Which worker serves TCP.** Without TCP allocations every worker binds the stream
//!   listeners with `SO_REUSEPORT` and the kernel spreads connections, as for UDP: each
//!   connection is a 5-tuple of its own, so no state crosses workers. With TCP allocations
//!   a ConnectionBind arrives on a *new* connection, which must reach the worker holding
//!   the allocation and its peer connection; the kernel cannot know that. So the stream
//!   listeners are bound on worker 0 alone: every TCP and TLS client, its allocations and
//!   their TCP relays live there (UDP clients still spread over all workers). One core
//!   then carries all stream traffic; a deployment that needs more runs more servers.
//!
//! Not here: ICMP relaying
//! ([`Server::handle_icmp`](turn_proto::server::Server::handle_icmp) is not fed).
//! RESERVATION-TOKEN works within a worker only: with several workers, the client that
//! presents a token may be hashed to another worker, which does not know it (508).
//!
//! # Example
//!
//! ```
//! use floe_drivers::turn::Session;
//! use floe_drivers::turn_server::{TurnServerOptions, spawn};
//! use std::time::Duration;
//! use turn_proto::client::ClientConfig;
//! use turn_proto::server::{RelayRange, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = ServerConfig::new("example.org");
//! config.add_user("alice", "wonderland");
//! config.relays.push(RelayRange { ip: "127.0.0.1".parse()?, ports: 20000..=20999 });
//! config.peer_policy.allow.push("127.0.0.0/8".parse()?); // loopback peers, for the example
//! let server = spawn(TurnServerOptions::new(vec!["127.0.0.1:0".parse()?], config))?;
//!
//! let client = ClientConfig::new(server.local_addrs()[0], "127.0.0.1:0".parse()?, "alice", "wonderland");
//! let session = Session::allocate(client, Duration::from_secs(5))?;
//! assert_eq!(session.relayed()[0].ip(), "127.0.0.1".parse::<std::net::IpAddr>()?);
//! session.delete(Duration::from_secs(5))?;
//!
//! let stats = server.stop()?;
//! assert_eq!(stats.core.success_responses, 2); // Allocate, Refresh
//! # Ok(())
//! # }
//! ```

mod batch;
mod conn;
mod sockets;
mod stats;
mod streams;
mod tcp;
mod tls;
mod worker;

pub use stats::{IoStats, StreamStats, TurnServerStats};
pub use tls::tls_config_from_pem;

use crate::net::bind_udp;
use crate::os;
use mio::{Poll, Waker};
use sockets::{Socket, Sockets, WAKER};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use streams::Streams;
use stun_proto::TransportProtocol;
use stun_proto::server::{BindingServer, BindingServerConfig};
use turn_proto::server::{RelayBinding, RelayRange, Server, ServerConfig};
use worker::{Shared, StreamLimits, Worker};

/// Kernel receive buffer asked for on listening sockets (the kernel caps it at
/// `net.core.rmem_max`): room for bursts from many clients.
const LISTEN_RECV_BUFFER: usize = 4 << 20;

/// What to run: where to listen, how many workers, and the core's configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TurnServerOptions {
    /// UDP addresses to listen on. Port 0 picks a free port (the same on every worker);
    /// [`TurnServerHandle::local_addrs`] tells which. Listening ports must lie outside the
    /// relay ranges.
    pub listen: Vec<SocketAddr>,
    /// TCP addresses to listen on (TURN over TCP, RFC 8656 §3.1); port 0 as for
    /// [`listen`](Self::listen), see [`TurnServerHandle::tcp_addrs`].
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS addresses to listen on (TURN over TLS, often port 443 or 5349); they need
    /// [`tls`](Self::tls). See [`TurnServerHandle::tls_addrs`].
    pub listen_tls: Vec<SocketAddr>,
    /// The TLS configuration of the TLS listeners ([`tls_config_from_pem`] builds one from
    /// PEM files).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TCP and TLS connections (clients and RFC 6062 peers) a worker keeps open at most;
    /// beyond it new ones are closed at once (default 10,000).
    pub max_connections: usize,
    /// How long a TCP or TLS client connection may stay open without an allocation made on
    /// it (from its opening, or from the end of its allocation): connections that never
    /// authenticate are closed (default 30 s). RFC 6062 data connections are exempt once
    /// bridged.
    pub unallocated_timeout: Duration,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// The core's configuration, as a template: each worker gets a copy with its share of
    /// every relay range (so each range needs at least `workers` ports), the Unix time at
    /// start, and [`RelayBinding::Driver`]. Relay IPs must be specific addresses.
    pub config: ServerConfig,
    /// Answer Binding requests on the listeners with a separate stun-proto
    /// [`BindingServer`] with this configuration instead of the TURN core. For RFC 5780
    /// set `alternate` and listen on all four address and port combinations.
    pub stun: Option<BindingServerConfig>,
    /// How often each worker publishes its counters for [`TurnServerHandle::stats`].
    pub stats_interval: Duration,
}

impl TurnServerOptions {
    /// One worker on `listen` with `config`; counters published every second.
    pub fn new(listen: Vec<SocketAddr>, config: ServerConfig) -> TurnServerOptions {
        TurnServerOptions {
            listen,
            listen_tcp: Vec::new(),
            listen_tls: Vec::new(),
            tls: None,
            max_connections: 10_000,
            unallocated_timeout: Duration::from_secs(30),
            workers: 1,
            config,
            stun: None,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// A running server. Dropping it stops the server too (without reporting errors).
#[derive(Debug)]
pub struct TurnServerHandle {
    addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    wakers: Vec<Waker>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl TurnServerHandle {
    /// The UDP listening addresses, with the ports the OS chose for port 0.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The TCP listening addresses, with the ports the OS chose for port 0.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The TLS listening addresses, with the ports the OS chose for port 0.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.stats.len()
    }

    /// The counters summed over the workers, as last published (at most
    /// [`stats_interval`](TurnServerOptions::stats_interval) old).
    pub fn stats(&self) -> TurnServerStats {
        let mut sum = TurnServerStats::default();
        for s in self.worker_stats() {
            sum.add(&s);
        }
        sum
    }

    /// Each worker's counters, as last published.
    pub fn worker_stats(&self) -> Vec<TurnServerStats> {
        self.shared
            .stats
            .iter()
            .map(|s| s.lock().map(|s| *s).unwrap_or_default())
            .collect()
    }

    /// False once a worker has stopped (after [`stop`](Self::stop), or a fatal poll error).
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops the workers, waits for them, and returns the final counters. Fails if a
    /// worker failed (its error is returned) or panicked.
    pub fn stop(mut self) -> io::Result<TurnServerStats> {
        self.shutdown()?;
        Ok(self.stats())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in &self.wakers {
            let _ = w.wake();
        }
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("TURN worker panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for TurnServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Binds the listening sockets, starts the workers, and returns once they run. Fails if a
/// listening address cannot be bound or the configuration is refused (by the core, or
/// because a listening port lies in a relay range, a range is too small to split, or TLS
/// listeners have no TLS configuration).
pub fn spawn(options: TurnServerOptions) -> io::Result<TurnServerHandle> {
    let TurnServerOptions {
        listen,
        listen_tcp,
        listen_tls,
        tls,
        max_connections,
        unallocated_timeout,
        workers,
        config,
        stun,
        stats_interval,
    } = options;
    let workers = workers.max(1);
    if listen.is_empty() && listen_tcp.is_empty() && listen_tls.is_empty() {
        return Err(invalid("no listening address".into()));
    }
    if !listen_tls.is_empty() && tls.is_none() {
        return Err(invalid("TLS listeners need a TLS configuration".into()));
    }
    let shares = split_relays(&config.relays, workers)?;
    // Before binding, for a clear error; after, for the ports the OS chose.
    for addrs in [&listen, &listen_tcp, &listen_tls] {
        check_listeners_outside_relays(addrs, &config.relays)?;
    }
    let udp = |a| {
        let s = bind_udp(a, true).and_then(Socket::new)?;
        s.set_recv_buffer(LISTEN_RECV_BUFFER);
        Ok(s)
    };
    let (addrs, mut listeners) =
        bind_per_worker(&listen, workers, &config.relays, udp, |s| Ok(s.local()))?;
    // RFC 6062: a ConnectionBind must reach the worker of its allocation; only worker 0
    // listens on streams then (see the module documentation).
    let stream_workers = if config.tcp_allocations { 1 } else { workers };
    let stream = |a| tcp::listen(a, stream_workers > 1);
    let stream_local = |l: &std::net::TcpListener| l.local_addr();
    let (tcp_addrs, mut tcp_listeners) = bind_per_worker(
        &listen_tcp,
        stream_workers,
        &config.relays,
        stream,
        stream_local,
    )?;
    let (tls_addrs, mut tls_listeners) = bind_per_worker(
        &listen_tls,
        stream_workers,
        &config.relays,
        stream,
        stream_local,
    )?;
    for addrs in [&addrs, &tcp_addrs, &tls_addrs] {
        check_listeners_outside_relays(addrs, &config.relays)?;
    }
    let mut handle = TurnServerHandle {
        addrs,
        tcp_addrs,
        tls_addrs,
        shared: Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: (0..workers).map(|_| Mutex::default()).collect(),
        }),
        wakers: Vec::new(),
        threads: Vec::new(),
    };
    // quinn-udp sets "do not fragment" where the platform can; where it cannot,
    // DONT-FRAGMENT cannot be honoured and the core must refuse it (RFC 8656 §7.2 step 4).
    let may_fragment = listeners[0].first().is_some_and(Socket::may_fragment);
    let limits = StreamLimits {
        max_connections,
        unallocated_timeout,
    };
    for (index, share) in shares.into_iter().enumerate() {
        let mut config = config.clone();
        config.relays = share;
        config.relay_binding = RelayBinding::Driver;
        config.dont_fragment &= !may_fragment;
        config.unix_time_at_start = os::unix_time();
        let server = Server::new(config.clone(), os::seed()?, os::now())
            .map_err(|e| invalid(format!("TURN configuration: {e}")))?;
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let mut sockets = Sockets::new(std::mem::take(&mut listeners[index]), &config.relays);
        sockets.register_listeners(poll.registry())?;
        let mut streams = Streams::new(sockets.token_count(), tls.clone());
        for (lists, transport) in [
            (&mut tcp_listeners, TransportProtocol::Tcp),
            (&mut tls_listeners, TransportProtocol::Tls),
        ] {
            for l in lists.get_mut(index).map(std::mem::take).unwrap_or_default() {
                streams.add_listener(poll.registry(), l, transport)?;
            }
        }
        let worker = Worker::new(
            index,
            server,
            stun.clone().map(BindingServer::new),
            poll,
            sockets,
            streams,
            limits,
            handle.shared.clone(),
            stats_interval,
        );
        let thread = std::thread::Builder::new()
            .name(format!("floe-turn-{index}"))
            .spawn(move || worker.run())?;
        handle.wakers.push(waker);
        handle.threads.push(thread);
    }
    Ok(handle)
}

/// Binds every address once per worker, the binds after the first sharing its port (`bind`
/// sets `SO_REUSEPORT` where it is wanted). Port 0 becomes the port the first bind got; the
/// OS may pick any ephemeral port, so one inside a relay range of the same IP is given back
/// and another taken (up to 64 times; [`check_listeners_outside_relays`] reports a clash
/// left). Returns the bound addresses and each worker's sockets.
fn bind_per_worker<S>(
    listen: &[SocketAddr],
    workers: usize,
    relays: &[RelayRange],
    bind: impl Fn(SocketAddr) -> io::Result<S>,
    local: impl Fn(&S) -> io::Result<SocketAddr>,
) -> io::Result<(Vec<SocketAddr>, Vec<Vec<S>>)> {
    let mut addrs = Vec::with_capacity(listen.len());
    let mut per_worker: Vec<Vec<S>> = (0..workers).map(|_| Vec::new()).collect();
    for &addr in listen {
        let bind = |a: SocketAddr| {
            bind(a).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))
        };
        let mut first = bind(addr)?;
        let mut actual = local(&first)?;
        for _ in 0..64 {
            if addr.port() != 0 || check_listeners_outside_relays(&[actual], relays).is_ok() {
                break;
            }
            // The new socket is bound before the old one is dropped: another port.
            first = bind(addr)?;
            actual = local(&first)?;
        }
        per_worker[0].push(first);
        for sockets in &mut per_worker[1..] {
            sockets.push(bind(actual)?);
        }
        addrs.push(actual);
    }
    Ok((addrs, per_worker))
}

/// The core takes a datagram to an address inside a relay range for a peer's: a
/// listening port there would be misread.
fn check_listeners_outside_relays(addrs: &[SocketAddr], relays: &[RelayRange]) -> io::Result<()> {
    for a in addrs {
        let clash = relays.iter().find(|r| {
            let same_ip =
                a.ip() == r.ip || (a.ip().is_unspecified() && a.is_ipv4() == r.ip.is_ipv4());
            same_ip && r.ports.contains(&a.port())
        });
        if let Some(r) = clash {
            return Err(invalid(format!(
                "listening address {a} lies inside the relay range {}:{}-{}",
                r.ip,
                r.ports.start(),
                r.ports.end()
            )));
        }
    }
    Ok(())
}

/// Cuts every relay range into `workers` contiguous, disjoint ranges of (nearly) equal
/// size: worker `i` gets the `i`-th part of each.
fn split_relays(relays: &[RelayRange], workers: usize) -> io::Result<Vec<Vec<RelayRange>>> {
    let mut shares: Vec<Vec<RelayRange>> = (0..workers).map(|_| Vec::new()).collect();
    for r in relays {
        if r.ip.is_unspecified() {
            return Err(invalid(format!(
                "relay address {} is not a specific IP: clients must be told where to send",
                r.ip
            )));
        }
        let (start, end) = (usize::from(*r.ports.start()), usize::from(*r.ports.end()));
        let len = (end + 1).saturating_sub(start);
        if len < workers {
            return Err(invalid(format!(
                "relay range {}:{start}-{end} has fewer ports than the {workers} workers",
                r.ip
            )));
        }
        for (i, share) in shares.iter_mut().enumerate() {
            let first = start + len * i / workers;
            let last = start + len * (i + 1) / workers - 1;
            share.push(RelayRange {
                ip: r.ip,
                ports: first as u16..=last as u16,
            });
        }
    }
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str, ports: std::ops::RangeInclusive<u16>) -> RelayRange {
        RelayRange {
            ip: ip.parse().unwrap(),
            ports,
        }
    }

    #[test]
    fn relay_ranges_split_into_disjoint_covering_parts() {
        let relays = [range("192.0.2.1", 49152..=65535), range("::1", 10..=12)];
        let shares = split_relays(&relays, 3).unwrap();
        assert_eq!(shares[0][0].ports, 49152..=54612);
        assert_eq!(shares[1][0].ports, 54613..=60073);
        assert_eq!(shares[2][0].ports, 60074..=65535);
        assert_eq!(
            shares
                .iter()
                .map(|s| s[1].ports.clone())
                .collect::<Vec<_>>(),
            vec![10..=10, 11..=11, 12..=12]
        );
        assert_eq!(split_relays(&relays, 1).unwrap()[0], relays.to_vec());
        assert!(split_relays(&relays, 4).is_err(), "3 ports for 4 workers");
        assert!(split_relays(&[range("0.0.0.0", 1..=9)], 1).is_err());
    }

    #[test]
    fn listening_ports_must_be_outside_relay_ranges() {
        let relays = [range("127.0.0.1", 40000..=40999)];
        let ok: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let inside: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let wildcard: SocketAddr = "0.0.0.0:40500".parse().unwrap();
        let other_ip: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        assert!(check_listeners_outside_relays(&[ok, other_ip], &relays).is_ok());
        assert!(check_listeners_outside_relays(&[inside], &relays).is_err());
        assert!(check_listeners_outside_relays(&[wildcard], &relays).is_err());
    }

    /// Port 0: a port the OS picks inside a relay range is traded for another; when every
    /// port is inside, the binding gives up after its tries and the clash is left for the
    /// check to report.
    #[test]
    fn port_zero_listeners_avoid_relay_ranges() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let udp = |a| bind_udp(a, true);
        let local = |s: &std::net::UdpSocket| s.local_addr();
        // Half the ephemeral ports (32768-60999 on Linux) are relay ports here.
        let half = [range("127.0.0.1", 32768..=46883)];
        for _ in 0..50 {
            let (addrs, sockets) = bind_per_worker(&[any], 2, &half, udp, local).unwrap();
            assert!(
                check_listeners_outside_relays(&addrs, &half).is_ok(),
                "{addrs:?}"
            );
            assert_eq!(sockets.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        }
        let all = [range("127.0.0.1", 1024..=65535)];
        let (addrs, _) = bind_per_worker(&[any], 1, &all, udp, local).unwrap();
        assert!(check_listeners_outside_relays(&addrs, &all).is_err());
    }
}
