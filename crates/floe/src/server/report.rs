//! The counters line `floe server` prints: `stats key=value ...`, one line, so that scripts
//! and tests can read it.

use drivers::turn_server::TurnServerStats;
use std::fmt::Write;
use std::time::Duration;

/// One `stats` line.
pub fn stats_line(uptime: Duration, s: &TurnServerStats) -> String {
    let c = &s.core;
    let t = &s.stream;
    let mut line = format!("stats uptime={:.1}", uptime.as_secs_f64());
    let fields: [(&str, u64); 28] = [
        ("allocations", c.allocations as u64),
        ("permissions", c.permissions as u64),
        ("channels", c.channels as u64),
        ("to_peer_packets", c.to_peer.packets),
        ("to_peer_bytes", c.to_peer.bytes),
        ("to_client_packets", c.to_client.packets),
        ("to_client_bytes", c.to_client.bytes),
        ("data_indications", c.data_indications),
        ("success_responses", c.success_responses),
        ("error_responses", s.error_responses()),
        ("unauthenticated", c.errors.unauthenticated),
        ("quota_reached", c.errors.quota_reached),
        ("expired_allocations", c.expired_allocations),
        ("failed_binds", c.failed_binds),
        ("drops", s.drops()),
        ("relay_sockets", s.io.relay_sockets as u64),
        ("gso_sends", s.io.gso_sends),
        ("send_errors", s.io.send_errors),
        ("tcp_connections", t.tcp_connections as u64),
        ("tls_connections", t.tls_connections as u64),
        ("stream_bytes_in", t.bytes_in),
        ("stream_bytes_out", t.bytes_out),
        ("stream_dropped", t.dropped_datagrams),
        ("peer_connections", t.peer_connections as u64),
        ("bridges", t.bridges as u64),
        ("bridged_bytes", t.bridged_bytes),
        ("tcp_connects", c.tcp.connects),
        ("tcp_attempts", c.tcp.attempts),
    ];
    for (key, value) in fields {
        let _ = write!(line, " {key}={value}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_key_value_pairs() {
        let mut s = TurnServerStats::default();
        s.core.allocations = 2;
        s.core.to_peer.packets = 7;
        let line = stats_line(Duration::from_millis(1500), &s);
        assert!(
            line.starts_with("stats uptime=1.5 allocations=2 "),
            "{line}"
        );
        assert!(line.contains(" to_peer_packets=7 "), "{line}");
        assert!(!line.contains('\n'));
    }
}
