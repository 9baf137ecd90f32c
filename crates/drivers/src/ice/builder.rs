//! The builder both flavours share: agent settings, host addresses, and the sockets.

use super::{AgentMachine, IceError};
use crate::net::{AddressFilter, bind_udp, host_addresses};
use crate::os;
use core::marker::PhantomData;
use ice_core::{Agent, AgentConfig, Role, TransportProtocol, TurnServer};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Settings for an ICE agent on real sockets, from
/// [`blocking::IceAgent::builder`](crate::ice::blocking::IceAgent::builder) or
/// `tokio::IceAgent::builder` (feature `tokio`). `F` is the flavour that `build` makes:
/// [`Blocking`](crate::ice::blocking::Blocking), whose `build` blocks, or `Tokio`, whose
/// `build` is async.
///
/// The defaults: controlled, no servers, host candidates on every interface address,
/// RFC 8445's timers (Ta = 50 ms).
#[derive(Clone, Debug)]
pub struct Builder<F> {
    pub(super) config: AgentConfig,
    host_ips: Option<Vec<IpAddr>>,
    filter: AddressFilter,
    pub(super) relay_only: bool,
    seed: Option<u64>,
    pub(super) close_timeout: Duration,
    flavour: PhantomData<F>,
}

impl<F> Default for Builder<F> {
    fn default() -> Self {
        Builder {
            // RFC 8445 defaults, but controlled: the offerer usually controls.
            config: AgentConfig {
                role: Role::Controlled,
                ..AgentConfig::default()
            },
            host_ips: None,
            filter: AddressFilter::default(),
            relay_only: false,
            seed: None,
            close_timeout: Duration::from_secs(2),
            flavour: PhantomData,
        }
    }
}

/// With relay-only, the longest wait for a better pair before nominating.
const RELAY_ONLY_NOMINATION: Duration = Duration::from_millis(100);

/// The agent with its host candidates added, and their sockets.
pub(super) struct Prepared {
    pub(super) machine: AgentMachine,
    pub(super) sockets: Vec<UdpSocket>,
}

impl<F> Builder<F> {
    /// Controlling (nominates the selected pair) or controlled (the default).
    pub fn controlling(mut self, controlling: bool) -> Self {
        self.config.role = if controlling {
            Role::Controlling
        } else {
            Role::Controlled
        };
        self
    }

    /// A STUN server for server-reflexive candidates (repeatable).
    pub fn stun(mut self, server: SocketAddr) -> Self {
        self.config.stun_servers.push(server);
        self
    }

    /// A TURN server (UDP) with long-term credentials, for relayed candidates (repeatable).
    pub fn turn(
        mut self,
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.config.turn_servers.push(TurnServer {
            server,
            transport: TransportProtocol::Udp,
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// The addresses to bind host candidates on, in order of preference, instead of the
    /// machine's interface addresses. Loopback addresses given here are used as candidates
    /// (`AgentConfig::allow_loopback`): RFC 8445 §5.1.1.1 leaves them out of gathering, but
    /// an explicit choice of loopback (tests, demos, peers on one machine) is honoured.
    pub fn host_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.host_ips = Some(ips.into_iter().collect());
        self
    }

    /// Which interface addresses to use when no [`host_ips`](Self::host_ips) are given
    /// (default: IPv4 and IPv6, no loopback, no link-local).
    pub fn address_filter(mut self, filter: AddressFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Use relayed candidates only: host and server-reflexive candidates are neither
    /// signalled nor checked (the host sockets only talk to the TURN servers). Needs a
    /// [`turn`](Self::turn) server. The controlling agent then waits at most 100 ms after
    /// the first valid pair for a better one before nominating (the host pairs it would
    /// wait for cannot succeed).
    pub fn relay_only(mut self, relay_only: bool) -> Self {
        self.relay_only = relay_only;
        self
    }

    /// Ta, the pacing of new checks (RFC 8445 §14.2: 50 ms by default; never below 5 ms).
    pub fn ta(mut self, ta: Duration) -> Self {
        self.config.ta = ta.max(Duration::from_millis(5));
        self
    }

    /// The whole agent configuration (role, timers, servers); the other setters edit it.
    pub fn config(mut self, config: AgentConfig) -> Self {
        self.config = config;
        self
    }

    /// The seed for the agent's generator (default: drawn from the OS). Fixed seeds make
    /// credentials and transaction IDs predictable: for tests only.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long `close` waits for TURN servers to confirm the release (default 2 s).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Binds the host sockets and creates the agent with their candidates.
    pub(super) fn prepare(&self, now: Instant) -> Result<Prepared, IceError> {
        let ips = match &self.host_ips {
            Some(ips) => ips.clone(),
            None => {
                let mut ips = host_addresses(self.filter)?;
                // The preferred family first (RFC 8421 §4): candidates are signalled in the
                // order they are added, and the peer checks the first one it hears of at
                // once, so the best pair is checked first and nominated without waiting.
                let prefer_ipv6 = self.config.prefer_ipv6;
                ips.sort_by_key(|ip| ip.is_ipv6() != prefer_ipv6);
                ips
            }
        };
        let mut config = self.config.clone();
        if self.host_ips.is_some() && ips.iter().any(|ip| ip.to_canonical().is_loopback()) {
            config.allow_loopback = true;
        }
        if self.relay_only && config.turn_servers.is_empty() {
            return Err(IceError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "relay-only needs a TURN server",
            )));
        }
        if self.relay_only {
            // Server-reflexive candidates would not be used (as in WebRTC's relay policy).
            config.stun_servers.clear();
            // Pairs of host candidates rank above relayed ones but can never succeed behind
            // the relay-only firewall: waiting the usual second for them gains nothing.
            config.nomination_timeout = config.nomination_timeout.min(RELAY_ONLY_NOMINATION);
        }
        let seed = match self.seed {
            Some(s) => s,
            None => os::seed()?,
        };
        let mut agent = Agent::new(config, seed, now);
        let stream = agent.add_stream(1).map_err(|_| IceError::Closed)?;
        let mut sockets = Vec::new();
        let mut refused = None;
        for ip in ips {
            let socket = match bind_udp(SocketAddr::new(ip, 0), false) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%ip, error = %e, "cannot bind a host candidate");
                    continue;
                }
            };
            let local = socket.local_addr()?;
            match agent.add_host_candidate(now, stream, 1, local, TransportProtocol::Udp) {
                Ok(_) => sockets.push(socket),
                Err(e) => {
                    tracing::warn!(%local, error = %e, "host candidate refused");
                    refused = Some(IceError::HostCandidate(local, e));
                }
            }
        }
        if sockets.is_empty() {
            return Err(refused.unwrap_or(IceError::NoHostCandidates));
        }
        agent.finish_host_candidates(now);
        Ok(Prepared {
            machine: AgentMachine::new(agent, stream, self.relay_only),
            sockets,
        })
    }
}
