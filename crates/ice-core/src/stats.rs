//! Counters: network input never raises errors, it is counted here.

/// What the agent has seen and done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connectivity checks sent (first transmissions, not retransmissions).
    pub checks_sent: u64,
    /// Authenticated checks answered with success.
    pub checks_answered: u64,
    /// Check responses that completed a transaction.
    pub responses_received: u64,
    /// Checks answered 400 Bad Request (missing USERNAME or MESSAGE-INTEGRITY, bad
    /// attributes).
    pub bad_requests: u64,
    /// Checks answered 401 Unauthenticated (wrong ufrag or integrity).
    pub unauthenticated: u64,
    /// Checks answered 487 Role Conflict.
    pub role_conflicts_answered: u64,
    /// Role switches after a conflict (RFC 8445 §7.2.5.1, §7.3.1.1).
    pub role_switches: u64,
    /// Checks answered 420 Unknown Attribute.
    pub unknown_attributes: u64,
    /// Responses dropped: no matching transaction, bad integrity or fingerprint.
    pub responses_dropped: u64,
    /// Datagrams dropped as malformed STUN.
    pub malformed: u64,
    /// Application data dropped: it came from an address no authenticated check or valid
    /// pair vouches for.
    pub data_dropped: u64,
    /// Peer-reflexive candidates not learnt because the cap was reached.
    pub prflx_capped: u64,
    /// Pairs not added because the pair limit was reached.
    pub pairs_capped: u64,
    /// Binding indications (keepalives) received.
    pub indications_received: u64,
    /// Consent checks sent (RFC 7675).
    pub consent_checks_sent: u64,
    /// Keepalive indications sent (RFC 8445 §11).
    pub keepalives_sent: u64,
    /// Remote candidates ignored: after end-of-candidates, of another generation, or over
    /// the cap.
    pub remote_candidates_ignored: u64,
    /// TCP connections the agent asked the driver to open (RFC 6544 §7.1).
    pub tcp_connects: u64,
    /// TCP connection attempts that failed or timed out.
    pub tcp_connect_failures: u64,
    /// Accepted TCP connections refused: not on a passive candidate of ours, or over the
    /// cap.
    pub tcp_refused: u64,
    /// TCP frames dropped: on a connection the agent does not know.
    pub tcp_frames_dropped: u64,
    /// Connections to TCP and TLS TURN servers the agent asked the driver to open.
    pub turn_connects: u64,
    /// Connections to TCP and TLS TURN servers that could not be opened (failed, or timed
    /// out).
    pub turn_connect_failures: u64,
    /// Open connections to TCP and TLS TURN servers that the driver reported lost.
    pub turn_connections_lost: u64,
}
