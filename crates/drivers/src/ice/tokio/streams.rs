//! The tokio flavour's TCP and TLS connections: one task per connection, which reports it
//! open, cuts what it reads into frames for the agent's task and writes what that task
//! sends it ([`Conns`](crate::ice::conns::Conns) decides the rest).

use crate::ice::conns::{Io, OpenRequest};
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ::tokio::net::{TcpSocket, TcpStream};
use ::tokio::sync::mpsc;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use stun_proto::framing::{Framing, StreamFramer};

/// Largest read from a connection.
const READ_BUF: usize = 16 * 1024;

/// How the agent's task writes on a connection; dropping it closes the connection.
pub(super) type Writer = mpsc::UnboundedSender<Vec<u8>>;
/// Where connection tasks report.
pub(super) type IoTx = mpsc::Sender<Io<Writer>>;

/// Opens the connection `req` asks for within `timeout` (TLS handshake included), reports
/// it, then carries it until it closes.
pub(super) async fn open(req: OpenRequest, timeout: Duration, io: IoTx) {
    let token = req.token;
    let connected = ::tokio::time::timeout(timeout, connect(req.bind, req.remote)).await;
    let (stream, local) = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(&io, token, e.to_string()).await,
        Err(_) => return failed(&io, token, "connect timed out".into()).await,
    };
    match req.tls {
        None => carry(token, local, stream, req.framing, io).await,
        Some((config, name)) => {
            let connector = tokio_rustls::TlsConnector::from(config);
            let handshake = ::tokio::time::timeout(timeout, connector.connect(name, stream));
            match handshake.await {
                Ok(Ok(tls)) => carry(token, local, tls, req.framing, io).await,
                Ok(Err(e)) => failed(&io, token, format!("TLS handshake: {e}")).await,
                Err(_) => failed(&io, token, "TLS handshake timed out".into()).await,
            }
        }
    }
}

async fn failed(io: &IoTx, token: u64, reason: String) {
    let _ = io.send(Io::Failed { token, reason }).await;
}

/// A TCP connection from `bind` (port 0: ephemeral) to `remote`, and its local address.
async fn connect(bind: SocketAddr, remote: SocketAddr) -> io::Result<(TcpStream, SocketAddr)> {
    let socket = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if bind.port() != 0 {
        socket.set_reuseaddr(true)?;
    }
    socket.bind(bind)?;
    let stream = socket.connect(remote).await?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    Ok((stream, local))
}

/// Reports an opened connection with its writer, then carries it.
async fn carry<S>(token: u64, local: SocketAddr, stream: S, framing: Framing, io: IoTx)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (writer, writes) = mpsc::unbounded_channel();
    let opened = Io::Opened {
        token,
        local,
        writer,
    };
    if io.send(opened).await.is_ok() {
        run(token, stream, framing, writes, io).await;
    }
}

/// Carries a connection: frames what it reads to `io`, writes what comes on `writes`.
/// Ends when either side closes; a close by the agent (its writer dropped) is not
/// reported.
pub(super) async fn run<S>(
    token: u64,
    stream: S,
    framing: Framing,
    mut writes: mpsc::UnboundedReceiver<Vec<u8>>,
    io: IoTx,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = ::tokio::io::split(stream);
    let mut framer = StreamFramer::new(framing);
    let mut buf = vec![0u8; READ_BUF];
    let reason = loop {
        ::tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) => break "closed by the peer".to_owned(),
                Ok(n) => {
                    if let Err(e) = framer.push(&buf[..n]) {
                        break e.to_string();
                    }
                    match forward_frames(token, &mut framer, &io).await {
                        Ok(true) => {}
                        Ok(false) => return, // the agent's task is gone
                        Err(e) => break e,
                    }
                }
                Err(e) => break e.to_string(),
            },
            bytes = writes.recv() => match bytes {
                Some(bytes) => {
                    if let Err(e) = wr.write_all(&bytes).await {
                        break e.to_string();
                    }
                }
                None => {
                    // Closed by the agent (a TLS close_notify goes out first).
                    let _ = wr.shutdown().await;
                    return;
                }
            },
        }
    };
    let _ = io.send(Io::Closed { token, reason }).await;
}

/// Sends every complete frame to the agent's task. `Ok(false)`: the task is gone; `Err`:
/// the stream cannot be framed.
async fn forward_frames(token: u64, framer: &mut StreamFramer, io: &IoTx) -> Result<bool, String> {
    loop {
        let data = match framer.next_frame() {
            Ok(Some(frame)) => frame.data.to_vec(),
            Ok(None) => return Ok(true),
            Err(e) => return Err(e.to_string()),
        };
        if io.send(Io::Frame { token, data }).await.is_err() {
            return Ok(false);
        }
    }
}
