//! TCP for the in-memory network: connections opened, accepted, refused and closed as the
//! agents ask (RFC 6544 §7), carrying the agents' RFC 4571 byte streams in order, cut into
//! segments of any size, and framed again on arrival by the real
//! `stun_proto::framing::StreamFramer`, as a driver does.

use super::{Machine, Net};
use ice_core::{Event, Input, Received, StreamId, TcpType, Transmit, TransportProtocol};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::framing::{Framing, StreamFramer};

/// One side of a connection, as its agent names it.
pub struct TcpEnd {
    pub node: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    framer: StreamFramer,
}

/// A connection between two agents.
pub struct TcpConn {
    pub ends: [TcpEnd; 2],
    pub open: bool,
}

enum Action {
    /// The listening side learns of the connection.
    Accepted { conn: usize },
    /// The connecting side learns its attempt succeeded.
    Connected { conn: usize, end: usize },
    /// A reset, or no simultaneous open from the peer in time.
    ConnectFailed {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Bytes of the stream reach one end.
    Bytes {
        conn: usize,
        end: usize,
        data: Vec<u8>,
    },
    /// The other side closed.
    Closed { conn: usize, end: usize },
}

struct Segment {
    at: Instant,
    seq: u64,
    node: usize,
    action: Action,
}

struct SoAttempt {
    node: usize,
    local: SocketAddr,
    remote: SocketAddr,
    deadline: Instant,
}

/// The TCP side of the network.
#[derive(Default)]
pub struct TcpNet {
    pub conns: Vec<TcpConn>,
    /// Addresses whose listener answers connection attempts with a reset.
    pub refuse: Vec<SocketAddr>,
    /// Addresses whose SYNs vanish (a firewall): attempts to them time out in the agent.
    pub blackhole: Vec<SocketAddr>,
    /// Cut every write into segments of at most this many bytes.
    pub segment: Option<usize>,
    /// Deliver the segments that arrive at the same moment as one read.
    pub coalesce: bool,
    /// How long a simultaneous-open attempt waits for the peer's.
    pub so_window: Option<Duration>,
    /// Writes on no open connection.
    pub dropped_writes: usize,
    /// Connection attempts seen, by (node, local, remote, type).
    pub attempts: Vec<(usize, SocketAddr, SocketAddr, TcpType)>,
    /// Close requests seen, by (node, local, remote).
    pub closes: Vec<(usize, SocketAddr, SocketAddr)>,
    segments: Vec<Segment>,
    so_pending: Vec<SoAttempt>,
    next_port: u16,
}

impl TcpNet {
    pub(super) fn next_time(&self) -> Option<Instant> {
        let segments = self.segments.iter().map(|s| s.at);
        let so = self.so_pending.iter().map(|s| s.deadline);
        segments.chain(so).min()
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.conns.iter().filter(|c| c.open).count()
    }
}

impl Net {
    fn schedule(&mut self, delay: Duration, node: usize, action: Action) {
        self.seq += 1;
        self.tcp.segments.push(Segment {
            at: self.now + delay,
            seq: self.seq,
            node,
            action,
        });
    }

    /// A passive or simultaneous-open TCP candidate of the agent on `node` listens here.
    fn listens(&self, node: usize, addr: SocketAddr) -> bool {
        let Machine::Agent(a) = &self.nodes[node].machine else {
            return false;
        };
        a.streams().any(|s| {
            a.local_candidates(s).iter().any(|c| {
                c.transport == TransportProtocol::Tcp
                    && c.tcp_type == Some(TcpType::Passive)
                    && c.base == addr
            })
        })
    }

