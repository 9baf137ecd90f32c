//! Pcap captures: what they contain, that a run is a pure function of its seed, and (when
//! tshark is installed) that Wireshark decodes them.

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use common::{NAT_IP, base, ip, ms, parse_pcap, sa};
use netsim::nodes::{Echo, Pinger};
use netsim::{CaptureSink, LinkConfig, NatConfig, RealmId, Sim};

const CLIENT: &str = "192.168.1.10:5000";
const SERVER: &str = "198.51.100.1:3478";

/// A client behind a NAT pinging an echo server for two seconds over lossy, jittery,
/// duplicating links, with captures on the client host, the NAT uplink and the server.
fn lossy_run(seed: u64) -> [Vec<u8>; 3] {
    let mut sim = Sim::new(seed, base());
    let bad = LinkConfig {
        latency: ms(20),
        jitter: ms(15),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        ..LinkConfig::default()
    };
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip(NAT_IP)],
        NatConfig::symmetric(),
        bad.clone(),
    );
    let home = sim.nat(nat).inside_realm();
    let ch = sim.add_host(home, &[sa(CLIENT).ip()], bad.clone());
    let sh = sim.add_host(RealmId::INTERNET, &[sa(SERVER).ip()], bad);
    let start = sim.now();
    let pinger = Pinger::new(sa(CLIENT), sa(SERVER), ms(20), start).payload_len(100);
    sim.add_node(ch, &[sa(CLIENT)], pinger).unwrap();
    sim.add_node(sh, &[sa(SERVER)], Echo::new()).unwrap();
    let captures = [
        sim.capture_host(ch, CaptureSink::memory()),
        sim.capture_link(sim.nat(nat).uplink(), CaptureSink::memory()),
        sim.capture_host(sh, CaptureSink::memory()),
    ];
    sim.run_for(Duration::from_secs(2));
    captures.map(|c| sim.finish_capture(c).unwrap().unwrap())
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = lossy_run(7);
    let b = lossy_run(7);
    let c = lossy_run(8);
    for i in 0..3 {
        assert!(parse_pcap(&a[i]).len() > 50, "capture {i} has traffic");
        assert_eq!(a[i], b[i], "capture {i}: same seed, byte-identical");
        assert_ne!(a[i], c[i], "capture {i}: other seed, other bytes");
    }
}

#[test]
fn captures_show_each_side_of_the_nat_in_virtual_time() {
    let mut sim = Sim::new(1, base());
    sim.set_pcap_epoch(Duration::from_secs(1_700_000_000));
    let nat = sim.add_nat(
        RealmId::INTERNET,
        &[ip(NAT_IP)],
        NatConfig::port_restricted_cone(),
        LinkConfig::with_latency(ms(10)),
    );
    let home = sim.nat(nat).inside_realm();
    let ch = sim.add_host(home, &[sa(CLIENT).ip()], LinkConfig::with_latency(ms(1)));
    let sh = sim.add_host(RealmId::INTERNET, &[sa(SERVER).ip()], LinkConfig::default());
    let start = sim.now();
    let pinger = Pinger::new(sa(CLIENT), sa(SERVER), ms(100), start).rounds(1);
    sim.add_node(ch, &[sa(CLIENT)], pinger).unwrap();
    sim.add_node(sh, &[sa(SERVER)], Echo::new()).unwrap();
    let host_cap = sim.capture_host(ch, CaptureSink::memory());
    let uplink_cap = sim.capture_link(sim.nat(nat).uplink(), CaptureSink::memory());
    sim.run_for(Duration::from_secs(1));

    let epoch = Duration::from_secs(1_700_000_000);
    let host = parse_pcap(sim.capture_bytes(host_cap).unwrap());
    let summary: Vec<_> = host
        .iter()
        .map(|r| (r.ts - epoch, r.source(), r.destination()))
        .collect();
    assert_eq!(
        summary,
        [
            (ms(0), sa(CLIENT), sa(SERVER)),
            (ms(22), sa(SERVER), sa(CLIENT)),
        ],
        "the host sees its private address; sent at 0, back after 2 x (1 + 10) ms"
    );
    let uplink = parse_pcap(sim.capture_bytes(uplink_cap).unwrap());
    let external = sa("203.0.113.1:5000");
    let summary: Vec<_> = uplink
        .iter()
        .map(|r| (r.ts - epoch, r.source(), r.destination()))
        .collect();
    assert_eq!(
        summary,
        [
            (ms(11), external, sa(SERVER)),
            (ms(21), sa(SERVER), external)
        ],
        "the uplink sees the translated address, when each datagram comes out of it"
    );
    assert_eq!(&uplink[0].udp_payload()[..8], &0u64.to_be_bytes());
    let bytes = sim.finish_capture(host_cap).unwrap().unwrap();
    assert_eq!(parse_pcap(&bytes).len(), 2);
    assert_eq!(sim.capture_bytes(host_cap), None, "finished");
}

