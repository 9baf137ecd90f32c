//! The error of the ICE drivers' operations.

use core::fmt;
use ice_core::sdp::SdpError;
use ice_core::{
    AddCandidateError, CredentialsError, EndOfCandidatesError, RemoteCandidateError, SendError,
};
use std::io;
use std::net::SocketAddr;

/// Why an ICE driver operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum IceError {
    /// A socket could not be bound or used.
    Io(io::Error),
    /// No usable host address: none of the given or found addresses could be bound and
    /// added. Loopback addresses are refused by the agent (RFC 8445 §5.1.1.1).
    NoHostCandidates,
    /// The agent refused a host candidate.
    HostCandidate(SocketAddr, AddCandidateError),
    /// The peer's credentials were refused.
    Credentials(CredentialsError),
    /// An SDP line could not be parsed.
    Sdp(SdpError),
    /// A remote candidate was refused.
    RemoteCandidate(RemoteCandidateError),
    /// End-of-candidates was refused.
    EndOfCandidates(EndOfCandidatesError),
    /// Data could not be sent.
    Send(SendError),
    /// ICE failed: every pair failed after the peer's end-of-candidates, or consent was lost.
    Failed,
    /// The wait ran out.
    TimedOut,
    /// The agent is closed (or its driver stopped).
    Closed,
}

impl fmt::Display for IceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceError::Io(e) => write!(f, "I/O error: {e}"),
            IceError::NoHostCandidates => f.write_str("no usable host address"),
            IceError::HostCandidate(addr, e) => write!(f, "host candidate {addr}: {e}"),
            IceError::Credentials(e) => write!(f, "remote credentials: {e}"),
            IceError::Sdp(e) => write!(f, "SDP: {e}"),
            IceError::RemoteCandidate(e) => write!(f, "remote candidate: {e}"),
            IceError::EndOfCandidates(e) => write!(f, "end-of-candidates: {e}"),
            IceError::Send(e) => write!(f, "send: {e}"),
            IceError::Failed => f.write_str("ICE failed"),
            IceError::TimedOut => f.write_str("timed out"),
            IceError::Closed => f.write_str("the agent is closed"),
        }
    }
}

impl std::error::Error for IceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IceError::Io(e) => Some(e),
            IceError::HostCandidate(_, e) => Some(e),
            IceError::Credentials(e) => Some(e),
            IceError::Sdp(e) => Some(e),
            IceError::RemoteCandidate(e) => Some(e),
            IceError::EndOfCandidates(e) => Some(e),
            IceError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for IceError {
    fn from(e: io::Error) -> Self {
        IceError::Io(e)
    }
}

impl From<CredentialsError> for IceError {
    fn from(e: CredentialsError) -> Self {
        IceError::Credentials(e)
    }
}

impl From<RemoteCandidateError> for IceError {
    fn from(e: RemoteCandidateError) -> Self {
        IceError::RemoteCandidate(e)
    }
}

impl From<EndOfCandidatesError> for IceError {
    fn from(e: EndOfCandidatesError) -> Self {
        IceError::EndOfCandidates(e)
    }
}

impl From<SendError> for IceError {
    fn from(e: SendError) -> Self {
        IceError::Send(e)
    }
}

impl From<SdpError> for IceError {
    fn from(e: SdpError) -> Self {
        IceError::Sdp(e)
    }
}
