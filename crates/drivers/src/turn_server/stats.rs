//! Counters: the protocol core's [`ServerStats`] and the driver's own socket and stream
//! counters, published by each worker and summed by the handle.

use turn_proto::server::{Drops, ErrorCounts, ServerStats, TcpStats, Traffic};

/// What the driver counts about its sockets (the protocol counts are in [`ServerStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoStats {
    /// Receive calls (`recvmmsg`) that returned at least one buffer.
    pub recv_calls: u64,
    /// Datagrams received, each GRO segment counted.
    pub datagrams_received: u64,
    /// Receive buffers that held more than one datagram (GRO).
    pub gro_buffers: u64,
    /// Send calls (`sendmsg`).
    pub send_calls: u64,
    /// Datagrams sent, each GSO segment counted.
    pub datagrams_sent: u64,
    /// Send calls that carried more than one datagram (GSO).
    pub gso_sends: u64,
    /// Datagrams lost to send errors (a full socket buffer, an unreachable destination).
    pub send_errors: u64,
    /// Datagrams whose source address no socket of the worker has (a bug if not zero).
    pub no_route: u64,
    /// Relay sockets open now.
    pub relay_sockets: usize,
    /// Relay socket binds that failed (reported to the core, which answers 508).
    pub bind_failures: u64,
}

impl IoStats {
    fn add(&mut self, o: &IoStats) {
        self.recv_calls += o.recv_calls;
        self.datagrams_received += o.datagrams_received;
        self.gro_buffers += o.gro_buffers;
        self.send_calls += o.send_calls;
        self.datagrams_sent += o.datagrams_sent;
        self.gso_sends += o.gso_sends;
        self.send_errors += o.send_errors;
        self.no_route += o.no_route;
        self.relay_sockets += o.relay_sockets;
        self.bind_failures += o.bind_failures;
    }
}

/// What the driver counts about TCP and TLS: client connections on the stream listeners,
/// RFC 6062 peer connections and the bridges between them. (The core counts Connects,
/// ConnectionAttempts and ConnectionBinds in [`ServerStats::tcp`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Client connections over TCP open now.
    pub tcp_connections: usize,
    /// Client connections over TLS open now (handshaking ones included).
    pub tls_connections: usize,
    /// RFC 6062 peer connections open now (connecting, waiting for their ConnectionBind, or
    /// bridged).
    pub peer_connections: usize,
    /// Of them, those bridged to a client data connection.
    pub bridges: usize,
    /// RFC 6062 relay listeners (TCP relayed addresses) open now.
    pub tcp_relays: usize,
    /// Client connections accepted.
    pub accepted: u64,
    /// Connections (client or peer) closed at once because the worker had
    /// [`max_connections`](super::TurnServerOptions::max_connections).
    pub refused: u64,
    /// TURN bytes read from client connections (plaintext; bridged bytes not included).
    pub bytes_in: u64,
    /// TURN bytes queued to client connections (plaintext; bridged bytes not included).
    pub bytes_out: u64,
    /// Bytes copied across bridges, both directions.
    pub bridged_bytes: u64,
    /// Relayed datagrams not queued to a client connection whose queue was full (a client
    /// that does not read loses datagrams, as over UDP).
    pub dropped_datagrams: u64,
    /// Client connections closed because no allocation was made on them in
    /// [`unallocated_timeout`](super::TurnServerOptions::unallocated_timeout).
    pub closed_idle: u64,
    /// Client connections closed because they did not read what the server had to write.
    pub closed_slow: u64,
    /// Client connections closed because their bytes were not STUN or ChannelData.
    pub framing_errors: u64,
    /// TLS connections that failed (handshake or record errors).
    pub tls_failures: u64,
    /// Outgoing RFC 6062 peer connections (Connect) that failed.
    pub connect_failures: u64,
}

impl StreamStats {
    fn add(&mut self, o: &StreamStats) {
        self.tcp_connections += o.tcp_connections;
        self.tls_connections += o.tls_connections;
        self.peer_connections += o.peer_connections;
        self.bridges += o.bridges;
        self.tcp_relays += o.tcp_relays;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.bridged_bytes += o.bridged_bytes;
        self.dropped_datagrams += o.dropped_datagrams;
        self.closed_idle += o.closed_idle;
        self.closed_slow += o.closed_slow;
        self.framing_errors += o.framing_errors;
        self.tls_failures += o.tls_failures;
        self.connect_failures += o.connect_failures;
    }
}

/// The server's counters: the protocol core's and the driver's, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnServerStats {
    /// The protocol counters (allocations, relayed traffic, responses, drops).
    pub core: ServerStats,
    /// The socket counters.
    pub io: IoStats,
    /// The TCP and TLS counters.
    pub stream: StreamStats,
}

impl TurnServerStats {
    pub(super) fn new(core: ServerStats, io: IoStats, stream: StreamStats) -> Self {
        TurnServerStats { core, io, stream }
    }

    /// Adds another worker's counters to these.
    pub(super) fn add(&mut self, other: &TurnServerStats) {
        add_core(&mut self.core, &other.core);
        self.io.add(&other.io);
        self.stream.add(&other.stream);
    }
}

fn add_traffic(a: &mut Traffic, b: &Traffic) {
    a.packets += b.packets;
    a.bytes += b.bytes;
}

