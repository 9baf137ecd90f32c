//! Refresh (RFC 8656 §8.2), CreatePermission (§10.2) and ChannelBind (§12.2). Each is
//! called with the allocation already found and owned by the request's user (§5).

use super::allocation::{Allocation, same_addr};
use super::config::{CHANNEL_LIFETIME, PERMISSION_LIFETIME};
use super::io::DeleteReason;
use super::response::{Answer, Success};
use super::{Millis, Server};
use crate::channel_data::is_valid_channel;
use smallvec::SmallVec;
use std::net::IpAddr;
use stun_proto::attributes::{
    AddressFamily, Attribute, AttributeType, ChannelNumber, Lifetime, RequestedAddressFamily,
    XorPeerAddress,
};
use stun_proto::{Message, TransportProtocol};

const PERMISSION_MS: Millis = PERMISSION_LIFETIME.as_millis() as Millis;
const CHANNEL_MS: Millis = CHANNEL_LIFETIME.as_millis() as Millis;

impl Server {
    /// RFC 8656 §8.2.
    pub(super) fn handle_refresh(&mut self, now: Millis, id: u32, msg: &Message<'_>) -> Answer {
        let (Ok(lifetime), Ok(family)) =
            (msg.get::<Lifetime>(), msg.get::<RequestedAddressFamily>())
        else {
            return Answer::Error(400);
        };
        // "desired lifetime": 0 deletes; otherwise clamped like Allocate's.
        let desired = match lifetime {
            Some(Lifetime(0)) => 0,
            other => self.clamp_lifetime(other.map(|l| l.0)),
        };
        let Some(alloc) = self.table.get_mut(id) else {
            return Answer::Error(437);
        };
        // §8.2: REQUESTED-ADDRESS-FAMILY picks one relayed address of a dual allocation;
        // one the allocation does not have -> 443.
        let only = match family.map(|f| f.0) {
            None => None,
            Some(f) => {
                let i = usize::from(f == AddressFamily::Ipv6);
                if alloc.relays[i].is_none() {
                    return Answer::Error(443);
                }
                Some(i)
            }
        };
        let others_left = alloc
            .relays
            .iter()
            .enumerate()
            .any(|(i, r)| r.is_some() && only.is_some_and(|o| o != i));
        if desired == 0 && !others_left {
            self.delete_allocation(id, DeleteReason::Deleted);
            return Answer::Success(Success::Lifetime(0));
        }
        let expires = now + Millis::from(desired) * 1000;
        for (i, relay) in alloc.relays.iter_mut().enumerate() {
            if let Some(r) = relay.as_mut().filter(|_| only.is_none_or(|o| o == i)) {
                // Deleting one family of a dual allocation: expire it now.
                r.expires = if desired == 0 { now } else { expires };
            }
        }
        if desired == 0 {
            self.expire(now, id);
        } else {
            self.table.schedule(id);
        }
        Answer::Success(Success::Lifetime(desired))
    }

    /// RFC 8656 §10.2: all XOR-PEER-ADDRESS attributes are checked before any permission
    /// is installed, so the request succeeds or fails as a whole.
    pub(super) fn handle_create_permission(
        &mut self,
        now: Millis,
        id: u32,
        msg: &Message<'_>,
    ) -> Answer {
        let tid = msg.transaction_id();
        let mut peers: SmallVec<[IpAddr; 4]> = SmallVec::new();
        for attr in msg
            .attributes()
            .filter(|a| a.attr_type == AttributeType::XOR_PEER_ADDRESS)
        {
            match XorPeerAddress::decode(attr.value, &tid) {
                Ok(p) if !peers.contains(&p.0.ip()) => peers.push(p.0.ip()),
                Ok(_) => {}
                Err(_) => return Answer::Error(400),
            }
        }
        if peers.is_empty() {
            return Answer::Error(400);
        }
        let Some(alloc) = self.table.get(id) else {
            return Answer::Error(437);
        };
        if let Err(code) = self.check_peers(alloc, now, &peers) {
            return Answer::Error(code);
        }
        let added = peers
            .iter()
            .filter(|ip| !alloc.permissions.iter().any(|p| p.ip == **ip))
            .count();
        if alloc.live_permissions(now) + added > self.config.quotas.permissions_per_allocation {
            return Answer::Error(508);
        }
        let Some(alloc) = self.table.get_mut(id) else {
            return Answer::Error(437);
        };
        for ip in peers {
            if alloc.install_permission(ip, now + PERMISSION_MS) {
                self.stats.permissions += 1;
            }
        }
        self.table.schedule(id);
        Answer::Success(Success::Empty)
    }

