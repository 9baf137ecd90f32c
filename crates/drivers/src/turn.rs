//! TURN client driving: the client as a [`Machine`], and a blocking session helper.

use crate::blocking::Runner;
use crate::machine::Machine;
use crate::net::bind_udp;
use crate::os;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use stun_proto::{Input, Transmit};
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

/// A blocking TURN allocation: allocate, add permissions and channels, send and receive.
#[derive(Debug)]
pub struct Session {
    runner: Runner<ClientMachine>,
    relayed: Vec<SocketAddr>,
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl Session {
    /// Allocates on `config.server` from a socket bound to `config.local`, waiting at most
    /// `timeout`. With port 0 in `config.local` the OS picks the port.
    pub fn allocate(mut config: ClientConfig, timeout: Duration) -> io::Result<Session> {
        let socket = bind_udp(config.local, false)?;
        config.local = socket.local_addr()?;
        let client = Client::new(config, os::seed()?, os::now());
        let mut runner = Runner::new(ClientMachine::new(client));
        runner.add_socket(socket)?;
        let mut session = Session {
            runner,
            relayed: Vec::new(),
            inbox: VecDeque::new(),
        };
        let event = session.wait(timeout, |e| {
            matches!(
                e,
                ClientEvent::Allocated { .. } | ClientEvent::AllocationFailed { .. }
            )
        })?;
        match event {
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
        self.runner.machine_mut().client()
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
        self.runner
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
        self.runner.send_transmit(&t);
        Ok(())
    }

    /// The next datagram from a peer, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<(SocketAddr, Vec<u8>)> {
        if let Some(d) = self.inbox.pop_front() {
            return Ok(d);
        }
        let mut got = None;
        self.runner
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

    /// Deletes the allocation (Refresh with LIFETIME 0) and waits for the answer.
    pub fn delete(mut self, timeout: Duration) -> io::Result<()> {
        self.client().delete(os::now());
        self.wait(timeout, |e| {
            matches!(e, ClientEvent::Deleted | ClientEvent::Expired { .. })
        })
        .map(|_| ())
    }
}