fn add_core(a: &mut ServerStats, b: &ServerStats) {
    a.allocations += b.allocations;
    a.permissions += b.permissions;
    a.channels += b.channels;
    a.cached_responses += b.cached_responses;
    add_traffic(&mut a.to_peer, &b.to_peer);
    add_traffic(&mut a.to_client, &b.to_client);
    a.data_indications += b.data_indications;
    a.icmp_relayed += b.icmp_relayed;
    a.success_responses += b.success_responses;
    add_errors(&mut a.errors, &b.errors);
    a.retransmissions += b.retransmissions;
    a.expired_allocations += b.expired_allocations;
    a.failed_binds += b.failed_binds;
    add_drops(&mut a.drops, &b.drops);
    add_tcp(&mut a.tcp, &b.tcp);
}

fn add_tcp(a: &mut TcpStats, b: &TcpStats) {
    a.connections += b.connections;
    a.unbound += b.unbound;
    a.connects += b.connects;
    a.connect_failures += b.connect_failures;
    a.attempts += b.attempts;
    a.refused += b.refused;
    a.bridged += b.bridged;
    a.bind_timeouts += b.bind_timeouts;
}

fn add_errors(a: &mut ErrorCounts, b: &ErrorCounts) {
    a.bad_request += b.bad_request;
    a.unauthenticated += b.unauthenticated;
    a.forbidden += b.forbidden;
    a.unknown_attribute += b.unknown_attribute;
    a.allocation_mismatch += b.allocation_mismatch;
    a.stale_nonce += b.stale_nonce;
    a.address_family_not_supported += b.address_family_not_supported;
    a.wrong_credentials += b.wrong_credentials;
    a.unsupported_transport += b.unsupported_transport;
    a.peer_address_family_mismatch += b.peer_address_family_mismatch;
    a.connection_already_exists += b.connection_already_exists;
    a.connection_timeout_or_failure += b.connection_timeout_or_failure;
    a.quota_reached += b.quota_reached;
    a.insufficient_capacity += b.insufficient_capacity;
    a.other += b.other;
}

fn add_drops(a: &mut Drops, b: &Drops) {
    a.not_turn += b.not_turn;
    a.malformed_stun += b.malformed_stun;
    a.bad_fingerprint += b.bad_fingerprint;
    a.unexpected_stun += b.unexpected_stun;
    a.bad_channel_data += b.bad_channel_data;
    a.bad_send_indication += b.bad_send_indication;
    a.no_allocation += b.no_allocation;
    a.no_channel += b.no_channel;
    a.no_permission += b.no_permission;
    a.denied_peer += b.denied_peer;
    a.family_mismatch += b.family_mismatch;
    a.too_large += b.too_large;
    a.pending_retransmission += b.pending_retransmission;
    a.bad_icmp += b.bad_icmp;
    a.bridged += b.bridged;
}

/// Every drop reason, summed.
pub(super) fn total_drops(d: &Drops) -> u64 {
    d.not_turn
        + d.malformed_stun
        + d.bad_fingerprint
        + d.unexpected_stun
        + d.bad_channel_data
        + d.bad_send_indication
        + d.no_allocation
        + d.no_channel
        + d.no_permission
        + d.denied_peer
        + d.family_mismatch
        + d.too_large
        + d.pending_retransmission
        + d.bad_icmp
        + d.bridged
}

/// Every error response, summed.
pub(super) fn total_errors(e: &ErrorCounts) -> u64 {
    e.bad_request
        + e.unauthenticated
        + e.forbidden
        + e.unknown_attribute
        + e.allocation_mismatch
        + e.stale_nonce
        + e.address_family_not_supported
        + e.wrong_credentials
        + e.unsupported_transport
        + e.peer_address_family_mismatch
        + e.connection_already_exists
        + e.connection_timeout_or_failure
        + e.quota_reached
        + e.insufficient_capacity
        + e.other
}

impl TurnServerStats {
    /// Datagrams dropped by the core, every reason summed.
    pub fn drops(&self) -> u64 {
        total_drops(&self.core.drops)
    }

    /// Error responses sent, every code summed.
    pub fn error_responses(&self) -> u64 {
        total_errors(&self.core.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_field() {
        let mut one = TurnServerStats::default();
        one.core.allocations = 2;
        one.core.to_peer.packets = 10;
        one.core.to_client.bytes = 1000;
        one.core.errors.unauthenticated = 3;
        one.core.errors.other = 1;
        one.core.drops.no_permission = 4;
        one.core.drops.bad_icmp = 1;
        one.io.gso_sends = 5;
        one.io.relay_sockets = 2;
        one.core.tcp.bridged = 3;
        one.core.errors.connection_timeout_or_failure = 1;
        one.stream.tls_connections = 1;
        one.stream.bridged_bytes = 7;
        let mut sum = TurnServerStats::default();
        sum.add(&one);
        sum.add(&one);
        assert_eq!(sum.core.allocations, 4);
        assert_eq!(sum.core.to_peer.packets, 20);
        assert_eq!(sum.core.to_client.bytes, 2000);
        assert_eq!(sum.error_responses(), 10);
        assert_eq!(sum.core.tcp.bridged, 6);
        assert_eq!(sum.stream.tls_connections, 2);
        assert_eq!(sum.stream.bridged_bytes, 14);
        assert_eq!(sum.drops(), 10);
        assert_eq!(sum.io.gso_sends, 10);
        assert_eq!(sum.io.relay_sockets, 4);
    }
}
