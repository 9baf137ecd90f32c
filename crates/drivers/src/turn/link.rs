//! The blocking loop of a TURN client over TCP or TLS: the control connection (a reader
//! thread frames it, `turn_proto::stream` conventions), its loss reported with
//! `Client::connection_lost`, and RFC 6062 data connections opened and bound on the client's
//! word, then kept for the session to hand out as [`PeerStream`]s.

use super::conn::{self, ConnEvent, ConnWriter, TlsSetup};
use super::peer::{DataConnection, PeerStream};
use super::tls::{TlsTrust, server_name};
use super::{ClientMachine, TurnOutput};
use crate::blocking::{Stopped, TimerStep, timer_step};
use crate::machine::Machine;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};
use stun_proto::framing::Framing;
use stun_proto::{Input, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientConfig, ClientEvent};
use turn_proto::stream::first_message_len;

/// Frames queued between the reader thread and the loop.
const QUEUE: usize = 1024;
/// How long a data connection may take to open and bind (RFC 6062 §5.2: the server keeps a
/// peer connection 30 s for it; binding is one round trip).
const DATA_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A TURN client over a TCP or TLS control connection.
#[derive(Debug)]
pub(super) struct StreamLink {
    machine: ClientMachine,
    transport: TransportProtocol,
    tls: Option<TlsTrust>,
    /// `None` once the connection is lost.
    control: Option<Control>,
    /// The token of the next control connection (a new one after a redirect).
    next_token: u64,
    tx: SyncSender<ConnEvent>,
    rx: Receiver<ConnEvent>,
    /// Events taken from the machine while binding a data connection, not yet handed out.
    events: VecDeque<TurnOutput>,
    /// Bound peer connections, until the session takes them.
    bound: Vec<PeerStream>,
    connect_timeout: Duration,
}

