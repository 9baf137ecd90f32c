//! The TCP connections of one adapter, carried by netsim's TCP: which commands open them,
//! what the machine calls them, how their bytes are read, and what waits for them.
//!
//! netsim names a connection by its [`TcpId`]; floe's machines name it by `(local, remote)`
//! (for an active ICE-TCP candidate `local` is the candidate's base, not the ephemeral port
//! the connection left from). A connect answers with the local address actually used, so
//! connects are matched to their answers by the address they asked for: exactly, or by IP for
//! an ephemeral port, first asked first matched.

use std::collections::VecDeque;
use std::net::SocketAddr;

use netsim::{TcpCommand, TcpId};
use stun_proto::TransportProtocol;
use stun_proto::framing::{Framing, FramingError, StreamFramer};

/// How a connection's incoming bytes are read.
#[derive(Debug)]
pub(super) enum Reader {
    /// Cut into messages for the machine.
    Framed(StreamFramer),
    /// Kept until the adapter decides what they are (an RFC 6062 peer connection before its
    /// bridge, a data connection waiting for its ConnectionBind response).
    Held(Vec<u8>),
    /// Copied as they are onto another connection (an RFC 6062 bridge).
    Pipe(TcpId),
}

impl Reader {
    /// A reader that cuts messages with `framing`.
    pub(super) fn framed(framing: Framing) -> Reader {
        Reader::Framed(StreamFramer::new(framing))
    }
}

/// An open connection.
#[derive(Debug)]
pub(super) struct Conn<T> {
    /// netsim's name.
    pub(super) id: TcpId,
    /// The local address as the machine names the connection.
    pub(super) local: SocketAddr,
    /// The remote address.
    pub(super) remote: SocketAddr,
    /// TCP, or TLS (carried as TCP: the adapters leave the TLS layer out).
    pub(super) transport: TransportProtocol,
    /// How its bytes are read.
    pub(super) reader: Reader,
    /// What the adapter keeps about it.
    pub(super) tag: T,
}

/// A connection asked for and not answered yet.
#[derive(Debug)]
struct Opening<T> {
    /// The local address given in the connect (port 0: ephemeral).
    requested: SocketAddr,
    remote: SocketAddr,
    /// The machine's local name for it; `None`: the local address the connect gets.
    name: Option<SocketAddr>,
    transport: TransportProtocol,
    reader: Reader,
    tag: T,
    /// Bytes written before it opened.
    queued: Vec<u8>,
    /// The machine no longer wants it: close it once it opens.
    abandoned: bool,
}

impl<T> Opening<T> {
    fn local_name(&self) -> SocketAddr {
        self.name.unwrap_or(self.requested)
    }
}

/// A connection to open: see [`Streams::connect`].
#[derive(Debug)]
pub(super) struct Connect<T> {
    /// The local address to connect from (port 0: an ephemeral port of that IP).
    pub(super) from: SocketAddr,
    /// Where to.
    pub(super) to: SocketAddr,
    /// The machine's local name for it, if not the address the connect gets.
    pub(super) name: Option<SocketAddr>,
    /// TCP or TLS.
    pub(super) transport: TransportProtocol,
    /// How its bytes are read.
    pub(super) reader: Reader,
    /// What the adapter keeps about it.
    pub(super) tag: T,
}

/// A connect that failed: the machine's names for it.
#[derive(Debug)]
pub(super) struct Failed<T> {
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    pub(super) tag: T,
}

/// What became of bytes read on a connection.
#[derive(Debug)]
pub(super) enum Read {
    /// No such connection (closed by the adapter, or never its own).
    Unknown,
    /// Whole messages for the machine, and the framing error that ends the stream, if any
    /// (then close the connection and report it).
    Frames(Vec<Vec<u8>>, Option<FramingError>),
    /// Kept for later.
    Held,
    /// Copied onto the other half of a bridge.
    Piped,
}

/// One adapter's TCP connections and the commands for netsim.
#[derive(Debug)]
pub(super) struct Streams<T> {
    conns: Vec<Conn<T>>,
    opening: Vec<Opening<T>>,
    listening: Vec<SocketAddr>,
    commands: VecDeque<TcpCommand>,
}

impl<T> Default for Streams<T> {
    fn default() -> Self {
        Streams {
            conns: Vec::new(),
            opening: Vec::new(),
            listening: Vec::new(),
            commands: VecDeque::new(),
        }
    }
}

impl<T> Streams<T> {
    /// The next command for netsim.
    pub(super) fn poll_command(&mut self) -> Option<TcpCommand> {
        self.commands.pop_front()
    }

    /// Listens on `local` (once).
    pub(super) fn listen(&mut self, local: SocketAddr) {
        if !self.listening.contains(&local) {
            self.listening.push(local);
            self.commands.push_back(TcpCommand::Listen { local });
        }
    }

    /// Opens a connection.
    pub(super) fn connect(&mut self, c: Connect<T>) {
        self.commands.push_back(TcpCommand::Connect {
            local: c.from,
            remote: c.to,
        });
        self.opening.push(Opening {
            requested: c.from,
            remote: c.to,
            name: c.name,
            transport: c.transport,
            reader: c.reader,
            tag: c.tag,
            queued: Vec::new(),
            abandoned: false,
        });
    }

