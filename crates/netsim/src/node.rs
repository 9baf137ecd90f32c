//! The trait the simulator drives, and typed handles to the nodes it owns.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Instant;

use crate::datagram::Datagram;
use crate::tcp::{TcpCommand, TcpEvent};

/// A Sans-IO machine the simulator can drive.
///
/// Wrap your protocol machine in a small adapter that implements this trait. The simulator
/// calls it in the Sans-IO order: after every `handle_*` call it drains
/// [`poll_transmit`](Self::poll_transmit), then [`poll_tcp`](Self::poll_tcp), and then reads
/// [`poll_timeout`](Self::poll_timeout). It never reads a clock: `now` is virtual time.
///
/// UDP is datagrams: [`handle_datagram`](Self::handle_datagram) and `poll_transmit`. TCP is a
/// byte stream the simulator's TCP carries: the node returns [`TcpCommand`]s (listen,
/// connect, send, close) from `poll_tcp` and gets [`TcpEvent`]s (connected, accepted, data,
/// closed) in [`handle_tcp`](Self::handle_tcp). Both TCP methods have defaults that do
/// nothing, so a UDP-only node implements four methods. Events caused by commands at once (a
/// connect refused on the spot) are handed over once `poll_tcp` is drained, and the node is
/// polled again after them.
pub trait Node {
    /// A datagram arrived on one of the node's bound sockets (`datagram.destination`).
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram);

    /// The deadline returned by [`poll_timeout`](Self::poll_timeout) has been reached.
    fn handle_timeout(&mut self, now: Instant);

    /// The next datagram to send. Its `source` must be a socket the node is bound to.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Datagram>;

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, if ever.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// Something happened on one of the node's TCP listeners or connections. The default
    /// ignores it.
    fn handle_tcp(&mut self, now: Instant, event: TcpEvent) {
        let _ = (now, event);
    }

    /// The next TCP command. The default has none.
    #[must_use]
    fn poll_tcp(&mut self) -> Option<TcpCommand> {
        None
    }
}

/// A [`Node`] the simulator can hand back as its concrete type.
pub(crate) trait AnyNode: Node {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Node + 'static> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A typed handle to a node owned by a [`Sim`](crate::Sim): [`Sim::node`](crate::Sim::node)
/// and [`Sim::node_mut`](crate::Sim::node_mut) give back a `&T` / `&mut T`.
pub struct NodeId<T> {
    pub(crate) index: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> NodeId<T> {
    pub(crate) fn new(index: usize) -> Self {
        NodeId {
            index,
            _type: PhantomData,
        }
    }

    /// The untyped handle.
    #[must_use]
    pub fn erased(self) -> AnyNodeId {
        AnyNodeId(self.index)
    }
}

// Manual impls: deriving would require `T: Clone` etc., which node types need not be.
impl<T> Clone for NodeId<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NodeId<T> {}
impl<T> PartialEq for NodeId<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl<T> Eq for NodeId<T> {}
impl<T> Hash for NodeId<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}
impl<T> fmt::Debug for NodeId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.index)
    }
}

/// A node handle without its type, for code that handles nodes of several types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnyNodeId(pub(crate) usize);

/// Why a node could not be bound to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// The address is not one of the host's addresses.
    AddressNotOnHost(SocketAddr),
    /// Another node (or this one) is already bound to the socket.
    InUse(SocketAddr),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::AddressNotOnHost(a) => write!(f, "{} is not an address of the host", a.ip()),
            BindError::InUse(a) => write!(f, "{a} is already bound"),
        }
    }
}

impl std::error::Error for BindError {}

/// The simulator's record of one node.
pub(crate) struct NodeSlot {
    pub(crate) host: usize,
    pub(crate) node: Box<dyn AnyNode>,
    /// Sockets the node is bound to; port 0 stands for every port of that address.
    pub(crate) sockets: Vec<SocketAddr>,
    /// The timer currently in the event queue: deadline and the event's sequence number.
    pub(crate) timer: Option<(Instant, u64)>,
}

impl NodeSlot {
    /// Whether the node may send from `source`.
    pub(crate) fn owns(&self, source: SocketAddr) -> bool {
        self.sockets
            .iter()
            .any(|s| *s == source || (s.port() == 0 && s.ip() == source.ip()))
    }
}

impl fmt::Debug for NodeSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSlot")
            .field("host", &self.host)
            .field("sockets", &self.sockets)
            .field("timer", &self.timer)
            .finish_non_exhaustive()
    }
}
