//! SDP for ICE (RFC 8839): the `a=candidate` line and the session/media attributes
//! `ice-ufrag`, `ice-pwd`, `ice-options`, `ice-lite` and `end-of-candidates`.
//!
//! [`CandidateLine`] keeps what it parsed, including the case of the transport token and
//! extension attributes it does not know, so that browsers' lines format back byte for byte:
//!
//! ```
//! use ice_core::sdp::CandidateLine;
//! let chrome = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx \
//!               raddr 10.0.0.2 rport 46154 generation 0 ufrag EsAw network-id 1 network-cost 10";
//! let line: CandidateLine = chrome.parse()?;
//! assert_eq!(line.ufrag(), Some("EsAw"));
//! assert_eq!(line.network_cost(), Some(10));
//! assert_eq!(line.to_string(), chrome);
//! # Ok::<(), ice_core::sdp::SdpError>(())
//! ```

use crate::candidate::{Candidate, CandidateType, Foundation, TcpType, is_ice_char};
use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, SocketAddr};
use stun_proto::TransportProtocol;

/// Why an ICE SDP line could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// The line does not start with `candidate:` (optionally after `a=`).
    NotACandidate,
    /// A required field is missing; the name says which.
    MissingField(&'static str),
    /// The foundation is not 1 to 32 ice-chars.
    InvalidFoundation(String),
    /// The component ID is not a number from 1 to 256.
    InvalidComponent(String),
    /// The priority is not a number from 1 to 2^32-1.
    InvalidPriority(String),
    /// The transport token is empty or not a token.
    InvalidTransport(String),
    /// The connection address is neither an IP address nor a host name.
    InvalidAddress(String),
    /// A port is not a number from 0 to 65535.
    InvalidPort(String),
    /// The `typ` keyword is missing where RFC 8839 requires it.
    MissingTyp,
    /// The candidate type is not `host`, `srflx`, `prflx` or `relay`.
    UnknownType(String),
    /// `raddr` without `rport` or the other way round.
    IncompleteRelatedAddress,
    /// The `tcptype` value is not `active`, `passive` or `so`.
    InvalidTcpType(String),
    /// An extension attribute name without a value.
    DanglingExtension(String),
    /// An `ice-ufrag` or `ice-pwd` value with characters outside ice-char or of bad length.
    InvalidCredential(String),
    /// An `a=` line that is not one of the ICE attributes.
    UnknownAttribute(String),
    /// A control character inside the line (RFC 4566's byte-string excludes NUL, CR and LF,
    /// and none of the ICE tokens allow controls); only a trailing CRLF is accepted.
    ControlCharacter,
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::NotACandidate => f.write_str("not a candidate line"),
            SdpError::ControlCharacter => f.write_str("control character inside the line"),
            SdpError::MissingField(name) => write!(f, "missing {name}"),
            SdpError::InvalidFoundation(v) => write!(f, "invalid foundation {v:?}"),
            SdpError::InvalidComponent(v) => write!(f, "invalid component id {v:?}"),
            SdpError::InvalidPriority(v) => write!(f, "invalid priority {v:?}"),
            SdpError::InvalidTransport(v) => write!(f, "invalid transport {v:?}"),
            SdpError::InvalidAddress(v) => write!(f, "invalid connection address {v:?}"),
            SdpError::InvalidPort(v) => write!(f, "invalid port {v:?}"),
            SdpError::MissingTyp => f.write_str("missing \"typ\""),
            SdpError::UnknownType(v) => write!(f, "unknown candidate type {v:?}"),
            SdpError::IncompleteRelatedAddress => f.write_str("raddr and rport must come together"),
            SdpError::InvalidTcpType(v) => write!(f, "invalid tcptype {v:?}"),
            SdpError::DanglingExtension(v) => write!(f, "extension {v:?} has no value"),
            SdpError::InvalidCredential(v) => write!(f, "invalid ICE credential {v:?}"),
            SdpError::UnknownAttribute(v) => write!(f, "not an ICE attribute: {v:?}"),
        }
    }
}

impl std::error::Error for SdpError {}

/// A candidate's transport as written in SDP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `UDP` (RFC 8839).
    Udp,
    /// `TCP` (RFC 6544).
    Tcp,
    /// Any other token, kept as written.
    Other(String),
}

impl Transport {
    /// The transport protocol, for UDP and TCP.
    pub fn protocol(&self) -> Option<TransportProtocol> {
        match self {
            Transport::Udp => Some(TransportProtocol::Udp),
            Transport::Tcp => Some(TransportProtocol::Tcp),
            Transport::Other(_) => None,
        }
    }

    fn lower(&self) -> &str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Other(s) => s,
        }
    }
}

/// A connection address: an IP address, or a host name such as an mDNS `.local` name
/// (draft-ietf-mmusic-mdns-ice-candidates) that the caller must resolve.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionAddress {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name; see [`ConnectionAddress::is_mdns`].
    Name(String),
}

