//! TURN over TCP and TLS (RFC 8656 §3.1, §12.5; RFC 8489 §6.2.2): `turn_proto::Client`
//! against `turn_proto::Server` through in-memory connections framed by the real
//! `StreamFramer` on both ends, and the client against a scripted stream server.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

mod common;

use common::*;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    ChannelNumber, Data, ErrorCode, Lifetime, Nonce, Realm, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::framing::{FrameKind, Framing, StreamFramer};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_proto::client::{Client, ClientEvent, ClientState, ExpiryReason, Received};
use turn_proto::server::{DeleteReason, ServerEvent};
use turn_proto::{Input, TransportProtocol};

fn ip(s: &str) -> IpAddr {
    sa(s).ip()
}

/// The transaction IDs of the STUN requests the client wrote, in order.
fn client_request_ids(world: &World) -> Vec<[u8; 12]> {
    let mut ids = Vec::new();
    for w in world.wire.iter().filter(|w| w.from_client) {
        if let Ok(m) = Message::parse(&w.bytes) {
            if m.class() == Class::Request {
                ids.push(*m.transaction_id().as_bytes());
            }
        }
    }
    ids
}

/// Allocates, installs a permission and a channel to PEER.
fn allocated_with_channel(world: &mut World) -> u16 {
    world.advance(Duration::from_millis(1));
    assert_eq!(world.client.state(), ClientState::Allocated);
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER)]))
        .unwrap();
    let channel = world
        .command(|c, now| c.bind_channel(now, sa(PEER)))
        .unwrap();
    assert_eq!(
        world.count_client(|e| matches!(e, ClientEvent::ChannelBound { .. })),
        1
    );
    channel
}

/// Sends `data` to `peer` through the client and writes the transmit on its connection.
fn send(world: &mut World, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let t = world.command(|c, now| c.send_to(now, peer, data)).unwrap();
    assert!(t.transport.is_reliable());
    world.write_as_client(t.source, &t.payload);
    world.pump();
    t.payload
}

#[test]
fn turn_over_tcp_and_tls_lifecycle() {
    for transport in [TransportProtocol::Tcp, TransportProtocol::Tls] {
        let mut world = World::new(
            server_config(false),
            client_config(transport, TransportProtocol::Udp),
            Reads::Whole,
        );
        let channel = allocated_with_channel(&mut world);
        let relayed = world.relayed();
        // The 5-tuple carries the stream transport; the relay is UDP.
        assert!(world.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::AllocationCreated { five_tuple, .. } if five_tuple.transport == transport
        )));
        assert!(world.server_events.iter().any(|(_, e)| matches!(
            e,
            ServerEvent::BindRelay {
                transport: TransportProtocol::Udp,
                ..
            }
        )));

        // Client to peer: ChannelData padded to 4 bytes on the stream (RFC 8656 §12.5), UDP
        // to the peer without padding.
        let wire = send(&mut world, sa(PEER), b"hello");
        assert_eq!(wire.len(), 12);
        assert_eq!(&wire[..4], &[(channel >> 8) as u8, channel as u8, 0, 5]);
        assert_eq!(&wire[9..], &[0, 0, 0]);
        assert_eq!(
            world.udp_to_peers.last(),
            Some(&(sa(PEER), relayed, b"hello".to_vec()))
        );

        // Peer to client: ChannelData written padded on the stream, unpadded by the framer.
        world.udp_from_peer(sa(PEER), relayed, b"abc");
        let last = world.wire.last().unwrap();
        assert!(!last.from_client);
        assert_eq!(last.bytes.len(), 8, "4 + 3 padded to 8");
        assert_eq!(world.peer_data.last(), Some(&(sa(PEER), b"abc".to_vec())));

        // Without a channel: Send and Data indications, over the same connection.
        world
            .command(|c, now| c.create_permission(now, &[ip(PEER2)]))
            .unwrap();
        send(&mut world, sa(PEER2), b"indication");
        assert_eq!(
            world.udp_to_peers.last(),
            Some(&(sa(PEER2), relayed, b"indication".to_vec()))
        );
        world.udp_from_peer(sa(PEER2), relayed, b"data indication");
        assert_eq!(
            world.peer_data.last(),
            Some(&(sa(PEER2), b"data indication".to_vec()))
        );

        // Refreshes keep everything alive for an hour; every request is sent once.
        world.advance(Duration::from_secs(3600));
        assert!(world.count_client(|e| matches!(e, ClientEvent::Refreshed { .. })) >= 6);
        assert_eq!(world.server.allocation_count(), 1);
        assert_eq!(world.server.stats().permissions, 2);
        assert_eq!(world.server.stats().channels, 1);
        let ids = client_request_ids(&world);
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "no retransmission on a stream");
        world.udp_from_peer(sa(PEER), relayed, b"still there");
        assert_eq!(world.peer_data.last().unwrap().1, b"still there");

        // The connection goes: the allocation is gone on both sides.
        world.close(sa(LOCAL));
        world.pump();
        assert_eq!(world.server.allocation_count(), 0);
        assert_eq!(
            world.count_server(|e| matches!(
                e,
                ServerEvent::AllocationDeleted {
                    reason: DeleteReason::ConnectionClosed,
                    ..
                }
            )),
            1
        );
        assert_eq!(
            world.count_server(
                |e| matches!(e, ServerEvent::ReleaseRelay { relayed: r, .. } if *r == relayed)
            ),
            1
        );
        assert_eq!(world.client.state(), ClientState::Expired);
        assert!(matches!(
            world.client_events.last(),
            Some((
                _,
                ClientEvent::Expired {
                    reason: ExpiryReason::ConnectionLost
                }
            ))
        ));
        assert_eq!(world.client.poll_timeout(), None);
        // Nothing reaches the client through the relay any more.
        let before = world.wire.len();
        world.udp_from_peer(sa(PEER), relayed, b"late");
        assert_eq!(world.wire.len(), before);
    }
}

