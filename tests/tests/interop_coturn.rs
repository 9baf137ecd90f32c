//! floe's TURN client through a real coturn: allocate, permission, channel, relay both
//! ways, delete.

use drivers::turn::Session;
use floe_tests::interop::Coturn;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use turn_proto::client::ClientConfig;

const T: Duration = Duration::from_secs(5);

#[test]
fn floe_client_through_coturn() {
    let Some(coturn) = Coturn::start("floe_client_through_coturn", &[]) else {
        return;
    };
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let config = ClientConfig::new(
        coturn.addr,
        "127.0.0.1:0".parse().unwrap(),
        Coturn::USER,
        Coturn::PASSWORD,
    );
    let mut session = Session::allocate(config, T).expect("allocation through coturn");
    let relayed = session.relayed()[0];
    assert_eq!(relayed.ip(), peer_addr.ip());
    assert_ne!(relayed.port(), coturn.addr.port());

    // A Send indication first (permission only), then ChannelData.
    session.create_permission(&[peer_addr.ip()], T).unwrap();
    session.send_to(peer_addr, b"by send indication").unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by send indication"[..], relayed));

    let channel = session.bind_channel(peer_addr, T).unwrap();
    assert!((0x4000..=0x4FFF).contains(&channel));
    session.send_to(peer_addr, b"by channel").unwrap();
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by channel"[..], relayed));

    // The peer answers; it comes back through coturn as ChannelData.
    peer.send_to(b"pong", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.as_slice()), (peer_addr, &b"pong"[..]));

    // A stranger without a permission is dropped by coturn.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.send_to(b"let me in", relayed).unwrap();
    peer.send_to(b"again", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.as_slice()), (peer_addr, &b"again"[..]));
    let stranger_addr: SocketAddr = stranger.local_addr().unwrap();
    assert!(
        session.recv(Duration::from_millis(300)).is_err(),
        "nothing from {stranger_addr}"
    );

    session.delete(T).unwrap();
}

#[test]
fn wrong_password_is_rejected_by_coturn() {
    let Some(coturn) = Coturn::start("wrong_password_is_rejected_by_coturn", &[]) else {
        return;
    };
    let config = ClientConfig::new(
        coturn.addr,
        "127.0.0.1:0".parse().unwrap(),
        Coturn::USER,
        "not-the-password",
    );
    let err = Session::allocate(config, T).unwrap_err();
    assert!(err.to_string().contains("allocation failed"), "{err}");
}

// --- TURN over TCP and TLS (RFC 8656 §3.1), and RFC 6062 TCP allocations ------------------

use drivers::turn::TlsTrust;
use floe_tests::interop::SelfSignedCert;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use turn_proto::TransportProtocol;
use turn_proto::client::{ClientEvent, ExpiryReason};

fn config_over(server: SocketAddr, transport: TransportProtocol) -> ClientConfig {
    let mut c = ClientConfig::new(
        server,
        "127.0.0.1:0".parse().unwrap(),
        Coturn::USER,
        Coturn::PASSWORD,
    );
    c.transport = transport;
    c
}

/// A UDP peer and the session exchange datagrams through the relay: a Send indication, then
/// ChannelData (padded on the stream) both ways.
fn relay_to_a_udp_peer(session: &mut Session) {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let relayed = session.relayed()[0];
    session.create_permission(&[peer_addr.ip()], T).unwrap();
    session.send_to(peer_addr, b"by send indication").unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"by send indication"[..], relayed));
    session.bind_channel(peer_addr, T).unwrap();
    // 5 bytes: the ChannelData on the stream carries 3 bytes of padding.
    session.send_to(peer_addr, b"chan!").unwrap();
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"chan!"[..], relayed));
    peer.send_to(b"pong", relayed).unwrap();
    let (from, data) = session.recv(T).unwrap();
    assert_eq!((from, data.as_slice()), (peer_addr, &b"pong"[..]));
}

