//! TURN client driving: the client as a [`Machine`], and a blocking session helper over UDP,
//! TCP or TLS (RFC 8656 §3.1), with RFC 6062 TCP allocations.
//!
//! * [`ClientMachine`]: a [`Client`] as a [`Machine`], for any runner.
//! * [`Session`]: a blocking allocation. The transport to the server is
//!   [`ClientConfig::transport`]: UDP (one socket), TCP or TLS (one control connection, whose
//!   loss ends the allocation: `Client::connection_lost`). TLS trusts what a [`TlsTrust`]
//!   says (a CA file or a `rustls::ClientConfig`; the platform's roots are not used).
//! * RFC 6062 ([`ClientConfig::relay_transport`] TCP): [`Session::connect_peer`] and
//!   [`Session::accept_peer`] give [`PeerStream`]s, byte streams to TCP peers of the relay.

pub(crate) mod conn;
mod link;
mod peer;
pub mod tls;

pub use peer::PeerStream;
pub use tls::TlsTrust;

use crate::blocking::{Runner, Stopped};
use crate::machine::Machine;
use crate::net::bind_udp;
use crate::os;
use link::StreamLink;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use stun_proto::{Input, Transmit, TransportProtocol};
use turn_proto::client::{Client, ClientConfig, ClientEvent, Received};

/// What a TURN client hands its driver: protocol events, and data from peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnOutput {
    /// A client event.
    Event(ClientEvent),
    /// Data a peer sent to the relayed address.
    PeerData {
        /// The peer.
        peer: SocketAddr,
        /// The bytes (copied out of the receive buffer).
        data: Vec<u8>,
    },
}

/// A [`Client`] as a [`Machine`]: peer data becomes [`TurnOutput::PeerData`].
#[derive(Debug)]
pub struct ClientMachine {
    client: Client,
    data: VecDeque<TurnOutput>,
}

impl ClientMachine {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        ClientMachine {
            client,
            data: VecDeque::new(),
        }
    }

    /// The client, for commands.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Machine for ClientMachine {
    type Event = TurnOutput;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if let Received::PeerData { peer, data } = self.client.handle_input(now, input) {
            self.data.push_back(TurnOutput::PeerData {
                peer,
                data: data.to_vec(),
            });
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.client.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<TurnOutput> {
        self.data
            .pop_front()
            .or_else(|| self.client.poll_event().map(TurnOutput::Event))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }
}

/// A blocking TURN allocation: allocate, add permissions and channels, send and receive; on
/// a TCP allocation, connect to and accept TCP peers.
///
/// The session makes progress only inside its calls (like
/// [`blocking::Runner`](crate::blocking::Runner)); call one regularly so that refreshes go
/// out in time.
///
/// ```no_run
/// use floe_drivers::turn::{Session, TlsTrust};
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use turn_proto::TransportProtocol;
/// use turn_proto::client::ClientConfig;
///
/// # fn main() -> std::io::Result<()> {
/// let t = Duration::from_secs(5);
/// let server = "192.0.2.1:443".parse().unwrap();
/// let mut config = ClientConfig::new(server, "0.0.0.0:0".parse().unwrap(), "user", "pass");
/// config.transport = TransportProtocol::Tls;
/// config.relay_transport = TransportProtocol::Tcp; // RFC 6062
/// let trust = TlsTrust::from_pem_file("ca.pem")?.with_server_name("turn.example.org");
/// let mut session = Session::allocate_tls(config, trust, t)?;
/// let mut peer = session.connect_peer("198.51.100.7:80".parse().unwrap(), t)?;
/// peer.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
/// let mut reply = Vec::new();
/// peer.read_to_end(&mut reply)?;
/// session.delete(t)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    link: Link,
    relayed: Vec<SocketAddr>,
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
}

/// How the session reaches its server.
#[derive(Debug)]
enum Link {
    /// One UDP socket.
    Udp(Runner<ClientMachine>),
    /// A TCP or TLS control connection (and RFC 6062 data connections).
    Stream(StreamLink),
}

impl Link {
    fn machine_mut(&mut self) -> &mut ClientMachine {
        match self {
            Link::Udp(r) => r.machine_mut(),
            Link::Stream(s) => s.machine_mut(),
        }
    }

    fn send_transmit(&mut self, t: &Transmit) {
        match self {
            Link::Udp(r) => r.send_transmit(t),
            Link::Stream(s) => s.send_transmit(t),
        }
    }

