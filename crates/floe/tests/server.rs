//! `floe server` as a TURN server: the short form and a TOML file, through floe's TURN
//! client, with the counters it prints.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use common::{FloeServer, free_port_below_relays, stat};
use drivers::turn::Session;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;
use turn_proto::client::ClientConfig;

const T: Duration = Duration::from_secs(5);

/// Allocates as `user`, binds a channel to a loopback peer, and relays one datagram each
/// way. Returns the relayed address.
fn relay_once(server: SocketAddr, user: &str, password: &str) -> SocketAddr {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let config = ClientConfig::new(server, "127.0.0.1:0".parse().unwrap(), user, password);
    // The default relay ports overlap the kernel's ephemeral range: a port another socket
    // holds gets a 508 (and is set aside), so a second attempt is allowed.
    let mut session = Session::allocate(config.clone(), T)
        .or_else(|_| Session::allocate(config, T))
        .expect("allocation through floe server");
    let relayed = session.relayed()[0];
    session.bind_channel(peer_addr, T).unwrap();
    session.send_to(peer_addr, b"hello peer").unwrap();
    let mut buf = [0u8; 100];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"hello peer"[..], relayed));
    peer.send_to(b"hello client", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.as_slice()), (peer_addr, &b"hello client"[..]));
    relayed
}

#[test]
fn short_form_relays_and_prints_stats_on_ctrl_c() {
    let listen = format!("127.0.0.1:{}", free_port_below_relays());
    let server = FloeServer::start(&[
        "--listen",
        &listen,
        "--realm",
        "example.org",
        "--user",
        "alice:wonderland",
        "--allow-loopback-peers",
    ]);
    assert_eq!(server.listening, vec![listen.parse().unwrap()]);
    assert!(
        server
            .output
            .iter()
            .any(|l| l == "relay 127.0.0.1 ports 49152-65535"),
        "{:?}",
        server.output
    );
    let relayed = relay_once(server.listening[0], "alice", "wonderland");
    assert!(relayed.port() >= 49152);

    let (status, output) = server.signal_and_wait("INT");
    assert!(status.success(), "{status}");
    assert_eq!(stat(&output, "allocations"), 1);
    assert_eq!(stat(&output, "channels"), 1);
    assert_eq!(stat(&output, "to_peer_packets"), 1);
    assert_eq!(stat(&output, "to_peer_bytes"), 10);
    assert_eq!(stat(&output, "to_client_packets"), 1);
    assert!(stat(&output, "unauthenticated") >= 1, "the first Allocate");
    assert_eq!(stat(&output, "relay_sockets"), 1);
}

