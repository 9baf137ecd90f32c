//! A blocking driver on std threads: one loop drives the machine; each socket has a reader
//! thread that hands datagrams to the loop over a bounded channel.

use crate::machine::Machine;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stun_proto::{Input, Transmit, TransportProtocol};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;
/// How long a reader thread blocks before checking whether it should stop.
const READ_POLL: Duration = Duration::from_millis(100);
/// Datagrams queued between the readers and the loop before readers start dropping.
const QUEUE: usize = 4096;

struct Datagram {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

/// Why [`Runner::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The event callback asked to stop.
    Break,
    /// The deadline passed.
    Deadline,
    /// [`StopHandle::stop`] was called.
    Requested,
}

/// Stops a running [`Runner`] from another thread (for example on Ctrl-C).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the runner to return at its next wake-up (within about 100 ms).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Drives one [`Machine`] over any number of UDP sockets.
pub struct Runner<M: Machine> {
    machine: M,
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tx: SyncSender<Datagram>,
    rx: Receiver<Datagram>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
}

impl<M: Machine> std::fmt::Debug for Runner<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("sockets", &self.local_addrs())
            .finish()
    }
}

impl<M: Machine> Runner<M> {
    /// A runner with no sockets yet.
    pub fn new(machine: M) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        Runner {
            machine,
            sockets: Vec::new(),
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
            readers: Vec::new(),
        }
    }

    /// Adds a socket; the machine's transmits whose `source` is this socket's local address
    /// (or its port on the unspecified address) leave from it. Returns the local address.
    pub fn add_socket(&mut self, socket: UdpSocket) -> io::Result<SocketAddr> {
        let local = socket.local_addr()?;
        socket.set_read_timeout(Some(READ_POLL))?;
        let socket = Arc::new(socket);
        let (reader, tx, stop) = (socket.clone(), self.tx.clone(), self.stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("floe-udp-{local}"))
            .spawn(move || {
                read_loop(&reader, local, &tx, &stop, |remote, data| Datagram {
                    local,
                    remote,
                    data,
                })
            })?;
        self.readers.push(handle);
        self.sockets.push((local, socket));
        Ok(local)
    }

    /// The local addresses of the sockets.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(a, _)| *a).collect()
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The machine, for commands.
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// A handle to stop [`run`](Self::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Sends everything the machine has queued.
    pub fn flush(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.send(&t);
        }
    }

    /// Sends one transmit the machine returned directly (rather than queued).
    pub fn send_transmit(&self, t: &Transmit) {
        self.send(t);
    }

    fn send(&self, t: &Transmit) {
        if t.transport != TransportProtocol::Udp {
            tracing::warn!(?t, "the blocking runner only has UDP sockets");
            return;
        }
        let socket = self
            .sockets
            .iter()
            .find(|(a, _)| *a == t.source)
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|(a, _)| a.port() == t.source.port() && a.ip().is_unspecified())
            });
        match socket {
            Some((_, s)) => {
                if let Err(e) = s.send_to(&t.payload, t.destination) {
                    tracing::debug!(error = %e, to = %t.destination, "send failed");
                }
            }
            None => tracing::warn!(source = %t.source, "no socket for transmit"),
        }
    }

    /// Runs until the callback breaks, the deadline passes or a stop is requested. Each event
    /// goes to `on_event`, which may issue commands on the machine.
    pub fn run(
        &mut self,
        deadline: Option<Instant>,
        mut on_event: impl FnMut(&mut M, M::Event) -> ControlFlow<()>,
    ) -> io::Result<Stopped> {
        loop {
            self.flush();
            while let Some(event) = self.machine.poll_event() {
                if on_event(&mut self.machine, event).is_break() {
                    self.flush();
                    return Ok(Stopped::Break);
                }
                self.flush();
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Stopped::Requested);
            }
            // Wake at least every READ_POLL to notice stop requests.
            let wait = match timer_step(&mut self.machine, deadline, Instant::now()) {
                TimerStep::Deadline => return Ok(Stopped::Deadline),
                TimerStep::Fired => continue,
                TimerStep::Wait(w) => w.map_or(READ_POLL, |w| w.min(READ_POLL)),
            };
            match self.rx.recv_timeout(wait) {
                Ok(d) => {
                    self.deliver(d);
                    // Take what else is queued before sending, to batch.
                    while let Ok(d) = self.rx.try_recv() {
                        self.deliver(d);
                    }
                }
                // The next turn of the loop fires whatever is due.
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("all socket readers stopped"));
                }
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        let input = Input {
            transport: TransportProtocol::Udp,
            source: d.remote,
            destination: d.local,
            data: &d.data,
        };
        self.machine.handle_input(Instant::now(), input);
    }
}

impl<M: Machine> Drop for Runner<M> {
    fn drop(&mut self) {
        // Reader threads notice within READ_POLL and exit; not joining them keeps a
        // short-lived tool from waiting for that.
        self.stop.store(true, Ordering::Relaxed);
        self.readers.clear();
    }
}

/// What a blocking loop does about time before it waits for input.
#[derive(Debug)]
pub(crate) enum TimerStep {
    /// The caller's deadline has passed.
    Deadline,
    /// The machine's timeout was due and has been handled: loop again.
    Fired,
    /// Nothing is due: wait for input at most this long (`None`: no timer at all).
    Wait(Option<Duration>),
}

/// The time step every blocking driver loop takes: stop at the caller's deadline, fire the
/// machine's timeout when due, or say how long to wait. A machine whose deadline does not
/// move after `handle_timeout` would make a loop spin; floe's machines never do, but a
/// driver should not trust that, so it backs off for a millisecond.
pub(crate) fn timer_step<M: Machine>(
    machine: &mut M,
    deadline: Option<Instant>,
    now: Instant,
) -> TimerStep {
    if deadline.is_some_and(|d| d <= now) {
        return TimerStep::Deadline;
    }
    let due = machine.poll_timeout();
    let wake = [due, deadline].into_iter().flatten().min();
    match wake {
        Some(w) if w <= now => {
            machine.handle_timeout(now);
            if due.is_some() && machine.poll_timeout() == due {
                std::thread::sleep(Duration::from_millis(1));
            }
            TimerStep::Fired
        }
        _ => TimerStep::Wait(wake.map(|w| w - now)),
    }
}

/// Reads `socket` (bound to `local`) until `stop`, posting each datagram to `tx` as
/// `post(remote, bytes)` wraps it; drops it when the queue is full, returns when the loop is
/// gone. The blocking runners' UDP reader threads all run this.
pub(crate) fn read_loop<T>(
    socket: &UdpSocket,
    local: SocketAddr,
    tx: &SyncSender<T>,
    stop: &AtomicBool,
    post: impl Fn(SocketAddr, Vec<u8>) -> T,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, remote)) => match tx.try_send(post(remote, buf[..n].to_vec())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(%local, "queue full, datagram dropped")
                }
                Err(TrySendError::Disconnected(_)) => return,
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ICMP errors surface as ConnectionRefused on some platforms: keep reading.
            Err(e) => tracing::debug!(%local, error = %e, "recv failed"),
        }
    }
}
