//! The blocking flavour's loop: the agent, its UDP sockets, its TCP listeners and its TCP
//! and TLS connections, on std threads. Every socket has a thread (a UDP reader, a listener
//! accepting, a connection reader framing its stream) that posts what it got to one channel;
//! the loop, running inside the handle's calls, takes from it, feeds the agent, writes its
//! transmits and sleeps until the agent's `poll_timeout` or the next post.
//!
//! It is [`blocking::Runner`](crate::blocking::Runner)'s loop with streams added: ICE-TCP
//! and TURN over TCP/TLS need listeners and connections, which that runner does not have.

use crate::blocking::{Stopped, TimerStep, read_loop, timer_step};
use crate::ice::builder::Prepared;
use crate::ice::conns::{Action, Conns, Io, OpenRequest};
use crate::ice::{AgentMachine, IceOutput};
use crate::machine::Machine;
use crate::turn::conn::{self, ConnEvent, ConnWriter, Opened};
use ice_core::{Event, Input, Transmit, TransportProtocol};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};
use stun_proto::framing::Framing;

/// How long a UDP reader blocks before checking whether it should stop.
const READ_POLL: Duration = Duration::from_millis(100);
/// Posts queued for the loop; UDP readers drop datagrams beyond it, connections wait.
const QUEUE: usize = 4096;

/// What the threads post to the loop.
enum Incoming {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Io(Io<ConnWriter>),
    Accepted {
        listener: SocketAddr,
        remote: SocketAddr,
        stream: TcpStream,
    },
}

impl From<ConnEvent> for Incoming {
    fn from(e: ConnEvent) -> Self {
        Incoming::Io(match e {
            ConnEvent::Frame { token, data } => Io::Frame { token, data },
            ConnEvent::Closed { token, reason } => Io::Closed { token, reason },
        })
    }
}

