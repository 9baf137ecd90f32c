//! The end of allocations, permissions and channels: expiry by the timer (RFC 8656 §6, §9,
//! §12) and deletion (Refresh with LIFETIME 0, failed binds).

use super::io::{DeleteReason, ServerEvent};
use super::{Millis, Server};
use std::net::SocketAddr;
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
        self.stats.permissions = self.stats.permissions.saturating_sub(expired.permissions);
        self.stats.channels = self.stats.channels.saturating_sub(expired.channels);
        for relayed in expired.relays {
            self.release_relay(relayed);
        }
        if empty {
            self.stats.expired_allocations += 1;
            self.delete_allocation(id, DeleteReason::Expired);
        } else {
            self.table.schedule(id);
        }
    }

    pub(super) fn release_relay(&mut self, relayed: SocketAddr) {
        self.ports.release(relayed);
        self.events.push_back(ServerEvent::ReleaseRelay {
            relayed,
            transport: TransportProtocol::Udp,
        });
    }

    /// Removes an allocation and everything it holds; its relays are released.
    pub(super) fn delete_allocation(&mut self, id: u32, reason: DeleteReason) {
        let Some(alloc) = self.table.remove(id) else {
            return;
        };
        self.pending.remove(&id);
        for relay in alloc.relays.iter().flatten() {
            self.release_relay(relay.addr);
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
