//! Resolving mDNS candidate names (draft-ietf-mmusic-mdns-ice-candidates): a Sans-IO one-shot
//! Multicast DNS querier (RFC 6762 §5.1).
//!
//! Browsers hide their host addresses behind random `<uuid>.local` names; the agent surfaces
//! such candidates as [`Event::ResolveMdns`](crate::Event::ResolveMdns) and waits for
//! [`Agent::resolved_mdns`](crate::Agent::resolved_mdns) or
//! [`Agent::mdns_failed`](crate::Agent::mdns_failed). An [`MdnsResolver`] does the asking: it
//! writes queries for the A and AAAA records of a name, to be sent from an ordinary (not 5353)
//! UDP port to `224.0.0.251:5353`, reads the responders' unicast answers (RFC 6762 §6.7,
//! "legacy unicast": they come back to the querying port with the query's ID), retransmits,
//! and gives up after a timeout. Like the agent it owns no socket and reads no clock.
//!
//! ```
//! use ice_core::mdns::{MdnsConfig, MdnsOutcome, MdnsResolver};
//! use std::time::Instant;
//!
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now();
//! let mut resolver = MdnsResolver::new(MdnsConfig::default(), 7);
//! resolver.resolve(now, "1f4712db-ea17-4bcf-a596-105139dfd8bf.local");
//! let (to, query) = resolver.poll_transmit().unwrap();
//! assert_eq!(to.to_string(), "224.0.0.251:5353");
//! // ...send `query` from a UDP socket, feed what comes back to `handle_input`, call
//! // `handle_timeout` when `poll_timeout` says, and hand each `MdnsOutcome` to the agent.
//! # let _ = query;
//! assert!(resolver.poll_outcome().is_none());
//! ```
//!
//! Names are checked before any query goes out: only `.local` names of valid DNS labels. A
//! response counts only if it comes from the responder's port (5353, or the configured
//! server), carries the ID of the query for the name it answers, and is a well-formed DNS
//! response with no error code; anything else is ignored without a panic.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The mDNS IPv4 group and port (RFC 6762 §3).
pub const MDNS_IPV4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);

/// The mDNS IPv6 group and port (RFC 6762 §3), `[ff02::fb]:5353`.
pub const MDNS_IPV6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb)),
    5353,
);

/// Where queries go and how long to keep asking.
#[derive(Clone, Debug)]
pub struct MdnsConfig {
    /// Where queries are sent: the mDNS group ([`MDNS_IPV4`], the default, or
    /// [`MDNS_IPV6`]), or a unicast address of a responder (tests, a local proxy). For a
    /// group, answers are taken from its port (5353) on any address; for a unicast address,
    /// from that address only.
    pub server: SocketAddr,
    /// The waits before the retransmissions: RFC 6762 §5.2 starts at 1 s and doubles.
    pub retransmits: Vec<Duration>,
    /// How long after the first query a name that got no answer is given up.
    pub timeout: Duration,
    /// The most names being resolved at once; more fail at once.
    pub max_pending: usize,
}

impl Default for MdnsConfig {
    fn default() -> Self {
        MdnsConfig {
            server: MDNS_IPV4,
            retransmits: vec![Duration::from_secs(1), Duration::from_secs(2)],
            timeout: Duration::from_secs(5),
            max_pending: 32,
        }
    }
}

/// What became of a name given to [`MdnsResolver::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MdnsOutcome {
    /// A responder answered: hand it to [`Agent::resolved_mdns`](crate::Agent::resolved_mdns).
    Resolved {
        /// The name as it was given.
        name: String,
        /// Its address (the first A or AAAA record of the answer).
        ip: IpAddr,
    },
    /// No answer in time, or the name is not a valid `.local` name, or too many names are
    /// pending: hand it to [`Agent::mdns_failed`](crate::Agent::mdns_failed).
    Failed {
        /// The name as it was given.
        name: String,
    },
}

/// A DNS name as its labels, lowercased (names compare case-insensitively).
type Labels = Vec<Vec<u8>>;

