//! Client configuration and its validation against RFC 8656 §7.1–7.2.

use core::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use stun_proto::TransportProtocol;
use stun_proto::attributes::AddressFamily;
use stun_proto::transaction::TransactionConfig;

/// The default [`ClientConfig::keepalive_interval`].
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The default lifetime asked for: the RFC 8656 §6 default of 10 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// Longest USERNAME that may be sent: "fewer than 509 bytes" (RFC 8489 §14.3).
const MAX_USERNAME_BYTES: usize = 508;
/// SOFTWARE: "fewer than 128 characters" (RFC 8489 §14.14).
const MAX_SOFTWARE_CHARS: usize = 127;

/// What the client asks of one TURN server. Its `Debug` leaves the password out.
#[derive(Clone)]
pub struct ClientConfig {
    /// The TURN server's transport address.
    pub server: SocketAddr,
    /// The local address the client sends from (and the driver receives on): one side of
    /// the 5-tuple. After a redirect the client still sends from here.
    pub local: SocketAddr,
    /// Transport to the server. With TCP or TLS the driver frames the stream
    /// (`stun_proto::framing::StreamFramer`) and passes each frame as one input; nothing is
    /// retransmitted and ChannelData is padded to 4 bytes (RFC 8656 §12.5). The allocation
    /// lives as long as the connection: report its loss with
    /// [`Client::connection_lost`](super::Client::connection_lost).
    pub transport: TransportProtocol,
    /// REQUESTED-TRANSPORT, the transport between the relay and the peers: UDP (RFC 8656),
    /// or TCP for an RFC 6062 TCP allocation, which needs `transport` TCP or TLS and none of
    /// `dont_fragment`, `even_port` and `reservation_token` (RFC 6062 §4.1). Peers of a TCP
    /// allocation are reached with [`Client::connect`](super::Client::connect) and
    /// connections they open arrive as ConnectionAttempt indications; each becomes a data
    /// connection of its own (see [`Client`](super::Client)).
    pub relay_transport: TransportProtocol,
    /// Long-term credential username.
    pub username: String,
    /// Long-term credential password.
    pub password: String,
    /// REQUESTED-ADDRESS-FAMILY: the family of the relayed address (IPv4 when `None`).
    pub requested_family: Option<AddressFamily>,
    /// ADDITIONAL-ADDRESS-FAMILY: ask for an IPv6 relayed address besides the IPv4 one
    /// (a dual allocation, RFC 8656 §7.1). Not with `requested_family`.
    pub additional_family: bool,
    /// EVEN-PORT: ask for an even relay port; `Some(true)` also reserves the next port and
    /// a RESERVATION-TOKEN comes back in [`ClientEvent::Allocated`](super::ClientEvent).
    pub even_port: Option<bool>,
    /// RESERVATION-TOKEN: take the port another allocation reserved. Not with `even_port`,
    /// `requested_family` or `additional_family` (RFC 8656 §7.2 step 5).
    pub reservation_token: Option<[u8; 8]>,
    /// DONT-FRAGMENT: ask the relay to set DF towards peers. Sent in the Allocate to test
    /// support (RFC 8656 §7.1) and in every Send indication once accepted; dropped and the
    /// Allocate retried if the server answers 420 listing it (§7.4).
    pub dont_fragment: bool,
    /// The lifetime to ask for (LIFETIME); the server decides. Default 600 s.
    pub lifetime: Duration,
    /// SOFTWARE to send in Allocate and Refresh requests (RFC 8656 §5 recommends it).
    pub software: Option<String>,
    /// Retransmission parameters.
    pub transactions: TransactionConfig,
    /// While allocated, a STUN Binding indication goes to the server when nothing else has
    /// been sent to it for this long, so that NAT mappings between client and server do not
    /// lapse while the allocation is idle (UDP mappings can expire after two minutes, RFC
    /// 4787 §4.3, far shorter than the refresh interval). `None` sends none. Default 15 s,
    /// the keepalive interval of RFC 8445 §11.
    pub keepalive_interval: Option<Duration>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("relay_transport", &self.relay_transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("requested_family", &self.requested_family)
            .field("additional_family", &self.additional_family)
            .field("even_port", &self.even_port)
            .field("reservation_token", &self.reservation_token)
            .field("dont_fragment", &self.dont_fragment)
            .field("lifetime", &self.lifetime)
            .field("software", &self.software)
            .field("transactions", &self.transactions)
            .finish()
    }
}

impl ClientConfig {
    /// A UDP configuration with the defaults: one IPv4 relayed address, 600 s lifetime.
    pub fn new(
        server: SocketAddr,
        local: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        ClientConfig {
            server,
            local,
            transport: TransportProtocol::Udp,
            relay_transport: TransportProtocol::Udp,
            username: username.into(),
            password: password.into(),
            requested_family: None,
            additional_family: false,
            even_port: None,
            reservation_token: None,
            dont_fragment: false,
            lifetime: DEFAULT_LIFETIME,
            software: None,
            transactions: TransactionConfig::default(),
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
        }
    }

