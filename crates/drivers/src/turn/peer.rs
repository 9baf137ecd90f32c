//! RFC 6062 peer connections on the client: a data connection to the TURN server, bound to
//! one TCP peer of the relay with ConnectionBind, then handed to the application as a
//! [`PeerStream`] that carries the peer's bytes as they are.

use super::conn::Opened;
use rustls::{ClientConnection, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// A byte stream to one TCP peer of an RFC 6062 TCP allocation, through the TURN server: a
/// data connection (TCP, or TLS like the control connection) whose ConnectionBind has
/// succeeded. What is written reaches the peer as it is; what the peer sends is read here.
/// Dropping it (or [`shutdown`](Self::shutdown)) closes the connection to the peer too.
///
/// From [`Session::connect_peer`](super::Session::connect_peer) (this side connects) or
/// [`Session::accept_peer`](super::Session::accept_peer) (the peer connected to the relayed
/// address).
pub struct PeerStream {
    peer: SocketAddr,
    connection_id: u32,
    local: SocketAddr,
    /// Peer bytes read with the ConnectionBind response, not yet handed out.
    early: Vec<u8>,
    io: PeerIo,
}

enum PeerIo {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStream")
            .field("peer", &self.peer)
            .field("connection_id", &self.connection_id)
            .field("local", &self.local)
            .field("tls", &matches!(self.io, PeerIo::Tls(_)))
            .finish_non_exhaustive()
    }
}

impl PeerStream {
    /// The peer's address, as the relay sees it.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The CONNECTION-ID the server gave the peer connection.
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// The local address of the data connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// True if the data connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, PeerIo::Tls(_))
    }

    /// Bounds how long a read blocks (`None`: forever). A read that runs out fails with
    /// `WouldBlock` or `TimedOut`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// Bounds how long a write blocks (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }

    /// Closes the connection (the server closes the peer's side): over TLS a close_notify
    /// goes first.
    pub fn shutdown(&mut self) -> io::Result<()> {
        if let PeerIo::Tls(s) = &mut self.io {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.tcp().shutdown(Shutdown::Both)
    }

    fn tcp(&self) -> &TcpStream {
        match &self.io {
            PeerIo::Tcp(s) => s,
            PeerIo::Tls(s) => &s.sock,
        }
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.early.is_empty() {
            let n = buf.len().min(self.early.len());
            buf[..n].copy_from_slice(&self.early[..n]);
            self.early.drain(..n);
            return Ok(n);
        }
        match &mut self.io {
            PeerIo::Tcp(s) => s.read(buf),
            PeerIo::Tls(s) => s.read(buf),
        }
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.io {
            PeerIo::Tcp(s) => s.write(buf),
            PeerIo::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            PeerIo::Tcp(s) => s.flush(),
            PeerIo::Tls(s) => s.flush(),
        }
    }
}

/// A data connection while its ConnectionBind runs: the driver reads it itself (no reader
/// thread), cutting the response off with `turn_proto::stream::first_message_len`.
pub(super) struct DataConnection {
    pub(super) connection_id: u32,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    /// Bytes read and not yet given to the client (the response, then peer bytes).
    pub(super) buf: Vec<u8>,
    io: PeerIo,
}

impl DataConnection {
    pub(super) fn new(opened: Opened, connection_id: u32, peer: SocketAddr) -> DataConnection {
        let Opened { stream, tls, local } = opened;
        let io = match tls {
            Some(conn) => PeerIo::Tls(Box::new(StreamOwned::new(conn, stream))),
            None => PeerIo::Tcp(stream),
        };
        DataConnection {
            connection_id,
            peer,
            local,
            buf: Vec::new(),
            io,
        }
    }

    /// Writes `bytes` (the ConnectionBind request).
    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.io {
            PeerIo::Tcp(s) => s.write_all(bytes),
            PeerIo::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }

    /// Reads once, waiting at most `timeout`, into `buf`. `Ok(false)`: nothing came in time;
    /// an error or EOF: the connection is unusable.
    pub(super) fn read_some(&mut self, timeout: Duration) -> io::Result<bool> {
        let tcp = match &self.io {
            PeerIo::Tcp(s) => s,
            PeerIo::Tls(s) => &s.sock,
        };
        tcp.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 4096];
        let read = match &mut self.io {
            PeerIo::Tcp(s) => s.read(&mut chunk),
            PeerIo::Tls(s) => s.read(&mut chunk),
        };
        match read {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "data connection closed",
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The bound connection, for the application: what was read after the response comes
    /// first.
    pub(super) fn into_peer_stream(self) -> io::Result<PeerStream> {
        let s = PeerStream {
            peer: self.peer,
            connection_id: self.connection_id,
            local: self.local,
            early: self.buf,
            io: self.io,
        };
        s.set_read_timeout(None)?;
        Ok(s)
    }
}
