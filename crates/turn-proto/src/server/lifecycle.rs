//! The end of allocations, permissions and channels: expiry by the timer (RFC 8656 §6, §9,
//! §12) and deletion (Refresh with LIFETIME 0, failed binds).

use super::allocation::FiveTuple;
use super::io::{DeleteReason, ServerEvent};
use super::{Millis, Server};
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::TransportProtocol;

impl Server {
    /// Timer work for one allocation: drop what has expired; delete it if no relayed
    /// address is left (RFC 8656 §6, §9, §12).
    pub(super) fn expire(&mut self, now: Millis, id: u32) {
        let Some(alloc) = self.table.get_mut(id) else {
            return;
        };
        let expired = alloc.expire(now);
        let empty = alloc.is_empty();
        let transport = alloc.relay_transport;
        self.stats.permissions = self.stats.permissions.saturating_sub(expired.permissions);
        self.stats.channels = self.stats.channels.saturating_sub(expired.channels);
        for relayed in expired.relays {
            self.release_relay(relayed, transport);
        }
        if empty {
            self.stats.expired_allocations += 1;
            self.delete_allocation(id, DeleteReason::Expired);
        } else {
            self.table.schedule(id);
        }
    }

    pub(super) fn release_relay(&mut self, relayed: SocketAddr, transport: TransportProtocol) {
        self.ports.release(relayed);
        self.events
            .push_back(ServerEvent::ReleaseRelay { relayed, transport });
    }

    /// The driver reports that a client's TCP or TLS connection closed (by the client, by
    /// an error, or by the driver after a framing error). An allocation made on it is
    /// deleted with [`DeleteReason::ConnectionClosed`]: over a stream the 5-tuple is the
    /// connection, and it cannot be used again (RFC 8656 §3.1, §2). A bridged RFC 6062
    /// client data connection takes its peer connection with it (RFC 6062 §5.5). Anything
    /// else (UDP, or a connection the core holds nothing for) is ignored.
    pub fn connection_closed(
        &mut self,
        _now: Instant,
        transport: TransportProtocol,
        client: SocketAddr,
        local: SocketAddr,
    ) {
        if !transport.is_reliable() {
            return;
        }
        let tuple = FiveTuple {
            client,
            server: local,
            transport,
        };
        if let Some(id) = self.table.find(&tuple) {
            tracing::debug!(%client, "control connection closed");
            return self.delete_allocation(id, DeleteReason::ConnectionClosed);
        }
        self.data_connection_closed(&tuple);
    }

    /// Removes an allocation and everything it holds; its relays are released.
    pub(super) fn delete_allocation(&mut self, id: u32, reason: DeleteReason) {
        let Some(alloc) = self.table.remove(id) else {
            return;
        };
        self.pending.remove(&id);
        self.close_tcp_connections(id);
        for relay in alloc.relays.iter().flatten() {
            self.release_relay(relay.addr, alloc.relay_transport);
        }
        self.users.release(alloc.user, alloc.five_tuple.client.ip());
        self.stats.permissions = self
            .stats
            .permissions
            .saturating_sub(alloc.permissions.len());
        self.stats.channels = self.stats.channels.saturating_sub(alloc.channels.len());
        tracing::debug!(client = %alloc.five_tuple.client, ?reason, "allocation deleted");
        self.events.push_back(ServerEvent::AllocationDeleted {
            five_tuple: alloc.five_tuple,
            reason,
        });
    }
}