impl ConnectionAddress {
    /// True for mDNS names: a name ending in `.local` (RFC 6762).
    pub fn is_mdns(&self) -> bool {
        match self {
            ConnectionAddress::Name(n) => {
                let n = n.strip_suffix('.').unwrap_or(n);
                n.len() > 6 && n[n.len() - 6..].eq_ignore_ascii_case(".local")
            }
            ConnectionAddress::Ip(_) => false,
        }
    }

    /// The IP address, if this is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ConnectionAddress::Ip(ip) => Some(*ip),
            ConnectionAddress::Name(_) => None,
        }
    }

    fn parse(s: &str) -> Result<ConnectionAddress, SdpError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ConnectionAddress::Ip(ip));
        }
        // RFC 8839 §5.1: connection-address is an IP address or an FQDN. Accept host names
        // of LDH labels only (RFC 1123), at most 253 characters.
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = s.strip_suffix('.').unwrap_or(s);
        if !name.is_empty() && s.len() <= 253 && name.split('.').all(valid_label) {
            Ok(ConnectionAddress::Name(s.to_owned()))
        } else {
            Err(SdpError::InvalidAddress(s.to_owned()))
        }
    }
}

impl fmt::Display for ConnectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAddress::Ip(ip) => fmt::Display::fmt(ip, f),
            ConnectionAddress::Name(n) => f.write_str(n),
        }
    }
}

/// One `a=candidate` line (RFC 8839 §5.1), with the extension attributes browsers add
/// (`generation`, `ufrag`, `network-id`, `network-cost`) and any others kept in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CandidateLine {
    /// The foundation.
    pub foundation: Foundation,
    /// The component ID.
    pub component: u16,
    /// The transport.
    pub transport: Transport,
    /// The priority.
    pub priority: u32,
    /// The connection address.
    pub address: ConnectionAddress,
    /// The port.
    pub port: u16,
    /// The candidate type.
    pub kind: CandidateType,
    /// `raddr` and `rport`.
    pub related: Option<(ConnectionAddress, u16)>,
    /// `tcptype` (RFC 6544).
    pub tcp_type: Option<TcpType>,
    /// Extension attributes (name, value), in order.
    pub extensions: Vec<(String, String)>,
    /// The transport token exactly as parsed, so the line formats back unchanged.
    transport_text: Option<String>,
}

impl CandidateLine {
    /// A line with no related address, TCP type or extensions.
    pub fn new(
        foundation: Foundation,
        component: u16,
        transport: Transport,
        priority: u32,
        address: ConnectionAddress,
        port: u16,
        kind: CandidateType,
    ) -> CandidateLine {
        CandidateLine {
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            kind,
            related: None,
            tcp_type: None,
            extensions: Vec::new(),
            transport_text: None,
        }
    }

    /// The line for one of the agent's candidates.
    pub fn from_candidate(c: &Candidate) -> CandidateLine {
        let transport = match c.transport {
            TransportProtocol::Udp => Transport::Udp,
            TransportProtocol::Tcp => Transport::Tcp,
            _ => Transport::Other(String::from("tls")),
        };
        let mut line = CandidateLine::new(
            c.foundation,
            c.component,
            transport,
            c.priority,
            ConnectionAddress::Ip(c.address.ip()),
            c.address.port(),
            c.kind,
        );
        line.related = c.related.map(|r| (ConnectionAddress::Ip(r.ip()), r.port()));
        line.tcp_type = c.tcp_type;
        line
    }

    /// The value of the first extension attribute called `name`.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an extension attribute, replacing an existing one of that name.
    pub fn set_extension(&mut self, name: &str, value: &str) {
        match self.extensions.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = value.to_owned(),
            None => self.extensions.push((name.to_owned(), value.to_owned())),
        }
    }

    /// `ufrag`: which ICE generation the candidate belongs to (RFC 8838 §9).
    pub fn ufrag(&self) -> Option<&str> {
        self.extension("ufrag")
    }

    /// `generation` (a WebRTC extension).
    pub fn generation(&self) -> Option<u32> {
        self.extension("generation")?.parse().ok()
    }

    /// `network-id` (a WebRTC extension).
    pub fn network_id(&self) -> Option<u32> {
        self.extension("network-id")?.parse().ok()
    }

    /// `network-cost` (a WebRTC extension).
    pub fn network_cost(&self) -> Option<u32> {
        self.extension("network-cost")?.parse().ok()
    }

    /// The transport address, when the connection address is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.address.ip()?, self.port))
    }
}

/// Splits off the next space-separated token.
fn next<'a>(
    it: &mut impl Iterator<Item = &'a str>,
    field: &'static str,
) -> Result<&'a str, SdpError> {
    it.next().ok_or(SdpError::MissingField(field))
}