    /// netsim opened a connection this adapter asked for: the connection, unless the
    /// machine gave it up meanwhile (then it is closed at once) or it is unknown.
    pub(super) fn connected(
        &mut self,
        id: TcpId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<&mut Conn<T>> {
        // The exact address first, then an ephemeral port of the IP.
        let exact = |o: &Opening<T>| o.remote == remote && o.requested == local;
        let ephemeral = |o: &Opening<T>| {
            o.remote == remote
                && o.requested.port() == 0
                && (o.requested.ip() == local.ip() || o.requested.ip().is_unspecified())
        };
        let Some(i) = (self.opening.iter().position(exact))
            .or_else(|| self.opening.iter().position(ephemeral))
        else {
            tracing::debug!(%id, %local, %remote, "netsim adapter: unexpected connection closed");
            self.commands.push_back(TcpCommand::Close { id });
            return None;
        };
        let o = self.opening.remove(i);
        if o.abandoned {
            self.commands.push_back(TcpCommand::Close { id });
            return None;
        }
        if !o.queued.is_empty() {
            self.commands.push_back(TcpCommand::Send {
                id,
                bytes: o.queued,
            });
        }
        self.conns.push(Conn {
            id,
            local: o.name.unwrap_or(local),
            remote,
            transport: o.transport,
            reader: o.reader,
            tag: o.tag,
        });
        self.conns.last_mut()
    }

    /// netsim could not open a connection (`local` as given in the connect): the machine's
    /// names for it, unless it was given up.
    pub(super) fn connect_failed(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<Failed<T>> {
        let i = (self.opening.iter()).position(|o| o.requested == local && o.remote == remote)?;
        let o = self.opening.remove(i);
        (!o.abandoned).then(|| Failed {
            local: o.local_name(),
            remote: o.remote,
            tag: o.tag,
        })
    }

    /// A connection accepted on a listener, kept.
    pub(super) fn accepted(&mut self, conn: Conn<T>) -> &mut Conn<T> {
        self.conns.push(conn);
        let last = self.conns.len() - 1;
        &mut self.conns[last]
    }

    /// Writes `bytes` on the connection the machine names `(local, remote)`, or queues them
    /// on one being opened; the bytes back if there is neither.
    pub(super) fn write(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        if let Some(c) = self.find(|c| c.local == local && c.remote == remote) {
            let id = c.id;
            self.send(id, bytes);
            return Ok(());
        }
        let opening = (self.opening.iter_mut())
            .find(|o| !o.abandoned && o.local_name() == local && o.remote == remote);
        match opening {
            Some(o) => {
                o.queued.extend_from_slice(&bytes);
                Ok(())
            }
            None => Err(bytes),
        }
    }

    /// Writes `bytes` on connection `id`.
    pub(super) fn send(&mut self, id: TcpId, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.commands.push_back(TcpCommand::Send { id, bytes });
        }
    }

    /// Bytes arrived on `id`.
    pub(super) fn read(&mut self, id: TcpId, bytes: &[u8]) -> Read {
        let Some(c) = self.find(|c| c.id == id) else {
            return Read::Unknown;
        };
        match &mut c.reader {
            Reader::Framed(framer) => {
                let mut frames = Vec::new();
                if let Err(e) = framer.push(bytes) {
                    return Read::Frames(frames, Some(e));
                }
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => frames.push(frame.data.to_vec()),
                        Ok(None) => return Read::Frames(frames, None),
                        Err(e) => return Read::Frames(frames, Some(e)),
                    }
                }
            }
            Reader::Held(buf) => {
                buf.extend_from_slice(bytes);
                Read::Held
            }
            Reader::Pipe(to) => {
                let to = *to;
                self.send(to, bytes.to_vec());
                Read::Piped
            }
        }
    }

    /// Connection `id`.
    pub(super) fn get(&mut self, id: TcpId) -> Option<&mut Conn<T>> {
        self.find(|c| c.id == id)
    }

    /// Closes a connection netsim accepted that the adapter does not keep.
    pub(super) fn refuse(&mut self, id: TcpId) {
        self.commands.push_back(TcpCommand::Close { id });
    }

    /// The first connection that matches.
    pub(super) fn find(&mut self, mut f: impl FnMut(&Conn<T>) -> bool) -> Option<&mut Conn<T>> {
        self.conns.iter_mut().find(|c| f(c))
    }

    /// Closes (FIN) and forgets a connection; netsim reports nothing more about it.
    pub(super) fn close(&mut self, id: TcpId) -> Option<Conn<T>> {
        let i = self.conns.iter().position(|c| c.id == id)?;
        self.commands.push_back(TcpCommand::Close { id });
        Some(self.conns.remove(i))
    }

    /// Closes the first connection that matches, or gives up the first connect that matches
    /// (it is closed if it opens); true if there was one.
    pub(super) fn close_where(
        &mut self,
        conn: impl Fn(&Conn<T>) -> bool,
        opening: impl Fn(SocketAddr, SocketAddr, &T) -> bool,
    ) -> bool {
        if let Some(id) = self.find(|c| conn(c)).map(|c| c.id) {
            self.close(id);
            return true;
        }
        let found = (self.opening.iter_mut())
            .find(|o| !o.abandoned && opening(o.local_name(), o.remote, &o.tag));
        match found {
            Some(o) => {
                o.abandoned = true;
                true
            }
            None => false,
        }
    }

    /// A connection ended on the far side (or broke): forgets it.
    pub(super) fn closed(&mut self, id: TcpId) -> Option<Conn<T>> {
        let i = self.conns.iter().position(|c| c.id == id)?;
        Some(self.conns.remove(i))
    }

    /// Open connections.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }
}
