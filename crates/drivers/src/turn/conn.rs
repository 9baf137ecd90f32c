//! Blocking TCP and TLS connections for the std drivers: open one (from an ephemeral port of
//! a given IP, TLS handshake included), then either use it directly (RFC 6062 data
//! connections) or give it a reader thread that cuts its bytes into frames and posts them to
//! the driver's loop, while the loop writes on it.
//!
//! TLS is rustls, split by hand: the reader thread reads ciphertext from the socket without
//! holding anything, then feeds it to the shared `ClientConnection` under its lock; writers
//! take the lock to encrypt and write. So reading never blocks writing.

use super::tls::tls_error;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use stun_proto::framing::{Framing, StreamFramer};

/// Largest read from a socket.
const READ_BUF: usize = 16 * 1024;

/// TLS to use on a connection: the configuration and the name to verify.
pub(crate) type TlsSetup = (Arc<rustls::ClientConfig>, ServerName<'static>);

/// An open connection, TLS handshake done.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) stream: TcpStream,
    pub(crate) tls: Option<ClientConnection>,
    pub(crate) local: SocketAddr,
}

/// Connects from `bind` (port 0: an ephemeral port) to `remote` within `timeout`, and makes
/// the TLS handshake if `tls` is given (within the same time).
pub(crate) fn open(
    bind: SocketAddr,
    remote: SocketAddr,
    tls: Option<TlsSetup>,
    timeout: Duration,
) -> io::Result<Opened> {
    let deadline = Instant::now() + timeout;
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // A second connection from the same local address (a TURN client redirected to another
    // server, RFC 8489 §10) can bind it while the first closes or lingers in TIME_WAIT only
    // if both set SO_REUSEADDR.
    socket.set_reuse_address(true)?;
    socket.bind(&bind.into())?;
    socket.connect_timeout(&remote.into(), timeout)?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let tls = match tls {
        Some((config, name)) => Some(handshake(&stream, config, name, deadline)?),
        None => None,
    };
    Ok(Opened { stream, tls, local })
}

/// The client side of a TLS handshake on `stream`, by `deadline`.
fn handshake(
    stream: &TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> io::Result<ClientConnection> {
    let mut conn = ClientConnection::new(config, name).map_err(tls_error)?;
    let mut io = stream;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match conn.complete_io(&mut io) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
        }
    }
    stream.set_read_timeout(None)?;
    Ok(conn)
}

/// What a connection's reader thread posts to its driver's loop.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// One frame (a STUN message, ChannelData, or an RFC 4571 datagram without its length).
    Frame { token: u64, data: Vec<u8> },
    /// The connection closed, broke, or could not be framed; the reader has stopped.
    Closed { token: u64, reason: String },
}

