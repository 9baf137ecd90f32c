//! What the client reports: events, failure reasons, command errors, what `handle_input`
//! returns, and counters.

use core::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use stun_proto::attributes::AddressFamily;

/// What [`Client::handle_input`](super::Client::handle_input) made of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Not for this client (another 5-tuple, or a message it does not own such as a Binding
    /// response for an ICE agent sharing the socket): demultiplex it elsewhere.
    NotMine,
    /// The client's own traffic, processed or dropped (see [`ClientStats`]).
    Consumed,
    /// Application data a peer sent through the relay, from a Data indication or a
    /// ChannelData message. `data` is a sub-slice of the input: nothing is copied.
    PeerData {
        /// The peer's transport address, as seen by the relay.
        peer: SocketAddr,
        /// The data.
        data: &'a [u8],
    },
}

/// Where the client is in the life of its allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// The Allocate transaction (with its authentication and redirect retries) runs.
    Allocating,
    /// The allocation exists: permissions, channels and data work.
    Allocated,
    /// [`Client::delete`](super::Client::delete) was called; the Refresh with LIFETIME 0 runs.
    Deleting,
    /// The allocation was deleted. Final.
    Deleted,
    /// The allocation ended without being deleted (refresh failed, 437, connection lost).
    /// Final.
    Expired,
    /// No allocation was made. Final.
    Failed,
}

impl ClientState {
    /// True for the final states: nothing more will happen.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            ClientState::Deleted | ClientState::Expired | ClientState::Failed
        )
    }
}

/// The meaning of a STUN/TURN error code (RFC 8489 §14.8, RFC 8656 §19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 300 Try Alternate, where a redirect is not possible.
    TryAlternate,
    /// 400 Bad Request.
    BadRequest,
    /// 401 Unauthenticated after credentials were sent: the server refuses them.
    Unauthenticated,
    /// 403 Forbidden.
    Forbidden,
    /// 420 Unknown Attribute.
    UnknownAttribute,
    /// 437 Allocation Mismatch.
    AllocationMismatch,
    /// 438 Stale Nonce, after the retries allowed.
    StaleNonce,
    /// 440 Address Family not Supported.
    AddressFamilyNotSupported,
    /// 441 Wrong Credentials.
    WrongCredentials,
    /// 442 Unsupported Transport Protocol.
    UnsupportedTransportProtocol,
    /// 443 Peer Address Family Mismatch.
    PeerAddressFamilyMismatch,
    /// 446 Connection Already Exists (RFC 6062 §6.3).
    ConnectionAlreadyExists,
    /// 447 Connection Timeout or Failure (RFC 6062 §6.3).
    ConnectionTimeoutOrFailure,
    /// 486 Allocation Quota Reached.
    AllocationQuotaReached,
    /// 500 Server Error.
    ServerError,
    /// 508 Insufficient Capacity.
    InsufficientCapacity,
    /// Any other code.
    Other,
}

impl ErrorKind {
    /// The kind of an error code.
    pub const fn from_code(code: u16) -> ErrorKind {
        match code {
            300 => ErrorKind::TryAlternate,
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::Forbidden,
            420 => ErrorKind::UnknownAttribute,
            437 => ErrorKind::AllocationMismatch,
            438 => ErrorKind::StaleNonce,
            440 => ErrorKind::AddressFamilyNotSupported,
            441 => ErrorKind::WrongCredentials,
            442 => ErrorKind::UnsupportedTransportProtocol,
            443 => ErrorKind::PeerAddressFamilyMismatch,
            446 => ErrorKind::ConnectionAlreadyExists,
            447 => ErrorKind::ConnectionTimeoutOrFailure,
            486 => ErrorKind::AllocationQuotaReached,
            500 => ErrorKind::ServerError,
            508 => ErrorKind::InsufficientCapacity,
            _ => ErrorKind::Other,
        }
    }
}

/// An error response from the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerError {
    /// What the code means.
    pub kind: ErrorKind,
    /// The code (300–699).
    pub code: u16,
    /// The reason phrase (diagnostic only).
    pub reason: String,
}

impl ServerError {
    pub(super) fn new(code: u16, reason: &str) -> Self {
        ServerError {
            kind: ErrorKind::from_code(code),
            code,
            reason: reason.to_owned(),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// Why the long-term credential exchange (RFC 8489 §9.2.5) could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// A 401 without REALM.
    MissingRealm,
    /// A 401 or 438 without NONCE.
    MissingNonce,
    /// PASSWORD-ALGORITHMS lists no algorithm the client supports (MD5, SHA-256).
    NoSupportedAlgorithm,
    /// The nonce cookie announces PASSWORD-ALGORITHMS but the response carries none: a
    /// bid-down attack, after which the client must not retry (RFC 8489 §9.2.5).
    PasswordAlgorithmsMissing,
    /// REALM, NONCE or PASSWORD-ALGORITHMS could not be decoded.
    Malformed,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::MissingRealm => "challenge without REALM",
            AuthFailure::MissingNonce => "challenge without NONCE",
            AuthFailure::NoSupportedAlgorithm => "no supported password algorithm offered",
            AuthFailure::PasswordAlgorithmsMissing => {
                "nonce cookie announces PASSWORD-ALGORITHMS but none was sent"
            }
            AuthFailure::Malformed => "malformed REALM, NONCE or PASSWORD-ALGORITHMS",
        })
    }
}