impl StreamLink {
    /// Opens the control connection from `config.local` to `config.server` (TLS when
    /// `config.transport` is TLS, trusting `tls`) and starts the client on it.
    pub(super) fn open(
        mut config: ClientConfig,
        tls: Option<TlsTrust>,
        timeout: Duration,
    ) -> io::Result<StreamLink> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let transport = config.transport;
        let setup = tls_setup(transport, tls.as_ref(), config.server)?;
        let opened = conn::open(config.local, config.server, setup, timeout)?;
        config.local = opened.local;
        let server = config.server;
        let writer = conn::start(opened, 0, Framing::StunAndChannelData, tx.clone())?;
        let client = Client::new(config, crate::os::seed()?, crate::os::now());
        Ok(StreamLink {
            machine: ClientMachine::new(client),
            transport,
            tls,
            control: Some(Control {
                token: 0,
                server,
                writer,
            }),
            next_token: 1,
            tx,
            rx,
            events: VecDeque::new(),
            bound: Vec::new(),
            connect_timeout: timeout,
        })
    }

    pub(super) fn machine_mut(&mut self) -> &mut ClientMachine {
        &mut self.machine
    }

    /// Takes the bound peer connection `connection_id`, or (with `None`) the oldest one.
    pub(super) fn take_peer(&mut self, connection_id: Option<u32>) -> Option<PeerStream> {
        let i = match connection_id {
            Some(id) => self.bound.iter().position(|s| s.connection_id() == id)?,
            None if self.bound.is_empty() => return None,
            None => 0,
        };
        Some(self.bound.remove(i))
    }

    /// Writes a transmit on the control connection; after a redirect (RFC 8656 §7.3: 300
    /// Try Alternate), on a new one to the alternate server, from the same local address.
    pub(super) fn send_transmit(&mut self, t: &Transmit) {
        if self
            .control
            .as_ref()
            .is_some_and(|c| c.server != t.destination)
        {
            self.reconnect(t.source, t.destination);
        }
        let Some(control) = &self.control else {
            tracing::debug!("control connection lost: transmit dropped");
            return;
        };
        if let Err(e) = control.writer.write(&t.payload) {
            // The reader thread reports the loss.
            tracing::debug!(error = %e, "write on the control connection failed");
        }
    }

    fn reconnect(&mut self, local: SocketAddr, server: SocketAddr) {
        tracing::debug!(%server, "redirected: a new control connection");
        self.control = None;
        let token = self.next_token;
        self.next_token += 1;
        let opened = tls_setup(self.transport, self.tls.as_ref(), server)
            .and_then(|tls| conn::open(local, server, tls, self.connect_timeout))
            .and_then(|o| conn::start(o, token, Framing::StunAndChannelData, self.tx.clone()));
        match opened {
            Ok(writer) => {
                self.control = Some(Control {
                    token,
                    server,
                    writer,
                })
            }
            Err(e) => self.lose_control(&e.to_string()),
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.send_transmit(&t);
        }
    }

    fn next_event(&mut self) -> Option<TurnOutput> {
        self.events
            .pop_front()
            .or_else(|| self.machine.poll_event())
    }

    /// Runs until `on_event` breaks or `deadline` passes, like
    /// [`Runner::run`](crate::blocking::Runner::run).
    pub(super) fn run(
        &mut self,
        deadline: Option<Instant>,
        mut on_event: impl FnMut(&mut ClientMachine, TurnOutput) -> ControlFlow<()>,
    ) -> io::Result<Stopped> {
        loop {
            self.flush();
            while let Some(event) = self.next_event() {
                if let TurnOutput::Event(ClientEvent::OpenDataConnection {
                    connection_id,
                    peer,
                }) = &event
                {
                    self.open_data_connection(*connection_id, *peer);
                }
                if on_event(&mut self.machine, event).is_break() {
                    self.flush();
                    return Ok(Stopped::Break);
                }
                self.flush();
            }
            let wait = match timer_step(&mut self.machine, deadline, Instant::now()) {
                TimerStep::Deadline => return Ok(Stopped::Deadline),
                TimerStep::Fired => continue,
                TimerStep::Wait(w) => w.unwrap_or(Duration::from_secs(3600)),
            };
            match self.rx.recv_timeout(wait) {
                Ok(event) => self.on_conn_event(event),
                Err(RecvTimeoutError::Timeout) => self.machine.handle_timeout(Instant::now()),
                // Cannot happen: the link holds a sender itself.
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("connection channel closed"));
                }
            }
        }
    }

    fn on_conn_event(&mut self, event: ConnEvent) {
        let current = self.control.as_ref().map(|c| (c.token, c.server));
        match event {
            ConnEvent::Frame { token, data } => {
                let Some((_, server)) = current.filter(|c| c.0 == token) else {
                    return;
                };
                let input = Input {
                    transport: self.transport,
                    source: server,
                    destination: self.machine.client().local(),
                    data: &data,
                };
                self.machine.handle_input(Instant::now(), input);
            }
            ConnEvent::Closed { token, reason } if current.is_some_and(|c| c.0 == token) => {
                self.lose_control(&reason);
            }
            // An earlier control connection (before a redirect).
            ConnEvent::Closed { .. } => {}
        }
    }

    fn lose_control(&mut self, reason: &str) {
        tracing::debug!(reason, "TURN control connection lost");
        self.control = None;
        self.machine.client().connection_lost(Instant::now());
    }

    /// RFC 6062 §4.3: opens a data connection to the server and runs its ConnectionBind to
    /// the end (one round trip) before the loop goes on; the client reports the outcome
    /// (`PeerConnection` or `DataConnectionFailed`) through the events that follow.
    fn open_data_connection(&mut self, connection_id: u32, peer: SocketAddr) {
        let transport = self.transport;
        let (server, local) = (
            self.machine.client().server(),
            self.machine.client().local(),
        );
        let timeout = self.connect_timeout.min(DATA_CONNECTION_TIMEOUT);
        let opened = tls_setup(transport, self.tls.as_ref(), server)
            .and_then(|tls| conn::open(SocketAddr::new(local.ip(), 0), server, tls, timeout));
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, connection_id, "data connection not opened");
                self.machine
                    .client()
                    .data_connection_failed(Instant::now(), connection_id);
                return;
            }
        };
        let mut data = DataConnection::new(opened, connection_id, peer);
        let opened =
            self.machine
                .client()
                .data_connection_opened(Instant::now(), connection_id, data.local);
        if let Err(e) = opened {
            tracing::debug!(error = %e, connection_id, "data connection refused by the client");
            return;
        }
        match self.bind(&mut data, transport, server, Instant::now() + timeout) {
            Ok(true) => match data.into_peer_stream() {
                Ok(stream) => self.bound.push(stream),
                Err(e) => tracing::debug!(error = %e, "peer connection unusable"),
            },
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, connection_id, "data connection failed");
                self.machine
                    .client()
                    .data_connection_failed(Instant::now(), connection_id);
            }
        }
        self.take_events();
    }

    /// Writes what the client sends on the data connection and feeds it the answers, until
    /// the client has decided: `Ok(true)` bound, `Ok(false)` failed (the client said so).
    fn bind(
        &mut self,
        data: &mut DataConnection,
        transport: TransportProtocol,
        server: SocketAddr,
        deadline: Instant,
    ) -> io::Result<bool> {
        loop {
            while let Some(t) = self.machine.poll_transmit() {
                match t.source == data.local {
                    true => data.write(&t.payload)?,
                    false => self.send_transmit(&t),
                }
            }
            if let Some(bound) = self.take_events().decided(data.connection_id) {
                return Ok(bound);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "ConnectionBind timed out",
                ));
            }
            if !data.read_some(left)? {
                continue;
            }
            // RFC 6062 §4.3: peer bytes may follow the response in the same read.
            while let Some(n) = first_message_len(&data.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                let message: Vec<u8> = data.buf.drain(..n).collect();
                let input = Input {
                    transport,
                    source: server,
                    destination: data.local,
                    data: &message,
                };
                self.machine.handle_input(Instant::now(), input);
                if self.take_events().decided(data.connection_id).is_some() {
                    break;
                }
            }
        }
    }

    /// Moves the machine's events to the link's queue (they are handed out by `run`).
    fn take_events(&mut self) -> Decisions<'_> {
        while let Some(e) = self.machine.poll_event() {
            self.events.push_back(e);
        }
        Decisions(&self.events)
    }
}