#[test]
fn floe_client_through_coturn_over_tcp() {
    let Some(coturn) = Coturn::start("floe_client_through_coturn_over_tcp", &[]) else {
        return;
    };
    let config = config_over(coturn.addr, TransportProtocol::Tcp);
    let mut session = Session::allocate(config, T).expect("allocation over TCP");
    relay_to_a_udp_peer(&mut session);
    session.delete(T).unwrap();
}

#[test]
fn floe_client_through_coturn_over_tls() {
    let Some(coturn) = Coturn::start_tls("floe_client_through_coturn_over_tls", &[]) else {
        return;
    };
    let config = config_over(coturn.tls_addr, TransportProtocol::Tls);
    // The certificate names IP:127.0.0.1: verified against the address.
    let trust = TlsTrust::from_pem_file(&coturn.cert.cert).unwrap();
    let mut session = Session::allocate_tls(config.clone(), trust, T).expect("over TLS");
    relay_to_a_udp_peer(&mut session);
    session.delete(T).unwrap();
    // And against a DNS name (SNI "localhost").
    let trust = TlsTrust::from_pem_file(&coturn.cert.cert)
        .unwrap()
        .with_server_name("localhost");
    let session = Session::allocate_tls(config, trust, T).expect("over TLS, by name");
    session.delete(T).unwrap();
}

