//! The builder both flavours share: agent settings, host addresses, and the sockets.

use super::{AgentMachine, IceError};
use crate::net::{AddressFilter, bind_udp, host_addresses};
use crate::os;
use crate::turn::tls::client_config_from_pem;
use core::marker::PhantomData;
use ice_core::mdns::{MDNS_IPV4, MdnsConfig, MdnsResolver};
use ice_core::{Agent, AgentConfig, Role, StreamId, TcpType, TransportProtocol, TurnServer};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the trust for TURN over TLS comes from.
#[derive(Clone, Debug)]
enum TlsSource {
    /// A PEM file of CA certificates, read at `build`.
    File(PathBuf),
    /// A ready configuration.
    Config(Arc<rustls::ClientConfig>),
}

/// How the peer's mDNS candidates (`<uuid>.local` names, which browsers signal instead of
/// their host addresses) are resolved; see [`Builder::mdns`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MdnsResolution {
    /// One-shot mDNS queries to `224.0.0.251:5353` from a UDP socket of their own (RFC 6762
    /// §5.1), with multicast TTL 255; the responders answer that socket directly (§6.7).
    /// The default.
    #[default]
    Multicast,
    /// The same queries sent to one responder's unicast address instead, and only its
    /// answers taken: a local mDNS proxy, or a test responder.
    Server(SocketAddr),
    /// No resolution: candidates with `.local` names are dropped.
    Off,
}

/// Settings for an ICE agent on real sockets, from
/// [`blocking::IceAgent::builder`](crate::ice::blocking::IceAgent::builder) or
/// `tokio::IceAgent::builder` (feature `tokio`). `F` is the flavour that `build` makes:
/// [`Blocking`](crate::ice::blocking::Blocking), whose `build` blocks, or `Tokio`, whose
/// `build` is async.
///
/// The defaults: controlled, no servers, UDP host candidates on every interface address (no
/// TCP ones), RFC 8445's timers (Ta = 50 ms).
#[derive(Clone, Debug)]
pub struct Builder<F> {
    pub(super) config: AgentConfig,
    host_ips: Option<Vec<IpAddr>>,
    filter: AddressFilter,
    udp: bool,
    tcp: bool,
    tls: Option<TlsSource>,
    pub(super) relay_only: bool,
    seed: Option<u64>,
    pub(super) close_timeout: Duration,
    mdns: MdnsResolution,
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
            udp: true,
            tcp: false,
            tls: None,
            relay_only: false,
            seed: None,
            close_timeout: Duration::from_secs(2),
            mdns: MdnsResolution::Multicast,
            flavour: PhantomData,
        }
    }
}

/// With relay-only, the longest wait for a better pair before nominating.
const RELAY_ONLY_NOMINATION: Duration = Duration::from_millis(100);

/// The agent with its host candidates added, and their sockets.
pub(super) struct Prepared {
    pub(super) machine: AgentMachine,
    /// The sockets of the UDP host candidates.
    pub(super) sockets: Vec<UdpSocket>,
    /// The listening sockets of the passive TCP host candidates.
    pub(super) listeners: Vec<TcpListener>,
    /// Trust for TURN servers over TLS.
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    /// The socket of the mDNS querier, if names are resolved (not a host candidate).
    pub(super) mdns_socket: Option<UdpSocket>,
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

    /// A TURN server over TCP (RFC 8656 §3.1), for networks that let no UDP out (repeatable).
    /// The agent asks for a connection per UDP host candidate; the relayed candidate is
    /// still UDP (ranked below those of UDP servers).
    pub fn turn_tcp(
        self,
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.turn_over(server, TransportProtocol::Tcp, username, password)
    }

    /// A TURN server over TLS (often on port 443, where nothing else gets out; repeatable).
    /// Needs a trust anchor: [`turn_tls_ca`](Self::turn_tls_ca) or
    /// [`turn_tls_config`](Self::turn_tls_config). The certificate is checked against the
    /// name given with [`turn_tls_name`](Self::turn_tls_name), or else the server's IP
    /// address.
    pub fn turn_tls(
        self,
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.turn_over(server, TransportProtocol::Tls, username, password)
    }

