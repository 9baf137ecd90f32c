//! `sdp`: RFC 8839 candidate and ICE attribute lines (`ice_core::sdp`) on arbitrary text,
//! and the agent's `add_remote_candidate_str`.
//!
//! Invariants:
//! * No panic, whatever the text.
//! * `format` is a fixed point after one `parse`: for every line that parses,
//!   `parse(format(parse(x))) == parse(x)` and `format(parse(format(parse(x))))` is
//!   `format(parse(x))`; the same for `IceAttribute`.
//! * A parsed candidate keeps its fields: the formatted line contains its foundation,
//!   component, priority, address and port, and `socket_addr()` is the address and port
//!   when the address is an IP.
//! * An agent given the line (as the peer's candidate) never panics, and every remote
//!   candidate it then holds formats (`Candidate::to_sdp`) to a line that parses back to
//!   that candidate's address, port, priority, type, component and foundation.
//! * The mDNS querier (`ice_core::mdns`) never panics on a name from the text or on the
//!   bytes as a response (with the pending query's ID patched in); a response resolves only
//!   the name asked for, and only once.

use ice_core::sdp::{CandidateLine, ConnectionAddress, IceAttribute};
use ice_core::{Agent, AgentConfig, Role, TransportProtocol};
use std::time::Instant;

/// The body of the target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // One line per input line too, so a corpus file can hold a whole SDP.
    for line in std::iter::once(text.as_ref()).chain(text.split('\n').take(32)) {
        candidate_line(line);
        ice_attribute(line);
    }
    agent(&text);
    mdns(&text, data);
}

fn mdns(text: &str, data: &[u8]) {
    use ice_core::mdns::{MdnsConfig, MdnsOutcome, MdnsResolver};
    let now = Instant::now();
    // Any text as a name: invalid ones fail at once, valid ones are queried.
    let mut any = MdnsResolver::new(MdnsConfig::default(), 1);
    any.resolve(now, text.lines().next().unwrap_or(""));
    any.handle_input("192.0.2.9:5353".parse().expect("address"), data);
    let mut r = MdnsResolver::new(MdnsConfig::default(), 1);
    let name = "f0e1d2c3-b4a5-4697-8899-aabbccddeeff.local";
    r.resolve(now, name);
    let Some((_, query)) = r.poll_transmit() else {
        panic!("a valid name is queried");
    };
    let mut response = data.to_vec();
    if let (Some(dst), Some(id)) = (response.get_mut(..2), query.get(..2)) {
        dst.copy_from_slice(id);
    }
    let responder = "192.0.2.9:5353".parse().expect("address");
    let pending = r.pending();
    let resolved = r.handle_input(responder, &response);
    let outcomes: Vec<MdnsOutcome> = std::iter::from_fn(|| r.poll_outcome()).collect();
    match resolved {
        true => {
            assert!(
                outcomes
                    .iter()
                    .any(|o| matches!(o, MdnsOutcome::Resolved { name: n, .. } if n == name)),
                "{outcomes:?}"
            );
            assert!(r.pending() < pending);
            assert!(!r.handle_input(responder, &response), "resolved twice");
        }
        false => assert_eq!(r.pending(), pending),
    }
}

fn candidate_line(s: &str) {
    let Ok(line) = s.parse::<CandidateLine>() else {
        return;
    };
    let formatted = line.to_string();
    let again: CandidateLine = formatted
        .parse()
        .unwrap_or_else(|e| panic!("{formatted:?} (formatted from {s:?}) does not parse: {e}"));
    assert_eq!(again, line, "parse(format(parse(x))) != parse(x) for {s:?}");
    assert_eq!(again.to_string(), formatted);
    for field in [
        line.foundation.to_string(),
        line.component.to_string(),
        line.priority.to_string(),
        line.address.to_string(),
        line.port.to_string(),
    ] {
        assert!(formatted.contains(&field), "{field} lost in {formatted:?}");
    }
    match &line.address {
        ConnectionAddress::Ip(ip) => {
            assert_eq!(line.socket_addr(), Some((*ip, line.port).into()));
        }
        ConnectionAddress::Name(_) => assert_eq!(line.socket_addr(), None),
    }
    let _ = (
        line.ufrag(),
        line.generation(),
        line.network_id(),
        line.network_cost(),
        line.address.is_mdns(),
        line.transport.protocol(),
    );
}

fn ice_attribute(s: &str) {
    let Ok(attr) = s.parse::<IceAttribute>() else {
        return;
    };
    let formatted = attr.to_string();
    let again: IceAttribute = formatted
        .parse()
        .unwrap_or_else(|e| panic!("{formatted:?} (formatted from {s:?}) does not parse: {e}"));
    assert_eq!(again, attr, "IceAttribute does not round-trip for {s:?}");
    assert_eq!(again.to_string(), formatted);
}

fn agent(text: &str) {
    let now = Instant::now();
    let config = AgentConfig {
        role: Role::Controlled,
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(config, 1, now);
    let Ok(stream) = agent.add_stream(2) else {
        return;
    };
    let host = "192.0.2.10:5000".parse().expect("literal");
    let _ = agent.add_host_candidate(now, stream, 1, host, TransportProtocol::Udp);
    let _ = agent.set_remote_credentials(now, "EsAw", "passwordpasswordpassword");
    for line in text.split('\n').take(32) {
        let _ = agent.add_remote_candidate_str(now, stream, line);
    }
    while agent.poll_transmit().is_some() {}
    while agent.poll_event().is_some() {}
    for c in agent.remote_candidates(stream) {
        let sdp = c.to_sdp();
        let line: CandidateLine = sdp
            .parse()
            .unwrap_or_else(|e| panic!("{sdp:?} from a remote candidate does not parse: {e}"));
        assert_eq!(line.socket_addr(), Some(c.address));
        assert_eq!(
            (line.priority, line.kind, line.component, line.foundation),
            (c.priority, c.kind, c.component, c.foundation)
        );
    }
}
