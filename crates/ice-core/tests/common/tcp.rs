//! TCP for the in-memory network: connections opened, accepted, refused and closed as the
//! agents ask (RFC 6544 §7), carrying the agents' RFC 4571 byte streams in order, cut into
//! segments of any size, and framed again on arrival by the real
//! `stun_proto::framing::StreamFramer`, as a driver does. Connections to TURN servers (TCP,
//! or TLS whose handshake and encryption are left out: both ends see plaintext, as the
//! cores do) carry STUN and ChannelData, framed with `Framing::StunAndChannelData`.

use super::{Machine, Net};
use ice_core::{
    Event, Input, Received, StreamId, TcpType, Transmit, TransportProtocol, TurnConnectionId,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::framing::{Framing, StreamFramer};

/// One side of a connection, as its agent names it.
pub struct TcpEnd {
    pub node: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The agent's name of a connection to a TURN server.
    pub turn: Option<TurnConnectionId>,
    framer: StreamFramer,
}

/// A connection between two agents, or between an agent and a TURN server.
pub struct TcpConn {
    pub ends: [TcpEnd; 2],
    pub open: bool,
    /// TCP, or TLS (to a TURN server).
    pub transport: TransportProtocol,
}

/// A connection an agent asked a TURN server for: (node, id, local, server, transport,
/// server name).
pub type TurnAttempt = (
    usize,
    TurnConnectionId,
    SocketAddr,
    SocketAddr,
    TransportProtocol,
    Option<String>,
);

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
    /// A connection to a TURN server was refused.
    TurnConnectFailed { id: TurnConnectionId },
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
    /// Connections to TURN servers asked for.
    pub turn_attempts: Vec<TurnAttempt>,
    /// TURN connections the agents asked to close, by (node, id).
    pub turn_closes: Vec<(usize, TurnConnectionId)>,
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

    /// Open connections to TURN servers of `node`.
    pub fn open_turn(&self, node: usize) -> Vec<(TurnConnectionId, SocketAddr, SocketAddr)> {
        self.conns
            .iter()
            .filter(|c| c.open)
            .flat_map(|c| &c.ends)
            .filter(|e| e.node == node)
            .filter_map(|e| Some((e.turn?, e.local, e.remote)))
            .collect()
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
            Event::TurnConnect {
                id,
                local,
                server,
                transport,
                ref server_name,
            } => {
                let attempt = (node, id, local, server, transport, server_name.clone());
                self.tcp.turn_attempts.push(attempt);
                self.turn_open(node, id, local, server, transport);
            }
            Event::TurnClose { id } => {
                self.tcp.turn_closes.push((node, id));
                let found = self.tcp.conns.iter().position(|c| {
                    c.open && c.ends.iter().any(|e| e.node == node && e.turn == Some(id))
                });
                if let Some(i) = found {
                    self.close_conn(i, node);
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
                    self.close_conn(i, node);
                }
            }
            _ => {}
        }
    }

    /// `node` closes connection `i`: the other end hears of it a latency later.
    fn close_conn(&mut self, i: usize, node: usize) {
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

    /// A connection to a TURN server: accepted by any TURN node (TLS included: the
    /// handshake is assumed), refused by others and by addresses in `refuse`, lost in
    /// `blackhole`.
    fn turn_open(
        &mut self,
        node: usize,
        id: TurnConnectionId,
        local: SocketAddr,
        server: SocketAddr,
        transport: TransportProtocol,
    ) {
        let latency = self.latency;
        if self.tcp.blackhole.contains(&server) {
            return;
        }
        let listener = self.node_for(server).filter(|&n| {
            matches!(self.nodes[n].machine, super::Machine::Turn(_))
                && !self.tcp.refuse.contains(&server)
        });
        let Some(turn) = listener else {
            self.schedule(2 * latency, node, Action::TurnConnectFailed { id });
            return;
        };
        self.tcp.next_port = self.tcp.next_port.max(50000) + 1;
        let ephemeral = SocketAddr::new(local.ip(), self.tcp.next_port);
        let conn = self.new_conn_with(
            [(node, ephemeral, server), (turn, server, ephemeral)],
            transport,
            Framing::StunAndChannelData,
        );
        self.tcp.conns[conn].ends[0].turn = Some(id);
        self.schedule(2 * latency, node, Action::Connected { conn, end: 0 });
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
        self.new_conn_with(ends, TransportProtocol::Tcp, Framing::Rfc4571)
    }

    fn new_conn_with(
        &mut self,
        ends: [(usize, SocketAddr, SocketAddr); 2],
        transport: TransportProtocol,
        framing: Framing,
    ) -> usize {
        let end = |(node, local, remote)| TcpEnd {
            node,
            local,
            remote,
            turn: None,
            framer: StreamFramer::new(framing),
        };
        self.tcp.conns.push(TcpConn {
            ends: ends.map(end),
            open: true,
            transport,
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

    /// A TURN connection of the agent on `node` breaks on its side: the agent hears of it at
    /// once (as from its driver), the server a latency later.
    pub fn turn_break(&mut self, node: usize, id: TurnConnectionId) {
        let found =
            self.tcp.conns.iter().position(|c| {
                c.open && c.ends.iter().any(|e| e.node == node && e.turn == Some(id))
            });
        let Some(conn) = found else { return };
        let now = self.now;
        self.agent(node).turn_closed(now, id);
        self.drain(node);
        self.close_conn(conn, node);
    }

    fn tcp_deliver(&mut self, node: usize, action: Action) {
        if let Machine::Turn(_) = self.nodes[node].machine {
            self.turn_server_deliver(node, action);
            self.drain(node);
            return;
        }
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
                let e = &c.ends[end];
                match (c.open, e.turn) {
                    (true, Some(id)) => agent.turn_connected(now, id, e.local),
                    (true, None) => agent.tcp_connected(now, e.local, e.remote),
                    (false, _) => {}
                }
            }
            Action::ConnectFailed { local, remote } => agent.tcp_connect_failed(now, local, remote),
            Action::TurnConnectFailed { id } => agent.turn_connect_failed(now, id),
            Action::Closed { conn, end } => {
                let e = &self.tcp.conns[conn].ends[end];
                match e.turn {
                    Some(id) => agent.turn_closed(now, id),
                    None => agent.tcp_closed(now, e.local, e.remote),
                }
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
        let transport = self.tcp.conns[conn].transport;
        for frame in frames {
            let input = Input {
                transport,
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
            let turn = self.tcp.conns[conn].ends[end].turn;
            if let Machine::Agent(agent) = &mut self.nodes[node].machine {
                match turn {
                    Some(id) => agent.turn_closed(now, id),
                    None => agent.tcp_closed(now, local, remote),
                }
            }
            self.close_conn(conn, node);
        }
    }

    /// The TURN server's side of its connections: frames in as `ServerInput`s, relayed
    /// datagrams out, closed connections reported.
    fn turn_server_deliver(&mut self, node: usize, action: Action) {
        let now = self.now;
        match action {
            Action::Bytes { conn, end, data } => {
                if !self.tcp.conns[conn].open {
                    return;
                }
                let transport = self.tcp.conns[conn].transport;
                let e = &mut self.tcp.conns[conn].ends[end];
                let (local, remote) = (e.local, e.remote);
                let mut frames = Vec::new();
                let mut broken = e.framer.push(&data).is_err();
                while !broken {
                    match e.framer.next_frame() {
                        Ok(Some(frame)) => frames.push(frame.data.to_vec()),
                        Ok(None) => break,
                        Err(_) => broken = true,
                    }
                }
                for mut frame in frames {
                    let Machine::Turn(server) = &mut self.nodes[node].machine else {
                        return;
                    };
                    let input = turn_proto::server::ServerInput {
                        transport,
                        source: remote,
                        destination: local,
                        buf: &mut frame,
                        headroom: 0,
                    };
                    if let turn_proto::server::ServerOutput::Send(d) =
                        server.handle_input(now, input)
                    {
                        let t = Transmit {
                            transport: d.transport,
                            source: d.source,
                            destination: d.destination,
                            payload: d.data.to_vec(),
                        };
                        self.send(node, t);
                    }
                }
                if broken {
                    if let Machine::Turn(server) = &mut self.nodes[node].machine {
                        server.connection_closed(now, transport, remote, local);
                    }
                    self.close_conn(conn, node);
                }
            }
            Action::Closed { conn, end } => {
                let transport = self.tcp.conns[conn].transport;
                let e = &self.tcp.conns[conn].ends[end];
                let (local, remote) = (e.local, e.remote);
                if let Machine::Turn(server) = &mut self.nodes[node].machine {
                    server.connection_closed(now, transport, remote, local);
                }
            }
            _ => {}
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
