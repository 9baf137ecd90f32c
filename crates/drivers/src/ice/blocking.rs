//! The blocking flavour: one loop that runs inside the calls, fed by a thread per socket
//! (UDP readers, TCP listeners, connection readers that frame their streams).
//!
//! The agent makes progress only while one of its blocking calls runs
//! ([`IceAgent::next_candidate`], [`IceAgent::poll`], [`IceAgent::connect`],
//! [`IceConnection::recv`], [`IceConnection::poll`], `close`); datagrams, frames and
//! accepted connections that arrive in between wait in the threads' queue. Call one of them regularly: consent freshness
//! (RFC 7675) needs an answer at least every 30 s.
//!
//! ```no_run
//! use floe_drivers::ice::blocking::IceAgent;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let second = Duration::from_secs(1);
//! let mut agent = IceAgent::builder().controlling(true).build()?;
//! let creds = agent.local_credentials().clone();
//! println!("a=ice-ufrag:{}\na=ice-pwd:{}", creds.ufrag, creds.pwd); // to the peer
//! while let Some(candidate) = agent.next_candidate(5 * second)? {
//!     println!("{candidate}"); // a=candidate:... to the peer
//! }
//! println!("a=end-of-candidates");
//! // ... and from the peer:
//! agent.set_remote_credentials("ufrag", "PeerPasswordOf22CharsOrMore")?;
//! agent.add_remote_candidate("a=candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host")?;
//! agent.end_of_remote_candidates()?;
//! let mut connection = agent.connect(10 * second)?;
//! connection.send(b"hello")?;
//! let reply = connection.recv(second)?;
//! connection.close()?; // releases TURN allocations
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```

mod driver;

use super::builder::Builder;
use super::{AgentMachine, IceError, IceOutput, LocalCandidate};
use crate::blocking::Stopped;
use crate::os;
use driver::Driver;
use ice_core::{Agent, Candidate, ConnectionState, Credentials, Event};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Most datagrams of application data kept unread; more are dropped, as a full socket
/// buffer would.
const MAX_UNREAD: usize = 4096;

/// The blocking flavour of [`Builder`].
#[derive(Clone, Copy, Debug)]
pub struct Blocking;

impl Builder<Blocking> {
    /// Binds the host sockets and starts the agent.
    pub fn build(self) -> Result<IceAgent, IceError> {
        let prepared = self.prepare(os::now())?;
        let credentials = prepared.machine.agent().local_credentials().clone();
        Ok(IceAgent {
            driver: Driver::start(prepared)?,
            credentials,
            inbox: Inbox::default(),
            close_timeout: self.close_timeout,
        })
    }
}

/// What the loop collected for the calls to take.
#[derive(Debug, Default)]
struct Inbox {
    candidates: VecDeque<LocalCandidate>,
    gathered: bool,
    data: VecDeque<Vec<u8>>,
    selected: Option<(Candidate, Candidate)>,
    failed: bool,
    released: bool,
}

impl Inbox {
    fn take(&mut self, output: IceOutput) {
        match output {
            IceOutput::Candidate(c) => self.candidates.push_back(c),
            IceOutput::EndOfCandidates => self.gathered = true,
            IceOutput::Event(Event::SelectedPair { local, remote, .. }) => {
                self.selected = Some((local, remote));
            }
            IceOutput::Event(Event::ConnectionStateChanged(ConnectionState::Failed)) => {
                self.failed = true;
            }
            IceOutput::Data { data, .. } if self.data.len() < MAX_UNREAD => {
                self.data.push_back(data);
            }
            IceOutput::Data { .. } => tracing::debug!("unread data full: datagram dropped"),
            IceOutput::Released => self.released = true,
            _ => {}
        }
    }
}

/// An ICE agent driven by a blocking loop. See the [module](self) documentation.
///
/// Close it with [`close`](Self::close) (or [`IceConnection::close`]): dropping it closes the
/// sockets at once and leaves its TURN allocations to expire on the servers.
#[derive(Debug)]
pub struct IceAgent {
    driver: Driver,
    credentials: Credentials,
    inbox: Inbox,
    close_timeout: Duration,
}

impl IceAgent {
    /// Settings for a new agent.
    pub fn builder() -> Builder<Blocking> {
        Builder::default()
    }

    /// The local ufrag and password, to signal to the peer (`a=ice-ufrag`, `a=ice-pwd`).
    pub fn local_credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The host sockets' addresses (UDP sockets, then TCP listeners).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.driver.local_addrs()
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.agent().connection_state()
    }

    /// The agent, for its getters (pairs, statistics, candidates).
    pub fn agent(&self) -> &Agent {
        self.driver.machine().agent()
    }

    /// The next local candidate, waiting at most `timeout`; `None` once gathering is over
    /// (signal `a=end-of-candidates`). Host candidates are there at once.
    pub fn next_candidate(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<LocalCandidate>, IceError> {
        if !self.run_until(timeout, |i| !i.candidates.is_empty() || i.gathered)? {
            return Err(IceError::TimedOut);
        }
        Ok(self.inbox.candidates.pop_front())
    }

    /// Sets the peer's ufrag and password (`a=ice-ufrag`, `a=ice-pwd`).
    pub fn set_remote_credentials(&mut self, ufrag: &str, pwd: &str) -> Result<(), IceError> {
        self.command(|m, now| m.set_remote_credentials(now, ufrag, pwd))
    }

    /// The peer's `a=ice-pacing` value, or `None` when its description had none: the agent
    /// paces at the higher of it and its own Ta (RFC 8445 §14.2).
    pub fn set_remote_pacing(&mut self, proposed: Option<Duration>) -> Result<(), IceError> {
        self.command(|m, _| {
            m.set_remote_pacing(proposed);
            Ok(())
        })
    }

    /// Adds one of the peer's candidates, as its SDP line (`a=candidate:...`).
    pub fn add_remote_candidate(&mut self, line: &str) -> Result<(), IceError> {
        self.command(|m, now| m.add_remote_candidate(now, line))
    }

    /// The peer sent `a=end-of-candidates`: from now on ICE can fail.
    pub fn end_of_remote_candidates(&mut self) -> Result<(), IceError> {
        self.command(|m, now| m.end_of_remote_candidates(now))
    }

    /// Runs the loop for `duration`: checks are sent and answered while the application
    /// waits for its signalling.
    pub fn poll(&mut self, duration: Duration) -> Result<(), IceError> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs until a pair is selected, ICE fails, or `timeout` passes. On failure the agent
    /// is closed (its TURN allocations released) before the error returns.
    pub fn connect(mut self, timeout: Duration) -> Result<IceConnection, IceError> {
        self.run_until(timeout, |i| i.selected.is_some() || i.failed)?;
        if let Some(selected) = self.inbox.selected {
            return Ok(IceConnection {
                agent: self,
                selected,
            });
        }
        let error = match self.inbox.failed {
            true => IceError::Failed,
            false => IceError::TimedOut,
        };
        self.close()?;
        Err(error)
    }

    /// Closes the agent: its TURN allocations are deleted, waiting (at most the builder's
    /// `close_timeout`) for the servers to answer.
    pub fn close(mut self) -> Result<(), IceError> {
        self.driver.machine_mut().close(os::now());
        self.driver.flush();
        if !self.run_until(self.close_timeout, |i| i.released)? {
            tracing::debug!("TURN allocations not confirmed released in time");
        }
        Ok(())
    }

    /// Runs a command, then sends what it queued at once (checks start without waiting
    /// for the next loop).
    fn command(
        &mut self,
        f: impl FnOnce(&mut AgentMachine, Instant) -> Result<(), IceError>,
    ) -> Result<(), IceError> {
        let result = f(self.driver.machine_mut(), os::now());
        self.driver.flush();
        result
    }

    /// Runs the loop until `done` holds (true) or `timeout` passes (false).
    fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Inbox) -> bool,
    ) -> Result<bool, IceError> {
        if done(&self.inbox) {
            return Ok(true);
        }
        let inbox = &mut self.inbox;
        let stopped = self.driver.run(Some(Instant::now() + timeout), |output| {
            inbox.take(output);
            match done(inbox) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        })?;
        Ok(stopped == Stopped::Break)
    }
}

/// A connected [`IceAgent`]: data goes over the selected pair.
#[derive(Debug)]
pub struct IceConnection {
    agent: IceAgent,
    /// The pair selected when connect() returned.
    selected: (Candidate, Candidate),
}

impl IceConnection {
    /// The selected pair, `(local, remote)`: it may change while the peer still nominates.
    pub fn selected_pair(&self) -> (Candidate, Candidate) {
        let machine = self.agent.driver.machine();
        machine
            .selected_pair()
            .or(self.agent.inbox.selected)
            .unwrap_or(self.selected)
    }

    /// The agent, for its getters.
    pub fn agent(&self) -> &Agent {
        self.agent.agent()
    }

    /// Sends one datagram to the peer.
    pub fn send(&mut self, data: &[u8]) -> Result<(), IceError> {
        let t = self.agent.driver.machine_mut().send(os::now(), data)?;
        self.agent.driver.send_transmit(&t);
        Ok(())
    }

    /// The next datagram from the peer, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, IceError> {
        self.agent
            .run_until(timeout, |i| !i.data.is_empty() || i.failed)?;
        match self.agent.inbox.data.pop_front() {
            Some(d) => Ok(d),
            None if self.agent.inbox.failed => Err(IceError::Failed),
            None => Err(IceError::TimedOut),
        }
    }

    /// Runs the loop for `duration` (consent checks and keepalives while idle).
    pub fn poll(&mut self, duration: Duration) -> Result<(), IceError> {
        self.agent.poll(duration)
    }

    /// Closes the connection and releases the TURN allocations.
    pub fn close(self) -> Result<(), IceError> {
        self.agent.close()
    }
}
