//! The agent's TCP connections (RFC 6544 §7): which exist, which are being opened, and until
//! when. The driver owns the sockets; the agent decides which connections to open and close
//! and names each by its `(local, remote)` pair: `local` is the base of the local candidate
//! (for an active candidate the address it was added with, whatever ephemeral port the
//! driver's socket got), `remote` the peer's address as seen on the connection.

use std::net::SocketAddr;
use std::time::Instant;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpState {
    /// The agent asked the driver to connect; it gives up at `deadline`.
    Connecting { deadline: Instant },
    /// Open: checks and data flow over it.
    Connected,
}

/// One connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpConnection {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: TcpState,
}

/// The connections, few per agent: a plain list.
#[derive(Debug, Default)]
pub(crate) struct TcpConnections {
    list: Vec<TcpConnection>,
}

impl TcpConnections {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn get(&self, local: SocketAddr, remote: SocketAddr) -> Option<&TcpConnection> {
        self.list
            .iter()
            .find(|c| c.local == local && c.remote == remote)
    }

    pub(crate) fn get_mut(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<&mut TcpConnection> {
        self.list
            .iter_mut()
            .find(|c| c.local == local && c.remote == remote)
    }

    /// True if the connection is open.
    pub(crate) fn is_connected(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.get(local, remote)
            .is_some_and(|c| c.state == TcpState::Connected)
    }

    pub(crate) fn insert(&mut self, conn: TcpConnection) {
        // Connections come and go by the handful: grow one by one.
        self.list.reserve_exact(1);
        self.list.push(conn);
    }

    pub(crate) fn remove(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<TcpConnection> {
        let at = self
            .list
            .iter()
            .position(|c| c.local == local && c.remote == remote)?;
        let conn = self.list.remove(at);
        if self.list.is_empty() {
            self.list = Vec::new();
        }
        Some(conn)
    }

    /// Connection attempts whose deadline has passed, removed.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<TcpConnection> {
        let expired = |c: &TcpConnection| matches!(c.state, TcpState::Connecting { deadline } if deadline <= now);
        if !self.list.iter().any(expired) {
            return Vec::new();
        }
        let (gone, kept): (Vec<_>, Vec<_>) = self.list.drain(..).partition(expired);
        self.list = kept;
        gone
    }

    /// The earliest connection deadline.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        self.list
            .iter()
            .filter_map(|c| match c.state {
                TcpState::Connecting { deadline } => Some(deadline),
                TcpState::Connected => None,
            })
            .min()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &TcpConnection> {
        self.list.iter()
    }

    /// Removes and returns every connection.
    pub(crate) fn take_all(&mut self) -> Vec<TcpConnection> {
        std::mem::take(&mut self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_and_removal() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:5000".parse().unwrap();
        let c: SocketAddr = "192.0.2.3:5000".parse().unwrap();
        let mut list = TcpConnections::default();
        list.insert(TcpConnection {
            local: a,
            remote: b,
            state: TcpState::Connecting {
                deadline: t0 + Duration::from_secs(10),
            },
        });
        list.insert(TcpConnection {
            local: a,
            remote: c,
            state: TcpState::Connected,
        });
        assert_eq!(list.timeout(), Some(t0 + Duration::from_secs(10)));
        assert!(list.take_expired(t0).is_empty());
        assert!(list.is_connected(a, c) && !list.is_connected(a, b));
        let gone = list.take_expired(t0 + Duration::from_secs(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].remote, b);
        assert_eq!(list.timeout(), None);
        assert!(list.remove(a, c).is_some());
        assert_eq!(list.len(), 0);
    }
}
