//! Server configuration.

use super::policy::PeerPolicy;
use core::fmt;
use core::ops::RangeInclusive;
use std::net::IpAddr;
use std::time::Duration;
use stun_proto::credentials::LongTermKey;

/// The default allocation lifetime (RFC 8656 §6: 600 seconds).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// The recommended ceiling on allocation lifetimes (RFC 8656 §7.2: "no more than 3600").
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Permission Lifetime (RFC 8656 §9: "MUST be 300 seconds").
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// A channel binding lasts 10 minutes unless refreshed (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// One relay address and the ports the server may hand out on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayRange {
    /// The IP address the relay sockets bind to, and that clients are told
    /// (XOR-RELAYED-ADDRESS).
    pub ip: IpAddr,
    /// The ports. RFC 8656 §7.2: the server SHOULD only allocate ports from 49152–65535.
    pub ports: RangeInclusive<u16>,
}

impl RelayRange {
    /// The range `ip`, ports 49152–65535.
    pub fn dynamic(ip: IpAddr) -> RelayRange {
        RelayRange {
            ip,
            ports: 49152..=65535,
        }
    }
}

/// How relay sockets come to be bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RelayBinding {
    /// The server emits [`ServerEvent::BindRelay`](super::ServerEvent::BindRelay) and holds
    /// the Allocate response until the driver reports with
    /// [`Server::relay_bound`](super::Server::relay_bound).
    #[default]
    Driver,
    /// Binds are taken as done at once: the Allocate is answered immediately.
    /// `BindRelay` and `ReleaseRelay` are still emitted, as notices. For simulations and
    /// tests, where "binding" a relayed address costs nothing.
    Automatic,
}

/// Allocation quotas (RFC 8656 §7.2 step 10: 486) and per-allocation limits (508).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quotas {
    /// Allocations on the whole server.
    pub total: Option<usize>,
    /// Allocations per user. RFC 8656 §7.2 step 10 advises a quota "based on the username";
    /// for REST credentials (`expiry:user`) the user part is what is counted, so a client
    /// cannot escape the quota by minting usernames with new timestamps.
    pub per_user: Option<u32>,
    /// Allocations per client IP address.
    pub per_client_ip: Option<u32>,
    /// Permissions per allocation; beyond it CreatePermission and ChannelBind get 508.
    pub permissions_per_allocation: usize,
    /// Channel bindings per allocation; beyond it ChannelBind gets 508.
    pub channels_per_allocation: usize,
    /// RFC 6062 peer connections per TCP allocation (connecting, waiting for their
    /// ConnectionBind, or bridged); beyond it Connect gets 508 and incoming peer connections
    /// are refused.
    pub tcp_connections_per_allocation: usize,
    /// RFC 6062 peer connections not yet bound (a Connect in progress, or waiting up to 30 s
    /// for the client's ConnectionBind), on the whole server: each holds a socket and buffered
    /// peer data in the driver. Beyond it Connect gets 508 and incoming peer connections are
    /// refused.
    pub unbound_tcp_connections: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            total: Some(200_000),
            per_user: Some(100),
            per_client_ip: Some(100),
            permissions_per_allocation: 64,
            channels_per_allocation: 64,
            tcp_connections_per_allocation: 64,
            unbound_tcp_connections: 4096,
        }
    }
}

/// A static user's secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum UserSecret {
    /// The password; the server derives the MD5 and SHA-256 keys once, at start.
    Password(String),
    /// A precomputed key (RFC 8489 §9.2.2); it serves only its own algorithm.
    Key(LongTermKey),
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.write_str("Password(..)"),
            UserSecret::Key(k) => write!(f, "{k:?}"),
        }
    }
}

