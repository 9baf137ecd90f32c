//! One error enum per command. Network input never produces these.

use crate::sdp::SdpError;
use core::fmt;

macro_rules! display {
    ($ty:ident { $($variant:pat => $text:expr,)* }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($variant => f.write_str($text),)*
                }
            }
        }
        impl std::error::Error for $ty {}
    };
}

/// Why a stream could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddStreamError {
    /// A stream has 1 to 256 components (RFC 8445 §5.1.1.1).
    InvalidComponents,
    /// More streams than fit in a stream ID.
    TooManyStreams,
    /// The agent is closed.
    Closed,
}

display!(AddStreamError {
    AddStreamError::InvalidComponents => "a stream has 1 to 256 components",
    AddStreamError::TooManyStreams => "too many streams",
    AddStreamError::Closed => "the agent is closed",
});

/// Why a local candidate could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddCandidateError {
    /// No such stream.
    UnknownStream,
    /// The stream has no such component.
    UnknownComponent,
    /// Not UDP or TCP (TLS candidates are not supported).
    UnsupportedTransport,
    /// A TCP candidate needs a TCP type (RFC 6544 §4.5): use
    /// [`Agent::add_tcp_host_candidate`](crate::Agent::add_tcp_host_candidate).
    MissingTcpType,
    /// Another component or stream already uses this socket address.
    AddressInUse,
    /// RFC 8445 §5.1.1.1: loopback, unspecified and multicast addresses are not candidates.
    UnusableAddress,
    /// End-of-candidates was already signalled for this generation (RFC 8838 §13).
    AfterEndOfCandidates,
    /// The agent is closed.
    Closed,
}

display!(AddCandidateError {
    AddCandidateError::UnknownStream => "no such stream",
    AddCandidateError::UnknownComponent => "no such component",
    AddCandidateError::UnsupportedTransport => "only UDP and TCP candidates are supported",
    AddCandidateError::MissingTcpType => "a TCP candidate needs a TCP type",
    AddCandidateError::AddressInUse => "the address is already a candidate",
    AddCandidateError::UnusableAddress => "loopback, unspecified and multicast addresses are not candidates",
    AddCandidateError::AfterEndOfCandidates => "end-of-candidates was already signalled",
    AddCandidateError::Closed => "the agent is closed",
});

/// Why a remote candidate was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteCandidateError {
    /// The candidate line does not parse.
    Parse(SdpError),
    /// No such stream.
    UnknownStream,
    /// The stream has no such component.
    UnknownComponent,
    /// Not UDP or TCP.
    UnsupportedTransport,
    /// A TCP candidate without `tcptype` (RFC 6544 §4.5 requires it).
    MissingTcpType,
    /// A host name that is not an mDNS `.local` name: resolve it first.
    UnresolvedName,
    /// The peer already sent end-of-candidates (RFC 8838 §14: ignored).
    AfterEndOfCandidates,
    /// The candidate's `ufrag` is not the current remote generation's (RFC 8838 §9).
    StaleGeneration,
    /// The stream already has the most remote candidates allowed.
    TooManyCandidates,
    /// Too many mDNS names are waiting for resolution.
    TooManyPendingNames,
    /// The agent is closed.
    Closed,
}

impl fmt::Display for RemoteCandidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteCandidateError::Parse(e) => write!(f, "bad candidate: {e}"),
            RemoteCandidateError::UnknownStream => f.write_str("no such stream"),
            RemoteCandidateError::UnknownComponent => f.write_str("no such component"),
            RemoteCandidateError::UnsupportedTransport => {
                f.write_str("only UDP and TCP are supported")
            }
            RemoteCandidateError::MissingTcpType => f.write_str("a TCP candidate needs a tcptype"),
            RemoteCandidateError::UnresolvedName => f.write_str("host name must be resolved first"),
            RemoteCandidateError::AfterEndOfCandidates => {
                f.write_str("the peer already sent end-of-candidates")
            }
            RemoteCandidateError::StaleGeneration => f.write_str("candidate of another generation"),
            RemoteCandidateError::TooManyCandidates => f.write_str("too many remote candidates"),
            RemoteCandidateError::TooManyPendingNames => f.write_str("too many pending mDNS names"),
            RemoteCandidateError::Closed => f.write_str("the agent is closed"),
        }
    }
}

impl std::error::Error for RemoteCandidateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteCandidateError::Parse(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SdpError> for RemoteCandidateError {
    fn from(e: SdpError) -> Self {
        RemoteCandidateError::Parse(e)
    }
}

/// Why data could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No such stream.
    UnknownStream,
    /// The stream has no such component.
    UnknownComponent,
    /// No valid or selected pair yet for this component.
    NotConnected,
    /// Consent expired (RFC 7675 §5.1): sending has stopped.
    ConsentExpired,
    /// The TURN client refused the data (no allocation or permission yet).
    Relay,
    /// More than 65535 bytes on a TCP pair: RFC 4571 frames cannot carry it.
    TooLarge,
    /// The agent is closed.
    Closed,
}

display!(SendError {
    SendError::UnknownStream => "no such stream",
    SendError::UnknownComponent => "no such component",
    SendError::NotConnected => "no usable pair for this component",
    SendError::ConsentExpired => "consent expired",
    SendError::Relay => "the TURN client cannot send",
    SendError::TooLarge => "too large for an RFC 4571 frame",
    SendError::Closed => "the agent is closed",
});

/// Why an mDNS resolution was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MdnsError {
    /// No candidate waits for this name.
    UnknownName,
    /// The agent is closed.
    Closed,
}

display!(MdnsError {
    MdnsError::UnknownName => "no candidate waits for this name",
    MdnsError::Closed => "the agent is closed",
});

/// Why end-of-candidates could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndOfCandidatesError {
    /// No such stream.
    UnknownStream,
    /// The indication names another generation than the current one (RFC 8838 §13).
    StaleGeneration,
    /// The agent is closed.
    Closed,
}

display!(EndOfCandidatesError {
    EndOfCandidatesError::UnknownStream => "no such stream",
    EndOfCandidatesError::StaleGeneration => "end-of-candidates of another generation",
    EndOfCandidatesError::Closed => "the agent is closed",
});

/// Why an ICE restart was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartError {
    /// The agent is closed.
    Closed,
}

display!(RestartError {
    RestartError::Closed => "the agent is closed",
});