/// The queued events, searched for the outcome of a ConnectionBind.
struct Decisions<'a>(&'a VecDeque<TurnOutput>);

impl Decisions<'_> {
    fn decided(&self, id: u32) -> Option<bool> {
        self.0.iter().find_map(|e| match e {
            TurnOutput::Event(ClientEvent::PeerConnection { connection_id, .. })
                if *connection_id == id =>
            {
                Some(true)
            }
            TurnOutput::Event(ClientEvent::DataConnectionFailed { connection_id, .. })
                if *connection_id == id =>
            {
                Some(false)
            }
            _ => None,
        })
    }
}

impl Drop for StreamLink {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            control.writer.close();
        }
    }
}

/// The current control connection.
#[derive(Debug)]
struct Control {
    token: u64,
    server: SocketAddr,
    writer: ConnWriter,
}

/// The TLS settings for a connection to `server` over `transport`: none for TCP; for TLS,
/// `tls` is required.
fn tls_setup(
    transport: TransportProtocol,
    tls: Option<&TlsTrust>,
    server: SocketAddr,
) -> io::Result<Option<TlsSetup>> {
    match (transport, tls) {
        (TransportProtocol::Tcp, _) => Ok(None),
        (TransportProtocol::Tls, Some(t)) => Ok(Some((
            t.config().clone(),
            server_name(t.server_name(), server)?,
        ))),
        (TransportProtocol::Tls, None) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TURN over TLS needs a trust anchor (TlsTrust)",
        )),
        (other, _) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a stream transport: {other:?}"),
        )),
    }
}
