//! Agent configuration.

use core::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use stun_proto::TransportProtocol;

/// The agent's role (RFC 8445 §6.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Chooses the selected pairs by nominating them.
    Controlling,
    /// Follows the controlling agent's nominations.
    Controlled,
}

impl Role {
    /// The other role.
    pub const fn opposite(self) -> Role {
        match self {
            Role::Controlling => Role::Controlled,
            Role::Controlled => Role::Controlling,
        }
    }
}

/// ICE credentials: the username fragment and password (RFC 8445 §5.3).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The username fragment: 4 to 256 ice-chars (RFC 8839 §5.4).
    pub ufrag: String,
    /// The password: 22 to 256 ice-chars, at least 128 bits of randomness (RFC 8445 §5.3).
    pub pwd: String,
}

impl Credentials {
    /// Credentials from a username fragment and password, checked against RFC 8839 §5.4.
    pub fn new(ufrag: &str, pwd: &str) -> Result<Credentials, CredentialsError> {
        let ice = |s: &str| s.bytes().all(crate::candidate::is_ice_char);
        if !(4..=256).contains(&ufrag.len()) || !ice(ufrag) {
            return Err(CredentialsError::InvalidUfrag);
        }
        if !(22..=256).contains(&pwd.len()) || !ice(pwd) {
            return Err(CredentialsError::InvalidPassword);
        }
        Ok(Credentials {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"..")
            .finish()
    }
}

/// Why credentials were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The username fragment is not 4 to 256 ice-chars.
    InvalidUfrag,
    /// The password is not 22 to 256 ice-chars.
    InvalidPassword,
    /// The agent is closed.
    Closed,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialsError::InvalidUfrag => "ufrag must be 4 to 256 ice-chars",
            CredentialsError::InvalidPassword => "password must be 22 to 256 ice-chars",
            CredentialsError::Closed => "the agent is closed",
        })
    }
}

impl std::error::Error for CredentialsError {}

/// A TURN server to allocate relayed candidates on.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// The server's address (already resolved: DNS is the caller's business).
    pub server: SocketAddr,
    /// The transport to the server: UDP, or TCP or TLS for networks that let no UDP out
    /// (the agent asks the driver for the connection, see "TURN over TCP and TLS" on
    /// [`Agent`](crate::Agent)). Relayed candidates are UDP in every case.
    pub transport: TransportProtocol,
    /// The long-term credential username.
    pub username: String,
    /// The long-term credential password.
    pub password: String,
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnServer")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Consent freshness (RFC 7675) and liveness settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentConfig {
    /// Send consent checks on selected pairs (full agents only).
    pub enabled: bool,
    /// The basic period between checks; each interval is drawn from 0.8 to 1.2 times it
    /// (RFC 7675 §5.1: 5 s by default, never under 4 s).
    pub interval: Duration,
    /// Without an authenticated response for this long, consent is lost and sending stops
    /// (RFC 7675 §5.1: 30 s).
    pub timeout: Duration,
    /// Without an authenticated response for this long the connection is reported
    /// `disconnected`, as browsers do, while consent is still valid.
    pub disconnected_after: Duration,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            disconnected_after: Duration::from_secs(8),
        }
    }
}

/// The default Ta, 50 ms (RFC 8445 §14.2).
pub const DEFAULT_TA: Duration = Duration::from_millis(50);

