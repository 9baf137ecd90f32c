//! Counters. Input from the network never raises errors: what is dropped is counted here.

/// Packets and bytes relayed in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams (or ChannelData messages / indications) relayed.
    pub packets: u64,
    /// Application bytes relayed (without ChannelData or STUN headers).
    pub bytes: u64,
}

impl Traffic {
    pub(crate) fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

/// Why datagrams were dropped without an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drops {
    /// Neither STUN nor ChannelData (RFC 7983 first byte), or an empty datagram.
    pub not_turn: u64,
    /// STUN that does not parse and cannot be answered (not a request).
    pub malformed_stun: u64,
    /// A FINGERPRINT that does not match.
    pub bad_fingerprint: u64,
    /// STUN responses, and indications other than Send and Binding.
    pub unexpected_stun: u64,
    /// ChannelData with a bad channel number or a length beyond the datagram.
    pub bad_channel_data: u64,
    /// Send indications without a valid XOR-PEER-ADDRESS and DATA.
    pub bad_send_indication: u64,
    /// ChannelData or Send indications on a 5-tuple with no allocation (this includes
    /// every client that never authenticated), and peer datagrams to a relayed address
    /// that is not (or not yet) allocated.
    pub no_allocation: u64,
    /// ChannelData on a channel that is not bound.
    pub no_channel: u64,
    /// Data to or from a peer without a permission.
    pub no_permission: u64,
    /// Send indications to a peer the policy denies.
    pub denied_peer: u64,
    /// Send indications to a peer of a family the allocation has no relayed address for.
    pub family_mismatch: u64,
    /// Data too long to fit in a Data indication or a ChannelData message.
    pub too_large: u64,
    /// Retransmitted Allocate requests while the relay bind is still pending.
    pub pending_retransmission: u64,
    /// ICMP errors of a type TURN does not relay (RFC 8656 §11.5).
    pub bad_icmp: u64,
    /// Input on a client data connection after its ConnectionBind: bridged connections
    /// carry raw bytes the driver copies itself (RFC 6062 §5.4).
    pub bridged: u64,
}

/// Responses sent, by error code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// 400 Bad Request.
    pub bad_request: u64,
    /// 401 Unauthenticated (including every first, unauthenticated Allocate).
    pub unauthenticated: u64,
    /// 403 Forbidden (denied peers).
    pub forbidden: u64,
    /// 420 Unknown Attribute.
    pub unknown_attribute: u64,
    /// 437 Allocation Mismatch.
    pub allocation_mismatch: u64,
    /// 438 Stale Nonce.
    pub stale_nonce: u64,
    /// 440 Address Family not Supported.
    pub address_family_not_supported: u64,
    /// 441 Wrong Credentials.
    pub wrong_credentials: u64,
    /// 442 Unsupported Transport Protocol.
    pub unsupported_transport: u64,
    /// 443 Peer Address Family Mismatch.
    pub peer_address_family_mismatch: u64,
    /// 446 Connection Already Exists (RFC 6062).
    pub connection_already_exists: u64,
    /// 447 Connection Timeout or Failure (RFC 6062).
    pub connection_timeout_or_failure: u64,
    /// 486 Allocation Quota Reached.
    pub quota_reached: u64,
    /// 508 Insufficient Capacity.
    pub insufficient_capacity: u64,
    /// Any other code.
    pub other: u64,
}

impl ErrorCounts {
    /// The count for one error code.
    pub fn get(&self, code: u16) -> u64 {
        match self.slot(code) {
            Some(s) => *s,
            None => self.other,
        }
    }

    pub(crate) fn count(&mut self, code: u16) {
        *self.slot_mut(code) += 1;
    }