/// Server configuration. Start from [`ServerConfig::new`] and change what you need.
///
/// ```
/// use turn_proto::server::{ServerConfig, RelayRange};
/// let mut config = ServerConfig::new("example.org");
/// config.relays.push(RelayRange::dynamic("203.0.113.1".parse()?));
/// config.add_user("alice", "secret");
/// config.rest_secret = Some(b"shared".to_vec());
/// config.unix_time_at_start = 1_700_000_000;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// REALM (RFC 8489 §14.9): fewer than 128 characters.
    pub realm: String,
    /// SOFTWARE for Allocate and Refresh responses (RFC 8656 §5: SHOULD), if any.
    pub software: Option<String>,
    /// The relay addresses and port ranges, any mix of IPv4 and IPv6.
    pub relays: Vec<RelayRange>,
    /// Lifetime when the client asks for none or for less (RFC 8656 §7.2: 600 s).
    pub default_lifetime: Duration,
    /// The most a client can ask for; requested lifetimes are clamped to it (3600 s).
    pub max_lifetime: Duration,
    /// How long a nonce stays valid; then requests get 438 Stale Nonce (600 s).
    pub nonce_lifetime: Duration,
    /// The Unix time (seconds) at the `now` given to [`Server::new`](super::Server::new).
    /// Wall time, used only for REST credential expiry, is this plus the time elapsed.
    pub unix_time_at_start: u64,
    /// The TURN REST shared secret: usernames `expiry:user` with password
    /// `base64(HMAC-SHA1(secret, username))` are accepted until `expiry` (Unix time).
    pub rest_secret: Option<Vec<u8>>,
    /// Announce "username anonymity" in the nonce cookie (RFC 8489 §9.2), telling clients
    /// to send USERHASH. Only static users can be found by USERHASH, so leave this off when
    /// REST credentials are in use. USERHASH is accepted for static users either way.
    pub userhash: bool,
    /// Which peers clients may reach.
    pub peer_policy: PeerPolicy,
    /// Quotas and limits.
    pub quotas: Quotas,
    /// Who binds relay sockets.
    pub relay_binding: RelayBinding,
    /// How long an Allocate waits for [`Server::relay_bound`](super::Server::relay_bound)
    /// before it fails with 508.
    pub relay_bind_timeout: Duration,
    /// How long a port whose bind failed is left out of the pool.
    pub failed_port_quarantine: Duration,
    /// How long a port reserved by EVEN-PORT's R bit is held (RFC 8656 §7.2: at least 30 s).
    pub reservation_lifetime: Duration,
    /// Whether the driver can set the DF bit. If not, DONT-FRAGMENT is treated as an
    /// unknown comprehension-required attribute (RFC 8656 §7.2 step 4, §11.2).
    pub dont_fragment: bool,
    /// Responses remembered for retransmitted requests (RFC 8489 §6.3.1), at most.
    pub response_cache_capacity: usize,
    /// RFC 6062 TCP allocations: REQUESTED-TRANSPORT TCP over TCP/TLS control connections,
    /// Connect, ConnectionBind and ConnectionAttempt. Off by default (such an Allocate gets
    /// 442): turn it on only with a driver that handles the TCP events
    /// ([`ServerEvent::BindRelay`](super::ServerEvent::BindRelay) with TCP,
    /// [`ServerEvent::ConnectPeer`](super::ServerEvent::ConnectPeer),
    /// [`ServerEvent::Bridge`](super::ServerEvent::Bridge),
    /// [`ServerEvent::ClosePeerConnection`](super::ServerEvent::ClosePeerConnection)).
    pub tcp_allocations: bool,
    /// How long a Connect waits for [`Server::peer_connected`](super::Server::peer_connected)
    /// before it fails with 447. RFC 6062 §5.2: at least 30 s.
    pub tcp_connect_timeout: Duration,
    /// How long a peer data connection waits for the client's ConnectionBind before it is
    /// closed (RFC 6062 §5.2, §5.3: 30 s).
    pub connection_bind_timeout: Duration,
    pub(crate) users: Vec<(String, UserSecret)>,
}

impl fmt::Debug for ServerConfig {
    /// Secrets are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field("software", &self.software)
            .field("relays", &self.relays)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("unix_time_at_start", &self.unix_time_at_start)
            .field("rest_secret", &self.rest_secret.as_ref().map(|_| ".."))
            .field("userhash", &self.userhash)
            .field("peer_policy", &self.peer_policy)
            .field("quotas", &self.quotas)
            .field("relay_binding", &self.relay_binding)
            .field("dont_fragment", &self.dont_fragment)
            .field("tcp_allocations", &self.tcp_allocations)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults for `realm`: lifetimes as RFC 8656 recommends, the default peer policy,
    /// driver-confirmed binds, no relay addresses and no users yet.
    pub fn new(realm: impl Into<String>) -> ServerConfig {
        ServerConfig {
            realm: realm.into(),
            software: Some(String::from(concat!("floe ", env!("CARGO_PKG_VERSION")))),
            relays: Vec::new(),
            default_lifetime: DEFAULT_LIFETIME,
            max_lifetime: MAX_LIFETIME,
            nonce_lifetime: Duration::from_secs(600),
            unix_time_at_start: 0,
            rest_secret: None,
            userhash: false,
            peer_policy: PeerPolicy::default(),
            quotas: Quotas::default(),
            relay_binding: RelayBinding::Driver,
            relay_bind_timeout: Duration::from_secs(5),
            failed_port_quarantine: Duration::from_secs(60),
            reservation_lifetime: Duration::from_secs(30),
            dont_fragment: true,
            response_cache_capacity: 16_384,
            tcp_allocations: false,
            tcp_connect_timeout: Duration::from_secs(30),
            connection_bind_timeout: Duration::from_secs(30),
            users: Vec::new(),
        }
    }

    /// Adds (or replaces) a static user with a password. Only the derived keys are kept by
    /// the server (RFC 8656 §6: "MUST NOT store the password explicitly").
    pub fn add_user(&mut self, username: impl Into<String>, password: impl Into<String>) {
        self.set_user(username.into(), UserSecret::Password(password.into()));
    }