    fn turn_over(
        mut self,
        server: SocketAddr,
        transport: TransportProtocol,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.config.turn_servers.push(TurnServer {
            server,
            transport,
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// The DNS name a TLS TURN server's certificate is checked against (and sent in SNI)
    /// (`AgentConfig::turn_server_names`).
    pub fn turn_tls_name(mut self, server: SocketAddr, name: impl Into<String>) -> Self {
        self.config.turn_server_names.push((server, name.into()));
        self
    }

    /// Trust the certificate authorities in this PEM file for TURN over TLS (read at
    /// `build`). The platform's trust store is never used. A self-signed server certificate
    /// given here is accepted as pinned.
    pub fn turn_tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls = Some(TlsSource::File(path.into()));
        self
    }

    /// The rustls configuration for TURN over TLS (roots, verifier, versions), instead of
    /// [`turn_tls_ca`](Self::turn_tls_ca).
    pub fn turn_tls_config(mut self, config: impl Into<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = Some(TlsSource::Config(config.into()));
        self
    }

    /// ICE-TCP host candidates (RFC 6544) besides the UDP ones: on each host address a
    /// passive candidate (a listening socket; connections the peer opens are accepted) and
    /// an active one (connections opened to the peer's passive candidates, from ephemeral
    /// ports; signalled with port 9). They rank below UDP candidates. Not with
    /// [`relay_only`](Self::relay_only).
    pub fn tcp_candidates(mut self, tcp: bool) -> Self {
        self.tcp = tcp;
        self
    }

    /// UDP host candidates (default on). Off, with [`tcp_candidates`](Self::tcp_candidates)
    /// on, the agent has TCP host candidates only: no STUN or TURN gathering (both start
    /// from UDP host candidates), and every pair is TCP.
    pub fn udp_candidates(mut self, udp: bool) -> Self {
        self.udp = udp;
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

    /// How the peer's `.local` candidate names are resolved (default: mDNS multicast
    /// queries on the local network; see [`MdnsResolution`]). A name resolves within the
    /// querier's timeout (5 s: queries at 0, 1 and 3 s) or its candidates are dropped; the
    /// other candidates are checked meanwhile.
    pub fn mdns(mut self, mdns: MdnsResolution) -> Self {
        self.mdns = mdns;
        self
    }

    /// How long `close` waits for TURN servers to confirm the release (default 2 s).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Binds the host sockets and creates the agent with their candidates.
    pub(super) fn prepare(&self, now: Instant) -> Result<Prepared, IceError> {
        let ips = self.ips()?;
        let config = self.agent_config(&ips)?;
        let tls = match &self.tls {
            Some(TlsSource::File(path)) => Some(client_config_from_pem(path)?),
            Some(TlsSource::Config(c)) => Some(c.clone()),
            None if uses_tls(&config) => {
                return Err(invalid(
                    "TURN over TLS needs a trust anchor (turn_tls_ca or turn_tls_config)",
                ));
            }
            None => None,
        };
        let seed = match self.seed {
            Some(s) => s,
            None => os::seed()?,
        };
        let mut agent = Agent::new(config, seed, now);
        let stream = agent.add_stream(1).map_err(|_| IceError::Closed)?;
        let mut hosts = Hosts::default();
        for ip in ips {
            if self.udp {
                hosts.add_udp(&mut agent, now, stream, ip);
            }
            if self.tcp {
                hosts.add_tcp(&mut agent, now, stream, ip);
            }
        }
        if hosts.sockets.is_empty() && hosts.listeners.is_empty() {
            return Err(hosts.refused.unwrap_or(IceError::NoHostCandidates));
        }
        agent.finish_host_candidates(now);
        let mut machine = AgentMachine::new(agent, stream, self.relay_only);
        let mdns_socket = match self.mdns_querier()? {
            Some((socket, config)) => {
                let local = socket.local_addr()?;
                // The querier's IDs come from the same seed as the agent's randomness.
                let resolver = MdnsResolver::new(config, seed ^ MDNS_SEED);
                machine = machine.with_mdns(local, resolver);
                Some(socket)
            }
            None => None,
        };
        Ok(Prepared {
            machine,
            sockets: hosts.sockets,
            listeners: hosts.listeners,
            tls,
            mdns_socket,
        })
    }

    /// The mDNS querier's socket and configuration, unless resolution is off.
    fn mdns_querier(&self) -> Result<Option<(UdpSocket, MdnsConfig)>, IceError> {
        let server = match self.mdns {
            MdnsResolution::Off => return Ok(None),
            MdnsResolution::Multicast => MDNS_IPV4,
            MdnsResolution::Server(server) => server,
        };
        let bind = match (server.ip().is_loopback(), server.is_ipv4()) {
            (true, _) => SocketAddr::new(server.ip(), 0),
            (false, true) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (false, false) => SocketAddr::from(([0u16; 8], 0)),
        };
        let socket = UdpSocket::bind(bind)?;
        if server.ip().is_multicast() {
            // RFC 6762 §11: mDNS packets are sent with IP TTL 255.
            socket.set_multicast_ttl_v4(255)?;
        }
        let config = MdnsConfig {
            server,
            ..MdnsConfig::default()
        };
        Ok(Some((socket, config)))
    }

    /// The host addresses: the given ones, or the interfaces' in RFC 8421 order.
    fn ips(&self) -> Result<Vec<IpAddr>, IceError> {
        Ok(match &self.host_ips {
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
        })
    }

    /// The agent's configuration, with what the builder's settings imply.
    fn agent_config(&self, ips: &[IpAddr]) -> Result<AgentConfig, IceError> {
        let mut config = self.config.clone();
        if self.host_ips.is_some() && ips.iter().any(|ip| ip.to_canonical().is_loopback()) {
            config.allow_loopback = true;
        }
        if !self.udp && !self.tcp {
            return Err(invalid("neither UDP nor TCP host candidates"));
        }
        if self.relay_only && config.turn_servers.is_empty() {
            return Err(invalid("relay-only needs a TURN server"));
        }
        if self.relay_only && (self.tcp || !self.udp) {
            // Relayed candidates come from UDP host candidates; TCP ones would be dropped.
            return Err(invalid(
                "relay-only takes UDP host candidates and no TCP ones",
            ));
        }
        if self.relay_only {
            // Server-reflexive candidates would not be used (as in WebRTC's relay policy).
            config.stun_servers.clear();
            // Pairs of host candidates rank above relayed ones but can never succeed behind
            // the relay-only firewall: waiting the usual second for them gains nothing.
            config.nomination_timeout = config.nomination_timeout.min(RELAY_ONLY_NOMINATION);
        }
        Ok(config)
    }
}

fn invalid(why: &str) -> IceError {
    IceError::Io(io::Error::new(io::ErrorKind::InvalidInput, why))
}

/// True if a TURN server is to be reached over TLS.
fn uses_tls(config: &AgentConfig) -> bool {
    config
        .turn_servers
        .iter()
        .any(|t| t.transport == TransportProtocol::Tls)
}

/// The host candidates' sockets as they are bound and added.
#[derive(Default)]
struct Hosts {
    sockets: Vec<UdpSocket>,
    listeners: Vec<TcpListener>,
    /// The last refusal, reported if no candidate at all could be added.
    refused: Option<IceError>,
}

impl Hosts {
    fn add_udp(&mut self, agent: &mut Agent, now: Instant, stream: StreamId, ip: IpAddr) {
        let socket = match bind_udp(SocketAddr::new(ip, 0), false) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%ip, error = %e, "cannot bind a host candidate");
                return;
            }
        };
        let Ok(local) = socket.local_addr() else {
            return;
        };
        match agent.add_host_candidate(now, stream, 1, local, TransportProtocol::Udp) {
            Ok(_) => self.sockets.push(socket),
            Err(e) => {
                tracing::warn!(%local, error = %e, "host candidate refused");
                self.refused = Some(IceError::HostCandidate(local, e));
            }
        }
    }

