//! The agent's task: one loop that `select!`s over the UDP sockets, the TCP listeners, the
//! connections' reports, the agent's timer and the command channel, and publishes what the
//! agent reports.

use super::streams::{self, IoTx, Writer};
use super::{Snapshot, Status};
use crate::ice::conns::{Action, Conns, Io};
use crate::ice::{AgentMachine, IceError, IceOutput, LocalCandidate};
use crate::machine::Machine;
use ::tokio::io::ReadBuf;
use ::tokio::net::{TcpListener, TcpStream, UdpSocket};
use ::tokio::sync::{mpsc, oneshot, watch};
use ice_core::{Event, Input, Transmit, TransportProtocol};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use stun_proto::framing::Framing;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;
/// The shortest wait after a timer fired, should the machine's deadline not move.
const SPIN_GUARD: Duration = Duration::from_millis(1);

/// Connection reports queued for the task.
const IO_QUEUE: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, IceError>>;

/// The agent's sockets, as `build` hands them to the task.
pub(super) struct Sockets {
    /// The UDP host candidates' sockets.
    pub(super) udp: Vec<(SocketAddr, UdpSocket)>,
    /// The passive TCP candidates' listeners.
    pub(super) listeners: Vec<(SocketAddr, TcpListener)>,
    /// Trust for TURN over TLS.
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
}

/// What the handles ask of the task.
pub(super) enum Command {
    RemoteCredentials {
        ufrag: String,
        pwd: String,
        reply: Reply<()>,
    },
    RemoteCandidate {
        line: String,
        reply: Reply<()>,
    },
    RemotePacing {
        proposed: Option<Duration>,
        reply: Reply<()>,
    },
    EndOfCandidates {
        reply: Reply<()>,
    },
    Send {
        data: Vec<u8>,
        reply: Reply<()>,
    },
    Snapshot {
        reply: Reply<Snapshot>,
    },
    Close {
        reply: Reply<()>,
    },
}

/// The task's state: the agent, its sockets, and the channels to the handles.
pub(super) struct Task {
    machine: AgentMachine,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    listeners: Vec<(SocketAddr, TcpListener)>,
    conns: Conns<Writer>,
    io_tx: IoTx,
    io_rx: mpsc::Receiver<Io<Writer>>,
    commands: mpsc::Receiver<Command>,
    candidates: mpsc::UnboundedSender<Option<LocalCandidate>>,
    data: mpsc::Sender<Vec<u8>>,
    status: watch::Sender<Status>,
    close_timeout: Duration,
    /// Set once closing: when to stop even if a TURN server never answers.
    close_deadline: Option<Instant>,
    closers: Vec<Reply<()>>,
    /// The socket to read first next time, so that a busy socket cannot starve the others.
    next_socket: usize,
    /// The listener to poll first next time.
    next_listener: usize,
}

impl Task {
    pub(super) fn new(
        machine: AgentMachine,
        sockets: Sockets,
        commands: mpsc::Receiver<Command>,
        candidates: mpsc::UnboundedSender<Option<LocalCandidate>>,
        data: mpsc::Sender<Vec<u8>>,
        status: watch::Sender<Status>,
        close_timeout: Duration,
    ) -> Task {
        let (io_tx, io_rx) = mpsc::channel(IO_QUEUE);
        Task {
            machine,
            sockets: sockets.udp,
            listeners: sockets.listeners,
            conns: Conns::new(sockets.tls),
            io_tx,
            io_rx,
            commands,
            candidates,
            data,
            status,
            close_timeout,
            close_deadline: None,
            closers: Vec::new(),
            next_socket: 0,
            next_listener: 0,
        }
    }

