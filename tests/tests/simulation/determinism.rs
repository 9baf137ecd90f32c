//! Same seed, same bytes: a whole scenario captured as pcap is reproducible, and the seed
//! matters.

use std::time::Duration;

use floe_tests::sim::{Call, NatKind, Profile, Spec};

/// Runs a lossy port-restricted / symmetric call (random NAT ports, loss, jitter,
/// reordering, duplication, a TURN relay) for 20 s of virtual time with data, and returns
/// the pcap captures of all four hosts.
fn captures(seed: u64) -> Vec<Vec<u8>> {
    let spec = Spec::v4(
        NatKind::PortRestricted,
        NatKind::Symmetric,
        Profile::impaired("10% loss", 0.10),
        seed,
    );
    let mut call = Call::new(spec);
    let ids = call.capture_all();
    assert!(call.connect(Duration::from_secs(30)).is_some());
    call.exchange("pcap", 20, Duration::from_millis(100));
    call.run_for(Duration::from_secs(20));
    ids.into_iter()
        .map(|id| {
            call.sim
                .finish_capture(id)
                .expect("in memory")
                .expect("bytes")
        })
        .collect()
}

#[test]
fn same_seed_same_pcap_other_seed_other_pcap() {
    let first = captures(41);
    let again = captures(41);
    let other = captures(42);
    for (host, pcap) in first.iter().enumerate() {
        // A pcap header and real traffic, not an empty file.
        assert!(pcap.len() > 24 + 100, "host {host}: {} bytes", pcap.len());
        assert_eq!(
            &pcap[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "pcap magic (little endian, µs)"
        );
    }
    assert!(first == again, "same seed, byte-identical captures");
    for (host, (a, b)) in first.iter().zip(&other).enumerate() {
        assert!(a != b, "host {host}: another seed, other bytes");
    }
}