#[test]
fn toml_file_relays_and_prints_stats_periodically() {
    let path = std::env::temp_dir().join(format!("floe-server-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
        # A TURN server on loopback for a test.
        listen = ["127.0.0.1:0"]
        realm = "floe.test"
        user = ["bob:builder", "carol:secret"]
        relay-ports = "27000-27099"
        allow-loopback-peers = true
        stats-interval = 1
        "#,
    )
    .unwrap();
    let mut server = FloeServer::start(&["--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(server.listening.len(), 1);
    assert!(
        server
            .output
            .iter()
            .any(|l| l == "relay 127.0.0.1 ports 27000-27099")
    );
    let relayed = relay_once(server.listening[0], "carol", "secret");
    assert!((27000..=27099).contains(&relayed.port()));
    // A periodic line shows the relayed datagrams.
    server.wait_line(T, |l| {
        l.starts_with("stats ") && l.contains(" to_client_packets=1 ")
    });

    let (status, output) = server.signal_and_wait("TERM");
    assert!(status.success(), "{status}");
    assert_eq!(stat(&output, "to_peer_packets"), 1);
    assert_eq!(stat(&output, "to_client_packets"), 1);
    assert_eq!(stat(&output, "error_responses"), 1);
    assert_eq!(stat(&output, "drops"), 0);
}

#[test]
fn flags_override_the_file_and_duration_ends_the_run() {
    let path = std::env::temp_dir().join(format!("floe-server-dur-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "listen = [\"127.0.0.1:0\"]\nuser = [\"a:b\"]\nrelay-ports = \"28000-28009\"\nrealm = \"file\"\n",
    )
    .unwrap();
    let mut server = FloeServer::start(&[
        "--config",
        path.to_str().unwrap(),
        "--realm",
        "flag",
        "--duration",
        "1",
    ]);
    std::fs::remove_file(&path).unwrap();
    assert!(
        server
            .output
            .iter()
            .any(|l| l == "turn realm flag workers 1")
    );
    let (status, output) = server.wait_exit(T);
    assert!(status.success());
    assert_eq!(stat(&output, "allocations"), 0);
}

#[test]
fn without_credentials_it_is_a_stun_server_only() {
    let listen = format!("127.0.0.1:{}", free_port_below_relays());
    let server = FloeServer::start(&["--listen", &listen, "--duration", "20"]);
    let config = ClientConfig::new(
        server.listening[0],
        "127.0.0.1:0".parse().unwrap(),
        "alice",
        "wonderland",
    );
    let err = Session::allocate(config, T).unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}

#[test]
fn bad_settings_exit_1_with_a_reason() {
    let floe = || Command::new(env!("CARGO_BIN_EXE_floe"));
    // TURN on a wildcard address needs --relay-ip.
    let out = floe()
        .args(["server", "--user", "a:b", "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--relay-ip"));
    // A listening port inside the relay range.
    let out = floe()
        .args(["server", "--listen", "127.0.0.1:50000", "--user", "a:b"])
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the relay range"));
    // A user without a password, and a missing file.
    let out = floe().args(["server", "--user", "alice"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = floe()
        .args(["server", "--config", "/nonexistent/floe.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // TLS without a certificate; a certificate that is not there; TCP without TURN.
    for (args, reason) in [
        (
            &["--listen-tls", "127.0.0.1:0", "--user", "a:b"][..],
            "--cert",
        ),
        (
            &[
                "--listen-tls",
                "127.0.0.1:0",
                "--user",
                "a:b",
                "--cert",
                "/nonexistent/cert.pem",
                "--key",
                "/nonexistent/key.pem",
            ][..],
            "/nonexistent/cert.pem",
        ),
        (&["--listen-tcp", "127.0.0.1:0"][..], "--user"),
    ] {
        let out = floe()
            .arg("server")
            .args(args)
            .args(["--duration", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

/// The address after `listening PROTO ` in the server's output.
fn listening(output: &[String], proto: &str) -> Vec<SocketAddr> {
    let prefix = format!("listening {proto} ");
    output
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .collect()
}

#[test]
fn tcp_listener_serves_turn_and_prints_its_address() {
    // TCP only (no UDP listener), port 0: the line tells the port.
    let server = FloeServer::start(&[
        "--listen-tcp",
        "127.0.0.1:0",
        "--user",
        "alice:wonderland",
        "--relay-ports",
        "27100-27199",
        "--tcp-allocations",
    ]);
    assert!(server.listening.is_empty(), "{:?}", server.output);
    let tcp = listening(&server.output, "tcp");
    assert_eq!(tcp.len(), 1, "{:?}", server.output);
    assert_eq!(tcp[0].ip().to_string(), "127.0.0.1");
    assert_ne!(tcp[0].port(), 0);
    // A Binding request over TCP gets its success response on the same connection.
    let mut stream = TcpStream::connect(tcp[0]).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[9; 12]);
    stream.write_all(&request).unwrap();
    let mut header = [0u8; 20];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(&header[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&header[8..], &[9; 12], "same transaction");
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]]))];
    stream.read_exact(&mut rest).unwrap();
    drop(stream);

    let (status, output) = server.signal_and_wait("TERM");
    assert!(status.success());
    assert_eq!(stat(&output, "stream_bytes_in"), 20);
    assert_eq!(stat(&output, "stream_bytes_out"), 20 + rest.len() as u64);
    assert_eq!(stat(&output, "tcp_connections"), 0);
}

#[test]
fn help_explains_the_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--listen",
        "--realm",
        "--user <NAME:PASSWORD>",
        "--secret",
        "--relay-ip",
        "--relay-ports",
        "--allow-peer",
        "--deny-peer",
        "--allow-loopback-peers",
        "--user-quota",
        "--ip-quota",
        "--total-quota",
        "--max-lifetime",
        "--default-lifetime",
        "--workers",
        "--stats-interval",
        "--alternate-ip",
        "--duration",
        "--listen-tcp <ADDR>",
        "--listen-tls <ADDR>",
        "--cert <FILE>",
        "--key <FILE>",
        "--tcp-allocations",
        "listen-tls = ",
        "STUN only",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
