//! The tokio flavour: the agent runs in its own task, which `select!`s over its sockets, a
//! timer set to the agent's `poll_timeout`, and a command channel; [`IceAgent`] and
//! [`IceConnection`] are handles to it.
//!
//! Every method takes `&self`, so one handle can signal from one branch of a `select!` while
//! another waits for candidates or the connection; put it in an `Arc` to share it between
//! tasks. Dropping every handle closes the agent as [`IceAgent::close`] does.
//!
//! ```no_run
//! use floe_drivers::ice::tokio::IceAgent;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let agent = IceAgent::builder()
//!     .controlling(true)
//!     .stun("192.0.2.1:3478".parse()?)
//!     .turn("192.0.2.1:3478".parse()?, "user", "password")
//!     .build()
//!     .await?;
//! let creds = agent.local_credentials();
//! println!("a=ice-ufrag:{}\na=ice-pwd:{}", creds.ufrag, creds.pwd); // to the peer
//! while let Some(candidate) = agent.next_candidate().await {
//!     println!("{candidate}"); // a=candidate:... to the peer, as they come
//! }
//! println!("a=end-of-candidates");
//! // ... and from the peer, in any order, any time:
//! agent.set_remote_credentials("ufrag", "PeerPasswordOf22CharsOrMore").await?;
//! agent.add_remote_candidate("a=candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host").await?;
//! agent.end_of_remote_candidates().await?;
//!
//! let connection = agent.connect().await?;
//! println!("selected {:?}", connection.selected_pair());
//! connection.send(b"hello").await?;
//! let reply = connection.recv().await?;
//! agent.close().await; // deletes the TURN allocations
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```

mod streams;
mod task;

use super::builder::{Builder, Prepared};
use super::{IceError, LocalCandidate};
use crate::os;
use ::tokio::net::{TcpListener, UdpSocket};
use ::tokio::sync::{Mutex, mpsc, oneshot, watch};
use ice_core::{Candidate, ConnectionState, Credentials, PairInfo, Stats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use task::{Command, Sockets, Task};

/// Data datagrams queued for [`IceConnection::recv`]; more are dropped, as a full socket
/// buffer would.
const DATA_QUEUE: usize = 1024;
/// Commands queued for the agent's task.
const COMMAND_QUEUE: usize = 64;

/// The tokio flavour of [`Builder`].
#[derive(Clone, Copy, Debug)]
pub struct Tokio;

impl Builder<Tokio> {
    /// Binds the host sockets and starts the agent's task on the current tokio runtime.
    pub async fn build(self) -> Result<IceAgent, IceError> {
        let Prepared {
            machine,
            sockets,
            listeners,
            tls,
            mdns_socket,
        } = self.prepare(os::now())?;
        let credentials = machine.agent().local_credentials().clone();
        let mut bound = Vec::with_capacity(sockets.len());
        for socket in sockets {
            socket.set_nonblocking(true)?;
            let local = socket.local_addr()?;
            bound.push((local, UdpSocket::from_std(socket)?));
        }
        let mut listening = Vec::with_capacity(listeners.len());
        for listener in listeners {
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            listening.push((local, TcpListener::from_std(listener)?));
        }
        let local_addrs = bound
            .iter()
            .map(|(a, _)| *a)
            .chain(listening.iter().map(|(a, _)| *a))
            .collect();
        // The mDNS querier's socket is read and written like the host sockets, but is none.
        if let Some(socket) = mdns_socket {
            socket.set_nonblocking(true)?;
            let local = socket.local_addr()?;
            bound.push((local, UdpSocket::from_std(socket)?));
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (candidate_tx, candidates) = mpsc::unbounded_channel();
        let (data_tx, data) = mpsc::channel(DATA_QUEUE);
        let (status_tx, status) = watch::channel(Status {
            state: ConnectionState::New,
            selected: None,
            stopped: false,
        });
        let task = Task::new(
            machine,
            Sockets {
                udp: bound,
                listeners: listening,
                tls,
            },
            command_rx,
            candidate_tx,
            data_tx,
            status_tx,
            self.close_timeout,
        );
        ::tokio::spawn(task.run());
        Ok(IceAgent {
            inner: Arc::new(Inner {
                commands,
                credentials,
                local_addrs,
                candidates: Mutex::new(Candidates {
                    rx: candidates,
                    done: false,
                }),
                data: Mutex::new(data),
                status,
            }),
        })
    }
}

/// Where the agent is, as the task last published it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The connection state.
    pub state: ConnectionState,
    /// The selected pair, `(local, remote)`.
    pub selected: Option<(Candidate, Candidate)>,
    /// The task has stopped (closed).
    pub stopped: bool,
}

/// A view of the agent for diagnostics: what was checked and what was counted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// The connection state.
    pub state: ConnectionState,
    /// The selected pair, `(local, remote)`.
    pub selected: Option<(Candidate, Candidate)>,
    /// The candidate pairs, highest priority first, with their check states.
    pub pairs: Vec<PairInfo>,
    /// Local candidates (peer-reflexive ones included).
    pub local: Vec<Candidate>,
    /// Remote candidates (peer-reflexive ones included).
    pub remote: Vec<Candidate>,
    /// The agent's counters.
    pub stats: Stats,
}

struct Candidates {
    rx: mpsc::UnboundedReceiver<Option<LocalCandidate>>,
    /// End-of-candidates was handed out.
    done: bool,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    credentials: Credentials,
    local_addrs: Vec<SocketAddr>,
    candidates: Mutex<Candidates>,
    data: Mutex<mpsc::Receiver<Vec<u8>>>,
    status: watch::Receiver<Status>,
}

impl Inner {
    /// Sends a command with a reply channel and waits for the reply.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, IceError>>) -> Command,
    ) -> Result<T, IceError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| IceError::Closed)?;
        answer.await.map_err(|_| IceError::Closed)?
    }

    fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}

/// An ICE agent running in a tokio task. See the [module](self) documentation.
pub struct IceAgent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IceAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceAgent")
            .field("local_addrs", &self.inner.local_addrs)
            .field("status", &self.inner.status())
            .finish_non_exhaustive()
    }
}

impl IceAgent {
    /// Settings for a new agent.
    pub fn builder() -> Builder<Tokio> {
        Builder::default()
    }

    /// The local ufrag and password, to signal to the peer (`a=ice-ufrag`, `a=ice-pwd`).
    pub fn local_credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// The host sockets' addresses (UDP sockets, then TCP listeners).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.local_addrs
    }

    /// The next local candidate as it becomes known (host candidates at once,
    /// server-reflexive and relayed ones as the servers answer); `None` once gathering is
    /// over: signal `a=end-of-candidates`.
    pub async fn next_candidate(&self) -> Option<LocalCandidate> {
        let mut c = self.inner.candidates.lock().await;
        if c.done {
            return None;
        }
        match c.rx.recv().await {
            Some(Some(candidate)) => Some(candidate),
            // End-of-candidates, or the task stopped.
            Some(None) | None => {
                c.done = true;
                None
            }
        }
    }

    /// Sets the peer's ufrag and password (`a=ice-ufrag`, `a=ice-pwd`).
    pub async fn set_remote_credentials(&self, ufrag: &str, pwd: &str) -> Result<(), IceError> {
        let (ufrag, pwd) = (ufrag.to_owned(), pwd.to_owned());
        self.inner
            .ask(|reply| Command::RemoteCredentials { ufrag, pwd, reply })
            .await
    }

    /// The peer's `a=ice-pacing` value, or `None` when its description had none: the agent
    /// paces at the higher of it and its own Ta (RFC 8445 §14.2).
    pub async fn set_remote_pacing(&self, proposed: Option<Duration>) -> Result<(), IceError> {
        self.inner
            .ask(|reply| Command::RemotePacing { proposed, reply })
            .await
    }

    /// Adds one of the peer's candidates, as its SDP line (`a=candidate:...`); any time,
    /// before or after the credentials (trickle, RFC 8838).
    pub async fn add_remote_candidate(&self, line: &str) -> Result<(), IceError> {
        let line = line.to_owned();
        self.inner
            .ask(|reply| Command::RemoteCandidate { line, reply })
            .await
    }

    /// The peer sent `a=end-of-candidates`: from now on ICE can fail.
    pub async fn end_of_remote_candidates(&self) -> Result<(), IceError> {
        self.inner
            .ask(|reply| Command::EndOfCandidates { reply })
            .await
    }

    /// Waits until a pair is selected, then returns the connection; fails when ICE fails
    /// (which needs the peer's end-of-candidates) or the agent closes. Wrap it in
    /// `tokio::time::timeout` to bound the wait.
    pub async fn connect(&self) -> Result<IceConnection, IceError> {
        let mut status = self.inner.status.clone();
        let s = status
            .wait_for(|s| s.selected.is_some() || s.state == ConnectionState::Failed || s.stopped)
            .await
            .map_err(|_| IceError::Closed)?
            .clone();
        match s {
            Status {
                selected: Some(_), ..
            } => Ok(IceConnection {
                inner: self.inner.clone(),
            }),
            Status { stopped: true, .. } => Err(IceError::Closed),
            _ => Err(IceError::Failed),
        }
    }

    /// What the task last published: state and selected pair.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Pairs, candidates and counters, for diagnostics.
    pub async fn snapshot(&self) -> Result<Snapshot, IceError> {
        self.inner.ask(|reply| Command::Snapshot { reply }).await
    }

    /// Closes the agent: its TURN allocations are deleted, and this returns once the servers
    /// answered (or the builder's `close_timeout` passed) and the task has stopped.
    pub async fn close(&self) {
        let _ = self.inner.ask(|reply| Command::Close { reply }).await;
        // Another handle may have started the close: wait for the task to stop.
        let mut status = self.inner.status.clone();
        let _ = status.wait_for(|s| s.stopped).await;
    }
}

/// A connected [`IceAgent`]: data goes over the selected pair.
pub struct IceConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IceConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConnection")
            .field("status", &self.inner.status())
            .finish_non_exhaustive()
    }
}

impl IceConnection {
    /// The selected pair, `(local, remote)`.
    pub fn selected_pair(&self) -> Option<(Candidate, Candidate)> {
        self.inner.status().selected
    }

    /// The connection state (`Completed` while all is well).
    pub fn state(&self) -> ConnectionState {
        self.inner.status().state
    }

    /// Sends one datagram to the peer over the selected pair.
    pub async fn send(&self, data: &[u8]) -> Result<(), IceError> {
        let data = data.to_vec();
        self.inner.ask(|reply| Command::Send { data, reply }).await
    }

    /// The next datagram from the peer. Fails when ICE fails (consent lost) or the agent
    /// closes.
    pub async fn recv(&self) -> Result<Vec<u8>, IceError> {
        let mut data = self.inner.data.lock().await;
        let mut status = self.inner.status.clone();
        ::tokio::select! {
            biased;
            d = data.recv() => d.ok_or(IceError::Closed),
            s = status.wait_for(|s| s.state == ConnectionState::Failed || s.stopped) => {
                match s.map(|s| s.stopped) {
                    Ok(false) => Err(IceError::Failed),
                    _ => Err(IceError::Closed),
                }
            }
        }
    }

    /// Closes the agent (see [`IceAgent::close`]).
    pub async fn close(&self) {
        IceAgent {
            inner: self.inner.clone(),
        }
        .close()
        .await;
    }
}
