//! TCP nodes: an echo server and a probe the test drives by hand.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::datagram::Datagram;
use crate::node::Node;
use crate::tcp::{CloseReason, ConnectError, TcpCommand, TcpEvent, TcpId};

/// The TCP events a node received, with when, and what they add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpLog {
    events: Vec<(Instant, TcpEvent)>,
    /// The bytes of every `Data` event, per connection.
    streams: BTreeMap<TcpId, Vec<u8>>,
}

impl TcpLog {
    fn push(&mut self, at: Instant, event: TcpEvent) {
        if let TcpEvent::Data { id, bytes } = &event {
            self.streams
                .entry(*id)
                .or_default()
                .extend_from_slice(bytes);
        }
        self.events.push((at, event));
    }

    /// Every event, oldest first, with its virtual time.
    #[must_use]
    pub fn events(&self) -> &[(Instant, TcpEvent)] {
        &self.events
    }

    /// The connections established so far ([`TcpEvent::Connected`] and
    /// [`TcpEvent::Accepted`]), in order: id, local and remote address.
    #[must_use]
    pub fn established(&self) -> Vec<(TcpId, SocketAddr, SocketAddr)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                TcpEvent::Connected { id, local, remote }
                | TcpEvent::Accepted { id, local, remote } => Some((*id, *local, *remote)),
                _ => None,
            })
            .collect()
    }

    /// When connection `id` was established.
    #[must_use]
    pub fn established_at(&self, id: TcpId) -> Option<Instant> {
        self.events.iter().find_map(|(at, e)| match e {
            TcpEvent::Connected { id: i, .. } | TcpEvent::Accepted { id: i, .. } if *i == id => {
                Some(*at)
            }
            _ => None,
        })
    }

    /// Every byte received on connection `id`, in order.
    #[must_use]
    pub fn received(&self, id: TcpId) -> &[u8] {
        self.streams.get(&id).map_or(&[], Vec::as_slice)
    }

    /// How connection `id` ended, if it has ([`TcpEvent::Closed`]).
    #[must_use]
    pub fn closed(&self, id: TcpId) -> Option<CloseReason> {
        self.events.iter().find_map(|(_, e)| match e {
            TcpEvent::Closed { id: i, reason } if *i == id => Some(*reason),
            _ => None,
        })
    }

    /// The connects that failed: requested local address, remote address, error.
    #[must_use]
    pub fn connect_failures(&self) -> Vec<(SocketAddr, SocketAddr, ConnectError)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                TcpEvent::ConnectFailed {
                    local,
                    remote,
                    error,
                } => Some((*local, *remote, *error)),
                _ => None,
            })
            .collect()
    }
}

/// A TCP echo server: listens on its addresses and writes every byte it receives back on
/// the same connection (as a STUN-over-TCP server answers on the connection a request came
/// in on). When a client closes, the simulator closes the server's side.
#[derive(Debug, Default)]
pub struct TcpEcho {
    log: TcpLog,
    commands: VecDeque<TcpCommand>,
}

impl TcpEcho {
    /// An echo server listening on `listen`.
    #[must_use]
    pub fn new(listen: &[SocketAddr]) -> Self {
        TcpEcho {
            log: TcpLog::default(),
            commands: listen
                .iter()
                .map(|local| TcpCommand::Listen { local: *local })
                .collect(),
        }
    }

    /// What happened so far.
    #[must_use]
    pub fn log(&self) -> &TcpLog {
        &self.log
    }
}

impl Node for TcpEcho {
    fn handle_datagram(&mut self, _now: Instant, _datagram: Datagram) {}

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Datagram> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        if let TcpEvent::Data { id, bytes } = &event {
            self.commands.push_back(TcpCommand::Send {
                id: *id,
                bytes: bytes.clone(),
            });
        }
        self.log.push(now, event);
    }

    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.commands.pop_front()
    }
}

/// Issues exactly the TCP commands the test queues (through
/// [`Sim::node_mut`](crate::Sim::node_mut)) and records every event.
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
///
/// use netsim::nodes::{TcpEcho, TcpProbe};
/// use netsim::{LinkConfig, RealmId, Sim};
///
/// let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
/// let mut sim = Sim::new(1, Instant::now());
/// let link = LinkConfig::with_latency(Duration::from_millis(10));
/// let server = sim.add_host(RealmId::INTERNET, &[sock("192.0.2.1:0").ip()], link.clone());
/// let client = sim.add_host(RealmId::INTERNET, &[sock("198.51.100.2:0").ip()], link);
/// sim.add_node(server, &[], TcpEcho::new(&[sock("192.0.2.1:7")]))?;
/// let probe = sim.add_node(client, &[], TcpProbe::new())?;
///
/// // Port 0: an ephemeral port.
/// sim.node_mut(probe).connect(sock("198.51.100.2:0"), sock("192.0.2.1:7"));
/// sim.run_for(Duration::from_secs(1));
/// let (id, local, _) = sim.node(probe).log().established()[0];
/// assert_eq!(local, sock("198.51.100.2:49152"));
/// sim.node_mut(probe).send(id, b"hello".to_vec());
/// sim.run_for(Duration::from_secs(1));
/// assert_eq!(sim.node(probe).log().received(id), b"hello");
/// # Ok::<(), netsim::BindError>(())
/// ```
#[derive(Debug, Default)]
pub struct TcpProbe {
    log: TcpLog,
    commands: VecDeque<TcpCommand>,
}

impl TcpProbe {
    /// A probe with nothing to do yet.
    #[must_use]
    pub fn new() -> Self {
        TcpProbe::default()
    }

    /// Queue any command.
    pub fn command(&mut self, command: TcpCommand) {
        self.commands.push_back(command);
    }

    /// Listen on `local`.
    pub fn listen(&mut self, local: SocketAddr) {
        self.command(TcpCommand::Listen { local });
    }

    /// Connect from `local` (port 0: ephemeral) to `remote`.
    pub fn connect(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.command(TcpCommand::Connect { local, remote });
    }

    /// Send bytes on connection `id`.
    pub fn send(&mut self, id: TcpId, bytes: impl Into<Vec<u8>>) {
        self.command(TcpCommand::Send {
            id,
            bytes: bytes.into(),
        });
    }

    /// Close connection `id` gracefully.
    pub fn close(&mut self, id: TcpId) {
        self.command(TcpCommand::Close { id });
    }

    /// Reset connection `id`.
    pub fn abort(&mut self, id: TcpId) {
        self.command(TcpCommand::Abort { id });
    }

    /// What happened so far.
    #[must_use]
    pub fn log(&self) -> &TcpLog {
        &self.log
    }
}

impl Node for TcpProbe {
    fn handle_datagram(&mut self, _now: Instant, _datagram: Datagram) {}

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Datagram> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        self.log.push(now, event);
    }

    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.commands.pop_front()
    }
}