/// A session over TCP touching every kind of message both ways; returns everything
/// observable: what was written on the wire and when, both machines' events, and what
/// reached peers and the application.
fn session(reads: Reads) -> Transcript<Vec<(SocketAddr, Vec<u8>)>> {
    let mut world = World::new(
        server_config(false),
        client_config(TransportProtocol::Tcp, TransportProtocol::Udp),
        reads,
    );
    let _ = allocated_with_channel(&mut world);
    let relayed = world.relayed();
    world
        .command(|c, now| c.create_permission(now, &[ip(PEER2)]))
        .unwrap();
    for n in 0..6usize {
        // Payload lengths 0..5: every padding length on the stream.
        let data = vec![n as u8; n];
        send(&mut world, sa(PEER), &data);
        world.udp_from_peer(sa(PEER), relayed, &data);
        send(&mut world, sa(PEER2), &data);
        world.udp_from_peer(sa(PEER2), relayed, &data);
    }
    world.advance(Duration::from_secs(700));
    world.command(|c, now| c.delete(now));
    world.advance(Duration::from_secs(1));
    world.transcript(|w| w.peer_data.clone())
}

#[test]
fn every_message_split_at_every_offset() {
    let whole = session(Reads::Whole);
    assert!(whole.client_events.iter().any(|e| e.contains("Deleted")));
    let longest = whole.wire.iter().map(|w| w.bytes.len()).max().unwrap();
    assert!(longest > 100);
    for k in 1..=longest {
        assert_eq!(session(Reads::SplitAt(k)), whole, "split at {k}");
    }
    assert_eq!(session(Reads::Chunks(1)), whole, "a byte at a time");
    assert_eq!(session(Reads::Chunks(7)), whole, "7 bytes at a time");
}

