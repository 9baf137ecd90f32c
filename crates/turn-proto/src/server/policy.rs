//! Which peers a client may reach through the relay (RFC 8656 §10.2, §11.2, §12.2: "The
//! server MAY impose restrictions on the IP address ... allowed in the XOR-PEER-ADDRESS
//! attribute; if a value is not allowed, the server rejects the request with a 403").
//!
//! See [`PeerPolicy`] for the order of evaluation and the built-in ranges.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP prefix in CIDR notation, such as `10.0.0.0/8` or `fe80::/10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// A prefix of `len` bits; `None` if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(IpPrefix { addr, len })
    }

    /// A prefix holding exactly one address.
    pub fn host(addr: IpAddr) -> IpPrefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpPrefix { addr, len }
    }

    /// True if `ip` (of the same family) lies inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => prefix_eq(
                u128::from(p.to_bits()) << 96,
                u128::from(a.to_bits()) << 96,
                self.len,
            ),
            (IpAddr::V6(p), IpAddr::V6(a)) => prefix_eq(p.to_bits(), a.to_bits(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    (a ^ b) & mask == 0
}

/// Why a string is not a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrefixParseError {
    /// The address part does not parse.
    BadAddress,
    /// The length is not a number or is longer than the address.
    BadLength,
}

impl fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrefixParseError::BadAddress => "bad address in prefix",
            PrefixParseError::BadLength => "bad prefix length",
        })
    }
}

impl std::error::Error for PrefixParseError {}