    fn slot(&self, code: u16) -> Option<&u64> {
        Some(match code {
            400 => &self.bad_request,
            401 => &self.unauthenticated,
            403 => &self.forbidden,
            420 => &self.unknown_attribute,
            437 => &self.allocation_mismatch,
            438 => &self.stale_nonce,
            440 => &self.address_family_not_supported,
            441 => &self.wrong_credentials,
            442 => &self.unsupported_transport,
            443 => &self.peer_address_family_mismatch,
            446 => &self.connection_already_exists,
            447 => &self.connection_timeout_or_failure,
            486 => &self.quota_reached,
            508 => &self.insufficient_capacity,
            _ => return None,
        })
    }

    fn slot_mut(&mut self, code: u16) -> &mut u64 {
        match code {
            400 => &mut self.bad_request,
            401 => &mut self.unauthenticated,
            403 => &mut self.forbidden,
            420 => &mut self.unknown_attribute,
            437 => &mut self.allocation_mismatch,
            438 => &mut self.stale_nonce,
            440 => &mut self.address_family_not_supported,
            441 => &mut self.wrong_credentials,
            442 => &mut self.unsupported_transport,
            443 => &mut self.peer_address_family_mismatch,
            446 => &mut self.connection_already_exists,
            447 => &mut self.connection_timeout_or_failure,
            486 => &mut self.quota_reached,
            508 => &mut self.insufficient_capacity,
            _ => &mut self.other,
        }
    }
}

/// RFC 6062 TCP relaying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Peer connections now: connecting, waiting for their ConnectionBind, or bridged.
    pub connections: usize,
    /// Of `connections`, those not bound yet.
    pub unbound: usize,
    /// Connect requests handed to the driver (`ConnectPeer`).
    pub connects: u64,
    /// Connects that failed or timed out (answered 447).
    pub connect_failures: u64,
    /// Incoming peer connections accepted (ConnectionAttempt indications sent).
    pub attempts: u64,
    /// Incoming peer connections refused.
    pub refused: u64,
    /// ConnectionBinds that succeeded: connections handed to the driver to bridge.
    pub bridged: u64,
    /// Peer connections closed because no ConnectionBind came in time.
    pub bind_timeouts: u64,
}

/// A snapshot of the server's counters; see [`Server::stats`](super::Server::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Allocations now (active and waiting for their relay bind).
    pub allocations: usize,
    /// Permissions now, over all allocations.
    pub permissions: usize,
    /// Channel bindings now, over all allocations.
    pub channels: usize,
    /// Responses held for retransmitted requests now (only responses to authenticated
    /// requests are kept: an unauthenticated request costs the server no memory).
    pub cached_responses: usize,
    /// Client to peer (ChannelData and Send indications).
    pub to_peer: Traffic,
    /// Peer to client (ChannelData and Data indications).
    pub to_client: Traffic,
    /// Of `to_client`, the packets sent as Data indications.
    pub data_indications: u64,
    /// ICMP errors passed to clients in Data indications (RFC 8656 §11.5).
    pub icmp_relayed: u64,
    /// Success responses sent, Binding included.
    pub success_responses: u64,
    /// Error responses sent, by code.
    pub errors: ErrorCounts,
    /// Retransmitted requests answered from the response cache without being processed.
    pub retransmissions: u64,
    /// Allocations that reached the end of their lifetime.
    pub expired_allocations: u64,
    /// Relay binds the driver reported as failed.
    pub failed_binds: u64,
    /// Datagrams dropped, by reason.
    pub drops: Drops,
    /// RFC 6062 TCP relaying.
    pub tcp: TcpStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_counts_by_code() {
        let mut e = ErrorCounts::default();
        for code in [
            400, 401, 401, 403, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 508, 599,
        ] {
            e.count(code);
        }
        assert_eq!(e.get(401), 2);
        assert_eq!(e.unauthenticated, 2);
        for code in [
            400, 403, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 508,
        ] {
            assert_eq!(e.get(code), 1, "{code}");
        }
        assert_eq!(e.get(599), 1);
        assert_eq!(e.other, 1);
    }
}