#[test]
fn many_messages_in_one_read() {
    let mut world = World::new(
        server_config(false),
        client_config(TransportProtocol::Tcp, TransportProtocol::Udp),
        Reads::Whole,
    );
    world.advance(Duration::from_millis(1));
    // Three requests written before anything is read: one read at the server.
    let peers = ["198.51.100.1:1", "198.51.100.2:1", "198.51.100.3:1"].map(sa);
    world
        .client
        .create_permission(world.now, &[peers[0].ip()])
        .unwrap();
    world.client.bind_channel(world.now, peers[1]).unwrap();
    world.client.bind_channel(world.now, peers[2]).unwrap();
    let writes_before = world.wire.len();
    world.pump();
    let burst: Vec<_> = world.wire[writes_before..]
        .iter()
        .take_while(|w| w.from_client)
        .collect();
    assert_eq!(burst.len(), 3);
    assert_eq!(world.server.stats().channels, 2);
    assert_eq!(
        world.count_client(|e| matches!(e, ClientEvent::ChannelBound { .. })),
        2
    );
    // A hundred ChannelData messages of every padding length in one read, and back.
    let relayed = world.relayed();
    let mut burst = Vec::new();
    for n in 0..100usize {
        let t = world
            .client
            .send_to(world.now, peers[1 + n % 2], &vec![n as u8; n % 9])
            .unwrap();
        burst.extend_from_slice(&t.payload);
    }
    world.write_as_client(sa(LOCAL), &burst);
    world.pump();
    let to_peers = &world.udp_to_peers[world.udp_to_peers.len() - 100..];
    for (n, (peer, from, data)) in to_peers.iter().enumerate() {
        assert_eq!((*peer, *from), (peers[1 + n % 2], relayed));
        assert_eq!(data, &vec![n as u8; n % 9]);
    }
    // The server's answers to several requests arrive in one read too.
    world
        .client
        .create_permission(world.now, &["198.51.100.9".parse::<IpAddr>().unwrap()])
        .unwrap();
    world
        .client
        .create_permission(world.now, &["198.51.100.10".parse::<IpAddr>().unwrap()])
        .unwrap();
    world.pump();
    assert_eq!(
        world.count_client(|e| matches!(e, ClientEvent::PermissionCreated { .. })),
        3
    );
}

