//! A worker's sockets: the listeners and the relay sockets, how mio tokens name them, and
//! which socket a datagram leaves from.
//!
//! Relay sockets sit in one flat array indexed by port, like the core's port pool: finding
//! the socket for a relayed address is an IP comparison per relay range and an index, with
//! no hashing on the hot path.

use crate::net::bind_udp;
use mio::{Interest, Registry, Token};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use turn_proto::server::{BindFailure, RelayRange};

/// The waker's token (the listeners and relay sockets count up from 0).
pub(super) const WAKER: Token = Token(usize::MAX);

/// A non-blocking UDP socket with quinn-udp's per-socket state (GSO, GRO, packet info).
#[derive(Debug)]
pub(super) struct Socket {
    io: mio::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl Socket {
    /// Takes over a bound socket. quinn-udp turns on GRO, packet info (the destination IP of
    /// datagrams to a wildcard listener) and "do not fragment" (`IP_PMTUDISC_PROBE`,
    /// `IPV6_DONTFRAG`), and makes it non-blocking.
    pub(super) fn new(socket: std::net::UdpSocket) -> io::Result<Socket> {
        let local = socket.local_addr()?;
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Socket {
            io: mio::net::UdpSocket::from_std(socket),
            state,
            local,
        })
    }

    /// The address it is bound to.
    pub(super) fn local(&self) -> SocketAddr {
        self.local
    }

    /// Receives a batch (`recvmmsg`); each buffer may hold several GRO segments.
    pub(super) fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.state.recv((&self.io).into(), bufs, meta)
    }

    /// Sends one datagram, or several of one size with GSO when `segment_size` is set.
    pub(super) fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.state.try_send((&self.io).into(), transmit)
    }

    /// How many datagrams one send may carry (1 without GSO).
    pub(super) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// False when the kernel sets DF / IPV6_DONTFRAG on everything this socket sends.
    pub(super) fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    /// Asks for a larger kernel receive buffer (capped by `net.core.rmem_max`).
    pub(super) fn set_recv_buffer(&self, bytes: usize) {
        if let Err(e) = self.state.set_recv_buffer_size((&self.io).into(), bytes) {
            tracing::debug!(local = %self.local, error = %e, "could not set SO_RCVBUF");
        }
    }
}

/// True if a wildcard listener bound to `local` can send from `source`: same port, same
/// family (IPv6 sockets are IPv6-only).
fn serves(local: SocketAddr, source: SocketAddr) -> bool {
    local.port() == source.port() && local.is_ipv4() == source.is_ipv4()
}

/// A socket by position: listener `i`, or relay slot `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SocketId {
    /// A listening socket.
    Listener(u32),
    /// A relay socket, by its slot in the flat relay array.
    Relay(u32),
}

/// Where a datagram leaves from: the socket, and the source IP to put in `IP_PKTINFO` when
/// the socket is a wildcard listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) socket: SocketId,
    pub(super) src_ip: Option<IpAddr>,
}

#[derive(Debug)]
struct Listener {
    socket: Socket,
    wildcard: bool,
}

/// One relay range's place in the flat array.
#[derive(Debug)]
struct RangeSlots {
    ip: IpAddr,
    first: u16,
    len: u32,
    base: u32,
}

/// The listeners and relay sockets of one worker.
#[derive(Debug)]
pub(super) struct Sockets {
    listeners: Vec<Listener>,
    ranges: Vec<RangeSlots>,
    /// Boxed so that an empty slot costs one pointer: a full range is 16,384 slots.
    relays: Vec<Option<Box<Socket>>>,
    relay_count: usize,
}