    /// Runs until the agent is closed and released (or the close timeout passes).
    pub(super) async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut last_fired: Option<Instant> = None;
        loop {
            // The Sans-IO order: transmits, then events, then the timeout.
            self.flush().await;
            if self.publish() {
                break;
            }
            // Events can queue datagrams (an mDNS query for a remote candidate's name).
            self.flush().await;
            let mut wake = [self.machine.poll_timeout(), self.close_deadline]
                .into_iter()
                .flatten()
                .min();
            // A deadline that handle_timeout did not move is a machine bug; waiting a
            // millisecond keeps it from spinning a core meanwhile.
            if let (Some(w), Some(fired)) = (wake, last_fired) {
                if w <= fired {
                    wake = Some(fired + SPIN_GUARD);
                }
            }
            let closing = self.close_deadline.is_some();
            ::tokio::select! {
                command = self.commands.recv(), if !closing => match command {
                    Some(Command::Close { reply }) => {
                        self.closers.push(reply);
                        self.begin_close();
                    }
                    Some(command) => self.command(command).await,
                    // Every handle is gone.
                    None => self.begin_close(),
                },
                (local, received) = recv_any(&self.sockets, &mut buf, &mut self.next_socket) => {
                    match received {
                        Ok((n, remote)) => {
                            let input = Input {
                                transport: TransportProtocol::Udp,
                                source: remote,
                                destination: local,
                                data: &buf[..n],
                            };
                            self.machine.handle_input(Instant::now(), input);
                        }
                        // ICMP errors surface as ConnectionRefused on Linux: keep reading.
                        Err(error) => tracing::debug!(%local, %error, "recv failed"),
                    }
                }
                io = self.io_rx.recv() => {
                    // The task holds a sender itself: `None` cannot happen.
                    if let Some(io) = io {
                        if let Some(writer) = self.conns.on_io(&mut self.machine, Instant::now(), io) {
                            drop(writer); // a connection the agent no longer wants
                        }
                    }
                }
                (listener, accepted) = accept_any(&self.listeners, &mut self.next_listener) => {
                    match accepted {
                        Ok((stream, remote)) => self.accepted(listener, remote, stream),
                        Err(error) => tracing::debug!(%listener, %error, "accept failed"),
                    }
                }
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    last_fired = Some(now);
                    if self.close_deadline.is_some_and(|d| now >= d) {
                        tracing::debug!("TURN allocations not confirmed released in time");
                        break;
                    }
                    self.machine.handle_timeout(now);
                }
            }
        }
        // Closes every connection (their tasks end).
        self.conns.drain().for_each(drop);
        self.status.send_modify(|s| s.stopped = true);
        for reply in self.closers.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }

    fn begin_close(&mut self) {
        let now = Instant::now();
        self.machine.close(now);
        self.close_deadline = Some(now + self.close_timeout);
    }

    /// Sends everything the agent queued, each from the socket its `source` names.
    async fn flush(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.send(t).await;
        }
    }

    async fn send(&self, t: Transmit) {
        if t.transport != TransportProtocol::Udp {
            // A connection's task writes it (a failed write shows up as its close).
            match self.conns.writer_for(&t) {
                Some(writer) => {
                    let _ = writer.send(t.payload);
                }
                None => tracing::debug!(from = %t.source, to = %t.destination, "no connection"),
            }
            return;
        }
        match self.sockets.iter().find(|(a, _)| *a == t.source) {
            Some((_, socket)) => {
                if let Err(error) = socket.send_to(&t.payload, t.destination).await {
                    tracing::debug!(%error, to = %t.destination, "send failed");
                }
            }
            None => tracing::warn!(source = %t.source, "no socket for transmit"),
        }
    }

    /// Hands the agent's outputs to the handles. True once the agent is released.
    fn publish(&mut self) -> bool {
        while let Some(output) = self.machine.poll_event() {
            match output {
                IceOutput::Candidate(c) => {
                    let _ = self.candidates.send(Some(c));
                }
                IceOutput::EndOfCandidates => {
                    let _ = self.candidates.send(None);
                }
                IceOutput::Event(Event::ConnectionStateChanged(state)) => {
                    tracing::debug!(?state, "connection state");
                    self.status.send_modify(|s| s.state = state);
                }
                IceOutput::Event(Event::SelectedPair { local, remote, .. }) => {
                    tracing::debug!(%local.address, %remote.address, "selected pair");
                    self.status
                        .send_modify(|s| s.selected = Some((local, remote)));
                }
                IceOutput::Event(
                    event @ (Event::TcpConnect { .. }
                    | Event::TcpClose { .. }
                    | Event::TurnConnect { .. }
                    | Event::TurnClose { .. }),
                ) => self.connection_event(&event),
                IceOutput::Event(event) => tracing::debug!(?event, "ICE event"),
                IceOutput::Data { data, .. } => {
                    if self.data.try_send(data).is_err() {
                        tracing::debug!("unread data full: datagram dropped");
                    }
                }
                IceOutput::Released => return true,
            }
        }
        false
    }

    /// The agent asks for a connection to be opened or closed.
    fn connection_event(&mut self, event: &Event) {
        let timeout = self.machine.agent().config().tcp_connect_timeout;
        match self
            .conns
            .on_event(&mut self.machine, Instant::now(), event)
        {
            Some(Action::Open(request)) => {
                ::tokio::spawn(streams::open(request, timeout, self.io_tx.clone()));
            }
            Some(Action::Close(writer)) => drop(writer),
            None => {}
        }
    }

    /// A connection accepted on a passive candidate's listener: kept if the agent wants it.
    fn accepted(&mut self, listener: SocketAddr, remote: SocketAddr, stream: TcpStream) {
        let now = Instant::now();
        let Some(token) = self
            .conns
            .accepted(&mut self.machine, now, listener, remote)
        else {
            return; // dropped: closed
        };
        let _ = stream.set_nodelay(true);
        let (writer, writes) = mpsc::unbounded_channel();
        self.conns.attach(token, writer);
        let io = self.io_tx.clone();
        ::tokio::spawn(streams::run(token, stream, Framing::Rfc4571, writes, io));
    }

    async fn command(&mut self, command: Command) {
        let now = Instant::now();
        let m = &mut self.machine;
        match command {
            Command::RemoteCredentials { ufrag, pwd, reply } => {
                let _ = reply.send(m.set_remote_credentials(now, &ufrag, &pwd));
            }
            Command::RemoteCandidate { line, reply } => {
                let _ = reply.send(m.add_remote_candidate(now, &line));
            }
            Command::RemotePacing { proposed, reply } => {
                m.set_remote_pacing(proposed);
                let _ = reply.send(Ok(()));
            }
            Command::EndOfCandidates { reply } => {
                let _ = reply.send(m.end_of_remote_candidates(now));
            }
            Command::Send { data, reply } => match m.send(now, &data) {
                Ok(t) => {
                    self.send(t).await;
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Snapshot { reply } => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            Command::Close { reply } => {
                self.closers.push(reply);
                self.begin_close();
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let agent = self.machine.agent();
        let stream = self.machine.stream();
        Snapshot {
            state: agent.connection_state(),
            selected: self.machine.selected_pair(),
            pairs: agent.pairs(stream),
            local: agent.local_candidates(stream),
            remote: agent.remote_candidates(stream),
            stats: agent.stats(),
        }
    }
}

/// The next datagram on any of the sockets: `(local address, result)`.
fn recv_any<'a>(
    sockets: &'a [(SocketAddr, UdpSocket)],
    buf: &'a mut [u8],
    next: &'a mut usize,
) -> impl Future<Output = (SocketAddr, io::Result<(usize, SocketAddr)>)> + 'a {
    std::future::poll_fn(move |cx| {
        let n = sockets.len();
        for k in 0..n {
            let i = (*next + k) % n;
            let (local, socket) = &sockets[i];
            let mut read = ReadBuf::new(&mut *buf);
            match socket.poll_recv_from(cx, &mut read) {
                Poll::Ready(Ok(remote)) => {
                    *next = (i + 1) % n;
                    return Poll::Ready((*local, Ok((read.filled().len(), remote))));
                }
                Poll::Ready(Err(e)) => {
                    *next = (i + 1) % n;
                    return Poll::Ready((*local, Err(e)));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
}

/// The next connection on any of the listeners: `(listening address, result)`.
fn accept_any<'a>(
    listeners: &'a [(SocketAddr, TcpListener)],
    next: &'a mut usize,
) -> impl Future<Output = (SocketAddr, io::Result<(TcpStream, SocketAddr)>)> + 'a {
    std::future::poll_fn(move |cx| {
        let n = listeners.len();
        for k in 0..n {
            let i = (*next + k) % n;
            let (local, listener) = &listeners[i];
            if let Poll::Ready(result) = listener.poll_accept(cx) {
                *next = (i + 1) % n;
                return Poll::Ready((*local, result));
            }
        }
        Poll::Pending
    })
}

/// Sleeps until `at`; forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => ::tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