#[test]
fn tls_to_coturn_fails_without_the_right_trust_anchor() {
    let test = "tls_to_coturn_fails_without_the_right_trust_anchor";
    let Some(coturn) = Coturn::start_tls(test, &[]) else {
        return;
    };
    let Some(other) = SelfSignedCert::make(test) else {
        return;
    };
    let config = config_over(coturn.tls_addr, TransportProtocol::Tls);
    let trust = TlsTrust::from_pem_file(&other.cert).unwrap();
    let err = Session::allocate_tls(config.clone(), trust, T).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // The right anchor, but a name the certificate does not carry.
    let trust = TlsTrust::from_pem_file(&coturn.cert.cert)
        .unwrap()
        .with_server_name("turn.example.org");
    let err = Session::allocate_tls(config.clone(), trust, T).unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // TLS without any trust anchor is refused up front.
    let err = Session::allocate(config, T).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn losing_the_control_connection_ends_the_allocation() {
    let Some(coturn) = Coturn::start("losing_the_control_connection_ends_the_allocation", &[])
    else {
        return;
    };
    let config = config_over(coturn.addr, TransportProtocol::Tcp);
    let mut session = Session::allocate(config, T).expect("allocation over TCP");
    drop(coturn); // killed: the connection closes
    let event = session
        .wait(T, |e| matches!(e, ClientEvent::Expired { .. }))
        .unwrap();
    assert_eq!(
        event,
        ClientEvent::Expired {
            reason: ExpiryReason::ConnectionLost
        }
    );
}

/// Both directions of an RFC 6062 peer connection carry bytes as they are.
fn exchange(stream: &mut drivers::turn::PeerStream, peer: &mut TcpStream) {
    stream.write_all(b"from the client").unwrap();
    let mut buf = [0u8; 15];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from the client");
    peer.write_all(b"from the peer").unwrap();
    let mut buf = [0u8; 13];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from the peer");
}

fn rfc6062_through(
    test: &str,
    coturn: SocketAddr,
    transport: TransportProtocol,
    trust: Option<TlsTrust>,
) {
    let mut config = config_over(coturn, transport);
    config.relay_transport = TransportProtocol::Tcp;
    let mut session = match trust {
        Some(t) => Session::allocate_tls(config, t, T),
        None => Session::allocate(config, T),
    }
    .unwrap_or_else(|e| panic!("{test}: TCP allocation: {e}"));
    let relayed = session.relayed()[0];

    // Outgoing: the relay connects to a TCP peer (RFC 6062 §4.3).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = listener.local_addr().unwrap();
    let mut stream = session.connect_peer(peer_addr, T).expect("Connect");
    let (mut peer, from) = listener.accept().unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    assert_eq!(from, relayed, "the peer sees the relayed address");
    assert_eq!(stream.peer(), peer_addr);
    exchange(&mut stream, &mut peer);

    // Incoming: a peer with a permission connects to the relayed address (§4.4).
    let mut incoming = TcpStream::connect_timeout(&relayed, T).expect("connect to the relay");
    incoming.set_read_timeout(Some(T)).unwrap();
    let mut accepted = session.accept_peer(T).expect("ConnectionAttempt");
    accepted.set_read_timeout(Some(T)).unwrap();
    assert_eq!(accepted.peer(), incoming.local_addr().unwrap());
    exchange(&mut accepted, &mut incoming);

    // Closing the data connection closes the peer's side (coturn resets it).
    drop(stream);
    let mut rest = Vec::new();
    match peer.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0, "{rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    session.delete(T).unwrap();
}

#[test]
fn rfc6062_tcp_allocation_through_coturn() {
    let test = "rfc6062_tcp_allocation_through_coturn";
    let Some(coturn) = Coturn::start(test, &[]) else {
        return;
    };
    rfc6062_through(test, coturn.addr, TransportProtocol::Tcp, None);
}

#[test]
fn rfc6062_tcp_allocation_through_coturn_over_tls() {
    let test = "rfc6062_tcp_allocation_through_coturn_over_tls";
    let Some(coturn) = Coturn::start_tls(test, &[]) else {
        return;
    };
    let trust = TlsTrust::from_pem_file(&coturn.cert.cert).unwrap();
    rfc6062_through(test, coturn.tls_addr, TransportProtocol::Tls, Some(trust));
}

/// The blocking ICE flavour relay-only through coturn over TLS: its relayed candidate comes
/// from an allocation made on a TLS connection; the other agent is on host candidates.
#[test]
fn blocking_ice_agent_relay_only_through_coturn_over_tls() {
    use drivers::ice::blocking::IceAgent;
    use ice_core::CandidateType;
    let test = "blocking_ice_agent_relay_only_through_coturn_over_tls";
    let Some(coturn) = Coturn::start_tls(test, &[]) else {
        return;
    };
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut a = IceAgent::builder()
        .controlling(true)
        .host_ips([ip])
        .turn_tls(coturn.tls_addr, Coturn::USER, Coturn::PASSWORD)
        .turn_tls_ca(&coturn.cert.cert)
        .relay_only(true)
        .build()
        .unwrap();
    let mut b = IceAgent::builder().host_ips([ip]).build().unwrap();
    let gather = |agent: &mut IceAgent| {
        let mut out = Vec::new();
        while let Some(c) = agent.next_candidate(T).unwrap() {
            out.push(c);
        }
        out
    };
    let (ca, cb) = (gather(&mut a), gather(&mut b));
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!(ca[0].candidate.kind, CandidateType::Relayed);
    let (creds_a, creds_b) = (a.local_credentials().clone(), b.local_credentials().clone());
    a.set_remote_credentials(&creds_b.ufrag, &creds_b.pwd)
        .unwrap();
    b.set_remote_credentials(&creds_a.ufrag, &creds_a.pwd)
        .unwrap();
    for c in &cb {
        a.add_remote_candidate(&c.sdp()).unwrap();
    }
    for c in &ca {
        b.add_remote_candidate(&c.sdp()).unwrap();
    }
    a.end_of_remote_candidates().unwrap();
    b.end_of_remote_candidates().unwrap();
    let echo = std::thread::spawn(move || {
        let mut conn = b.connect(T).unwrap();
        let got = conn.recv(T).unwrap();
        conn.send(&got).unwrap();
        conn.poll(Duration::from_millis(200)).unwrap();
        conn.close().unwrap();
    });
    let mut conn = a.connect(T).unwrap();
    assert_eq!(conn.selected_pair().0.kind, CandidateType::Relayed);
    conn.send(b"through TLS").unwrap();
    assert_eq!(conn.recv(T).unwrap(), b"through TLS");
    echo.join().unwrap();
    conn.close().unwrap();
}