    /// RFC 6544 §5.1: a passive candidate on a listening socket, and an active one. The
    /// active candidate is named by its IP with port 9, as it is signalled (§4.5): unique
    /// among the TCP candidates, since no listener binds port 9 here.
    fn add_tcp(&mut self, agent: &mut Agent, now: Instant, stream: StreamId, ip: IpAddr) {
        let listener = match TcpListener::bind(SocketAddr::new(ip, 0)) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%ip, error = %e, "cannot listen for a TCP host candidate");
                return;
            }
        };
        let Ok(local) = listener.local_addr() else {
            return;
        };
        match agent.add_tcp_host_candidate(now, stream, 1, local, TcpType::Passive) {
            Ok(_) => self.listeners.push(listener),
            Err(e) => {
                tracing::warn!(%local, error = %e, "TCP host candidate refused");
                self.refused = Some(IceError::HostCandidate(local, e));
                return;
            }
        }
        let active = SocketAddr::new(ip, ACTIVE_PORT);
        if let Err(e) = agent.add_tcp_host_candidate(now, stream, 1, active, TcpType::Active) {
            tracing::warn!(%active, error = %e, "active TCP host candidate refused");
        }
    }
}

/// Mixed into the agent's seed for the mDNS querier's.
const MDNS_SEED: u64 = 0x6d64_6e73_0000_0001;

/// The port an active TCP candidate is signalled with (RFC 6544 §4.5), used as its name.
const ACTIVE_PORT: u16 = 9;
