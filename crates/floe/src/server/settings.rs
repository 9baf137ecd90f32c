//! `floe server` settings: the command-line flags and the TOML file share one schema (every
//! flag is a key of the same name; repeatable flags take arrays), merged with the command
//! line winning, then turned into what the drivers run.

use core::fmt;
use core::str::FromStr;
use drivers::turn_server::{self, TurnServerOptions};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use stun_proto::server::{AlternateAddress, BindingServerConfig};
use turn_proto::server::{IpPrefix, RelayRange, ServerConfig};

/// The default listening address.
const DEFAULT_LISTEN: &str = "0.0.0.0:3478";
/// The default realm.
const DEFAULT_REALM: &str = "floe";
/// The default RFC 5780 second port.
const DEFAULT_ALTERNATE_PORT: u16 = 3479;

/// The server's settings, from flags or from the file given with `--config`.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Settings {
    /// UDP address to listen on (repeatable) [default: 0.0.0.0:3478, unless a TCP or TLS
    /// address is given].
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// TCP address to listen on for TURN over TCP (repeatable; needs --user or --secret).
    #[arg(long, value_name = "ADDR")]
    listen_tcp: Vec<SocketAddr>,
    /// TLS address to listen on for TURN over TLS, often port 443 or 5349 (repeatable;
    /// needs --cert and --key).
    #[arg(long, value_name = "ADDR")]
    listen_tls: Vec<SocketAddr>,
    /// The TLS certificate chain, PEM (the server's certificate first).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The TLS private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// RFC 6062 TCP allocations: clients on TCP or TLS may ask for a TCP relay and connect
    /// to (or be reached by) TCP peers. The TCP and TLS listeners then run on the first
    /// worker only.
    #[arg(long)]
    tcp_allocations: bool,
    /// The TURN realm [default: floe].
    #[arg(long)]
    realm: Option<String>,
    /// A TURN user (repeatable). Without any user or --secret the server serves STUN only.
    #[arg(long, value_name = "NAME:PASSWORD")]
    user: Vec<User>,
    /// TURN REST shared secret: usernames "EXPIRY:NAME" with password
    /// base64(HMAC-SHA1(secret, username)) are accepted until EXPIRY (Unix time). Prefer the
    /// config file: flags are visible to other local users.
    #[arg(long)]
    secret: Option<Secret>,
    /// Relay address (repeatable; IPv4 and/or IPv6) [default: the listening IPs that are
    /// not wildcards].
    #[arg(long, value_name = "IP")]
    relay_ip: Vec<IpAddr>,
    /// Relay ports on every relay address, split between workers [default: 49152-65535].
    #[arg(long, value_name = "FIRST-LAST")]
    relay_ports: Option<PortRange>,
    /// Let clients reach peers in this prefix even if it is a special range such as
    /// 10.0.0.0/8 (repeatable).
    #[arg(long, value_name = "CIDR")]
    allow_peer: Vec<Prefix>,
    /// Never let clients reach peers in this prefix; wins over --allow-peer (repeatable).
    #[arg(long, value_name = "CIDR")]
    deny_peer: Vec<Prefix>,
    /// Let clients reach loopback peers (127.0.0.0/8, ::1): for tests on one machine.
    #[arg(long)]
    allow_loopback_peers: bool,
    /// Allocations per user [default: 100].
    #[arg(long, value_name = "N")]
    user_quota: Option<u32>,
    /// Allocations per client IP address [default: 100].
    #[arg(long, value_name = "N")]
    ip_quota: Option<u32>,
    /// Allocations on the whole server [default: 200000].
    #[arg(long, value_name = "N")]
    total_quota: Option<usize>,
    /// Longest allocation lifetime a client may ask for, in seconds [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    max_lifetime: Option<u64>,
    /// Allocation lifetime when a client asks for less or none, in seconds [default: 600].
    #[arg(long, value_name = "SECONDS")]
    default_lifetime: Option<u64>,
    /// Worker threads, each with its own share of clients and relay ports [default: 1].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Print the counters to stdout every this many seconds (they are always printed on
    /// exit).
    #[arg(long, value_name = "SECONDS")]
    stats_interval: Option<u64>,
    /// RFC 5780 NAT behaviour discovery: the server's second IP address. The server then
    /// also listens on it and on --alternate-port, on both IPs.
    #[arg(long, value_name = "IP")]
    alternate_ip: Option<IpAddr>,
    /// RFC 5780: the second port [default: 3479].
    #[arg(long, value_name = "PORT")]
    alternate_port: Option<u16>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_toml(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// These settings (the command line) over `file`'s: a value given here wins, a list
    /// given here replaces the file's, a switch set in either is set.
    pub fn over(self, file: Settings) -> Settings {
        fn list<T>(cli: Vec<T>, file: Vec<T>) -> Vec<T> {
            if cli.is_empty() { file } else { cli }
        }
        Settings {
            listen: list(self.listen, file.listen),
            listen_tcp: list(self.listen_tcp, file.listen_tcp),
            listen_tls: list(self.listen_tls, file.listen_tls),
            cert: self.cert.or(file.cert),
            key: self.key.or(file.key),
            tcp_allocations: self.tcp_allocations || file.tcp_allocations,
            realm: self.realm.or(file.realm),
            user: list(self.user, file.user),
            secret: self.secret.or(file.secret),
            relay_ip: list(self.relay_ip, file.relay_ip),
            relay_ports: self.relay_ports.or(file.relay_ports),
            allow_peer: list(self.allow_peer, file.allow_peer),
            deny_peer: list(self.deny_peer, file.deny_peer),
            allow_loopback_peers: self.allow_loopback_peers || file.allow_loopback_peers,
            user_quota: self.user_quota.or(file.user_quota),
            ip_quota: self.ip_quota.or(file.ip_quota),
            total_quota: self.total_quota.or(file.total_quota),
            max_lifetime: self.max_lifetime.or(file.max_lifetime),
            default_lifetime: self.default_lifetime.or(file.default_lifetime),
            workers: self.workers.or(file.workers),
            stats_interval: self.stats_interval.or(file.stats_interval),
            alternate_ip: self.alternate_ip.or(file.alternate_ip),
            alternate_port: self.alternate_port.or(file.alternate_port),
            duration: self.duration.or(file.duration),
        }
    }

    /// Stop after this long, if set.
    pub fn duration(&self) -> Option<Duration> {
        self.duration.map(Duration::from_secs)
    }

    /// Print the counters this often, if set.
    pub fn stats_interval(&self) -> Option<Duration> {
        self.stats_interval
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }

    /// What to run. Reads the TLS certificate and key when TLS listeners are asked for.
    pub fn plan(&self) -> Result<Plan, String> {
        let streams = !self.listen_tcp.is_empty() || !self.listen_tls.is_empty();
        let mut listen = self.listen.clone();
        if listen.is_empty() && !streams {
            listen.push(DEFAULT_LISTEN.parse().map_err(|_| "bad default")?);
        }
        let stun = match (self.alternate_ip, listen.first()) {
            (None, _) => None,
            (Some(_), None) => return Err("--alternate-ip needs a UDP --listen address".into()),
            (Some(alternate_ip), Some(&primary)) => Some(rfc5780(
                &mut listen,
                primary,
                alternate_ip,
                self.alternate_port,
            )),
        };
        if self.user.is_empty() && self.secret.is_none() {
            if streams {
                return Err(
                    "--listen-tcp and --listen-tls serve TURN: give --user or --secret".into(),
                );
            }
            return Ok(Plan::StunOnly {
                listen,
                config: stun.unwrap_or_default(),
            });
        }
        let mut options = TurnServerOptions::new(listen, self.turn_config()?);
        options.listen_tcp = self.listen_tcp.clone();
        options.listen_tls = self.listen_tls.clone();
        // TLS listeners take their certificate and key from the PEM files.
        options.tls = match (&self.cert, &self.key, self.listen_tls.is_empty()) {
            (None, None, true) => None,
            (Some(cert), Some(key), false) => {
                Some(turn_server::tls_config_from_pem(cert, key).map_err(|e| e.to_string())?)
            }
            (_, _, false) => return Err("--listen-tls needs --cert and --key".into()),
            (_, _, true) => return Err("--cert and --key are for --listen-tls".into()),
        };
        if self.tcp_allocations && !streams {
            return Err("--tcp-allocations needs --listen-tcp or --listen-tls".into());
        }
        options.workers = match self.workers {
            Some(0) => return Err("--workers must be at least 1".into()),
            w => w.unwrap_or(1),
        };
        options.stun = stun;
        Ok(Plan::Turn(Box::new(options)))
    }

    fn turn_config(&self) -> Result<ServerConfig, String> {
        let mut c = ServerConfig::new(self.realm.as_deref().unwrap_or(DEFAULT_REALM));
        for u in &self.user {
            c.add_user(&u.name, &u.password);
        }
        c.rest_secret = self.secret.as_ref().map(|s| s.0.as_bytes().to_vec());
        let ports = self.relay_ports.unwrap_or_default();
        for ip in self.relay_ips()? {
            c.relays.push(RelayRange {
                ip,
                ports: ports.first..=ports.last,
            });
        }
        c.peer_policy.allow = self.allow_peer.iter().map(|p| p.0).collect();
        c.peer_policy.deny = self.deny_peer.iter().map(|p| p.0).collect();
        if self.allow_loopback_peers {
            for loopback in ["127.0.0.0/8", "::1/128"] {
                c.peer_policy
                    .allow
                    .push(loopback.parse().map_err(|_| "bad prefix")?);
            }
        }
        if let Some(n) = self.user_quota {
            c.quotas.per_user = Some(n);
        }
        if let Some(n) = self.ip_quota {
            c.quotas.per_client_ip = Some(n);
        }
        if let Some(n) = self.total_quota {
            c.quotas.total = Some(n);
        }
        if let Some(s) = self.max_lifetime {
            c.max_lifetime = Duration::from_secs(s);
        }
        if let Some(s) = self.default_lifetime {
            c.default_lifetime = Duration::from_secs(s);
        }
        c.tcp_allocations = self.tcp_allocations;
        Ok(c)
    }

    /// `--relay-ip`, or else the listening IPs (UDP, TCP, TLS) that are not wildcards (once
    /// each).
    fn relay_ips(&self) -> Result<Vec<IpAddr>, String> {
        let mut ips = self.relay_ip.clone();
        if ips.is_empty() {
            for a in self
                .listen
                .iter()
                .chain(&self.listen_tcp)
                .chain(&self.listen_tls)
            {
                if !a.ip().is_unspecified() && !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
        }
        if ips.is_empty() {
            return Err(
                "TURN needs a relay address: give --relay-ip (the server listens on a wildcard \
                 address, which clients cannot be told to send to)"
                    .into(),
            );
        }
        match ips.iter().find(|ip| ip.is_unspecified()) {
            Some(ip) => Err(format!("--relay-ip {ip} is not a specific address")),
            None => Ok(ips),
        }
    }
}

/// RFC 5780 §4.1: listens also on the other three combinations of the two IPs and two
/// ports, and returns the Binding server's configuration.
fn rfc5780(
    listen: &mut Vec<SocketAddr>,
    primary: SocketAddr,
    alternate_ip: IpAddr,
    alternate_port: Option<u16>,
) -> BindingServerConfig {
    let alternate_port = alternate_port.unwrap_or(DEFAULT_ALTERNATE_PORT);
    for (ip, port) in [
        (primary.ip(), alternate_port),
        (alternate_ip, primary.port()),
        (alternate_ip, alternate_port),
    ] {
        listen.push(SocketAddr::new(ip, port));
    }
    BindingServerConfig {
        alternate: Some(AlternateAddress {
            primary_ip: primary.ip(),
            alternate_ip,
            primary_port: primary.port(),
            alternate_port,
        }),
        ..BindingServerConfig::default()
    }
}

/// What `floe server` runs.
#[derive(Debug)]
pub enum Plan {
    /// No credentials: a STUN Binding server (TURN requests are answered 400).
    StunOnly {
        /// Addresses to listen on.
        listen: Vec<SocketAddr>,
        /// The Binding server's configuration (RFC 5780 if an alternate IP was given).
        config: BindingServerConfig,
    },
    /// A STUN and TURN server.
    Turn(Box<TurnServerOptions>),
}

/// A static user, `NAME:PASSWORD` (split at the first colon).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct User {
    name: String,
    password: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:..", self.name)
    }
}

