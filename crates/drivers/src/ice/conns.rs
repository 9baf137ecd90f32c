//! The agent's TCP and TLS connections, the same for both flavours: ICE-TCP connections
//! (RFC 6544) and connections to TURN servers over TCP or TLS (RFC 8656 §3.1).
//!
//! The agent decides which connections exist ([`Event::TcpConnect`], [`Event::TcpClose`],
//! [`Event::TurnConnect`], [`Event::TurnClose`]); this table turns its requests into
//! [`OpenRequest`]s for the flavour to carry out, and the flavour's reports ([`Io`]) back
//! into the agent's calls (`tcp_connected`, `turn_connected`, `tcp_closed`, ...) and inputs.
//! A flavour owns sockets, threads or tasks, and a writer `W` per connection; it never
//! interprets what a connection is for.
//!
//! Every connection gets a token, never reused, so that reports about a connection the
//! agent has since closed (an attempt still running, frames still queued) are recognised
//! and dropped.

use super::AgentMachine;
use crate::machine::Machine;
use crate::turn::conn::TlsSetup;
use crate::turn::tls::server_name;
use ice_core::{Event, Input, TcpType, Transmit, TransportProtocol, TurnConnectionId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use stun_proto::framing::Framing;

/// What a connection is to the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// ICE-TCP, named as the agent names it: `local` is the candidate's base (the listening
    /// address of an accepted connection, the active candidate's address of an opened one),
    /// `remote` the peer's address.
    Ice {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// To a TURN server.
    Turn {
        id: TurnConnectionId,
        server: SocketAddr,
        transport: TransportProtocol,
    },
}

impl Role {
    /// How the connection's byte stream is cut: RFC 4571 for ICE-TCP, STUN and ChannelData
    /// for TURN.
    pub(super) fn framing(&self) -> Framing {
        match self {
            Role::Ice { .. } => Framing::Rfc4571,
            Role::Turn { .. } => Framing::StunAndChannelData,
        }
    }
}

/// A connection for the flavour to open, then report with [`Io::Opened`] or [`Io::Failed`].
#[derive(Debug)]
pub(super) struct OpenRequest {
    pub(super) token: u64,
    /// Where to bind: an ephemeral port (0) of the candidate's IP, or the candidate's own
    /// address for a simultaneous open.
    pub(super) bind: SocketAddr,
    pub(super) remote: SocketAddr,
    /// The TLS handshake to make, for TURN over TLS.
    pub(super) tls: Option<TlsSetup>,
    pub(super) framing: Framing,
}

/// What the flavour reports about a connection.
#[derive(Debug)]
pub(super) enum Io<W> {
    /// The connection asked for opened (TLS handshake done), from `local`; `writer` writes
    /// on it. Frames follow.
    Opened {
        token: u64,
        local: SocketAddr,
        writer: W,
    },
    /// It could not be opened.
    Failed { token: u64, reason: String },
    /// One frame read from it.
    Frame { token: u64, data: Vec<u8> },
    /// It closed, broke or could not be framed.
    Closed { token: u64, reason: String },
}

/// What the agent asked for, for the flavour to do.
#[derive(Debug)]
pub(super) enum Action<W> {
    /// Open a connection.
    Open(OpenRequest),
    /// Close this connection (drop or close the writer); nothing is reported back.
    Close(W),
}

#[derive(Debug)]
struct Entry<W> {
    token: u64,
    role: Role,
    /// The connection's own local address, once open.
    local: Option<SocketAddr>,
    /// `None` while opening.
    writer: Option<W>,
}

/// The agent's connections. See the [module](self) documentation.
#[derive(Debug)]
pub(super) struct Conns<W> {
    entries: Vec<Entry<W>>,
    next_token: u64,
    /// Trust for TURN over TLS.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl<W> Conns<W> {
    pub(super) fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Conns {
            entries: Vec::new(),
            next_token: 0,
            tls,
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn position(&self, token: u64) -> Option<usize> {
        self.entries.iter().position(|e| e.token == token)
    }

    /// An agent event: what to do about it, if it concerns connections (`None` otherwise, or
    /// when nothing is to be done).
    pub(super) fn on_event(
        &mut self,
        machine: &mut AgentMachine,
        now: Instant,
        event: &Event,
    ) -> Option<Action<W>> {
        match *event {
            Event::TcpConnect {
                local,
                remote,
                tcp_type,
            } => {
                let bind = match tcp_type {
                    TcpType::SimultaneousOpen => local,
                    _ => SocketAddr::new(local.ip(), 0),
                };
                let role = Role::Ice { local, remote };
                Some(Action::Open(self.request(role, bind, remote, None)))
            }
            Event::TurnConnect {
                id,
                local,
                server,
                transport,
                ref server_name,
            } => {
                let tls = match transport {
                    TransportProtocol::Tls => {
                        match self.tls_setup(server_name.as_deref(), server) {
                            Ok(tls) => Some(tls),
                            Err(reason) => {
                                tracing::warn!(%server, reason, "TURN over TLS not possible");
                                machine.agent_mut().turn_connect_failed(now, id);
                                return None;
                            }
                        }
                    }
                    _ => None,
                };
                let role = Role::Turn {
                    id,
                    server,
                    transport,
                };
                let bind = SocketAddr::new(local.ip(), 0);
                Some(Action::Open(self.request(role, bind, server, tls)))
            }
            Event::TcpClose { local, remote } => self.close(Role::Ice { local, remote }),
            Event::TurnClose { id } => {
                let i = self
                    .entries
                    .iter()
                    .position(|e| matches!(e.role, Role::Turn { id: i, .. } if i == id))?;
                self.entries.remove(i).writer.map(Action::Close)
            }
            _ => None,
        }
    }

    fn request(
        &mut self,
        role: Role,
        bind: SocketAddr,
        remote: SocketAddr,
        tls: Option<TlsSetup>,
    ) -> OpenRequest {
        let token = self.token();
        self.entries.push(Entry {
            token,
            role,
            local: None,
            writer: None,
        });
        OpenRequest {
            token,
            bind,
            remote,
            tls,
            framing: role.framing(),
        }
    }

    fn tls_setup(&self, name: Option<&str>, server: SocketAddr) -> Result<TlsSetup, String> {
        let config = self.tls.clone().ok_or("no TLS trust anchor configured")?;
        let name = server_name(name, server).map_err(|e| e.to_string())?;
        Ok((config, name))
    }

    fn close(&mut self, role: Role) -> Option<Action<W>> {
        let i = self.entries.iter().position(|e| e.role == role)?;
        self.entries.remove(i).writer.map(Action::Close)
    }

    /// A connection accepted on the listening socket `listener` from `remote`: the agent
    /// decides (`tcp_accepted`). Returns its token, for [`attach`](Self::attach), or `None`:
    /// close it.
    pub(super) fn accepted(
        &mut self,
        machine: &mut AgentMachine,
        now: Instant,
        listener: SocketAddr,
        remote: SocketAddr,
    ) -> Option<u64> {
        if !machine.agent_mut().tcp_accepted(now, listener, remote) {
            tracing::debug!(%listener, %remote, "TCP connection refused by the agent");
            return None;
        }
        let token = self.token();
        self.entries.push(Entry {
            token,
            role: Role::Ice {
                local: listener,
                remote,
            },
            local: Some(listener),
            writer: None,
        });
        Some(token)
    }

    /// The writer of an accepted connection (before its first frame).
    pub(super) fn attach(&mut self, token: u64, writer: W) {
        if let Some(i) = self.position(token) {
            self.entries[i].writer = Some(writer);
        }
    }

    /// A report from the flavour: the agent hears of it. Returns a writer to close (a
    /// connection the agent no longer wants).
    pub(super) fn on_io(
        &mut self,
        machine: &mut AgentMachine,
        now: Instant,
        io: Io<W>,
    ) -> Option<W> {
        match io {
            Io::Opened {
                token,
                local,
                writer,
            } => {
                let Some(i) = self.position(token) else {
                    return Some(writer);
                };
                let e = &mut self.entries[i];
                e.local = Some(local);
                e.writer = Some(writer);
                tracing::debug!(role = ?e.role, %local, "connection open");
                match e.role {
                    Role::Ice { local, remote } => {
                        machine.agent_mut().tcp_connected(now, local, remote)
                    }
                    Role::Turn { id, .. } => machine.agent_mut().turn_connected(now, id, local),
                }
            }
            Io::Failed { token, reason } => {
                let i = self.position(token)?;
                let role = self.entries.remove(i).role;
                match role {
                    // Usual for ICE-TCP pairs; worth knowing for a TURN server (a wrong
                    // address or port, a certificate not trusted).
                    Role::Ice { .. } => tracing::debug!(?role, reason, "connection failed"),
                    Role::Turn { server, .. } => {
                        tracing::warn!(%server, reason, "no connection to the TURN server")
                    }
                }
                match role {
                    Role::Ice { local, remote } => {
                        machine.agent_mut().tcp_connect_failed(now, local, remote)
                    }
                    Role::Turn { id, .. } => machine.agent_mut().turn_connect_failed(now, id),
                }
            }
            Io::Frame { token, data } => {
                let e = self.entries.iter().find(|e| e.token == token)?;
                let (transport, source, destination) = match e.role {
                    Role::Ice { local, remote } => (TransportProtocol::Tcp, remote, local),
                    Role::Turn {
                        server, transport, ..
                    } => (transport, server, e.local?),
                };
                let input = Input {
                    transport,
                    source,
                    destination,
                    data: &data,
                };
                machine.handle_input(now, input);
            }
            Io::Closed { token, reason } => {
                let i = self.position(token)?;
                let role = self.entries.remove(i).role;
                tracing::debug!(?role, reason, "connection closed");
                match role {
                    Role::Ice { local, remote } => {
                        machine.agent_mut().tcp_closed(now, local, remote)
                    }
                    Role::Turn { id, .. } => machine.agent_mut().turn_closed(now, id),
                }
            }
        }
        None
    }

    /// The writer of the connection a TCP or TLS transmit names by (`source`,
    /// `destination`).
    pub(super) fn writer_for(&self, t: &Transmit) -> Option<&W> {
        self.entries
            .iter()
            .find(|e| match e.role {
                Role::Ice { local, remote } => {
                    t.transport == TransportProtocol::Tcp
                        && (local, remote) == (t.source, t.destination)
                }
                Role::Turn {
                    server, transport, ..
                } => {
                    t.transport == transport && server == t.destination && e.local == Some(t.source)
                }
            })
            .and_then(|e| e.writer.as_ref())
    }

    /// Every writer, to close them all (the agent stopped).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = W> + '_ {
        self.entries.drain(..).filter_map(|e| e.writer)
    }
}
