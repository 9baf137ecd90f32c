//! One TCP or TLS connection of a worker: a client's connection to a stream listener, or an
//! RFC 6062 peer data connection on a TCP relayed address.
//!
//! A connection is non-blocking and edge-triggered: it remembers whether the socket may have
//! more to read (`readable`) and whether it can take more writes (`writable`) until a call
//! says otherwise. Reads give plaintext (rustls' sans-io [`ServerConnection`] decrypts TLS in
//! place); writes go through a bounded queue of plaintext, which a flush moves to the socket
//! (through rustls, one record's worth at a time, so that the queue alone says how much is
//! waiting).

use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use stun_proto::TransportProtocol;
use stun_proto::framing::{Framing, StreamFramer};

/// How much plaintext is handed to rustls at once (one TLS record).
const TLS_CHUNK: usize = 16 * 1024;

/// A client connection's queue beyond which relayed datagrams for it are dropped (a client
/// that does not keep up loses datagrams, as it would over UDP).
pub(super) const QUEUE_LIMIT: usize = 256 * 1024;
/// A client connection's queue beyond which a STUN message for it closes it: it does not
/// read its responses.
pub(super) const QUEUE_HARD_LIMIT: usize = 2 * QUEUE_LIMIT;
/// Bytes queued towards one side of a bridge at most: its other side is not read while
/// this much waits (backpressure through TCP flow control).
pub(super) const BRIDGE_BUFFER: usize = 64 * 1024;
/// Bytes a peer may send before its connection is bound; then it is not read until the
/// bridge.
pub(super) const HOLD_LIMIT: usize = 64 * 1024;

/// What a connection is to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Accepted on a TCP or TLS listener: a client's control or data connection.
    Client {
        /// TCP or TLS.
        transport: TransportProtocol,
        /// An allocation was made on it (its 5-tuple): it is no longer closed for idling.
        allocated: bool,
    },
    /// An RFC 6062 peer data connection, named by its CONNECTION-ID.
    Peer {
        /// The CONNECTION-ID.
        connection_id: u32,
        /// Opened by a Connect, and not connected yet.
        connecting: bool,
    },
}

/// What a connection does with the bytes it reads.
#[derive(Debug)]
pub(super) enum Mode {
    /// TURN messages, cut by the framer and handed to the core one by one.
    Framed(Box<StreamFramer>),
    /// Kept in [`Conn::held`] until the bridge (a peer connection not bound yet).
    Holding,
    /// Copied as they are to the connection with this token (RFC 6062 §5.4).
    Bridged(usize),
}

/// What a read gave.
#[derive(Debug)]
pub(super) enum ReadOutcome {
    /// This many bytes of plaintext.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The other side closed (FIN, or a TLS close_notify).
    Eof,
    /// The connection failed (reset, TLS error): close it.
    Failed(io::Error),
}

/// A queue of bytes to write, appended at the back and consumed at the front.
#[derive(Debug, Default)]
pub(super) struct Queue {
    buf: Vec<u8>,
    head: usize,
}

impl Queue {
    /// Bytes waiting.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        // Reclaim the consumed front before growing, once it is worth a move.
        if self.head > 0 && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn front(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.buf.len());
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            // A burst may have grown the buffer: give the memory back once it drained.
            if self.buf.capacity() > 64 * 1024 {
                self.buf = Vec::new();
            }
        }
    }
}

/// One connection.
#[derive(Debug)]
pub(super) struct Conn {
    io: mio::net::TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// The local address (a listening address, or a relayed address).
    pub(super) local: SocketAddr,
    /// The remote address (a client, or a peer).
    pub(super) remote: SocketAddr,
    pub(super) role: Role,
    pub(super) mode: Mode,
    /// Plaintext to write.
    out: Queue,
    /// Peer bytes read before the bridge (mode [`Mode::Holding`]).
    pub(super) held: Vec<u8>,
    /// Bytes still in the framer when the connection became bridged: the tail of the read
    /// that carried the ConnectionBind, to be copied on.
    pub(super) unframed: usize,
    /// The socket may have more to read.
    pub(super) readable: bool,
    writable: bool,
    /// Reading stopped because the bytes have nowhere to go (a full bridge or hold buffer);
    /// resumed when there is room again.
    pub(super) paused: bool,
    /// No more reading: the connection closes once its queue is written (or its linger
    /// deadline passes).
    pub(super) closing: bool,
    /// The write side is shut down (FIN sent): a closing connection waits for the other
    /// side's FIN, discarding what it reads, so that closing does not reset the connection
    /// before the other side has read everything.
    pub(super) shut: bool,
    /// Tells timer entries of an earlier use of the same token apart.
    pub(super) generation: u64,
    /// When the connection times out: a client without an allocation, or a lingering close.
    pub(super) deadline: Option<std::time::Instant>,
}

impl Conn {
    /// A connection over `io`; TLS when `tls` is given. Client connections start framed,
    /// peer connections holding.
    pub(super) fn new(
        io: mio::net::TcpStream,
        tls: Option<ServerConnection>,
        local: SocketAddr,
        remote: SocketAddr,
        role: Role,
        generation: u64,
    ) -> Conn {
        let mode = match role {
            Role::Client { .. } => {
                Mode::Framed(Box::new(StreamFramer::new(Framing::StunAndChannelData)))
            }
            Role::Peer { .. } => Mode::Holding,
        };
        Conn {
            io,
            tls: tls.map(Box::new),
            local,
            remote,
            role,
            mode,
            out: Queue::default(),
            held: Vec::new(),
            unframed: 0,
            readable: true,
            writable: true,
            paused: false,
            closing: false,
            shut: false,
            generation,
            deadline: None,
        }
    }