fn parse_port(s: &str) -> Result<u16, SdpError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(SdpError::InvalidPort(s.to_owned()));
    }
    s.parse().map_err(|_| SdpError::InvalidPort(s.to_owned()))
}

fn parse_component(s: &str) -> Result<u16, SdpError> {
    let bad = || SdpError::InvalidComponent(s.to_owned());
    // RFC 8839: component-id = 1*3DIGIT; RFC 8445 §5.1.2.1: 1 to 256.
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u16>() {
        Ok(v) if (1..=256).contains(&v) => Ok(v),
        _ => Err(bad()),
    }
}

fn parse_priority(s: &str) -> Result<u32, SdpError> {
    let bad = || SdpError::InvalidPriority(s.to_owned());
    // RFC 8839: priority = 1*10DIGIT.
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(bad()),
    }
}

fn parse_transport(s: &str) -> Result<(Transport, String), SdpError> {
    let transport = if s.eq_ignore_ascii_case("udp") {
        Transport::Udp
    } else if s.eq_ignore_ascii_case("tcp") {
        Transport::Tcp
    } else if !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()) {
        Transport::Other(s.to_owned())
    } else {
        return Err(SdpError::InvalidTransport(s.to_owned()));
    };
    Ok((transport, s.to_owned()))
}

/// Strips the line ending and refuses control characters anywhere else: a token such as
/// `trickle\r` would format to a line whose trailing CR the next parse strips, so the
/// round trip would change the value.
fn trim_line(s: &str) -> Result<&str, SdpError> {
    let s = s.trim_end_matches(['\r', '\n']);
    if s.chars().any(char::is_control) {
        return Err(SdpError::ControlCharacter);
    }
    Ok(s)
}

impl FromStr for CandidateLine {
    type Err = SdpError;

    /// Parses `a=candidate:...`, `candidate:...` (as in WebRTC's `RTCIceCandidate`), with or
    /// without a trailing CRLF.
    fn from_str(s: &str) -> Result<CandidateLine, SdpError> {
        let s = trim_line(s)?;
        let s = s.strip_prefix("a=").unwrap_or(s);
        let rest = strip_prefix_ignore_case(s, "candidate:").ok_or(SdpError::NotACandidate)?;
        let mut it = rest.split(' ').filter(|t| !t.is_empty());
        let f = next(&mut it, "foundation")?;
        let foundation =
            Foundation::new(f).ok_or_else(|| SdpError::InvalidFoundation(f.to_owned()))?;
        let component = parse_component(next(&mut it, "component-id")?)?;
        let (transport, transport_text) = parse_transport(next(&mut it, "transport")?)?;
        let priority = parse_priority(next(&mut it, "priority")?)?;
        let address = ConnectionAddress::parse(next(&mut it, "connection-address")?)?;
        let port = parse_port(next(&mut it, "port")?)?;
        if !next(&mut it, "typ")?.eq_ignore_ascii_case("typ") {
            return Err(SdpError::MissingTyp);
        }
        let t = next(&mut it, "candidate-type")?;
        let kind = CandidateType::from_sdp(t).ok_or_else(|| SdpError::UnknownType(t.to_owned()))?;
        let mut line = CandidateLine::new(
            foundation, component, transport, priority, address, port, kind,
        );
        line.transport_text = Some(transport_text);
        line.parse_tail(it)?;
        Ok(line)
    }
}

impl CandidateLine {
    /// The optional `raddr`/`rport`, `tcptype` and extension attributes.
    fn parse_tail<'a>(&mut self, mut it: impl Iterator<Item = &'a str>) -> Result<(), SdpError> {
        let (mut raddr, mut rport) = (None, None);
        while let Some(name) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| SdpError::DanglingExtension(name.to_owned()))?;
            match name {
                "raddr" if raddr.is_none() => raddr = Some(ConnectionAddress::parse(value)?),
                "rport" if rport.is_none() => rport = Some(parse_port(value)?),
                "tcptype" if self.tcp_type.is_none() => {
                    self.tcp_type = Some(
                        TcpType::from_sdp(value)
                            .ok_or_else(|| SdpError::InvalidTcpType(value.to_owned()))?,
                    );
                }
                _ => self.extensions.push((name.to_owned(), value.to_owned())),
            }
        }
        self.related = match (raddr, rport) {
            (Some(a), Some(p)) => Some((a, p)),
            (None, None) => None,
            _ => return Err(SdpError::IncompleteRelatedAddress),
        };
        Ok(())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl fmt::Display for CandidateLine {
    /// Formats as `candidate:...` (no `a=`): the form WebRTC's `RTCIceCandidate.candidate`
    /// uses; prepend `a=` for an SDP attribute line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match &self.transport_text {
            Some(t) if t.eq_ignore_ascii_case(self.transport.lower()) => t.as_str(),
            _ => self.transport.lower(),
        };
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            transport,
            self.priority,
            self.address,
            self.port,
            self.kind
        )?;
        if let Some((addr, port)) = &self.related {
            write!(f, " raddr {addr} rport {port}")?;
        }
        if let Some(t) = self.tcp_type {
            write!(f, " tcptype {}", t.as_sdp())?;
        }
        for (name, value) in &self.extensions {
            write!(f, " {name} {value}")?;
        }
        Ok(())
    }
}