/// The agent and its sockets, driven inside the blocking calls.
pub(super) struct Driver {
    machine: AgentMachine,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    listeners: Vec<SocketAddr>,
    conns: Conns<ConnWriter>,
    tx: SyncSender<Incoming>,
    rx: Receiver<Incoming>,
    /// Tells the UDP readers and the listeners to stop.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("udp", &self.udp.iter().map(|(a, _)| a).collect::<Vec<_>>())
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Starts the socket threads.
    pub(super) fn start(prepared: Prepared) -> io::Result<Driver> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let mut driver = Driver {
            machine: prepared.machine,
            udp: Vec::new(),
            listeners: Vec::new(),
            conns: Conns::new(prepared.tls),
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
        };
        for socket in prepared.sockets {
            driver.add_udp(socket)?;
        }
        for listener in prepared.listeners {
            driver.add_listener(listener)?;
        }
        if let Some(socket) = prepared.mdns_socket {
            driver.add_udp(socket)?;
        }
        Ok(driver)
    }

    fn add_udp(&mut self, socket: UdpSocket) -> io::Result<()> {
        let local = socket.local_addr()?;
        socket.set_read_timeout(Some(READ_POLL))?;
        let socket = Arc::new(socket);
        let (reader, tx, stop) = (socket.clone(), self.tx.clone(), self.stop.clone());
        std::thread::Builder::new()
            .name(format!("floe-udp-{local}"))
            .spawn(move || {
                read_loop(&reader, local, &tx, &stop, |remote, data| {
                    Incoming::Datagram {
                        local,
                        remote,
                        data,
                    }
                })
            })?;
        self.udp.push((local, socket));
        Ok(())
    }

    fn add_listener(&mut self, listener: TcpListener) -> io::Result<()> {
        let local = listener.local_addr()?;
        let (tx, stop) = (self.tx.clone(), self.stop.clone());
        std::thread::Builder::new()
            .name(format!("floe-listen-{local}"))
            .spawn(move || accept_loop(&listener, local, &tx, &stop))?;
        self.listeners.push(local);
        Ok(())
    }

    /// The host sockets' addresses: UDP sockets, then listeners (not the mDNS socket).
    pub(super) fn local_addrs(&self) -> Vec<SocketAddr> {
        let mdns = self.machine.mdns_socket();
        let udp = self
            .udp
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| Some(*a) != mdns);
        udp.chain(self.listeners.iter().copied()).collect()
    }

    pub(super) fn machine(&self) -> &AgentMachine {
        &self.machine
    }

    pub(super) fn machine_mut(&mut self) -> &mut AgentMachine {
        &mut self.machine
    }

    /// Sends everything the agent has queued.
    pub(super) fn flush(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.send_transmit(&t);
        }
    }

    /// Sends one transmit, from the socket or on the connection it names.
    pub(super) fn send_transmit(&self, t: &Transmit) {
        if t.transport != TransportProtocol::Udp {
            match self.conns.writer_for(t) {
                // A failed write shows up as the connection's close, through its reader.
                Some(w) => {
                    if let Err(e) = w.write(&t.payload) {
                        tracing::debug!(error = %e, to = %t.destination, "write failed");
                    }
                }
                None => tracing::debug!(from = %t.source, to = %t.destination, "no connection"),
            }
            return;
        }
        match self.udp.iter().find(|(a, _)| *a == t.source) {
            Some((_, s)) => {
                if let Err(e) = s.send_to(&t.payload, t.destination) {
                    tracing::debug!(error = %e, to = %t.destination, "send failed");
                }
            }
            None => tracing::warn!(source = %t.source, "no socket for transmit"),
        }
    }

    /// Runs until `on_event` breaks or `deadline` passes. Connection requests of the agent
    /// are carried out here; every other output goes to `on_event`.
    pub(super) fn run(
        &mut self,
        deadline: Option<Instant>,
        mut on_event: impl FnMut(IceOutput) -> ControlFlow<()>,
    ) -> io::Result<Stopped> {
        loop {
            self.flush();
            while let Some(output) = self.machine.poll_event() {
                let flow = match output {
                    IceOutput::Event(
                        event @ (Event::TcpConnect { .. }
                        | Event::TcpClose { .. }
                        | Event::TurnConnect { .. }
                        | Event::TurnClose { .. }),
                    ) => {
                        self.connection_event(&event);
                        ControlFlow::Continue(())
                    }
                    other => on_event(other),
                };
                self.flush();
                if flow.is_break() {
                    return Ok(Stopped::Break);
                }
            }
            let wait = match timer_step(&mut self.machine, deadline, Instant::now()) {
                TimerStep::Deadline => return Ok(Stopped::Deadline),
                TimerStep::Fired => continue,
                TimerStep::Wait(w) => w.unwrap_or(READ_POLL),
            };
            match self.rx.recv_timeout(wait) {
                Ok(incoming) => {
                    self.deliver(incoming);
                    // Take what else is queued before sending, to batch.
                    while let Ok(incoming) = self.rx.try_recv() {
                        self.deliver(incoming);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the socket threads stopped"));
                }
            }
        }
    }

    fn deliver(&mut self, incoming: Incoming) {
        let now = Instant::now();
        match incoming {
            Incoming::Datagram {
                local,
                remote,
                data,
            } => {
                let input = Input {
                    transport: TransportProtocol::Udp,
                    source: remote,
                    destination: local,
                    data: &data,
                };
                self.machine.handle_input(now, input);
            }
            Incoming::Io(io) => {
                // A connection the agent no longer wants closes as the writer drops.
                drop(self.conns.on_io(&mut self.machine, now, io));
            }
            Incoming::Accepted {
                listener,
                remote,
                stream,
            } => self.accepted(listener, remote, stream),
        }
    }

    /// The agent asks for a connection to be opened or closed.
    fn connection_event(&mut self, event: &Event) {
        let timeout = self.machine.agent().config().tcp_connect_timeout;
        match self
            .conns
            .on_event(&mut self.machine, Instant::now(), event)
        {
            Some(Action::Open(request)) => {
                if let Err(e) = spawn_open(request, timeout, self.tx.clone()) {
                    tracing::warn!(error = %e, "cannot start a connection thread");
                }
            }
            Some(Action::Close(writer)) => writer.close(),
            None => {}
        }
    }

    /// A connection on a passive candidate's listener: kept if the agent wants it.
    fn accepted(&mut self, listener: SocketAddr, remote: SocketAddr, stream: TcpStream) {
        let Some(token) = self
            .conns
            .accepted(&mut self.machine, Instant::now(), listener, remote)
        else {
            return; // dropped: closed
        };
        let _ = stream.set_nodelay(true);
        let opened = Opened {
            stream,
            tls: None,
            local: listener,
        };
        match conn::split(opened, Framing::Rfc4571) {
            Ok((writer, reader)) => {
                self.conns.attach(token, writer);
                if let Err(e) = reader.spawn(token, self.tx.clone()) {
                    tracing::warn!(error = %e, "cannot start a connection reader");
                }
            }
            Err(e) => tracing::debug!(error = %e, "accepted connection unusable"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.conns.drain() {
            writer.close();
        }
        // A listener blocks in accept(): a connection wakes it to see the stop.
        for listener in &self.listeners {
            let _ = TcpStream::connect_timeout(listener, Duration::from_millis(100));
        }
    }
}

/// Opens the connection on a thread of its own, which then reads it.
fn spawn_open(request: OpenRequest, timeout: Duration, tx: SyncSender<Incoming>) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("floe-connect-{}", request.remote))
        .spawn(move || open_and_read(request, timeout, &tx))?;
    Ok(())
}

fn open_and_read(request: OpenRequest, timeout: Duration, tx: &SyncSender<Incoming>) {
    let token = request.token;
    let opened = conn::open(request.bind, request.remote, request.tls, timeout)
        .and_then(|o| Ok((o.local, conn::split(o, request.framing)?)));
    match opened {
        Ok((local, (writer, reader))) => {
            // Announced before the first frame: the same thread posts both, in order.
            let io = Io::Opened {
                token,
                local,
                writer,
            };
            if tx.send(Incoming::Io(io)).is_ok() {
                reader.run(token, tx);
            }
        }
        Err(e) => {
            let reason = e.to_string();
            let _ = tx.send(Incoming::Io(Io::Failed { token, reason }));
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    local: SocketAddr,
    tx: &SyncSender<Incoming>,
    stop: &AtomicBool,
) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match accepted {
            Ok((stream, remote)) => {
                let a = Incoming::Accepted {
                    listener: local,
                    remote,
                    stream,
                };
                if tx.send(a).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%local, error = %e, "accept failed");
                // Out of descriptors, for example: do not spin.
                std::thread::sleep(READ_POLL);
            }
        }
    }
}