    fn run(
        &mut self,
        deadline: Option<Instant>,
        on_event: impl FnMut(&mut ClientMachine, TurnOutput) -> ControlFlow<()>,
    ) -> io::Result<Stopped> {
        match self {
            Link::Udp(r) => r.run(deadline, on_event),
            Link::Stream(s) => s.run(deadline, on_event),
        }
    }
}

/// True for the events that end a wait for the allocation.
fn allocation_done(e: &ClientEvent) -> bool {
    matches!(
        e,
        ClientEvent::Allocated { .. } | ClientEvent::AllocationFailed { .. }
    )
}

impl Session {
    /// Allocates on `config.server` over `config.transport`, waiting at most `timeout`.
    ///
    /// * UDP: from a socket bound to `config.local` (port 0: the OS picks).
    /// * TCP: over a connection from `config.local` (port 0: an ephemeral port); the
    ///   allocation lives as long as the connection.
    /// * TLS: needs a trust anchor: use [`allocate_tls`](Self::allocate_tls).
    pub fn allocate(config: ClientConfig, timeout: Duration) -> io::Result<Session> {
        match config.transport {
            TransportProtocol::Udp => Session::allocate_udp(config, timeout),
            _ => Session::allocate_stream(config, None, timeout),
        }
    }

    /// Allocates over TLS (or TCP, then `trust` is unused), trusting the server's
    /// certificate as `trust` says. The connection and the handshake count in `timeout`.
    pub fn allocate_tls(
        config: ClientConfig,
        trust: TlsTrust,
        timeout: Duration,
    ) -> io::Result<Session> {
        if config.transport == TransportProtocol::Udp {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "allocate_tls needs ClientConfig::transport TLS (or TCP)",
            ));
        }
        Session::allocate_stream(config, Some(trust), timeout)
    }

    fn allocate_udp(mut config: ClientConfig, timeout: Duration) -> io::Result<Session> {
        let socket = bind_udp(config.local, false)?;
        config.local = socket.local_addr()?;
        let client = Client::new(config, os::seed()?, os::now());
        let mut runner = Runner::new(ClientMachine::new(client));
        runner.add_socket(socket)?;
        Session::start(Link::Udp(runner), timeout)
    }

    fn allocate_stream(
        config: ClientConfig,
        trust: Option<TlsTrust>,
        timeout: Duration,
    ) -> io::Result<Session> {
        let started = Instant::now();
        let link = StreamLink::open(config, trust, timeout)?;
        let left = timeout.saturating_sub(started.elapsed());
        Session::start(Link::Stream(link), left)
    }

    fn start(link: Link, timeout: Duration) -> io::Result<Session> {
        let mut session = Session {
            link,
            relayed: Vec::new(),
            inbox: VecDeque::new(),
        };
        match session.wait(timeout, allocation_done)? {
            ClientEvent::Allocated { relayed, .. } => {
                session.relayed = relayed;
                Ok(session)
            }
            other => Err(io::Error::other(format!("allocation failed: {other:?}"))),
        }
    }

    /// The relayed addresses.
    pub fn relayed(&self) -> &[SocketAddr] {
        &self.relayed
    }

    /// The client.
    pub fn client(&mut self) -> &mut Client {
        self.link.machine_mut().client()
    }

    /// Runs until an event matching `done` arrives (returned), collecting peer data in the
    /// inbox; fails on timeout.
    pub fn wait(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&ClientEvent) -> bool,
    ) -> io::Result<ClientEvent> {
        let mut found = None;
        let inbox = &mut self.inbox;
        self.link
            .run(Some(Instant::now() + timeout), |_, out| match out {
                TurnOutput::PeerData { peer, data } => {
                    inbox.push_back((peer, data));
                    ControlFlow::Continue(())
                }
                TurnOutput::Event(e) if done(&e) => {
                    found = Some(e);
                    ControlFlow::Break(())
                }
                TurnOutput::Event(e) => {
                    tracing::debug!(?e, "TURN event");
                    ControlFlow::Continue(())
                }
            })?;
        found.ok_or_else(|| {
            io::Error::new(io::ErrorKind::TimedOut, "no matching TURN event in time")
        })
    }

    /// Installs permissions and waits for the server's answer.
    pub fn create_permission(&mut self, peers: &[IpAddr], timeout: Duration) -> io::Result<()> {
        self.client()
            .create_permission(os::now(), peers)
            .map_err(|e| io::Error::other(e.to_string()))?;
        match self.wait(timeout, |e| {
            matches!(
                e,
                ClientEvent::PermissionCreated { .. } | ClientEvent::PermissionFailed { .. }
            )
        })? {
            ClientEvent::PermissionCreated { .. } => Ok(()),
            other => Err(io::Error::other(format!("{other:?}"))),
        }
    }

    /// Binds a channel to `peer` and waits for the server's answer.
    pub fn bind_channel(&mut self, peer: SocketAddr, timeout: Duration) -> io::Result<u16> {
        self.client()
            .bind_channel(os::now(), peer)
            .map_err(|e| io::Error::other(e.to_string()))?;
        match self.wait(timeout, |e| {
            matches!(
                e,
                ClientEvent::ChannelBound { .. } | ClientEvent::ChannelBindFailed { .. }
            )
        })? {
            ClientEvent::ChannelBound { channel, .. } => Ok(channel),
            other => Err(io::Error::other(format!("{other:?}"))),
        }
    }

    /// Sends `data` to `peer` through the relay.
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8]) -> io::Result<()> {
        let t = self
            .client()
            .send_to(os::now(), peer, data)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.link.send_transmit(&t);
        Ok(())
    }

    /// The next datagram from a peer, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<(SocketAddr, Vec<u8>)> {
        if let Some(d) = self.inbox.pop_front() {
            return Ok(d);
        }
        let mut got = None;
        self.link
            .run(Some(Instant::now() + timeout), |_, out| match out {
                TurnOutput::PeerData { peer, data } => {
                    got = Some((peer, data));
                    ControlFlow::Break(())
                }
                TurnOutput::Event(e) => {
                    tracing::debug!(?e, "TURN event");
                    ControlFlow::Continue(())
                }
            })?;
        got.ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no peer data in time"))
    }

    /// RFC 6062 §4.3: asks the server to connect to the TCP `peer` from the relayed address
    /// (with a permission for its IP if there is none), opens and binds the data connection,
    /// and returns it. Needs a TCP allocation ([`ClientConfig::relay_transport`] TCP).
    pub fn connect_peer(&mut self, peer: SocketAddr, timeout: Duration) -> io::Result<PeerStream> {
        self.stream_link()?;
        self.client()
            .connect(os::now(), peer)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let event = self.wait(timeout, |e| match e {
            ClientEvent::PeerConnection { peer: p, .. }
            | ClientEvent::ConnectFailed { peer: p, .. }
            | ClientEvent::DataConnectionFailed { peer: p, .. } => *p == peer,
            _ => false,
        })?;
        match event {
            ClientEvent::PeerConnection { connection_id, .. } => self
                .stream_link()?
                .take_peer(Some(connection_id))
                .ok_or_else(|| io::Error::other("peer connection lost")),
            ClientEvent::ConnectFailed { reason, .. } => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("Connect to {peer} failed: {reason}"),
            )),
            other => Err(io::Error::other(format!("{other:?}"))),
        }
    }

    /// RFC 6062 §4.4: the next TCP connection a peer opened to the relayed address, waiting
    /// at most `timeout`. Only peers with a permission ([`create_permission`]) can connect.
    ///
    /// [`create_permission`]: Self::create_permission
    pub fn accept_peer(&mut self, timeout: Duration) -> io::Result<PeerStream> {
        if let Some(s) = self.stream_link()?.take_peer(None) {
            return Ok(s);
        }
        let event = self.wait(timeout, |e| matches!(e, ClientEvent::PeerConnection { .. }))?;
        match event {
            ClientEvent::PeerConnection { connection_id, .. } => self
                .stream_link()?
                .take_peer(Some(connection_id))
                .ok_or_else(|| io::Error::other("peer connection lost")),
            other => Err(io::Error::other(format!("{other:?}"))),
        }
    }

    fn stream_link(&mut self) -> io::Result<&mut StreamLink> {
        match &mut self.link {
            Link::Stream(s) => Ok(s),
            Link::Udp(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP peers need a TCP allocation over TCP or TLS (RFC 6062)",
            )),
        }
    }

    /// Deletes the allocation (Refresh with LIFETIME 0) and waits for the answer. Over TCP
    /// and TLS the control connection closes after it.
    pub fn delete(mut self, timeout: Duration) -> io::Result<()> {
        self.client().delete(os::now());
        self.wait(timeout, |e| {
            matches!(e, ClientEvent::Deleted | ClientEvent::Expired { .. })
        })
        .map(|_| ())
    }
}
