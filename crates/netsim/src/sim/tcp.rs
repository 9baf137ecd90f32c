//! The simulator's TCP: one stack per host (listeners, connections, ephemeral ports), fed by
//! node commands, arriving segments and connection timers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Sim;
use super::queue::Event;
use crate::node::BindError;
use crate::packet::Packet;
use crate::stats::{DropReason, TcpStats};
use crate::tcp::{
    Conn, ConnectError, Output, Segment, Setup, TcpCommand, TcpConfig, TcpEvent, TcpId, mss_for_mtu,
};

/// Ephemeral ports (RFC 6335 §6: the dynamic range).
const EPHEMERAL: (u16, u16) = (49_152, 65_535);

/// The TCP state of every host.
#[derive(Debug)]
pub(super) struct TcpStack {
    pub(super) config: TcpConfig,
    pub(super) conns: BTreeMap<u64, Conn>,
    /// (host, local, remote) -> connection.
    tuples: BTreeMap<(usize, SocketAddr, SocketAddr), u64>,
    /// (host, local) -> how many connections use it (for ephemeral port choice).
    locals: BTreeMap<(usize, SocketAddr), usize>,
    /// (host, local) -> the node listening there.
    listeners: BTreeMap<(usize, SocketAddr), usize>,
    /// The next ephemeral port to try, per host address.
    next_port: BTreeMap<(usize, IpAddr), u16>,
    next_id: u64,
    /// Initial sequence numbers.
    rng: ChaCha20Rng,
}

impl TcpStack {
    /// A stack whose random numbers come from `seed` on a stream of their own, so that TCP
    /// does not shift the seeds handed to links and NATs.
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        rng.set_stream(1);
        TcpStack {
            config: TcpConfig::default(),
            conns: BTreeMap::new(),
            tuples: BTreeMap::new(),
            locals: BTreeMap::new(),
            listeners: BTreeMap::new(),
            next_port: BTreeMap::new(),
            next_id: 0,
            rng,
        }
    }

    /// The node listening on `local`: the most specific listener of `ip:port`, `ip:0`
    /// (every port of the address), `unspecified:port`, `unspecified:0`.
    fn listener(&self, host: usize, local: SocketAddr) -> Option<usize> {
        let any = unspecified(local);
        [
            local,
            SocketAddr::new(local.ip(), 0),
            SocketAddr::new(any, local.port()),
            SocketAddr::new(any, 0),
        ]
        .iter()
        .find_map(|l| self.listeners.get(&(host, *l)))
        .copied()
    }

    /// Whether a connection or a listener of that very port uses `local` (a listener on
    /// every port of the address does not keep ephemeral ports from being chosen).
    fn port_in_use(&self, host: usize, local: SocketAddr) -> bool {
        let any = SocketAddr::new(unspecified(local), local.port());
        self.locals.contains_key(&(host, local))
            || self.listeners.contains_key(&(host, local))
            || self.listeners.contains_key(&(host, any))
    }

    fn insert(&mut self, conn: Conn) -> u64 {
        let id = conn.id.0;
        self.tuples.insert((conn.host, conn.local, conn.remote), id);
        *self.locals.entry((conn.host, conn.local)).or_default() += 1;
        self.conns.insert(id, conn);
        id
    }

    fn remove(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.tuples.remove(&(conn.host, conn.local, conn.remote));
        if let Some(n) = self.locals.get_mut(&(conn.host, conn.local)) {
            *n -= 1;
            if *n == 0 {
                self.locals.remove(&(conn.host, conn.local));
            }
        }
    }

    /// The connection with this four-tuple, if it is more than a TIME-WAIT leftover (which
    /// is dropped: a new connection may reuse the tuple, RFC 6191).
    fn live_tuple(&mut self, key: (usize, SocketAddr, SocketAddr)) -> Option<u64> {
        let id = *self.tuples.get(&key)?;
        if self.conns.get(&id).is_some_and(Conn::is_time_wait) {
            self.remove(id);
            return None;
        }
        Some(id)
    }

    /// The next free ephemeral port of a host address, in order (deterministic).
    fn ephemeral(&mut self, host: usize, ip: IpAddr) -> Option<u16> {
        let start = self
            .next_port
            .get(&(host, ip))
            .copied()
            .unwrap_or(EPHEMERAL.0);
        let span = u32::from(EPHEMERAL.1 - EPHEMERAL.0) + 1;
        let port = (0..span)
            .map(|i| EPHEMERAL.0 + ((u32::from(start - EPHEMERAL.0) + i) % span) as u16)
            .find(|p| !self.port_in_use(host, SocketAddr::new(ip, *p)))?;
        let next = if port == EPHEMERAL.1 {
            EPHEMERAL.0
        } else {
            port + 1
        };
        self.next_port.insert((host, ip), next);
        Some(port)
    }

    fn new_id(&mut self) -> TcpId {
        self.next_id += 1;
        TcpId(self.next_id)
    }
}