impl Sockets {
    /// The listeners (already bound), and empty relay slots for `ranges` (this worker's).
    pub(super) fn new(listeners: Vec<Socket>, ranges: &[RelayRange]) -> Sockets {
        let mut base = 0u32;
        let ranges: Vec<RangeSlots> = ranges
            .iter()
            .map(|r| {
                let len = u32::from(*r.ports.end()) - u32::from(*r.ports.start()) + 1;
                let slots = RangeSlots {
                    ip: r.ip,
                    first: *r.ports.start(),
                    len,
                    base,
                };
                base += len;
                slots
            })
            .collect();
        let listeners = listeners
            .into_iter()
            .map(|socket| Listener {
                wildcard: socket.local.ip().is_unspecified(),
                socket,
            })
            .collect();
        Sockets {
            listeners,
            ranges,
            relays: (0..base).map(|_| None).collect(),
            relay_count: 0,
        }
    }

    /// How many tokens the sockets may use (listeners, then relay slots).
    pub(super) fn token_count(&self) -> usize {
        self.listeners.len() + self.relays.len()
    }

    /// The mio token of a socket.
    pub(super) fn token(&self, id: SocketId) -> Token {
        match id {
            SocketId::Listener(i) => Token(i as usize),
            SocketId::Relay(i) => Token(self.listeners.len() + i as usize),
        }
    }

    /// The socket a token names (the waker's token names none).
    pub(super) fn id(&self, token: Token) -> Option<SocketId> {
        let t = token.0;
        if t < self.listeners.len() {
            Some(SocketId::Listener(t as u32))
        } else if t - self.listeners.len() < self.relays.len() {
            Some(SocketId::Relay((t - self.listeners.len()) as u32))
        } else {
            None
        }
    }