/// Why a request (Refresh, CreatePermission, ChannelBind, or the Allocate itself) failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestFailure {
    /// No response before the transaction timed out (RFC 8489 §6.2.1: 39.5 s by default).
    Timeout,
    /// Responses came, but none had valid message integrity (RFC 8489 §9.2.5).
    IntegrityViolation,
    /// An error response.
    Rejected(ServerError),
    /// The credential exchange failed.
    Auth(AuthFailure),
    /// A response with comprehension-required attributes the client does not understand
    /// (RFC 8489 §6.3.3); the types are listed.
    UnknownAttributes(Vec<u16>),
    /// A success response without an attribute it must carry.
    MalformedResponse(&'static str),
    /// The request (or its retry) could not be sent.
    NotSent(ClientError),
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestFailure::Timeout => f.write_str("no response"),
            RequestFailure::IntegrityViolation => f.write_str("responses failed integrity"),
            RequestFailure::Rejected(e) => write!(f, "rejected: {e}"),
            RequestFailure::Auth(a) => write!(f, "authentication: {a}"),
            RequestFailure::UnknownAttributes(t) => {
                write!(f, "unknown comprehension-required attributes {t:04x?}")
            }
            RequestFailure::MalformedResponse(what) => write!(f, "malformed response: {what}"),
            RequestFailure::NotSent(e) => write!(f, "not sent: {e}"),
        }
    }
}

/// Why no allocation was made.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocationFailure {
    /// The Allocate request (or one of its retries) failed.
    Request(RequestFailure),
    /// A 300 Try Alternate that could not be trusted: the request carried no credentials, so
    /// the response had no integrity (RFC 8489 §10, §9.2.5). The alternate is reported for the
    /// application to decide; the client does not follow it.
    UnverifiedRedirect {
        /// The ALTERNATE-SERVER named, if any.
        alternate: Option<SocketAddr>,
    },
    /// Redirected too often, or back to a server already tried.
    TooManyRedirects {
        /// The server the last 300 pointed to.
        alternate: SocketAddr,
    },
    /// The alternate server's address family differs from the local address: the client
    /// sends from one local address and cannot reach it.
    UnreachableAlternate {
        /// The server the 300 pointed to.
        alternate: SocketAddr,
    },
    /// The server allocated a relayed address of a family that was not asked for; the
    /// client deletes it (RFC 8656 §7.3).
    UnexpectedFamily {
        /// The relayed address received.
        relayed: SocketAddr,
    },
    /// The configuration asks for something RFC 8656 §7.2 forbids (the text says what).
    InvalidConfig(&'static str),
    /// [`Client::connection_lost`](super::Client::connection_lost) was called.
    ConnectionLost,
}

impl From<RequestFailure> for AllocationFailure {
    fn from(f: RequestFailure) -> Self {
        AllocationFailure::Request(f)
    }
}

impl fmt::Display for AllocationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocationFailure::Request(r) => write!(f, "Allocate failed: {r}"),
            AllocationFailure::UnverifiedRedirect { alternate } => {
                write!(f, "unauthenticated redirect to {alternate:?} not followed")
            }
            AllocationFailure::TooManyRedirects { alternate } => {
                write!(f, "too many redirects (last to {alternate})")
            }
            AllocationFailure::UnreachableAlternate { alternate } => {
                write!(
                    f,
                    "alternate server {alternate} unreachable from the local address"
                )
            }
            AllocationFailure::UnexpectedFamily { relayed } => {
                write!(f, "relayed address {relayed} of a family not asked for")
            }
            AllocationFailure::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            AllocationFailure::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// Why an allocation ended without being deleted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpiryReason {
    /// A request failed: a Refresh that did not succeed before the lifetime ran out, or a 437
    /// Allocation Mismatch to any request, which means the allocation is gone (RFC 8656 §5).
    Failure(RequestFailure),
    /// [`Client::connection_lost`](super::Client::connection_lost) was called.
    ConnectionLost,
}

/// A relayed address family the server refused in a dual allocation (ADDRESS-ERROR-CODE,
/// RFC 8656 §7.3): the allocation has only the other family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefusedFamily {
    /// The family refused.
    pub family: AddressFamily,
    /// Why (440 or 508). After 440 the client must not ask for this family again.
    pub error: ServerError,
}

