//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use netsim::nodes::{Echo, Probe};
use netsim::{HostId, LinkConfig, NatConfig, NatId, NodeId, RealmId, Sim};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The base of virtual time: the one real clock read a test makes.
pub fn base() -> Instant {
    Instant::now()
}

pub const NAT_IP: &str = "203.0.113.1";
pub const CLIENT: &str = "192.168.1.10:5000";
pub const S1: &str = "198.51.100.1";
pub const S2: &str = "198.51.100.2";

/// A client (a `Probe` at 192.168.1.10:5000) behind one NAT, and two servers on the internet:
/// S1 runs echo nodes on ports 3478 and 3479, S2 on port 3478; each server also runs a probe
/// on port 9999 to send unsolicited datagrams.
pub struct NatScenario {
    pub sim: Sim,
    pub nat: NatId,
    pub client_host: HostId,
    pub client: NodeId<Probe>,
    /// S1:3478, S1:3479, S2:3478.
    pub echoes: [(SocketAddr, NodeId<Echo>); 3],
    /// S1:9999, S2:9999.
    pub probes: [(SocketAddr, NodeId<Probe>); 2],
}

impl NatScenario {
    pub fn new(config: NatConfig) -> Self {
        NatScenario::with_seed(config, 1)
    }

    pub fn with_seed(config: NatConfig, seed: u64) -> Self {
        let mut sim = Sim::new(seed, base());
        let nat = sim.add_nat(
            RealmId::INTERNET,
            &[ip(NAT_IP)],
            config,
            LinkConfig::with_latency(ms(5)),
        );
        let home = sim.nat(nat).inside_realm();
        let client_host = sim.add_host(home, &[sa(CLIENT).ip()], LinkConfig::with_latency(ms(1)));
        let client = sim
            .add_node(client_host, &[sa(CLIENT)], Probe::new(sa(CLIENT)))
            .unwrap();
        let s1 = sim.add_host(
            RealmId::INTERNET,
            &[ip(S1)],
            LinkConfig::with_latency(ms(10)),
        );
        let s2 = sim.add_host(
            RealmId::INTERNET,
            &[ip(S2)],
            LinkConfig::with_latency(ms(10)),
        );
        let mut echo =
            |host, addr: SocketAddr| (addr, sim.add_node(host, &[addr], Echo::new()).unwrap());
        let echoes = [
            echo(s1, SocketAddr::new(ip(S1), 3478)),
            echo(s1, SocketAddr::new(ip(S1), 3479)),
            echo(s2, SocketAddr::new(ip(S2), 3478)),
        ];
        let mut probe =
            |host, addr: SocketAddr| (addr, sim.add_node(host, &[addr], Probe::new(addr)).unwrap());
        let probes = [
            probe(s1, SocketAddr::new(ip(S1), 9999)),
            probe(s2, SocketAddr::new(ip(S2), 9999)),
        ];
        NatScenario {
            sim,
            nat,
            client_host,
            client,
            echoes,
            probes,
        }
    }

    /// The client sends to echo `i`; returns the source the echo saw (the external mapping).
    pub fn mapping_towards(&mut self, i: usize) -> SocketAddr {
        let (addr, echo) = self.echoes[i];
        self.sim.node_mut(self.client).send(addr, b"ping".to_vec());
        self.sim.run_for(ms(100));
        self.sim
            .node(echo)
            .received()
            .last()
            .expect("echo got the ping")
            .datagram
            .source
    }

    /// Server probe `i` sends to `to`; returns whether the client received it.
    pub fn unsolicited(&mut self, i: usize, to: SocketAddr) -> bool {
        let before = self.sim.node(self.client).received().len();
        self.sim
            .node_mut(self.probes[i].1)
            .send(to, b"knock".to_vec());
        self.sim.run_for(ms(100));
        let after = self.sim.node(self.client).received();
        after.len() > before && after.last().unwrap().datagram.source == self.probes[i].0
    }
}

/// One record of a pcap file: timestamp and the raw IP packet.
pub struct Record {
    pub ts: Duration,
    pub packet: Vec<u8>,
}

impl Record {
    pub fn source(&self) -> SocketAddr {
        self.addrs().0
    }

    pub fn destination(&self) -> SocketAddr {
        self.addrs().1
    }

    pub fn udp_payload(&self) -> &[u8] {
        &self.packet[self.ip_header_len() + 8..]
    }

    fn ip_header_len(&self) -> usize {
        if self.packet[0] >> 4 == 4 { 20 } else { 40 }
    }

    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        let p = &self.packet;
        let h = self.ip_header_len();
        let port = |o: usize| u16::from_be_bytes([p[h + o], p[h + o + 1]]);
        let (s, d): (IpAddr, IpAddr) = if h == 20 {
            (
                <[u8; 4]>::try_from(&p[12..16]).unwrap().into(),
                <[u8; 4]>::try_from(&p[16..20]).unwrap().into(),
            )
        } else {
            (
                <[u8; 16]>::try_from(&p[8..24]).unwrap().into(),
                <[u8; 16]>::try_from(&p[24..40]).unwrap().into(),
            )
        };
        (SocketAddr::new(s, port(0)), SocketAddr::new(d, port(2)))
    }
}

/// Parse a classic little-endian microsecond pcap with LINKTYPE_RAW.
pub fn parse_pcap(bytes: &[u8]) -> Vec<Record> {
    assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        101,
        "LINKTYPE_RAW"
    );
    let mut records = Vec::new();
    let mut rest = &bytes[24..];
    let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    while !rest.is_empty() {
        let (secs, micros, caplen, origlen) =
            (word(rest, 0), word(rest, 4), word(rest, 8), word(rest, 12));
        assert_eq!(caplen, origlen);
        let end = 16 + caplen as usize;
        records.push(Record {
            ts: Duration::new(u64::from(secs), micros * 1000),
            packet: rest[16..end].to_vec(),
        });
        rest = &rest[end..];
    }
    records
}