    /// RFC 8656 §12.2.
    pub(super) fn handle_channel_bind(
        &mut self,
        now: Millis,
        id: u32,
        msg: &Message<'_>,
    ) -> Answer {
        let (Ok(Some(ChannelNumber(number))), Ok(Some(XorPeerAddress(peer)))) =
            (msg.get::<ChannelNumber>(), msg.get::<XorPeerAddress>())
        else {
            return Answer::Error(400);
        };
        let Some(alloc) = self.table.get(id) else {
            return Answer::Error(437);
        };
        // Channels relay UDP; a TCP allocation (RFC 6062) relays through data connections.
        if alloc.relay_transport != TransportProtocol::Udp {
            return Answer::Error(400);
        }
        // The number in 0x4000-0x4FFF, not bound to another peer, the peer not bound to
        // another number: else 400.
        let number_taken = alloc
            .channel_by_number(number, now)
            .is_some_and(|c| !same_addr(c.peer, peer));
        let peer_taken = alloc
            .channel_by_peer(peer, now)
            .is_some_and(|c| c.number != number);
        if !is_valid_channel(number) || number_taken || peer_taken {
            return Answer::Error(400);
        }
        if let Err(code) = self.check_peers(alloc, now, &[peer.ip()]) {
            return Answer::Error(code);
        }
        if self.is_own_listening_address(peer) {
            tracing::debug!(%peer, "channel to the server's own address refused");
            return Answer::Error(403);
        }
        let quotas = &self.config.quotas;
        let new_channel = alloc.channel_by_number(number, now).is_none();
        let new_permission = !alloc.has_permission(peer.ip(), now);
        if (new_channel && alloc.live_channels(now) >= quotas.channels_per_allocation)
            || (new_permission && alloc.live_permissions(now) >= quotas.permissions_per_allocation)
        {
            return Answer::Error(508);
        }
        let Some(alloc) = self.table.get_mut(id) else {
            return Answer::Error(437);
        };
        // The binding and, with it, a permission for the peer's IP (§12.2, §9).
        let (dropped, added) = alloc.bind_channel(number, peer, now, now + CHANNEL_MS);
        self.stats.channels = self.stats.channels.saturating_sub(dropped) + usize::from(added);
        if alloc.install_permission(peer.ip(), now + PERMISSION_MS) {
            self.stats.permissions += 1;
        }
        self.table.schedule(id);
        Answer::Success(Success::Empty)
    }

    /// Each peer must be of a family the allocation relays (else 443, RFC 8656 §10.2,
    /// §12.2) and allowed by the peer policy (else 403).
    pub(super) fn check_peers(
        &self,
        alloc: &Allocation,
        now: Millis,
        peers: &[IpAddr],
    ) -> Result<(), u16> {
        if peers.iter().any(|ip| alloc.relay_for(*ip, now).is_none()) {
            return Err(443);
        }
        if let Some(ip) = peers
            .iter()
            .find(|ip| !self.config.peer_policy.allows(**ip))
        {
            tracing::debug!(%ip, client = %alloc.five_tuple.client, "peer denied by policy");
            return Err(403);
        }
        Ok(())
    }
}