/// The writing half of a connection with a reader thread. Dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct ConnWriter {
    stream: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl ConnWriter {
    /// Writes `bytes` (encrypted, for TLS) and waits until the socket took them.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut stream = &self.stream;
        match &self.tls {
            None => stream.write_all(bytes),
            Some(tls) => {
                let mut conn = tls.lock().unwrap_or_else(PoisonError::into_inner);
                conn.writer().write_all(bytes)?;
                while conn.wants_write() {
                    conn.write_tls(&mut stream)?;
                }
                Ok(())
            }
        }
    }

    /// Closes the connection (with a TLS close_notify first); the reader thread stops.
    pub(crate) fn close(&self) {
        if let Some(tls) = &self.tls {
            let mut conn = tls.lock().unwrap_or_else(PoisonError::into_inner);
            conn.send_close_notify();
            let mut stream = &self.stream;
            let _ = conn.write_tls(&mut stream);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Drop for ConnWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// Starts a reader thread on `opened` that cuts its bytes with `framing` and posts every
/// frame, then the close, to `tx` as `T::from(ConnEvent)`. Returns the writer.
pub(crate) fn start<T: From<ConnEvent> + Send + 'static>(
    opened: Opened,
    token: u64,
    framing: Framing,
    tx: SyncSender<T>,
) -> io::Result<ConnWriter> {
    let (writer, reader) = split(opened, framing)?;
    reader.spawn(token, tx)?;
    Ok(writer)
}

/// Splits `opened` into its writer and its reader, without reading yet: a caller that must
/// announce the connection before its first frame posts the announcement, then runs the
/// reader.
pub(crate) fn split(opened: Opened, framing: Framing) -> io::Result<(ConnWriter, Reader)> {
    let Opened { stream, tls, local } = opened;
    let tls = tls.map(|c| Arc::new(Mutex::new(c)));
    let reader = Reader {
        stream: stream.try_clone()?,
        tls: tls.clone(),
        framer: StreamFramer::new(framing),
        local,
    };
    Ok((ConnWriter { stream, tls }, reader))
}

/// The reading half of a connection: cuts its bytes into frames for a driver's loop.
pub(crate) struct Reader {
    stream: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
    framer: StreamFramer,
    local: SocketAddr,
}

impl Reader {
    /// Reads on a thread of its own.
    pub(crate) fn spawn<T: From<ConnEvent> + Send + 'static>(
        self,
        token: u64,
        tx: SyncSender<T>,
    ) -> io::Result<()> {
        std::thread::Builder::new()
            .name(format!("floe-tcp-{}", self.local))
            .spawn(move || self.run(token, &tx))?;
        Ok(())
    }

    /// Reads until the connection closes, posting each frame to `tx` as
    /// [`ConnEvent::Frame`], then [`ConnEvent::Closed`].
    pub(crate) fn run<T: From<ConnEvent>>(mut self, token: u64, tx: &SyncSender<T>) {
        let reason = match self.pump(token, tx) {
            Ok(()) => "closed by the peer".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = self.stream.shutdown(Shutdown::Both);
        let _ = tx.send(T::from(ConnEvent::Closed { token, reason }));
    }

    /// Reads until EOF (Ok) or an error; each frame goes to `tx`.
    fn pump<T: From<ConnEvent>>(&mut self, token: u64, tx: &SyncSender<T>) -> io::Result<()> {
        let mut raw = vec![0u8; READ_BUF];
        let mut plain = Vec::new();
        loop {
            let n = match (&self.stream).read(&mut raw) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            plain.clear();
            let eof = self.decrypt(&raw[..n], &mut plain)?;
            let data = match &self.tls {
                Some(_) => &plain[..],
                None => &raw[..n],
            };
            self.framer.push(data).map_err(framing_error)?;
            while let Some(frame) = self.framer.next_frame().map_err(framing_error)? {
                let event = ConnEvent::Frame {
                    token,
                    data: frame.data.to_vec(),
                };
                if tx.send(T::from(event)).is_err() {
                    // The loop is gone.
                    return Ok(());
                }
            }
            if eof {
                return Ok(());
            }
        }
    }

    /// With TLS: feeds ciphertext to the session and appends the plaintext to `out`. True
    /// once the peer sent close_notify.
    fn decrypt(&self, mut ciphertext: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(tls) = &self.tls else {
            return Ok(false);
        };
        let mut conn = tls.lock().unwrap_or_else(PoisonError::into_inner);
        while !ciphertext.is_empty() {
            if conn.read_tls(&mut ciphertext)? == 0 {
                // After close_notify nothing more is read.
                return Ok(true);
            }
            let state = conn.process_new_packets().map_err(tls_error)?;
            let mut buf = vec![0u8; state.plaintext_bytes_to_read()];
            conn.reader().read_exact(&mut buf)?;
            out.extend_from_slice(&buf);
            if state.peer_has_closed() {
                return Ok(true);
            }
        }
        // Alerts or key updates the session wants to send.
        let mut stream = &self.stream;
        while conn.wants_write() {
            conn.write_tls(&mut stream)?;
        }
        Ok(false)
    }
}

fn framing_error(e: stun_proto::framing::FramingError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