/// What happened, in order. Drain with [`Client::poll_event`](super::Client::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The allocation exists.
    Allocated {
        /// The relayed transport addresses: one, or two for a dual allocation.
        relayed: Vec<SocketAddr>,
        /// The client's address as the server saw it (XOR-MAPPED-ADDRESS).
        mapped: Option<SocketAddr>,
        /// The lifetime the server granted.
        lifetime: Duration,
        /// The RESERVATION-TOKEN for the next-higher port, after EVEN-PORT with R set.
        reservation_token: Option<[u8; 8]>,
        /// The family the server refused in a dual allocation.
        refused_family: Option<RefusedFamily>,
    },
    /// No allocation could be made. Final.
    AllocationFailed {
        /// Why.
        reason: AllocationFailure,
    },
    /// An authenticated 300 Try Alternate moved the client to another server; the Allocate
    /// starts again there, from the same local address.
    Redirected {
        /// The server that redirected.
        from: SocketAddr,
        /// The server now used.
        to: SocketAddr,
    },
    /// A Refresh succeeded.
    Refreshed {
        /// The lifetime now granted.
        lifetime: Duration,
    },
    /// Permissions were installed (reported once per permission, not on its refreshes).
    PermissionCreated {
        /// The peer addresses.
        peers: Vec<IpAddr>,
    },
    /// A CreatePermission (first or refresh) failed. A permission never installed is
    /// forgotten; an installed one lapses at its expiry.
    PermissionFailed {
        /// The peer addresses.
        peers: Vec<IpAddr>,
        /// Why.
        reason: RequestFailure,
    },
    /// A channel is bound (reported once, not on its refreshes): ChannelData is used from now.
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// A ChannelBind (first or refresh) failed. A 400 here may mean the client and server
    /// disagree about channels; RFC 8656 §12.3 recommends deleting the allocation and making
    /// a new one.
    ChannelBindFailed {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
        /// Why.
        reason: RequestFailure,
    },
    /// A Data indication reported an ICMP error from a peer (RFC 8656 §11.6).
    Icmp {
        /// The peer.
        peer: SocketAddr,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// Error data (for example the MTU of "fragmentation needed").
        error_data: u32,
    },
    /// The allocation ended. Final.
    Expired {
        /// Why.
        reason: ExpiryReason,
    },
    /// The allocation was deleted (or was already gone). Final.
    Deleted,
    /// RFC 6062 §4.3, §4.4: open a new connection to [`Client::server`](super::Client::server)
    /// with the control connection's transport (TCP or TLS) from a new local address, then
    /// report it with [`Client::data_connection_opened`](super::Client::data_connection_opened)
    /// (the client sends the ConnectionBind on it) or
    /// [`Client::data_connection_failed`](super::Client::data_connection_failed). Asked
    /// after a Connect succeeded and for every ConnectionAttempt from a permitted peer.
    OpenDataConnection {
        /// The CONNECTION-ID that names the connection.
        connection_id: u32,
        /// The peer at the other end.
        peer: SocketAddr,
    },
    /// RFC 6062 §4.3: the ConnectionBind on the data connection from `local` succeeded.
    /// From now on that connection carries the peer's bytes as they are, both ways: hand
    /// it to the application (together with any bytes read after the ConnectionBind
    /// response, see `turn_proto::stream::first_message_len`). The client forgets it.
    PeerConnection {
        /// The CONNECTION-ID.
        connection_id: u32,
        /// The peer.
        peer: SocketAddr,
        /// The data connection's local address.
        local: SocketAddr,
    },
    /// A Connect failed (RFC 6062 §4.3): for example 446 (a connection with this peer
    /// already exists), 447 (the server could not reach the peer), 403 (no permission, or
    /// the peer is not allowed), a timeout. Nothing to close.
    ConnectFailed {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: RequestFailure,
    },
    /// A data connection did not become a peer connection: close it if it was opened
    /// (RFC 6062 §4.3: "If the result is an error response, the client MUST close the
    /// connection").
    DataConnectionFailed {
        /// The CONNECTION-ID.
        connection_id: u32,
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: DataConnectionFailure,
    },
}

/// Why a data connection (RFC 6062) did not become a peer connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataConnectionFailure {
    /// The driver could not open it
    /// ([`Client::data_connection_failed`](super::Client::data_connection_failed)).
    OpenFailed,
    /// The driver did not report it open within 30 s: the server closes an unbound peer
    /// connection after 30 s (RFC 6062 §5.3), so binding it would fail.
    OpenTimeout,
    /// The ConnectionBind failed (400 for an unknown or expired CONNECTION-ID, a timeout,
    /// ...).
    Bind(RequestFailure),
    /// The allocation ended (deleted, expired, control connection lost) first.
    AllocationEnded,
}

