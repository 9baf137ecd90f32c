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