/// One name being asked for.
#[derive(Debug)]
struct Query {
    /// The name as given, and its labels lowercased for matching.
    name: String,
    labels: Labels,
    id: u16,
    sent: usize,
    next: Instant,
    deadline: Instant,
}

/// A Sans-IO one-shot mDNS querier; see the [module](self) documentation.
#[derive(Debug)]
pub struct MdnsResolver {
    config: MdnsConfig,
    rng: ChaCha20Rng,
    queries: Vec<Query>,
    transmits: VecDeque<Vec<u8>>,
    outcomes: VecDeque<MdnsOutcome>,
}

/// DNS record types and class (RFC 1035 §3.2.2, RFC 3596).
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// The most compression pointers followed in one name (a loop guard).
const MAX_POINTERS: usize = 16;

impl MdnsResolver {
    /// A resolver; `seed` draws the query IDs.
    pub fn new(config: MdnsConfig, seed: u64) -> MdnsResolver {
        MdnsResolver {
            config,
            rng: ChaCha20Rng::seed_from_u64(seed),
            queries: Vec::new(),
            transmits: VecDeque::new(),
            outcomes: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MdnsConfig {
        &self.config
    }

    /// Starts resolving `name`, a `.local` name: a query is ready at once. A name already
    /// being resolved is not asked twice. An invalid name, or one past
    /// [`MdnsConfig::max_pending`], fails at once ([`MdnsOutcome::Failed`]).
    pub fn resolve(&mut self, now: Instant, name: &str) {
        let Some(labels) = local_labels(name) else {
            self.fail(name);
            return;
        };
        if self.queries.iter().any(|q| q.labels == labels) {
            return;
        }
        if self.queries.len() >= self.config.max_pending {
            self.fail(name);
            return;
        }
        let id = (self.rng.next_u32() & 0xFFFF) as u16;
        let query = Query {
            name: name.to_owned(),
            labels,
            id,
            sent: 0,
            next: now,
            deadline: now + self.config.timeout,
        };
        self.queries.push(query);
        self.handle_timeout(now);
    }

    /// Names being resolved.
    pub fn pending(&self) -> usize {
        self.queries.len()
    }

    /// A datagram that arrived on the querying socket from `from`. Returns true if it
    /// resolved at least one name.
    pub fn handle_input(&mut self, from: SocketAddr, data: &[u8]) -> bool {
        if !self.is_responder(from) {
            return false;
        }
        let Some((id, records)) = parse_response(data) else {
            return false;
        };
        let mut resolved = false;
        for (name, ip) in records {
            let Some(i) = self
                .queries
                .iter()
                .position(|q| q.labels == name && q.id == id)
            else {
                continue;
            };
            let q = self.queries.swap_remove(i);
            self.outcomes
                .push_back(MdnsOutcome::Resolved { name: q.name, ip });
            resolved = true;
        }
        resolved
    }

    /// Sends what is due and gives up on names past their timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.queries.len() {
            let q = &mut self.queries[i];
            if now >= q.deadline {
                let q = self.queries.swap_remove(i);
                self.outcomes
                    .push_back(MdnsOutcome::Failed { name: q.name });
                continue;
            }
            if now >= q.next && q.sent <= self.config.retransmits.len() {
                self.transmits.push_back(encode_query(q.id, &q.labels));
                q.next = match self.config.retransmits.get(q.sent) {
                    Some(wait) => now + *wait,
                    None => q.deadline,
                };
                q.sent += 1;
            }
            i += 1;
        }
    }

    /// The next query to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front().map(|q| (self.config.server, q))
    }

    /// The next name resolved or given up.
    pub fn poll_outcome(&mut self) -> Option<MdnsOutcome> {
        self.outcomes.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queries.iter().map(|q| q.next.min(q.deadline)).min()
    }

    fn fail(&mut self, name: &str) {
        self.outcomes.push_back(MdnsOutcome::Failed {
            name: name.to_owned(),
        });
    }

    /// RFC 6762 §6.7: legacy unicast answers come from the responder's mDNS port.
    fn is_responder(&self, from: SocketAddr) -> bool {
        let server = self.config.server;
        match server.ip().is_multicast() {
            true => from.port() == server.port(),
            false => from == server,
        }
    }
}