impl fmt::Display for DataConnectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataConnectionFailure::OpenFailed => f.write_str("data connection could not be opened"),
            DataConnectionFailure::OpenTimeout => f.write_str("data connection not opened in time"),
            DataConnectionFailure::Bind(r) => write!(f, "ConnectionBind failed: {r}"),
            DataConnectionFailure::AllocationEnded => f.write_str("the allocation ended"),
        }
    }
}

/// Why a command (`create_permission`, `bind_channel`) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientError {
    /// There is no allocation (yet, or any more).
    NotAllocated,
    /// No peers were given.
    NoPeers,
    /// No relayed address has the peer's address family (RFC 8656 §10.1, §12.1: the server
    /// would answer 443).
    PeerFamilyMismatch(IpAddr),
    /// All 4096 channel numbers are bound or cooling down (RFC 8656 §12).
    NoChannelAvailable,
    /// Too many transactions are in flight.
    TooManyPending,
    /// The request could not be encoded: the REALM, NONCE or PASSWORD-ALGORITHMS the server
    /// sent, echoed, would not fit in a STUN message.
    Encode,
    /// The command does not fit the allocation's relay transport: channels are for UDP
    /// allocations, `connect` for TCP ones (RFC 6062).
    RelayTransportMismatch,
    /// No data connection waits for this CONNECTION-ID (never asked for, already reported,
    /// or failed).
    UnknownConnection(u32),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotAllocated => f.write_str("no allocation"),
            ClientError::NoPeers => f.write_str("no peers given"),
            ClientError::PeerFamilyMismatch(ip) => {
                write!(f, "no relayed address of the family of {ip}")
            }
            ClientError::NoChannelAvailable => f.write_str("no channel number available"),
            ClientError::TooManyPending => f.write_str("too many transactions in flight"),
            ClientError::Encode => f.write_str("request could not be encoded"),
            ClientError::RelayTransportMismatch => {
                f.write_str("not possible with this allocation's relay transport")
            }
            ClientError::UnknownConnection(id) => write!(f, "no data connection {id} waits"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Why [`Client::send_to`](super::Client::send_to) produced nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// There is no allocation (yet, or any more).
    NotAllocated,
    /// No permission was asked for the peer's IP address (RFC 8656 §11.1: the client must
    /// ensure there is one). Call `create_permission` or `bind_channel` first.
    NoPermission(IpAddr),
    /// No relayed address has the peer's address family.
    PeerFamilyMismatch(IpAddr),
    /// The allocation is a TCP one (RFC 6062): peers are reached through data connections
    /// ([`Client::connect`](super::Client::connect)), not Send indications or channels.
    RelayTransportMismatch,
    /// The data does not fit in one ChannelData message or Send indication.
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The most that fits.
        max: usize,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotAllocated => f.write_str("no allocation"),
            SendError::NoPermission(ip) => write!(f, "no permission for {ip}"),
            SendError::PeerFamilyMismatch(ip) => {
                write!(f, "no relayed address of the family of {ip}")
            }
            SendError::RelayTransportMismatch => {
                f.write_str("a TCP allocation sends through data connections")
            }
            SendError::TooLarge { len, max } => write!(f, "{len} bytes, at most {max} fit"),
        }
    }
}

impl std::error::Error for SendError {}

/// Counters of what the client received and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Datagrams on the client's 5-tuple that are neither valid STUN nor valid ChannelData,
    /// or responses without a usable ERROR-CODE.
    pub dropped_malformed: u64,
    /// Responses that match no transaction in flight (late duplicates, spoofs).
    pub dropped_unmatched: u64,
    /// Responses discarded for missing or wrong integrity, or for a nonce cookie announcing
    /// PASSWORD-ALGORITHMS without the attribute (RFC 8489 §9.2.5).
    pub dropped_unauthenticated: u64,
    /// Data indications and ChannelData from peers without a permission, or Data
    /// indications without XOR-PEER-ADDRESS or DATA.
    pub dropped_no_permission: u64,
    /// ChannelData on channels that are not bound.
    pub dropped_unknown_channel: u64,
    /// Peer data handed to the application.
    pub peer_data_received: u64,
    /// Send indications built by `send_to`.
    pub send_indications_sent: u64,
    /// ChannelData messages built by `send_to`.
    pub channel_data_sent: u64,
    /// Keepalive Binding indications sent (see [`ClientConfig::keepalive_interval`]).
    ///
    /// [`ClientConfig::keepalive_interval`]: super::ClientConfig::keepalive_interval
    pub keepalives_sent: u64,
    /// ConnectionAttempt indications (RFC 6062 §4.4) dropped: malformed, for a peer without
    /// a permission, a repeated CONNECTION-ID, or beyond the data connections in progress
    /// the client allows.
    pub dropped_connection_attempts: u64,
}