#[test]
fn oversized_or_unframeable_streams_close_the_connection() {
    // A driver that accepts frames of at most 2 KiB: a 4 KiB ChannelData is a framing
    // error at the server, which closes the connection; the allocation goes with it.
    let mut world = World::new(
        server_config(false),
        client_config(TransportProtocol::Tcp, TransportProtocol::Udp),
        Reads::Chunks(512),
    );
    world.max_frame = 2048;
    allocated_with_channel(&mut world);
    send(&mut world, sa(PEER), &[7; 4000]);
    assert_eq!(world.framing_errors.len(), 1);
    assert!(
        world.framing_errors[0].1.contains("exceeds 2048"),
        "{:?}",
        world.framing_errors
    );
    assert!(world.conn(sa(LOCAL)).unwrap().closed);
    assert_eq!(world.server.allocation_count(), 0);
    assert!(world.server_events.iter().any(|(_, e)| matches!(
        e,
        ServerEvent::AllocationDeleted {
            reason: DeleteReason::ConnectionClosed,
            ..
        }
    )));
    assert_eq!(world.client.state(), ClientState::Expired);

    // Bytes that are neither STUN nor ChannelData towards the client (a TLS alert record, as
    // a middlebox might send): its driver closes.
    let mut world = World::new(
        server_config(false),
        client_config(TransportProtocol::Tls, TransportProtocol::Udp),
        Reads::Whole,
    );
    allocated_with_channel(&mut world);
    world.inject_to_client(sa(LOCAL), &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    assert!(world.framing_errors[0].1.contains("invalid first byte"));
    assert_eq!(world.client.state(), ClientState::Expired);
    assert_eq!(world.server.allocation_count(), 0);
}

#[test]
fn same_seed_same_bytes_over_streams() {
    assert_eq!(session(Reads::Chunks(3)), session(Reads::Chunks(3)));
}

// ---------------------------------------------------------------------------------------
// The client against a scripted stream server
// ---------------------------------------------------------------------------------------

const SCRIPT_NONCE: &[u8] = b"plain-nonce-no-cookie";

/// A TURN server reduced to a script: it reads the client's stream with a `StreamFramer`,
/// answers Allocate (401, then success), CreatePermission and ChannelBind, and writes its
/// answers, a ChannelData and a Data indication in one write.
struct ScriptedStreamServer {
    framer: StreamFramer,
    key: IntegrityKey,
    requests: Vec<(Method, [u8; 12])>,
    channel: Option<(u16, SocketAddr)>,
    client_channel_data: Vec<Vec<u8>>,
}

impl ScriptedStreamServer {
    fn new() -> Self {
        ScriptedStreamServer {
            framer: StreamFramer::new(Framing::StunAndChannelData),
            key: LongTermKey::derive(Algorithm::Md5, USER, REALM, PASSWORD).integrity_key(),
            requests: Vec::new(),
            channel: None,
            client_channel_data: Vec::new(),
        }
    }

    /// Reads what the client wrote; returns what the server writes back.
    fn read(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.framer.push(bytes).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = self.framer.next_frame().unwrap() {
            frames.push((f.kind, f.data.to_vec()));
        }
        let mut out = Vec::new();
        for (kind, frame) in frames {
            match kind {
                FrameKind::ChannelData => self.client_channel_data.push(frame),
                _ => out.extend(self.answer(&frame)),
            }
        }
        out
    }

    fn answer(&mut self, bytes: &[u8]) -> Vec<u8> {
        let m = Message::parse(bytes).unwrap();
        if m.class() != Class::Request {
            return Vec::new();
        }
        let tid = m.transaction_id();
        self.requests.push((m.method(), *tid.as_bytes()));
        let mut buf = vec![0u8; 512];
        if !m.has_message_integrity() {
            let t = MessageType::new(m.method(), Class::Error);
            let mut b = MessageBuilder::new(&mut buf, t, tid).unwrap();
            b.add(&ErrorCode::with_default_reason(401).unwrap())
                .unwrap();
            b.add(&Realm::new(REALM).unwrap()).unwrap();
            b.add(&Nonce::new(SCRIPT_NONCE).unwrap()).unwrap();
            return b.finish().to_vec();
        }
        m.verify_integrity(&self.key).unwrap();
        let t = MessageType::new(m.method(), Class::Success);
        let mut b = MessageBuilder::new(&mut buf, t, tid).unwrap();
        let mut extra = Vec::new();
        match m.method() {
            Method::ALLOCATE => {
                b.add(&XorRelayedAddress(sa("192.0.2.1:50000"))).unwrap();
                b.add(&Lifetime(600)).unwrap();
                b.add(&XorMappedAddress(sa(LOCAL))).unwrap();
            }
            Method::CHANNEL_BIND => {
                let ChannelNumber(n) = m.require::<ChannelNumber>().unwrap();
                let XorPeerAddress(peer) = m.require::<XorPeerAddress>().unwrap();
                self.channel = Some((n, peer));
                // Right behind the response, in the same write: peer data on the channel
                // (padded) and as a Data indication.
                extra.extend(turn_proto::channel_data::encode(n, b"via channel", true).unwrap());
                let mut ind = vec![0u8; 128];
                let t = MessageType::new(Method::DATA, Class::Indication);
                let mut d = MessageBuilder::new(&mut ind, t, TransactionId::new([9; 12])).unwrap();
                d.add(&XorPeerAddress(peer)).unwrap();
                d.add(&Data(b"via indication")).unwrap();
                extra.extend_from_slice(d.finish());
            }
            _ => {}
        }
        b.add_message_integrity(&self.key).unwrap();
        b.add_fingerprint().unwrap();
        let mut out = b.finish().to_vec();
        out.extend(extra);
        out
    }
}

/// The client, the scripted server, and the client's side of the connection.
struct ScriptedRun {
    now: Instant,
    client: Client,
    server: ScriptedStreamServer,
    framer: StreamFramer,
    peer_data: Vec<(SocketAddr, Vec<u8>)>,
}

impl ScriptedRun {
    /// Writes what the client sends, lets the server answer, and feeds the answer to the
    /// client 3 bytes at a time, until nothing moves.
    fn exchange(&mut self) {
        loop {
            let mut to_server = Vec::new();
            while let Some(t) = self.client.poll_transmit() {
                assert_eq!(
                    (t.transport, t.source, t.destination),
                    (TransportProtocol::Tcp, sa(LOCAL), sa(LISTEN))
                );
                to_server.extend(t.payload);
            }
            if to_server.is_empty() {
                return;
            }
            let reply = self.server.read(&to_server);
            for chunk in reply.chunks(3) {
                self.framer.push(chunk).unwrap();
                while let Some(f) = self.framer.next_frame().unwrap() {
                    let input = Input {
                        transport: TransportProtocol::Tcp,
                        source: sa(LISTEN),
                        destination: sa(LOCAL),
                        data: f.data,
                    };
                    if let Received::PeerData { peer, data } =
                        self.client.handle_input(self.now, input)
                    {
                        self.peer_data.push((peer, data.to_vec()));
                    }
                }
            }
        }
    }
}

#[test]
fn client_over_tcp_against_a_scripted_stream_server() {
    let now = Instant::now();
    let mut config = client_config(TransportProtocol::Tcp, TransportProtocol::Udp);
    config.keepalive_interval = None;
    let mut run = ScriptedRun {
        now,
        client: Client::new(config, 5, now),
        server: ScriptedStreamServer::new(),
        framer: StreamFramer::new(Framing::StunAndChannelData),
        peer_data: Vec::new(),
    };
    run.exchange();
    assert_eq!(run.client.state(), ClientState::Allocated);
    run.client.bind_channel(now, sa(PEER)).unwrap();
    run.exchange();
    // Both kinds of peer data, written right behind the ChannelBind response; the
    // ChannelData unpadded by the framer.
    assert_eq!(
        run.peer_data,
        [
            (sa(PEER), b"via channel".to_vec()),
            (sa(PEER), b"via indication".to_vec())
        ]
    );
    // ChannelData from the client is padded on the stream.
    let t = run.client.send_to(now, sa(PEER), b"12345").unwrap();
    assert_eq!(t.payload.len(), 12);
    run.server.read(&t.payload);
    assert_eq!(run.server.client_channel_data.len(), 1);
    assert_eq!(&run.server.client_channel_data[0][4..], b"12345");

    // The server goes silent: refreshes go out once each and time out after Ti = 39.5 s;
    // on streams nothing is retransmitted (RFC 8489 §6.2.2). The allocation expires.
    let mut sent = Vec::new();
    let mut now = now;
    while let Some(t) = run.client.poll_timeout() {
        now = t;
        run.client.handle_timeout(now);
        while let Some(t) = run.client.poll_transmit() {
            assert!(t.transport.is_reliable());
            let m = Message::parse(&t.payload).unwrap();
            sent.push((now - run.now, m.method(), *m.transaction_id().as_bytes()));
        }
    }
    assert!(sent.iter().any(|s| s.1 == Method::REFRESH));
    let ids: HashSet<_> = sent.iter().map(|s| s.2).collect();
    assert_eq!(
        ids.len(),
        sent.len(),
        "no request was retransmitted: {sent:?}"
    );
    let mut events = Vec::new();
    while let Some(e) = run.client.poll_event() {
        events.push(e);
    }
    assert!(matches!(
        events.last(),
        Some(ClientEvent::Expired {
            reason: ExpiryReason::Failure(_)
        })
    ));

    // Another run: the connection is lost while allocated. The allocation ends at once.
    let mut config = client_config(TransportProtocol::Tcp, TransportProtocol::Udp);
    config.keepalive_interval = None;
    let mut run = ScriptedRun {
        now,
        client: Client::new(config, 6, now),
        server: ScriptedStreamServer::new(),
        framer: StreamFramer::new(Framing::StunAndChannelData),
        peer_data: Vec::new(),
    };
    run.exchange();
    while run.client.poll_event().is_some() {}
    run.client.connection_lost(now);
    assert_eq!(run.client.state(), ClientState::Expired);
    assert_eq!(
        run.client.poll_event(),
        Some(ClientEvent::Expired {
            reason: ExpiryReason::ConnectionLost
        })
    );
    assert_eq!(run.client.poll_timeout(), None);
    assert!(run.client.poll_transmit().is_none());
}