impl FromStr for IpPrefix {
    type Err = PrefixParseError;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| PrefixParseError::BadAddress)?;
        match len {
            None => Ok(IpPrefix::host(addr)),
            Some(l) => {
                let len = l.parse().map_err(|_| PrefixParseError::BadLength)?;
                IpPrefix::new(addr, len).ok_or(PrefixParseError::BadLength)
            }
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The peer address policy.
///
/// # Evaluation order
///
/// 1. The **deny list**: a match is denied, whatever else says.
/// 2. The **allow list**: a match is allowed, overriding the built-in ranges below.
/// 3. The **built-in special ranges** (when [`deny_special`](Self::deny_special) is on, the
///    default; see [`is_special`](Self::is_special)): a match is denied.
/// 4. Everything else is allowed.
///
/// So the deny list always wins, and the allow list is how a test on loopback (or a private
/// deployment) opens a built-in range:
///
/// ```
/// use turn_proto::server::PeerPolicy;
/// let mut policy = PeerPolicy::default();
/// assert!(!policy.allows("127.0.0.1".parse()?));
/// policy.allow.push("127.0.0.0/8".parse()?);
/// assert!(policy.allows("127.0.0.1".parse()?));
/// assert!(policy.allows("::ffff:127.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Addresses that carry an IPv4 address inside an IPv6 one — IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d` and the NAT64 well-known prefix `64:ff9b::/96` — are judged
/// both as themselves and as the IPv4 address they embed, at every step. That closes the
/// hole of coturn CVE-2020-26262, where `::ffff:127.0.0.1` and `0.0.0.0` reached the
/// server's own loopback services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Deny the built-in special ranges (see [`PeerPolicy::is_special`]). On by default.
    pub deny_special: bool,
    /// Prefixes always allowed unless also denied; they override the built-in ranges.
    pub allow: Vec<IpPrefix>,
    /// Prefixes always denied.
    pub deny: Vec<IpPrefix>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy {
            deny_special: true,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl PeerPolicy {
    /// True if a client may reach `ip` through the relay.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let embedded = embedded_ipv4(ip).map(IpAddr::V4);
        let matches = |list: &[IpPrefix]| {
            list.iter()
                .any(|p| p.contains(ip) || embedded.is_some_and(|e| p.contains(e)))
        };
        if matches(&self.deny) {
            return false;
        }
        if matches(&self.allow) {
            return true;
        }
        !(self.deny_special && Self::is_special(ip))
    }

    /// The built-in ranges that are denied by default: addresses that reach the relay
    /// host itself, its local networks, or many hosts at once.
    ///
    /// IPv4: `0.0.0.0/8` (this network, including the unspecified address), `10.0.0.0/8`,
    /// `100.64.0.0/10` (carrier-grade NAT), `127.0.0.0/8`, `169.254.0.0/16`,
    /// `172.16.0.0/12`, `192.168.0.0/16`, `224.0.0.0/4` (multicast), `240.0.0.0/4`
    /// (reserved, including the broadcast address `255.255.255.255`).
    /// IPv6: `::`, `::1`, `fc00::/7` (unique local), `fe80::/10` (link-local), `fec0::/10`
    /// (old site-local), `ff00::/8` (multicast), and any IPv4 address above embedded in
    /// `::ffff:0:0/96`, `::/96` or `64:ff9b::/96`.
    pub fn is_special(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => special_v4(v4),
            IpAddr::V6(v6) => special_v6(v6) || embedded_ipv4(ip).is_some_and(special_v4),
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || a >= 224
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || first & 0xfe00 == 0xfc00
        || first & 0xffc0 == 0xfe80
        || first & 0xffc0 == 0xfec0
        || first & 0xff00 == 0xff00
}

/// The IPv4 address embedded in an IPv4-mapped, IPv4-compatible or NAT64 address.
/// `::` and `::1` are the unspecified and loopback addresses, not IPv4-compatible ones.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = v6.to_bits();
    let low = (bits & 0xffff_ffff) as u32;
    let high = bits >> 32;
    let compatible = high == 0 && low > 1;
    let nat64 = high == 0x0064_ff9b_0000_0000_0000_0000;
    (compatible || nat64).then(|| Ipv4Addr::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_denies_every_special_range_and_its_embedded_forms() {
        let p = PeerPolicy::default();
        for denied in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!p.allows(ip(denied)), "{denied} must be denied");
        }
        for allowed in [
            "8.8.8.8",
            "172.32.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "100.128.0.1",
        ] {
            assert!(p.allows(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn allow_overrides_builtin_deny_overrides_allow() {
        let mut p = PeerPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            ..PeerPolicy::default()
        };
        assert!(p.allows(ip("127.0.0.1")));
        assert!(
            p.allows(ip("::ffff:127.0.0.1")),
            "judged as its embedded IPv4 too"
        );
        assert!(p.allows(ip("::1")));
        assert!(!p.allows(ip("10.0.0.1")));
        p.deny.push("127.0.0.2/32".parse().unwrap());
        p.deny.push("203.0.113.0/24".parse().unwrap());
        assert!(!p.allows(ip("127.0.0.2")), "deny list wins over allow list");
        assert!(!p.allows(ip("::ffff:203.0.113.9")));
        assert!(!p.allows(ip("203.0.113.9")));
        p.deny_special = false;
        assert!(p.allows(ip("10.0.0.1")));
    }

    #[test]
    fn prefix_parsing_and_matching() {
        let p: IpPrefix = "172.16.0.0/12".parse().unwrap();
        assert!(p.contains(ip("172.20.1.1")));
        assert!(!p.contains(ip("172.32.0.0")));
        assert!(!p.contains(ip("::1")));
        let all: IpPrefix = "::/0".parse().unwrap();
        assert!(all.contains(ip("2001:db8::1")));
        assert_eq!(p.to_string(), "172.16.0.0/12");
        assert_eq!(
            "10.0.0.0/33".parse::<IpPrefix>(),
            Err(PrefixParseError::BadLength)
        );
        assert_eq!(
            "10.0.0/8".parse::<IpPrefix>(),
            Err(PrefixParseError::BadAddress)
        );
        assert_eq!(
            "1.2.3.4".parse::<IpPrefix>().unwrap(),
            IpPrefix::host(ip("1.2.3.4"))
        );
    }
}