/// The lowercased labels of a valid `.local` name (a trailing dot allowed): labels of 1 to
/// 63 bytes, at most 255 bytes in all (RFC 1035 §2.3.4), the last one `local`.
fn local_labels(name: &str) -> Option<Labels> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return None;
    }
    let labels: Labels = name
        .split('.')
        .map(|l| l.as_bytes().to_ascii_lowercase())
        .collect();
    let valid = labels.len() >= 2
        && labels.iter().all(|l| (1..=63).contains(&l.len()))
        && labels.last().is_some_and(|l| l == b"local");
    valid.then_some(labels)
}

/// A query (RFC 1035 §4.1) for the A and AAAA records of a name.
fn encode_query(id: u16, labels: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(12 + 2 * (labels.iter().map(|l| l.len() + 1).sum::<usize>() + 5));
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // a standard query, no recursion
    out.extend_from_slice(&2u16.to_be_bytes()); // two questions
    out.extend_from_slice(&[0; 6]); // no answers, authorities or additional records
    for qtype in [TYPE_A, TYPE_AAAA] {
        for label in labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
    }
    out
}

/// The ID and the A and AAAA records of a well-formed DNS response with no error (RFC 1035
/// §4.1, RFC 6762 §18: opcode 0, response code 0), from all three record sections, as
/// (lowercased name labels, address). Records with a TTL of 0 (goodbye, RFC 6762 §10.1) are left out.
/// `None` for anything malformed.
fn parse_response(data: &[u8]) -> Option<(u16, Vec<(Labels, IpAddr)>)> {
    let header = data.get(..12)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xF;
    let rcode = flags & 0xF;
    if !is_response || opcode != 0 || rcode != 0 {
        return None;
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut at = 12;
    for _ in 0..questions {
        let (_, next) = read_name(data, at)?;
        at = next.checked_add(4)?; // type and class
        if at > data.len() {
            return None;
        }
    }
    let mut found = Vec::new();
    for _ in 0..records {
        let (name, next) = read_name(data, at)?;
        let fixed = data.get(next..next.checked_add(10)?)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        // The top bit of the class is mDNS's cache-flush flag (RFC 6762 §10.2).
        let class = u16::from_be_bytes([fixed[2], fixed[3]]) & 0x7FFF;
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = data.get(next + 10..next + 10 + len)?;
        at = next + 10 + len;
        if class != CLASS_IN || ttl == 0 {
            continue;
        }
        let ip = match (rtype, rdata.len()) {
            (TYPE_A, 4) => IpAddr::from(<[u8; 4]>::try_from(rdata).ok()?),
            (TYPE_AAAA, 16) => IpAddr::from(<[u8; 16]>::try_from(rdata).ok()?),
            _ => continue,
        };
        found.push((name, ip));
    }
    Some((id, found))
}

/// A (possibly compressed, RFC 1035 §4.1.4) name at `at`: its lowercased labels, and where
/// the bytes after it start. At most [`MAX_POINTERS`] pointers are followed and 255 bytes
/// read, so loops and overlong names end as `None`.
fn read_name(data: &[u8], mut at: usize) -> Option<(Labels, usize)> {
    let mut labels = Vec::new();
    let mut after = None;
    let mut pointers = 0;
    let mut length = 0usize;
    loop {
        let len = *data.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                return Some((labels, after.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = data.get(at + 1..at + 1 + usize::from(len))?;
                length += 1 + label.len();
                if length > 255 {
                    return None;
                }
                labels.push(label.to_ascii_lowercase());
                at += 1 + usize::from(len);
            }
            0xC0 => {
                let low = *data.get(at + 1)?;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = usize::from(len & 0x3F) << 8 | usize::from(low);
            }
            _ => return None, // the 0x40 and 0x80 label types are not in use
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "1f4712db-ea17-4bcf-a596-105139dfd8bf.local";

    fn responder() -> SocketAddr {
        "192.168.1.20:5353".parse().unwrap()
    }

    /// A legacy unicast answer to `query`: its ID and questions, then `answers` as
    /// (type, rdata), the first with the name written out, the others pointing at the
    /// question's name.
    fn answer(query: &[u8], answers: &[(u16, &[u8])], ttl: u32) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] = 0x84; // response, authoritative
        out[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (i, (rtype, rdata)) in answers.iter().enumerate() {
            if i == 0 {
                let (labels, _) = read_name(query, 12).unwrap();
                for l in labels {
                    out.push(l.len() as u8);
                    out.extend_from_slice(&l.to_ascii_uppercase()); // case does not matter
                }
                out.push(0);
            } else {
                out.extend_from_slice(&[0xC0, 12]);
            }
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&(0x8000u16 | CLASS_IN).to_be_bytes()); // cache-flush set
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        out
    }

    fn started() -> (MdnsResolver, Instant, Vec<u8>) {
        let now = Instant::now();
        let mut r = MdnsResolver::new(MdnsConfig::default(), 1);
        r.resolve(now, NAME);
        let (to, query) = r.poll_transmit().unwrap();
        assert_eq!(to, MDNS_IPV4);
        (r, now, query)
    }

    #[test]
    fn the_query_asks_for_a_and_aaaa() {
        let (_, _, q) = started();
        assert_eq!(&q[2..12], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
        let (labels, at) = read_name(&q, 12).unwrap();
        assert_eq!(labels, local_labels(NAME).unwrap());
        assert_eq!(&q[at..at + 4], &[0, 1, 0, 1], "A, IN");
        let (_, at2) = read_name(&q, at + 4).unwrap();
        assert_eq!(&q[at2..at2 + 4], &[0, 28, 0, 1], "AAAA, IN");
        assert_eq!(at2 + 4, q.len());
    }

    #[test]
    fn an_answer_resolves_the_name() {
        for (rtype, rdata, ip) in [
            (TYPE_A, &[192, 168, 1, 20][..], "192.168.1.20"),
            (
                TYPE_AAAA,
                &[0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
                "2001:db8::1",
            ),
        ] {
            let (mut r, _, q) = started();
            assert!(r.handle_input(responder(), &answer(&q, &[(rtype, rdata)], 120)));
            assert_eq!(
                r.poll_outcome(),
                Some(MdnsOutcome::Resolved {
                    name: NAME.into(),
                    ip: ip.parse().unwrap()
                })
            );
            assert_eq!(r.pending(), 0);
            assert_eq!(r.poll_timeout(), None);
        }
    }

    #[test]
    fn compressed_names_and_other_records_are_read() {
        let (mut r, _, q) = started();
        // A TXT record first (skipped), then the A record by a pointer to the question.
        let reply = answer(&q, &[(16, b"\x03abc"), (TYPE_A, &[10, 0, 0, 7])], 120);
        assert!(r.handle_input(responder(), &reply));
        assert!(
            matches!(r.poll_outcome(), Some(MdnsOutcome::Resolved { ip, .. }) if ip.to_string() == "10.0.0.7")
        );
    }

    #[test]
    fn answers_that_do_not_count_are_ignored() {
        let (mut r, _, q) = started();
        let good = answer(&q, &[(TYPE_A, &[10, 0, 0, 7])], 120);
        let mut wrong_id = good.clone();
        wrong_id[0] ^= 0xFF;
        let mut error = good.clone();
        error[3] |= 3; // NXDOMAIN
        let mut not_a_response = good.clone();
        not_a_response[2] &= 0x7F;
        let goodbye = answer(&q, &[(TYPE_A, &[10, 0, 0, 7])], 0);
        let short_rdata = answer(&q, &[(TYPE_A, &[10, 0, 0])], 120);
        let other_port = SocketAddr::new(responder().ip(), 5354);
        for (from, data) in [
            (responder(), &wrong_id),
            (responder(), &error),
            (responder(), &not_a_response),
            (responder(), &goodbye),
            (responder(), &short_rdata),
            (other_port, &good),
        ] {
            assert!(!r.handle_input(from, data));
        }
        for cut in 0..good.len() {
            assert!(!r.handle_input(responder(), &good[..cut]), "cut at {cut}");
        }
        assert_eq!(r.poll_outcome(), None);
        assert!(r.handle_input(responder(), &good));
    }

    #[test]
    fn pointer_loops_and_bad_labels_are_rejected() {
        let mut msg = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        msg.extend_from_slice(&[0xC0, 12]); // points at itself
        msg.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse_response(&msg), None);
        let mut msg = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        msg.extend_from_slice(&[0x40, 1, 0]); // extended label type
        assert_eq!(parse_response(&msg), None);
        // Names over 255 bytes, through pointers.
        let mut msg = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        msg.push(63);
        msg.extend_from_slice(&[b'a'; 63]);
        msg.extend_from_slice(&[0xC0, 12]);
        assert_eq!(parse_response(&msg), None);
    }

    #[test]
    fn retransmits_then_gives_up() {
        let (mut r, t0, _) = started();
        let mut sent = vec![Duration::ZERO];
        let mut now = t0;
        while let Some(next) = r.poll_timeout() {
            now = next;
            r.handle_timeout(now);
            while r.poll_transmit().is_some() {
                sent.push(now - t0);
            }
        }
        let s = Duration::from_secs;
        assert_eq!(sent, [s(0), s(1), s(3)]);
        assert_eq!(now - t0, s(5));
        assert_eq!(
            r.poll_outcome(),
            Some(MdnsOutcome::Failed { name: NAME.into() })
        );
    }

    #[test]
    fn invalid_names_and_overflow_fail_at_once() {
        let now = Instant::now();
        let config = MdnsConfig {
            max_pending: 1,
            ..MdnsConfig::default()
        };
        let mut r = MdnsResolver::new(config, 1);
        let long = format!("{}.local", "a".repeat(64));
        for bad in ["example.com", "local", ".local", "a..local", long.as_str()] {
            r.resolve(now, bad);
            assert_eq!(
                r.poll_outcome(),
                Some(MdnsOutcome::Failed { name: bad.into() })
            );
            assert!(r.poll_transmit().is_none());
        }
        r.resolve(now, "one.local");
        r.resolve(now, "ONE.local."); // the same name: not asked twice
        r.resolve(now, "two.local");
        assert_eq!(
            r.poll_outcome(),
            Some(MdnsOutcome::Failed {
                name: "two.local".into()
            })
        );
        assert_eq!(r.pending(), 1);
        assert!(r.poll_transmit().is_some() && r.poll_transmit().is_none());
    }

    #[test]
    fn a_unicast_server_is_the_only_accepted_source() {
        let server: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let now = Instant::now();
        let mut r = MdnsResolver::new(
            MdnsConfig {
                server,
                ..MdnsConfig::default()
            },
            3,
        );
        r.resolve(now, NAME);
        let (to, q) = r.poll_transmit().unwrap();
        assert_eq!(to, server);
        let reply = answer(&q, &[(TYPE_A, &[127, 0, 0, 1])], 10);
        assert!(!r.handle_input("127.0.0.1:5353".parse().unwrap(), &reply));
        assert!(r.handle_input(server, &reply));
    }

    #[test]
    fn random_bytes_never_panic() {
        let (mut r, _, q) = started();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for _ in 0..20_000 {
            let len = (rng.next_u32() % 80) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            if data.len() >= 4 && rng.next_u32() % 2 == 0 {
                data[..2].copy_from_slice(&q[..2]);
                data[2] = 0x84;
                data[3] = 0;
            }
            r.handle_input(responder(), &data);
        }
    }
}