/// The unspecified address of `addr`'s family.
fn unspecified(addr: SocketAddr) -> IpAddr {
    if addr.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    }
}

impl Sim {
    /// The TCP behaviour of connections opened from now on (default: [`TcpConfig::default`]).
    pub fn set_tcp_config(&mut self, config: TcpConfig) {
        self.tcp.config = config;
    }

    /// The TCP behaviour new connections get.
    #[must_use]
    pub fn tcp_config(&self) -> &TcpConfig {
        &self.tcp.config
    }

    /// How many TCP connections the hosts' stacks hold, opening, open, closing or in
    /// TIME-WAIT. Zero once every connection has ended and its TIME-WAIT has passed.
    #[must_use]
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp.conns.len()
    }

    /// Carry out a command of `node`; events it causes at once go to `immediate`.
    pub(super) fn tcp_command(
        &mut self,
        node: usize,
        command: TcpCommand,
        immediate: &mut Vec<TcpEvent>,
    ) {
        let host = self.nodes[node].host;
        let now = self.now;
        match command {
            TcpCommand::Listen { local } => {
                if let Err(error) = self.tcp_listen(node, local) {
                    immediate.push(TcpEvent::ListenFailed { local, error });
                }
            }
            TcpCommand::Unlisten { local } => {
                if self.tcp.listeners.get(&(host, local)) == Some(&node) {
                    self.tcp.listeners.remove(&(host, local));
                }
            }
            TcpCommand::Connect { local, remote } => {
                if let Err(error) = self.tcp_connect(node, local, remote) {
                    let failed = TcpStats {
                        connect_failed: 1,
                        ..TcpStats::default()
                    };
                    self.topo.hosts[host].stats.tcp.add(&failed);
                    self.stats.tcp.add(&failed);
                    immediate.push(TcpEvent::ConnectFailed {
                        local,
                        remote,
                        error,
                    });
                }
            }
            TcpCommand::Send { id, bytes } => {
                self.on_conn(node, id, immediate, |c, out| c.send(now, bytes, out));
            }
            TcpCommand::Close { id } => {
                self.on_conn(node, id, immediate, |c, out| c.close(now, out));
            }
            TcpCommand::Abort { id } => {
                self.on_conn(node, id, immediate, |c, out| c.abort(out));
            }
        }
    }

    /// Run a command on a connection the node owns.
    fn on_conn(
        &mut self,
        node: usize,
        id: TcpId,
        immediate: &mut Vec<TcpEvent>,
        command: impl FnOnce(&mut Conn, &mut Output) -> bool,
    ) {
        let mut out = Output::default();
        let done = match self.tcp.conns.get_mut(&id.0) {
            Some(conn) if conn.node == node => command(conn, &mut out),
            _ => false,
        };
        if !done {
            tracing::debug!(
                %id,
                node,
                "netsim: TCP command on a connection that is over or not the node's; ignored"
            );
        }
        immediate.extend(self.tcp_apply(id.0, out));
    }

    fn tcp_listen(&mut self, node: usize, local: SocketAddr) -> Result<(), BindError> {
        let host = self.nodes[node].host;
        if !local.ip().is_unspecified() && self.topo.hosts[host].interface_of(local.ip()).is_none()
        {
            return Err(BindError::AddressNotOnHost(local));
        }
        if self.tcp.listeners.contains_key(&(host, local)) {
            return Err(BindError::InUse(local));
        }
        self.tcp.listeners.insert((host, local), node);
        Ok(())
    }

    fn tcp_connect(
        &mut self,
        node: usize,
        requested: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), ConnectError> {
        let host = self.nodes[node].host;
        if requested.is_ipv4() != remote.is_ipv4() {
            return Err(ConnectError::AddressFamily);
        }
        let h = &self.topo.hosts[host];
        let ip = if requested.ip().is_unspecified() {
            h.addresses()
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(ConnectError::AddressNotOnHost)?
        } else if h.interface_of(requested.ip()).is_some() {
            requested.ip()
        } else {
            return Err(ConnectError::AddressNotOnHost);
        };
        let port = match requested.port() {
            0 => self.tcp.ephemeral(host, ip).ok_or(ConnectError::InUse)?,
            p => p,
        };
        let local = SocketAddr::new(ip, port);
        if self.tcp.live_tuple((host, local, remote)).is_some() {
            return Err(ConnectError::InUse);
        }
        let setup = self.tcp_setup(node, host, local, remote);
        let mut out = Output::default();
        let conn = Conn::connect(setup, requested, &mut out);
        let events = self.tcp_insert(conn, out);
        debug_assert!(events.is_empty(), "a connect tells nothing at once");
        Ok(())
    }

    fn tcp_setup(
        &mut self,
        node: usize,
        host: usize,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Setup {
        let h = &self.topo.hosts[host];
        // `local` is the host's: checked by the caller, or the address a segment reached.
        let mtu = h.interface_of(local.ip()).map_or(1500, |i| {
            self.topo.links[h.interfaces()[i].link().0].config().mtu
        });
        Setup {
            id: self.tcp.new_id(),
            node,
            host,
            local,
            remote,
            iss: self.tcp.rng.next_u32(),
            mss: mss_for_mtu(mtu, local.is_ipv4()),
            config: self.tcp.config.clone(),
            now: self.now,
        }
    }

    fn tcp_insert(&mut self, conn: Conn, out: Output) -> Vec<TcpEvent> {
        let id = self.tcp.insert(conn);
        self.tcp_apply(id, out)
    }

    /// A segment reached `host`: to its connection, to a listener, or answered with a RST.
    pub(super) fn tcp_receive(&mut self, host: usize, seg: Segment) {
        let now = self.now;
        let key = (host, seg.destination, seg.source);
        let id = match self.tcp.tuples.get(&key) {
            // A SYN may open a new connection in place of one in TIME-WAIT.
            Some(_) if seg.is_initial_syn() => self.tcp.live_tuple(key),
            found => found.copied(),
        };
        if let Some(id) = id {
            self.topo.hosts[host].stats.delivered += 1;
            self.stats.delivered += 1;
            let mut out = Output::default();
            let conn = self.tcp.conns.get_mut(&id).expect("indexed connection");
            conn.on_segment(now, &seg, &mut out);
            let node = conn.node;
            let events = self.tcp_apply(id, out);
            return self.tcp_notify(node, events);
        }
        if seg.is_initial_syn() {
            if let Some(node) = self.tcp.listener(host, seg.destination) {
                self.topo.hosts[host].stats.delivered += 1;
                self.stats.delivered += 1;
                let setup = self.tcp_setup(node, host, seg.destination, seg.source);
                let mut out = Output::default();
                let conn = Conn::accept(setup, &seg, &mut out);
                let events = self.tcp_insert(conn, out);
                return self.tcp_notify(node, events);
            }
        }
        // RFC 9293 §3.10.7.1: a segment for no connection is answered with a reset.
        self.host_drop(host, DropReason::UnboundPort, (&seg).into());
        if let Some(rst) = seg.reset_reply() {
            self.topo.hosts[host].stats.tcp.resets_sent += 1;
            self.stats.tcp.resets_sent += 1;
            self.send_packet(host, Packet::Tcp(rst));
        }
    }

    /// A connection's timer fired.
    pub(super) fn tcp_timer(&mut self, id: u64) {
        let now = self.now;
        let Some(conn) = self.tcp.conns.get_mut(&id) else {
            return;
        };
        conn.timer = None;
        let mut out = Output::default();
        conn.on_timeout(now, &mut out);
        let node = conn.node;
        let events = self.tcp_apply(id, out);
        self.tcp_notify(node, events);
    }

    /// Whether a timer event is no longer wanted.
    pub(super) fn tcp_timer_is_stale(&self, id: u64, at: std::time::Instant, seq: u64) -> bool {
        self.tcp
            .conns
            .get(&id)
            .is_none_or(|c| c.timer != Some((at, seq)))
    }

    /// Send what a connection produced, count it, re-arm its timer or forget it; returns
    /// the events for its node.
    fn tcp_apply(&mut self, id: u64, out: Output) -> Vec<TcpEvent> {
        let Some(conn) = self.tcp.conns.get(&id) else {
            return out.events;
        };
        let host = conn.host;
        self.topo.hosts[host].stats.tcp.add(&out.stats);
        self.stats.tcp.add(&out.stats);
        for seg in out.segments {
            self.send_packet(host, Packet::Tcp(seg));
        }
        let now = self.now;
        let conn = self.tcp.conns.get_mut(&id).expect("checked above");
        if conn.is_done() {
            self.tcp.remove(id);
        } else {
            // An overdue deadline fires at once, never in the past.
            let wanted = conn.deadline().map(|t| t.max(now));
            if wanted != conn.timer.map(|(at, _)| at) {
                conn.timer =
                    wanted.map(|at| (at, self.queue.push(at, Event::TcpTimer { conn: id })));
            }
        }
        out.events
    }

    /// Hand events to a node, then poll it.
    fn tcp_notify(&mut self, node: usize, events: Vec<TcpEvent>) {
        if events.is_empty() {
            return;
        }
        let now = self.now;
        for event in events {
            self.nodes[node].node.handle_tcp(now, event);
        }
        self.poll_node(node);
    }
}