/// Agent configuration. `AgentConfig::default()` is a controlling full agent with the RFC
/// defaults.

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The initial role. A lite agent is always controlled (RFC 8445 §6.1.1).
    pub role: Role,
    /// Run as an ICE-lite agent (RFC 8445 §2.5): host candidates only, no checks of its own;
    /// answer checks and follow the peer's nominations.
    pub lite: bool,
    /// Ta, the pacing interval for new STUN transactions (RFC 8445 §14.2: 50 ms).
    pub ta: Duration,
    /// The most candidate pairs across all checklists (RFC 8445 §6.1.2.5: 100).
    pub max_pairs: usize,
    /// The most remote candidates per stream, signalled and learnt together.
    pub max_remote_candidates: usize,
    /// The most peer-reflexive remote candidates learnt from checks per stream: a flood of
    /// authenticated checks from new addresses cannot grow memory beyond this.
    pub max_peer_reflexive: usize,
    /// Rc, requests per connectivity check in all (RFC 8489 §6.2.1: 7).
    pub check_max_requests: u32,
    /// The smallest RTO for checks and gathering (RFC 8445 §14.3: never under 500 ms).
    pub min_rto: Duration,
    /// The controlling agent nominates the best valid pair at once when no better pair can
    /// still succeed; otherwise it waits at most this long after the first valid pair of a
    /// component for a better one (RFC 8445 §8.1.1 leaves the criterion to us).
    pub nomination_timeout: Duration,
    /// Consent freshness.
    pub consent: ConsentConfig,
    /// Tr, keepalive interval on selected pairs when nothing else was sent (RFC 8445 §11:
    /// 15 s, never less).
    pub keepalive_interval: Duration,
    /// STUN servers for server-reflexive candidates.
    pub stun_servers: Vec<SocketAddr>,
    /// TURN servers for relayed candidates.
    pub turn_servers: Vec<TurnServer>,
    /// The names of TLS TURN servers, by address: [`TurnServer::server`] is already
    /// resolved, and the name it was resolved from goes here, to be sent in SNI and checked
    /// against the certificate ([`Event::TurnConnect`](crate::Event::TurnConnect)'s
    /// `server_name`). A TLS server without a name here gets `None`: the driver verifies the
    /// address, or refuses.
    pub turn_server_names: Vec<(SocketAddr, String)>,
    /// Local credentials to use instead of random ones (an SFU may choose its ufrag to
    /// demultiplex on it). Checked with [`Credentials::new`].
    pub local_credentials: Option<Credentials>,
    /// Put IPv6 ahead of IPv4 when interleaving local preferences (RFC 8421 §4).
    pub prefer_ipv6: bool,
    /// The most pending mDNS names waiting for resolution.
    pub max_pending_mdns: usize,
    /// Accept loopback host candidates (127.0.0.0/8, ::1, and their IPv4-mapped form).
    /// RFC 8445 §5.1.1.1 excludes them, and the default follows it; tests, demos and peers
    /// on one machine that want loopback-only traffic turn this on.
    pub allow_loopback: bool,
    /// How long a TCP connection attempt may take before the agent gives up on it (and on
    /// the checks waiting for it) and asks the driver to close it (RFC 6544 §7.1: a
    /// connection that cannot be established fails the check). Connections to TCP and TLS
    /// TURN servers get as long (the TLS handshake included).
    pub tcp_connect_timeout: Duration,
    /// How long a checklist whose only remaining chance is the peer connecting to one of our
    /// passive TCP candidates waits for it before failing (RFC 6544 §6.2: only the peer
    /// checks those pairs).
    pub tcp_accept_wait: Duration,
    /// The most TCP connections (opened and accepted together); further accepted ones are
    /// refused.
    pub max_tcp_connections: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            role: Role::Controlling,
            lite: false,
            ta: DEFAULT_TA,
            max_pairs: 100,
            max_remote_candidates: 64,
            max_peer_reflexive: 16,
            check_max_requests: 7,
            min_rto: Duration::from_millis(500),
            nomination_timeout: Duration::from_secs(1),
            consent: ConsentConfig::default(),
            keepalive_interval: Duration::from_secs(15),
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            turn_server_names: Vec::new(),
            local_credentials: None,
            prefer_ipv6: true,
            max_pending_mdns: 32,
            allow_loopback: false,
            tcp_connect_timeout: Duration::from_secs(10),
            tcp_accept_wait: Duration::from_secs(20),
            max_tcp_connections: 32,
        }
    }
}

impl AgentConfig {
    /// An ICE-lite configuration (for servers with a public address).
    pub fn lite() -> AgentConfig {
        AgentConfig {
            role: Role::Controlled,
            lite: true,
            ..AgentConfig::default()
        }
    }
}