/// A `Write` that shares its buffer, to check the writer sink.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Write` that always fails.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn captures_stream_to_any_writer_and_report_write_errors() {
    let mut sim = Sim::new(2, base());
    let (a, b) = (sa("[2001:db8::1]:1"), sa("192.0.2.2:2"));
    let h = sim.add_host(RealmId::INTERNET, &[a.ip(), b.ip()], LinkConfig::default());
    let shared = Shared::default();
    let cap = sim.capture_host(h, CaptureSink::writer(shared.clone()));
    let broken = sim.capture_host(h, CaptureSink::writer(Broken));
    let start = sim.now();
    let pinger = Pinger::new(a, sa("[2001:db8::1]:7"), ms(10), start).rounds(2);
    sim.add_node(h, &[a], pinger).unwrap();
    sim.add_node(h, &[sa("[2001:db8::1]:7")], Echo::new())
        .unwrap();
    sim.run_for(ms(100));
    assert_eq!(sim.capture_bytes(cap), None, "not a memory capture");
    assert_eq!(sim.finish_capture(cap).unwrap(), None);
    let records = parse_pcap(&shared.0.borrow());
    // Two pings and two echoes, each seen leaving and arriving on the same host.
    assert_eq!(records.len(), 8);
    assert!(
        records.iter().all(|r| r.packet[0] >> 4 == 6),
        "IPv6 packets"
    );
    assert_eq!(
        sim.finish_capture(broken).unwrap_err().to_string(),
        "disk full"
    );
}

/// Wireshark's dissectors recognise a STUN Binding request on port 3478 in our capture.
#[test]
fn tshark_decodes_stun() {
    let interop = std::env::var("FLOE_INTEROP").is_ok_and(|v| v == "1");
    let version = std::process::Command::new("tshark")
        .arg("--version")
        .output();
    if !version.is_ok_and(|o| o.status.success()) {
        assert!(!interop, "FLOE_INTEROP=1 but tshark is not installed");
        // Straight to stderr, not through the test harness's capture, so it shows.
        let _ = writeln!(
            std::io::stderr(),
            "tshark_decodes_stun: SKIPPED: tshark not installed (FLOE_INTEROP=1 requires it)"
        );
        return;
    }

    let mut sim = Sim::new(3, base());
    let (c4, s4) = (sa("192.0.2.1:54321"), sa("192.0.2.2:3478"));
    let (c6, s6) = (sa("[2001:db8::1]:54321"), sa("[2001:db8::2]:3478"));
    let hc = sim.add_host(
        RealmId::INTERNET,
        &[c4.ip(), c6.ip()],
        LinkConfig::default(),
    );
    let hs = sim.add_host(
        RealmId::INTERNET,
        &[s4.ip(), s6.ip()],
        LinkConfig::default(),
    );
    let client = sim
        .add_node(hc, &[c4, c6], netsim::nodes::Probe::new(c4))
        .unwrap();
    sim.add_node(hs, &[s4, s6], Echo::new()).unwrap();
    let cap = sim.capture_host(hc, CaptureSink::memory());
    // STUN Binding request: type 0x0001, length 0, magic cookie, 96-bit transaction id.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(b"netsim-tx-id");
    sim.node_mut(client).send(s4, stun.clone());
    sim.node_mut(client)
        .send_datagram(netsim::Datagram::udp(c6, s6, stun));
    sim.run_for(ms(10));
    let bytes = sim.finish_capture(cap).unwrap().unwrap();

    let path = std::env::temp_dir().join(format!("netsim-tshark-{}.pcap", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new("tshark")
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.protocols",
            "-e",
            "_ws.expert.severity",
            "-r",
        ])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "two requests, two echoes:\n{text}");
    for line in &lines {
        let mut fields = line.split('\t');
        let protocols = fields.next().unwrap();
        assert!(
            protocols.ends_with(":udp:stun"),
            "not decoded as STUN: {line}"
        );
        assert!(
            protocols.starts_with("raw:ip:") || protocols.starts_with("raw:ipv6:"),
            "{line}"
        );
        assert_eq!(
            fields.next().unwrap_or(""),
            "",
            "expert info (bad checksum?): {line}"
        );
    }
}