    /// Checks the combinations RFC 8656 §7.2 rejects with 400, and the limits on what is
    /// sent, so that the mistake is reported at once instead of by the server.
    pub(super) fn validate(&self) -> Result<(), &'static str> {
        let has_family = self.requested_family.is_some() || self.additional_family;
        if self.reservation_token.is_some() && (self.even_port.is_some() || has_family) {
            return Err("RESERVATION-TOKEN with EVEN-PORT or an address family (RFC 8656 §7.2)");
        }
        if self.requested_family.is_some() && self.additional_family {
            return Err("REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §7.2)");
        }
        if self.even_port == Some(true) && self.additional_family {
            return Err("EVEN-PORT with R set and ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §7.2)");
        }
        if self.username.len() > MAX_USERNAME_BYTES {
            return Err("username longer than 508 bytes (RFC 8489 §14.3)");
        }
        if self
            .software
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SOFTWARE_CHARS)
        {
            return Err("software longer than 127 characters (RFC 8489 §14.14)");
        }
        if self.server.is_ipv4() != self.local.is_ipv4() {
            return Err("server and local addresses of different families");
        }
        match self.relay_transport {
            TransportProtocol::Udp => {}
            TransportProtocol::Tcp if !self.transport.is_reliable() => {
                return Err(
                    "a TCP allocation needs a TCP or TLS control connection (RFC 6062 §4.1)",
                );
            }
            TransportProtocol::Tcp
                if self.dont_fragment
                    || self.even_port.is_some()
                    || self.reservation_token.is_some() =>
            {
                return Err(
                    "a TCP allocation takes no DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN (RFC 6062 §4.1)",
                );
            }
            TransportProtocol::Tcp => {}
            _ => return Err("REQUESTED-TRANSPORT must be UDP or TCP"),
        }
        Ok(())
    }

    /// The relayed-address families the Allocate asks for.
    pub(super) fn wanted_families(&self) -> &'static [AddressFamily] {
        match (self.additional_family, self.requested_family) {
            (true, _) => &[AddressFamily::Ipv4, AddressFamily::Ipv6],
            (false, Some(AddressFamily::Ipv6)) => &[AddressFamily::Ipv6],
            (false, _) => &[AddressFamily::Ipv4],
        }
    }

    /// The LIFETIME value to ask for, in seconds.
    pub(super) fn lifetime_secs(&self) -> u32 {
        u32::try_from(self.lifetime.as_secs()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(
            "192.0.2.1:3478".parse().unwrap(),
            "10.0.0.1:5000".parse().unwrap(),
            "user",
            "pass",
        )
    }

    #[test]
    fn forbidden_combinations_are_refused() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.reservation_token = Some([1; 8]);
        assert!(c.validate().is_ok());
        c.even_port = Some(false);
        assert!(c.validate().is_err());
        let mut c = config();
        c.requested_family = Some(AddressFamily::Ipv6);
        c.additional_family = true;
        assert!(c.validate().is_err());
        let mut c = config();
        c.even_port = Some(true);
        c.additional_family = true;
        assert!(c.validate().is_err());
        c.even_port = Some(false);
        assert!(c.validate().is_ok());
        let mut c = config();
        c.username = "u".repeat(509);
        assert!(c.validate().is_err());
        let mut c = config();
        c.local = "[::1]:5000".parse().unwrap();
        assert!(c.validate().is_err());
        // RFC 6062 §4.1: TCP allocations over TCP/TLS only, without the UDP-only attributes.
        let mut c = config();
        c.relay_transport = TransportProtocol::Tcp;
        assert!(c.validate().is_err());
        c.transport = TransportProtocol::Tls;
        assert!(c.validate().is_ok());
        c.even_port = Some(false);
        assert!(c.validate().is_err());
        c.even_port = None;
        c.dont_fragment = true;
        assert!(c.validate().is_err());
        c.dont_fragment = false;
        c.reservation_token = Some([0; 8]);
        assert!(c.validate().is_err());
        c.reservation_token = None;
        c.relay_transport = TransportProtocol::Tls;
        assert!(c.validate().is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", config()).contains("pass\""));
    }

    #[test]
    fn wanted_families() {
        let mut c = config();
        assert_eq!(c.wanted_families(), [AddressFamily::Ipv4]);
        c.requested_family = Some(AddressFamily::Ipv6);
        assert_eq!(c.wanted_families(), [AddressFamily::Ipv6]);
        c.requested_family = None;
        c.additional_family = true;
        assert_eq!(
            c.wanted_families(),
            [AddressFamily::Ipv4, AddressFamily::Ipv6]
        );
    }
}