    /// The agent's TCP requests.
    pub(super) fn tcp_event(&mut self, node: usize, e: &Event) {
        match *e {
            Event::TcpConnect {
                local,
                remote,
                tcp_type,
            } => {
                self.tcp.attempts.push((node, local, remote, tcp_type));
                match tcp_type {
                    TcpType::SimultaneousOpen => self.simultaneous_open(node, local, remote),
                    _ => self.tcp_active_open(node, local, remote),
                }
            }
            Event::TcpClose { local, remote } => {
                self.tcp.closes.push((node, local, remote));
                self.tcp
                    .so_pending
                    .retain(|a| !(a.node == node && a.local == local && a.remote == remote));
                let found = self.tcp.conns.iter().position(|c| {
                    c.open
                        && c.ends
                            .iter()
                            .any(|e| e.node == node && e.local == local && e.remote == remote)
                });
                if let Some(i) = found {
                    self.tcp.conns[i].open = false;
                    let other = usize::from(self.tcp.conns[i].ends[0].node == node);
                    let peer = self.tcp.conns[i].ends[other].node;
                    let latency = self.latency;
                    self.schedule(
                        latency,
                        peer,
                        Action::Closed {
                            conn: i,
                            end: other,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// An active open: accepted by a listener, reset, or lost.
    fn tcp_active_open(&mut self, node: usize, local: SocketAddr, remote: SocketAddr) {
        let latency = self.latency;
        if self.tcp.blackhole.contains(&remote) {
            return;
        }
        let listener = self
            .node_for(remote)
            .filter(|&n| self.listens(n, remote) && !self.tcp.refuse.contains(&remote));
        let Some(peer) = listener else {
            self.schedule(2 * latency, node, Action::ConnectFailed { local, remote });
            return;
        };
        // The connection leaves from an ephemeral port, whatever the agent calls it.
        self.tcp.next_port = self.tcp.next_port.max(50000) + 1;
        let ephemeral = SocketAddr::new(local.ip(), self.tcp.next_port);
        let conn = self.new_conn([(node, local, remote), (peer, remote, ephemeral)]);
        self.schedule(latency, peer, Action::Accepted { conn });
        self.schedule(2 * latency, node, Action::Connected { conn, end: 0 });
    }

    /// A simultaneous open: both sides connect to each other within the window.
    fn simultaneous_open(&mut self, node: usize, local: SocketAddr, remote: SocketAddr) {
        let latency = self.latency;
        let matching = self
            .tcp
            .so_pending
            .iter()
            .position(|a| a.local == remote && a.remote == local && a.node != node);
        match matching {
            Some(i) => {
                let other = self.tcp.so_pending.remove(i);
                let conn = self.new_conn([(other.node, remote, local), (node, local, remote)]);
                self.schedule(latency, other.node, Action::Connected { conn, end: 0 });
                self.schedule(latency, node, Action::Connected { conn, end: 1 });
            }
            None => {
                let window = self.tcp.so_window.unwrap_or(Duration::from_secs(5));
                self.tcp.so_pending.push(SoAttempt {
                    node,
                    local,
                    remote,
                    deadline: self.now + window,
                });
            }
        }
    }

    fn new_conn(&mut self, ends: [(usize, SocketAddr, SocketAddr); 2]) -> usize {
        let end = |(node, local, remote)| TcpEnd {
            node,
            local,
            remote,
            framer: StreamFramer::new(Framing::Rfc4571),
        };
        self.tcp.conns.push(TcpConn {
            ends: ends.map(end),
            open: true,
        });
        self.tcp.conns.len() - 1
    }

    /// Bytes an agent writes on a connection: to the other end, in order, maybe in pieces.
    pub(super) fn tcp_write(&mut self, node: usize, t: Transmit) {
        let found = self.tcp.conns.iter().enumerate().find_map(|(i, c)| {
            let e = c
                .ends
                .iter()
                .position(|e| e.node == node && e.local == t.source && e.remote == t.destination)?;
            c.open.then_some((i, 1 - e))
        });
        let Some((conn, to)) = found else {
            self.tcp.dropped_writes += 1;
            return;
        };
        let peer = self.tcp.conns[conn].ends[to].node;
        let size = self.tcp.segment.unwrap_or(usize::MAX).max(1);
        let latency = self.latency;
        for piece in t.payload.chunks(size) {
            let data = piece.to_vec();
            self.schedule(
                latency,
                peer,
                Action::Bytes {
                    conn,
                    end: to,
                    data,
                },
            );
        }
    }

    /// Delivers what is due.
    pub(super) fn tcp_step(&mut self, now: Instant) {
        let expired: Vec<SoAttempt> = {
            let (gone, kept) = std::mem::take(&mut self.tcp.so_pending)
                .into_iter()
                .partition(|a| a.deadline <= now);
            self.tcp.so_pending = kept;
            gone
        };
        for a in expired {
            self.schedule(
                Duration::ZERO,
                a.node,
                Action::ConnectFailed {
                    local: a.local,
                    remote: a.remote,
                },
            );
        }
        let (mut due, rest): (Vec<Segment>, Vec<Segment>) = std::mem::take(&mut self.tcp.segments)
            .into_iter()
            .partition(|s| s.at <= now);
        self.tcp.segments = rest;
        due.sort_by_key(|s| (s.at, s.seq));
        if self.tcp.coalesce {
            due = coalesce(due);
        }
        for s in due {
            self.tcp_deliver(s.node, s.action);
        }
    }

    /// The connection breaks on `node`'s side: its agent hears of it at once (as from its
    /// driver), the other side a latency later.
    pub fn tcp_break(&mut self, node: usize, local: SocketAddr, remote: SocketAddr) {
        let found = self.tcp.conns.iter().enumerate().find_map(|(i, c)| {
            let e = c
                .ends
                .iter()
                .position(|e| e.node == node && e.local == local && e.remote == remote)?;
            c.open.then_some((i, e))
        });
        let Some((conn, end)) = found else { return };
        self.tcp.conns[conn].open = false;
        let now = self.now;
        self.agent(node).tcp_closed(now, local, remote);
        self.drain(node);
        let peer = self.tcp.conns[conn].ends[1 - end].node;
        let latency = self.latency;
        self.schedule(latency, peer, Action::Closed { conn, end: 1 - end });
    }

    fn tcp_deliver(&mut self, node: usize, action: Action) {
        let now = self.now;
        let Machine::Agent(agent) = &mut self.nodes[node].machine else {
            return;
        };
        match action {
            Action::Accepted { conn } => {
                let c = &self.tcp.conns[conn];
                let (local, remote) = (c.ends[1].local, c.ends[1].remote);
                if c.open && !agent.tcp_accepted(now, local, remote) {
                    self.tcp.conns[conn].open = false;
                }
            }
            Action::Connected { conn, end } => {
                let c = &self.tcp.conns[conn];
                if c.open {
                    agent.tcp_connected(now, c.ends[end].local, c.ends[end].remote);
                }
            }
            Action::ConnectFailed { local, remote } => agent.tcp_connect_failed(now, local, remote),
            Action::Closed { conn, end } => {
                let e = &self.tcp.conns[conn].ends[end];
                agent.tcp_closed(now, e.local, e.remote);
            }
            Action::Bytes { conn, end, data } => {
                if self.tcp.conns[conn].open {
                    self.tcp_bytes(node, conn, end, &data);
                }
            }
        }
        self.drain(node);
    }

    /// A driver's read loop: push what arrived into the framer, hand each whole frame to
    /// the agent; an unframeable stream closes the connection.
    fn tcp_bytes(&mut self, node: usize, conn: usize, end: usize, data: &[u8]) {
        let e = &mut self.tcp.conns[conn].ends[end];
        let (local, remote) = (e.local, e.remote);
        let mut frames = Vec::new();
        let mut broken = e.framer.push(data).is_err();
        while !broken {
            match e.framer.next_frame() {
                Ok(Some(frame)) => frames.push(frame.data.to_vec()),
                Ok(None) => break,
                Err(_) => broken = true,
            }
        }
        let now = self.now;
        let elapsed = self.elapsed();
        for frame in frames {
            let input = Input {
                transport: TransportProtocol::Tcp,
                source: remote,
                destination: local,
                data: &frame,
            };
            let Machine::Agent(agent) = &mut self.nodes[node].machine else {
                return;
            };
            if let Received::Data {
                stream,
                component,
                data,
                ..
            } = agent.handle_input(now, input)
            {
                let range = frame.as_ptr_range();
                assert!(
                    range.contains(&data.as_ptr()) || data.is_empty(),
                    "not a sub-slice"
                );
                let data = data.to_vec();
                self.nodes[node]
                    .data
                    .push((elapsed, stream, component, data));
            }
        }
        if broken {
            self.tcp.conns[conn].open = false;
            let peer = self.tcp.conns[conn].ends[1 - end].node;
            if let Machine::Agent(agent) = &mut self.nodes[node].machine {
                agent.tcp_closed(now, local, remote);
            }
            let latency = self.latency;
            self.schedule(latency, peer, Action::Closed { conn, end: 1 - end });
        }
    }
}

/// Joins consecutive byte segments for the same end into one read.
fn coalesce(due: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(due.len());
    for s in due {
        if let (
            Some(Segment {
                action: Action::Bytes { conn, end, data },
                ..
            }),
            Action::Bytes {
                conn: c2,
                end: e2,
                data: more,
            },
        ) = (out.last_mut(), &s.action)
        {
            if conn == c2 && end == e2 {
                data.extend_from_slice(more);
                continue;
            }
        }
        out.push(s);
    }
    out
}

/// Adds a TCP host candidate.
pub fn add_tcp_host(net: &mut Net, node: usize, stream: StreamId, addr: &str, t: TcpType) {
    let now = net.now;
    net.agent(node)
        .add_tcp_host_candidate(now, stream, 1, addr.parse().unwrap(), t)
        .unwrap();
}