impl FromStr for User {
    type Err = String;
    fn from_str(s: &str) -> Result<User, String> {
        match s.split_once(':') {
            Some((name, password)) if !name.is_empty() => Ok(User {
                name: name.into(),
                password: password.into(),
            }),
            _ => Err(format!("expected NAME:PASSWORD, got {s:?}")),
        }
    }
}

impl TryFrom<String> for User {
    type Error = String;
    fn try_from(s: String) -> Result<User, String> {
        s.parse()
    }
}

/// A secret, not printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Secret, String> {
        Ok(Secret(s.into()))
    }
}

/// Ports `FIRST-LAST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl Default for PortRange {
    /// RFC 8656 §7.2: the dynamic ports, 49152-65535.
    fn default() -> Self {
        PortRange {
            first: 49152,
            last: 65535,
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        let bad = || format!("expected FIRST-LAST ports such as 49152-65535, got {s:?}");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (first, last) = (
            a.trim().parse::<u16>().map_err(|_| bad())?,
            b.trim().parse::<u16>().map_err(|_| bad())?,
        );
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<PortRange, String> {
        s.parse()
    }
}

/// An IP prefix, `ADDR/LEN` or a bare address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Prefix(IpPrefix);

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        s.parse().map(Prefix).map_err(|e| format!("{s:?}: {e}"))
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Prefix, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        listen = ["127.0.0.1:3478"]
        realm = "example.org"
        user = ["alice:wonderland", "bob:pass:with:colons"]
        relay-ports = "40000-40999"
        allow-loopback-peers = true
        deny-peer = ["127.0.0.2"]
        workers = 2
        stats-interval = 10
    "#;

    #[test]
    fn file_settings_become_a_turn_config() {
        let s = Settings::from_toml(FILE).unwrap();
        assert_eq!(s.user[1].password, "pass:with:colons");
        let Plan::Turn(o) = s.plan().unwrap() else {
            panic!("TURN expected")
        };
        assert_eq!(o.workers, 2);
        assert_eq!(o.listen, vec!["127.0.0.1:3478".parse().unwrap()]);
        let c = &o.config;
        assert_eq!(c.realm, "example.org");
        assert_eq!(
            c.relays,
            vec![RelayRange {
                ip: "127.0.0.1".parse().unwrap(),
                ports: 40000..=40999
            }]
        );
        assert!(c.peer_policy.allows("127.0.0.1".parse().unwrap()));
        assert!(!c.peer_policy.allows("127.0.0.2".parse().unwrap()));
        assert!(!c.peer_policy.allows("10.0.0.1".parse().unwrap()));
        assert!(o.stun.is_none());
    }

    #[test]
    fn the_command_line_wins() {
        let file = Settings::from_toml(FILE).unwrap();
        let cli = Settings {
            realm: Some("cli.example".into()),
            listen: vec!["127.0.0.1:5000".parse().unwrap()],
            ..Settings::default()
        };
        let s = cli.over(file);
        assert_eq!(s.realm.as_deref(), Some("cli.example"));
        assert_eq!(s.listen, vec!["127.0.0.1:5000".parse().unwrap()]);
        assert_eq!(s.user.len(), 2, "kept from the file");
        assert_eq!(s.workers, Some(2));
        assert!(s.allow_loopback_peers);
    }

    #[test]
    fn without_credentials_it_serves_stun_only() {
        let s = Settings::from_toml(r#"alternate-ip = "127.0.0.2""#).unwrap();
        match s.plan().unwrap() {
            Plan::StunOnly { listen, config } => {
                assert_eq!(listen.len(), 4);
                assert_eq!(listen[0], DEFAULT_LISTEN.parse().unwrap());
                assert!(config.alternate.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(Settings::from_toml("no-such-key = 1").is_err());
        assert!(Settings::from_toml(r#"user = ["nocolon"]"#).is_err());
        assert!(Settings::from_toml(r#"relay-ports = "5-1""#).is_err());
        assert!(Settings::from_toml(r#"allow-peer = ["10.0.0.0/33"]"#).is_err());
        // TURN on a wildcard address needs to be told the relay address.
        let s = Settings::from_toml(r#"user = ["a:b"]"#).unwrap();
        assert!(s.plan().unwrap_err().contains("--relay-ip"));
        let s = Settings::from_toml("user = [\"a:b\"]\nrelay-ip = [\"0.0.0.0\"]").unwrap();
        assert!(s.plan().is_err());
        let s =
            Settings::from_toml("secret = \"s\"\nlisten = [\"127.0.0.1:1\"]\nworkers = 0").unwrap();
        assert!(s.plan().is_err());
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(..)");
    }

    #[test]
    fn stream_listeners() {
        // TCP only: no default UDP listener; the relay address comes from the TCP one.
        let s = Settings::from_toml(
            "user = [\"a:b\"]\nlisten-tcp = [\"127.0.0.1:3478\"]\ntcp-allocations = true",
        )
        .unwrap();
        let Plan::Turn(o) = s.plan().unwrap() else {
            panic!("TURN expected")
        };
        assert!(o.listen.is_empty());
        assert_eq!(o.listen_tcp, vec!["127.0.0.1:3478".parse().unwrap()]);
        assert_eq!(
            o.config.relays[0].ip,
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert!(o.config.tcp_allocations);
        assert!(o.tls.is_none());
        // Streams serve TURN only; TLS needs a certificate and a key, and they need TLS.
        let mistakes = [
            ("listen-tcp = [\"127.0.0.1:1\"]", "--user or --secret"),
            (
                "user = [\"a:b\"]\nlisten-tls = [\"127.0.0.1:1\"]",
                "--cert and --key",
            ),
            (
                "user = [\"a:b\"]\nlisten = [\"127.0.0.1:1\"]\ncert = \"c.pem\"",
                "--listen-tls",
            ),
            (
                "user = [\"a:b\"]\nlisten = [\"127.0.0.1:1\"]\ntcp-allocations = true",
                "--listen-tcp",
            ),
            (
                "user = [\"a:b\"]\nlisten-tls = [\"127.0.0.1:1\"]\ncert = \"/nonexistent/c.pem\"\nkey = \"k.pem\"",
                "/nonexistent/c.pem",
            ),
            (
                "listen-tcp = [\"127.0.0.1:1\"]\nuser = [\"a:b\"]\nalternate-ip = \"127.0.0.2\"",
                "UDP",
            ),
        ];
        for (file, reason) in mistakes {
            let err = Settings::from_toml(file).unwrap().plan().unwrap_err();
            assert!(err.contains(reason), "{file}: {err}");
        }
    }
}