/// An ICE attribute line (RFC 8839 §5.3–5.6, RFC 8840), or a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceAttribute {
    /// `a=candidate:...`.
    Candidate(CandidateLine),
    /// `a=ice-ufrag:...` (4 to 256 ice-chars).
    Ufrag(String),
    /// `a=ice-pwd:...` (22 to 256 ice-chars).
    Pwd(String),
    /// `a=ice-options:...`, e.g. `trickle` (RFC 8838) and `ice2` (RFC 8445 §10).
    Options(Vec<String>),
    /// `a=ice-pacing:...`: the pacing (Ta) the agent proposes, in milliseconds (RFC 8839
    /// §5.5; both agents use the larger value, RFC 8445 §14.2).
    Pacing(u32),
    /// `a=ice-lite`.
    Lite,
    /// `a=end-of-candidates` (RFC 8838 §13, RFC 8840).
    EndOfCandidates,
}

fn check_credential(v: &str, min: usize) -> Result<String, SdpError> {
    if v.len() < min || v.len() > 256 || !v.bytes().all(is_ice_char) {
        return Err(SdpError::InvalidCredential(v.to_owned()));
    }
    Ok(v.to_owned())
}

impl FromStr for IceAttribute {
    type Err = SdpError;

    /// Parses one attribute line, with or without `a=` and trailing CRLF.
    fn from_str(s: &str) -> Result<IceAttribute, SdpError> {
        let s = trim_line(s)?;
        let s = s.strip_prefix("a=").unwrap_or(s);
        let (name, value) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        match (name, value) {
            ("candidate", Some(_)) => s.parse().map(IceAttribute::Candidate),
            ("ice-ufrag", Some(v)) => check_credential(v, 4).map(IceAttribute::Ufrag),
            ("ice-pwd", Some(v)) => check_credential(v, 22).map(IceAttribute::Pwd),
            ("ice-options", Some(v)) => Ok(IceAttribute::Options(
                v.split(' ')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            ("ice-pacing", Some(v)) => match v.parse::<u32>() {
                Ok(ms)
                    if !v.is_empty() && v.len() <= 10 && v.bytes().all(|c| c.is_ascii_digit()) =>
                {
                    Ok(IceAttribute::Pacing(ms))
                }
                _ => Err(SdpError::UnknownAttribute(s.to_owned())),
            },
            ("ice-lite", None) => Ok(IceAttribute::Lite),
            ("end-of-candidates", None) => Ok(IceAttribute::EndOfCandidates),
            _ => Err(SdpError::UnknownAttribute(s.to_owned())),
        }
    }
}

impl fmt::Display for IceAttribute {
    /// Formats as an SDP attribute line with `a=` and without CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceAttribute::Candidate(c) => write!(f, "a={c}"),
            IceAttribute::Ufrag(u) => write!(f, "a=ice-ufrag:{u}"),
            IceAttribute::Pwd(p) => write!(f, "a=ice-pwd:{p}"),
            IceAttribute::Options(o) => write!(f, "a=ice-options:{}", o.join(" ")),
            IceAttribute::Pacing(ms) => write!(f, "a=ice-pacing:{ms}"),
            IceAttribute::Lite => f.write_str("a=ice-lite"),
            IceAttribute::EndOfCandidates => f.write_str("a=end-of-candidates"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_names() {
        assert!(
            ConnectionAddress::parse("983d4667-3222-491a-aace-e549cd9c13a8.local")
                .unwrap()
                .is_mdns()
        );
        assert!(ConnectionAddress::parse("x.LOCAL.").unwrap().is_mdns());
        assert!(
            !ConnectionAddress::parse("stun.example.org")
                .unwrap()
                .is_mdns()
        );
        assert!(ConnectionAddress::parse("bad_name").is_err());
        assert!(ConnectionAddress::parse("-a.local").is_err());
    }

    #[test]
    fn edited_transport_is_formatted_in_lower_case() {
        let mut line: CandidateLine = "candidate:1 1 UDP 5 192.0.2.1 9 typ host".parse().unwrap();
        assert_eq!(line.to_string(), "candidate:1 1 UDP 5 192.0.2.1 9 typ host");
        line.transport = Transport::Tcp;
        assert_eq!(line.to_string(), "candidate:1 1 tcp 5 192.0.2.1 9 typ host");
    }
}