    /// Adds (or replaces) a static user by precomputed key (16 bytes: MD5, 32: SHA-256),
    /// derived with this config's realm. The user can then authenticate with that password
    /// algorithm only.
    pub fn add_user_key(&mut self, username: impl Into<String>, key: LongTermKey) {
        self.set_user(username.into(), UserSecret::Key(key));
    }

    fn set_user(&mut self, name: String, secret: UserSecret) {
        self.users.retain(|(n, _)| *n != name);
        self.users.push((name, secret));
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        use stun_proto::attributes::{Realm, Software};
        if self.realm.is_empty() || Realm::new(&self.realm).is_err() {
            return Err(ConfigError::BadRealm);
        }
        if let Some(s) = &self.software {
            Software::new(s).map_err(|_| ConfigError::BadSoftware)?;
        }
        if self.relays.is_empty() {
            return Err(ConfigError::NoRelayAddresses);
        }
        for (i, r) in self.relays.iter().enumerate() {
            if r.ports.is_empty() || *r.ports.start() == 0 {
                return Err(ConfigError::BadPortRange(r.ip));
            }
            if self.relays[..i].iter().any(|o| o.ip == r.ip) {
                return Err(ConfigError::DuplicateRelayAddress(r.ip));
            }
        }
        let secs = |d: Duration| d.as_secs();
        if secs(self.default_lifetime) == 0
            || self.max_lifetime < self.default_lifetime
            || secs(self.max_lifetime) > u64::from(u32::MAX)
        {
            return Err(ConfigError::BadLifetime);
        }
        if secs(self.nonce_lifetime) == 0 || secs(self.nonce_lifetime) > 86_400 {
            return Err(ConfigError::BadNonceLifetime);
        }
        // RFC 6062 §5.2: "The timeout value MUST be at least 30 seconds."
        if self.tcp_connect_timeout < Duration::from_secs(30)
            || self.connection_bind_timeout.is_zero()
        {
            return Err(ConfigError::BadTcpTimeout);
        }
        Ok(())
    }
}

/// Why a configuration was refused by [`Server::new`](super::Server::new).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The realm is empty or 128 characters or longer.
    BadRealm,
    /// SOFTWARE is 128 characters or longer.
    BadSoftware,
    /// [`ServerConfig::relays`] is empty.
    NoRelayAddresses,
    /// A relay range is empty or includes port 0.
    BadPortRange(IpAddr),
    /// Two relay ranges name the same IP address.
    DuplicateRelayAddress(IpAddr),
    /// The default lifetime is zero, above the maximum, or the maximum exceeds u32 seconds.
    BadLifetime,
    /// The nonce lifetime is zero or over a day.
    BadNonceLifetime,
    /// The TCP connect timeout is under 30 s (RFC 6062 §5.2), or the ConnectionBind timeout
    /// is zero.
    BadTcpTimeout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadRealm => f.write_str("realm must be 1 to 127 characters"),
            ConfigError::BadSoftware => f.write_str("software must be under 128 characters"),
            ConfigError::NoRelayAddresses => f.write_str("no relay addresses configured"),
            ConfigError::BadPortRange(ip) => write!(f, "bad relay port range on {ip}"),
            ConfigError::DuplicateRelayAddress(ip) => write!(f, "relay address {ip} given twice"),
            ConfigError::BadLifetime => f.write_str("lifetimes must satisfy 0 < default <= max"),
            ConfigError::BadNonceLifetime => f.write_str("nonce lifetime must be 1 s to 1 day"),
            ConfigError::BadTcpTimeout => {
                f.write_str("TCP connect timeout must be at least 30 s, bind timeout not zero")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ServerConfig {
        let mut c = ServerConfig::new("example.org");
        c.relays
            .push(RelayRange::dynamic("192.0.2.1".parse().unwrap()));
        c
    }

    #[test]
    fn validation() {
        assert_eq!(valid().validate(), Ok(()));
        let mut c = valid();
        c.relays.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoRelayAddresses));
        let mut c = valid();
        c.realm = "x".repeat(128);
        assert_eq!(c.validate(), Err(ConfigError::BadRealm));
        let mut c = valid();
        c.relays.push(c.relays[0].clone());
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateRelayAddress(_))
        ));
        let mut c = valid();
        c.relays[0].ports = 0..=10;
        assert!(matches!(c.validate(), Err(ConfigError::BadPortRange(_))));
        let mut c = valid();
        c.max_lifetime = Duration::from_secs(10);
        assert_eq!(c.validate(), Err(ConfigError::BadLifetime));
        let mut c = valid();
        c.tcp_connect_timeout = Duration::from_secs(29);
        assert_eq!(c.validate(), Err(ConfigError::BadTcpTimeout));
    }

    #[test]
    fn users_are_replaced_not_duplicated() {
        let mut c = valid();
        c.add_user("a", "1");
        c.add_user("a", "2");
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.users[0].1, UserSecret::Password("2".into()));
        assert_eq!(format!("{:?}", c.users[0].1), "Password(..)");
        c.rest_secret = Some(b"hunter2".to_vec());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("104, 117"),
            "{shown}"
        );
    }
}