    /// The socket, to (de)register it.
    pub(super) fn io(&mut self) -> &mut mio::net::TcpStream {
        &mut self.io
    }

    /// A writable event arrived.
    pub(super) fn set_writable(&mut self) {
        self.writable = true;
    }

    /// The client transport (TCP or TLS), for client connections.
    pub(super) fn client_transport(&self) -> Option<TransportProtocol> {
        match self.role {
            Role::Client { transport, .. } => Some(transport),
            Role::Peer { .. } => None,
        }
    }

    /// Plaintext bytes waiting to be written.
    pub(super) fn queued(&self) -> usize {
        self.out.len()
    }

    /// Appends bytes to write (see [`flush`](Self::flush)).
    pub(super) fn queue(&mut self, bytes: &[u8]) {
        self.out.push(bytes);
    }

    /// True if a flush has something to do: queued bytes, or TLS records (a handshake
    /// message, an alert).
    pub(super) fn wants_flush(&self) -> bool {
        !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Reads plaintext into `buf` (which must not be empty).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        match &mut self.tls {
            None => loop {
                if !self.readable {
                    return ReadOutcome::WouldBlock;
                }
                return match self.io.read(buf) {
                    Ok(0) => ReadOutcome::Eof,
                    Ok(n) => ReadOutcome::Data(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.readable = false;
                        ReadOutcome::WouldBlock
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => ReadOutcome::Failed(e),
                };
            },
            Some(tls) => read_tls(tls, &mut self.io, &mut self.readable, buf),
        }
    }

    /// Writes what is queued until the socket would block. Returns true once everything
    /// (TLS records included) is written.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        let Conn {
            io,
            tls,
            out,
            writable,
            ..
        } = self;
        if !*writable {
            return Ok(false);
        }
        let flushed = match tls {
            None => flush_plain(io, out),
            Some(tls) => flush_tls(tls, io, out),
        }?;
        if flushed == Flushed::Blocked {
            // Until the next writable event.
            *writable = false;
        }
        Ok(flushed == Flushed::All)
    }

    /// Sends FIN (once everything queued is written).
    pub(super) fn shutdown_write(&mut self) {
        if !self.shut {
            self.shut = true;
            let _ = self.io.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Starts a TLS close (close_notify), to be written by the next flush.
    pub(super) fn send_close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
    }
}

/// Reads from a TLS connection: plaintext already decrypted first, then records from the
/// socket until one yields plaintext or the socket has no more.
fn read_tls(
    tls: &mut ServerConnection,
    io: &mut mio::net::TcpStream,
    readable: &mut bool,
    buf: &mut [u8],
) -> ReadOutcome {
    loop {
        match tls.reader().read(buf) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => return ReadOutcome::Data(n),
            // No close_notify before the TCP FIN: the stream ended all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return ReadOutcome::Eof,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return ReadOutcome::Failed(e),
        }
        if !*readable {
            return ReadOutcome::WouldBlock;
        }
        match tls.read_tls(io) {
            // EOF: the reader reports it above (after what was decrypted before it).
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *readable = false;
                return ReadOutcome::WouldBlock;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ReadOutcome::Failed(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // The alert rustls queued is written by the flush that precedes the close.
            return ReadOutcome::Failed(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// How far a flush got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    /// Everything is written.
    All,
    /// The socket would block.
    Blocked,
    /// Plaintext waits for the TLS handshake to finish.
    Handshaking,
}

fn flush_plain(io: &mut mio::net::TcpStream, out: &mut Queue) -> io::Result<Flushed> {
    while !out.is_empty() {
        match io.write(out.front()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.consume(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flushed::All)
}

/// Writes pending TLS records; hands rustls the next record's plaintext only once it has
/// written everything before, so rustls never holds more than a record of ours.
fn flush_tls(
    tls: &mut ServerConnection,
    io: &mut mio::net::TcpStream,
    out: &mut Queue,
) -> io::Result<Flushed> {
    loop {
        while tls.wants_write() {
            match tls.write_tls(io) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Ok(Flushed::All);
        }
        // Plaintext waits for the handshake to finish (rustls would buffer it unbounded);
        // the read that finishes it flushes again.
        if tls.is_handshaking() {
            return Ok(Flushed::Handshaking);
        }
        let front = out.front();
        let n = tls.writer().write(&front[..front.len().min(TLS_CHUNK)])?;
        if n == 0 {
            return Ok(Flushed::Handshaking);
        }
        out.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_order_and_reclaims_its_front() {
        let mut q = Queue::default();
        q.push(b"hello ");
        q.push(b"world");
        assert_eq!(q.front(), b"hello world");
        q.consume(6);
        assert_eq!((q.front(), q.len()), (&b"world"[..], 5));
        q.push(b"!");
        assert_eq!(q.front(), b"world!");
        assert_eq!(q.head, 0, "the consumed half was reclaimed");
        q.consume(6);
        assert!(q.is_empty());
        q.push(b"abc");
        q.consume(1);
        assert_eq!(q.front(), b"bc");
    }
}