    /// Registers the listeners with the worker's poll.
    pub(super) fn register_listeners(&mut self, registry: &Registry) -> io::Result<()> {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            registry.register(&mut l.socket.io, Token(i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// A socket, if it is open.
    #[inline]
    pub(super) fn get(&self, id: SocketId) -> Option<&Socket> {
        match id {
            SocketId::Listener(i) => self.listeners.get(i as usize).map(|l| &l.socket),
            SocketId::Relay(i) => self.relays.get(i as usize)?.as_deref(),
        }
    }

    /// The address the core is told a datagram arrived on: the socket's own, or for a
    /// wildcard listener the datagram's destination IP (from `IP_PKTINFO`) and its port.
    #[inline]
    pub(super) fn arrival_address(&self, id: SocketId, dst_ip: Option<IpAddr>) -> SocketAddr {
        match id {
            SocketId::Listener(i) => {
                let l = &self.listeners[i as usize];
                match dst_ip {
                    Some(ip) if l.wildcard => SocketAddr::new(ip, l.socket.local.port()),
                    _ => l.socket.local,
                }
            }
            SocketId::Relay(i) => self.relays[i as usize]
                .as_ref()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |s| s.local),
        }
    }

    /// The relay slot of a relayed address (no hashing: a scan of the few relay ranges).
    #[inline]
    fn relay_slot(&self, addr: SocketAddr) -> Option<u32> {
        self.ranges.iter().find_map(|r| {
            let offset = u32::from(addr.port().checked_sub(r.first)?);
            (r.ip == addr.ip() && offset < r.len).then_some(r.base + offset)
        })
    }

    /// True if `addr` lies in one of this worker's relay ranges.
    pub(super) fn is_relay_address(&self, addr: SocketAddr) -> bool {
        self.relay_slot(addr).is_some()
    }

    /// The socket a datagram with `source` leaves from: a relay socket, a listener bound
    /// to `source`, or a wildcard listener on its port (then with `source`'s IP as the
    /// packet's source).
    #[inline]
    pub(super) fn route(&self, source: SocketAddr) -> Option<Route> {
        if let Some(slot) = self.relay_slot(source) {
            return Some(Route {
                socket: SocketId::Relay(slot),
                src_ip: None,
            });
        }
        if let Some(i) = self.listeners.iter().position(|l| l.socket.local == source) {
            return Some(Route {
                socket: SocketId::Listener(i as u32),
                src_ip: None,
            });
        }
        let i = self
            .listeners
            .iter()
            .position(|l| l.wildcard && serves(l.socket.local, source))?;
        Some(Route {
            socket: SocketId::Listener(i as u32),
            src_ip: Some(source.ip()),
        })
    }

    /// Binds and registers the relay socket for `addr`, as the core asked.
    pub(super) fn bind_relay(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
    ) -> Result<(), BindFailure> {
        let Some(slot) = self.relay_slot(addr) else {
            tracing::warn!(%addr, "asked to bind a relay address outside this worker's ranges");
            return Err(BindFailure::Other);
        };
        let failure = |e: io::Error| {
            tracing::debug!(%addr, error = %e, "relay bind failed");
            if e.kind() == io::ErrorKind::AddrInUse {
                BindFailure::AddressInUse
            } else {
                BindFailure::Other
            }
        };
        let mut socket = bind_udp(addr, false)
            .and_then(Socket::new)
            .map_err(failure)?;
        let token = self.token(SocketId::Relay(slot));
        registry
            .register(&mut socket.io, token, Interest::READABLE)
            .map_err(failure)?;
        if let Some(mut old) = self.relays[slot as usize].replace(Box::new(socket)) {
            // Not expected: the core releases a relayed address before handing it out again.
            let _ = registry.deregister(&mut old.io);
        } else {
            self.relay_count += 1;
        }
        Ok(())
    }

    /// Closes the relay socket for `addr`, if one is open.
    pub(super) fn release_relay(&mut self, registry: &Registry, addr: SocketAddr) {
        let Some(slot) = self.relay_slot(addr) else {
            return;
        };
        if let Some(mut socket) = self.relays[slot as usize].take() {
            let _ = registry.deregister(&mut socket.io);
            self.relay_count -= 1;
        }
    }

    /// Relay sockets open now.
    pub(super) fn relay_count(&self) -> usize {
        self.relay_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn routes_by_relay_slot_then_listener() {
        let exact = Socket::new(bind_udp(addr("127.0.0.1:0"), false).unwrap()).unwrap();
        let exact_addr = exact.local();
        let ranges = [
            RelayRange {
                ip: "127.0.0.1".parse().unwrap(),
                ports: 1000..=1009,
            },
            RelayRange {
                ip: "::1".parse().unwrap(),
                ports: 2000..=2004,
            },
        ];
        let sockets = Sockets::new(vec![exact], &ranges);
        assert_eq!(sockets.token_count(), 1 + 15);
        let relay = |s: &str| sockets.route(addr(s)).map(|r| r.socket);
        assert_eq!(relay("127.0.0.1:1000"), Some(SocketId::Relay(0)));
        assert_eq!(relay("127.0.0.1:1009"), Some(SocketId::Relay(9)));
        assert_eq!(relay("[::1]:2004"), Some(SocketId::Relay(14)));
        assert_eq!(relay("[::1]:2005"), None);
        assert_eq!(relay("127.0.0.2:1000"), None);
        assert_eq!(relay("127.0.0.1:999"), None);
        let r = sockets.route(exact_addr).unwrap();
        assert_eq!((r.socket, r.src_ip), (SocketId::Listener(0), None));
        // A specific listener reports its own address, whatever the packet info says.
        let other = Some("127.0.0.9".parse().unwrap());
        assert_eq!(sockets.arrival_address(r.socket, other), exact_addr);
        for id in [
            SocketId::Listener(0),
            SocketId::Relay(3),
            SocketId::Relay(14),
        ] {
            assert_eq!(sockets.id(sockets.token(id)), Some(id));
        }
        assert_eq!(sockets.id(WAKER), None);
        assert_eq!(sockets.id(Token(16)), None);
    }

    #[test]
    fn a_wildcard_listener_serves_its_port_and_family() {
        assert!(serves(addr("0.0.0.0:3478"), addr("192.0.2.1:3478")));
        assert!(!serves(addr("0.0.0.0:3478"), addr("192.0.2.1:3479")));
        assert!(!serves(addr("0.0.0.0:3478"), addr("[2001:db8::1]:3478")));
        assert!(serves(addr("[::]:3478"), addr("[2001:db8::1]:3478")));
    }
}
