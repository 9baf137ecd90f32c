//! `turn_proto::Client` against `turn_proto::Server`, in memory on a virtual clock: the
//! whole lifecycle, hours of refreshes, REST credentials, and 20% loss.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use turn_proto::Input;
use turn_proto::client::{Client, ClientConfig, ClientEvent, ClientState, Received, SendError};
use turn_proto::server::{
    RelayBinding, RelayRange, Server, ServerConfig, ServerInput, ServerOutput, rest_credentials,
};

const LISTEN: &str = "192.0.2.1:3478";
const LOCAL: &str = "10.0.0.2:5000";
const PEER: &str = "198.51.100.1:7000";
const PEER2: &str = "198.51.100.2:7000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn server_config() -> ServerConfig {
    let mut c = ServerConfig::new("example.org");
    c.relays
        .push(RelayRange::dynamic("192.0.2.1".parse().unwrap()));
    c.add_user("alice", "wonderland");
    c.relay_binding = RelayBinding::Automatic;
    c
}

/// Client, server and peers wired together, with optional loss of every n-th control
/// datagram (requests, responses, indications between client and server).
struct Net {
    now: Instant,
    client: Client,
    server: Server,
    events: Vec<ClientEvent>,
    /// What peers received: (peer, relayed address it came from, bytes).
    at_peers: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// What the client application received from peers.
    at_client: Vec<(SocketAddr, Vec<u8>)>,
    drop_every: Option<usize>,
    seen: usize,
    dropped: usize,
}

impl Net {
    fn new(server: ServerConfig, client: ClientConfig) -> Net {
        let now = Instant::now();
        Net {
            now,
            server: Server::new(server, 11, now).unwrap(),
            client: Client::new(client, 22, now),
            events: Vec::new(),
            at_peers: Vec::new(),
            at_client: Vec::new(),
            drop_every: None,
            seen: 0,
            dropped: 0,
        }
    }

    fn lost(&mut self) -> bool {
        self.seen += 1;
        let lost = self.drop_every.is_some_and(|n| self.seen % n == 0);
        self.dropped += usize::from(lost);
        lost
    }

    /// Client datagram into the server; relayed output goes to the peers.
    fn deliver_to_server(&mut self, source: SocketAddr, destination: SocketAddr, payload: &[u8]) {
        let mut buf = payload.to_vec();
        if let ServerOutput::Send(d) = self
            .server
            .handle_input(self.now, ServerInput::udp(source, destination, &mut buf))
        {
            self.at_peers
                .push((d.destination, d.source, d.data.to_vec()));
        }
    }

    /// Delivers everything in flight until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                if !self.lost() {
                    self.deliver_to_server(t.source, t.destination, &t.payload);
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                if !self.lost() {
                    let input = Input {
                        transport: t.transport,
                        source: t.source,
                        destination: t.destination,
                        data: &t.payload,
                    };
                    assert_eq!(
                        self.client.handle_input(self.now, input),
                        Received::Consumed
                    );
                }
            }
            while self.server.poll_event().is_some() {}
            while let Some(e) = self.client.poll_event() {
                moved = true;
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs both machines' timers up to `until`.
    fn advance_to(&mut self, until: Instant) {
        self.pump();
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
        self.client.handle_timeout(until);
        self.server.handle_timeout(until);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.advance_to(until);
    }

    /// A datagram from `peer` to the client's relayed address.
    fn deliver_from_peer(&mut self, peer: SocketAddr, relayed: SocketAddr, data: &[u8]) {
        let mut buf = data.to_vec();
        if let ServerOutput::Send(d) = self
            .server
            .handle_input(self.now, ServerInput::udp(peer, relayed, &mut buf))
        {
            let bytes = d.data.to_vec();
            let input = Input {
                transport: d.transport,
                source: d.source,
                destination: d.destination,
                data: &bytes,
            };
            if let Received::PeerData { peer, data } = self.client.handle_input(self.now, input) {
                self.at_client.push((peer, data.to_vec()));
            }
        }
    }

    fn count(&self, f: impl Fn(&ClientEvent) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    fn relayed(&self) -> SocketAddr {
        self.client.relayed_addresses()[0]
    }
}

#[test]
fn full_lifecycle_and_three_hours_of_refreshes() {
    let mut net = Net::new(
        server_config(),
        ClientConfig::new(sa(LISTEN), sa(LOCAL), "alice", "wonderland"),
    );
    net.advance(Duration::from_millis(1));
    match &net.events[0] {
        ClientEvent::Allocated {
            relayed,
            mapped,
            lifetime,
            ..
        } => {
            assert_eq!(relayed[0].ip(), "192.0.2.1".parse::<IpAddr>().unwrap());
            assert_eq!(*mapped, Some(sa(LOCAL)));
            assert_eq!(*lifetime, Duration::from_secs(600));
        }
        other => panic!("{other:?}"),
    }
    let relayed = net.relayed();

    // Before any permission, sending is refused locally and nothing reaches the server.
    assert!(matches!(
        net.client.send_to(net.now, sa(PEER), b"x"),
        Err(SendError::NoPermission(_))
    ));

    net.client
        .create_permission(net.now, &[sa(PEER).ip()])
        .unwrap();
    let channel = net.client.bind_channel(net.now, sa(PEER2)).unwrap();
    net.advance(Duration::from_millis(1));
    assert_eq!(
        net.count(|e| matches!(e, ClientEvent::PermissionCreated { .. })),
        1
    );
    assert_eq!(
        net.count(|e| matches!(e, ClientEvent::ChannelBound { channel: c, .. } if *c == channel)),
        1
    );

    // Client -> peers: a Send indication to PEER, ChannelData to PEER2.
    let t = net.client.send_to(net.now, sa(PEER), b"via send").unwrap();
    net.deliver_to_server(t.source, t.destination, &t.payload);
    let t = net
        .client
        .send_to(net.now, sa(PEER2), b"via channel")
        .unwrap();
    assert_eq!(
        u16::from_be_bytes([t.payload[0], t.payload[1]]),
        channel,
        "ChannelData once bound"
    );
    net.deliver_to_server(t.source, t.destination, &t.payload);
    assert_eq!(
        net.at_peers,
        [
            (sa(PEER), relayed, b"via send".to_vec()),
            (sa(PEER2), relayed, b"via channel".to_vec())
        ]
    );

    // Peers -> client: through a Data indication and through the channel.
    net.deliver_from_peer(sa(PEER), relayed, b"back by data");
    net.deliver_from_peer(sa(PEER2), relayed, b"back by channel");
    // A peer without a permission does not get through.
    net.deliver_from_peer(sa("198.51.100.9:1"), relayed, b"stranger");
    assert_eq!(
        net.at_client,
        [
            (sa(PEER), b"back by data".to_vec()),
            (sa(PEER2), b"back by channel".to_vec())
        ]
    );

    // Three hours: the allocation (600 s, refreshed about every 540 s), the permission
    // (300 s) and the channel (600 s) are kept alive, and data still flows at the end.
    net.advance(Duration::from_secs(3 * 3600));
    let unexpected: Vec<_> = net
        .events
        .iter()
        .filter(|e| {
            !matches!(
                e,
                ClientEvent::Allocated { .. }
                    | ClientEvent::Refreshed { .. }
                    | ClientEvent::PermissionCreated { .. }
                    | ClientEvent::ChannelBound { .. }
            )
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let refreshes = net.count(|e| matches!(e, ClientEvent::Refreshed { .. }));
    assert!(
        (19..=22).contains(&refreshes),
        "about one refresh per 540 s over 3 h: {refreshes}"
    );
    assert_eq!(net.client.state(), ClientState::Allocated);
    net.at_peers.clear();
    let t = net
        .client
        .send_to(net.now, sa(PEER2), b"still here")
        .unwrap();
    net.deliver_to_server(t.source, t.destination, &t.payload);
    assert_eq!(net.at_peers, [(sa(PEER2), relayed, b"still here".to_vec())]);
    net.at_client.clear();
    net.deliver_from_peer(sa(PEER), relayed, b"and back");
    assert_eq!(net.at_client, [(sa(PEER), b"and back".to_vec())]);
    assert_eq!(net.server.allocation_count(), 1);

    // Delete: the server forgets the allocation.
    net.client.delete(net.now);
    net.advance(Duration::from_millis(1));
    assert_eq!(net.events.last(), Some(&ClientEvent::Deleted));
    assert_eq!(net.server.allocation_count(), 0);
}

#[test]
fn permission_lapses_when_the_client_stops_refreshing_it() {
    let mut net = Net::new(
        server_config(),
        ClientConfig::new(sa(LISTEN), sa(LOCAL), "alice", "wonderland"),
    );
    net.advance(Duration::from_millis(1));
    net.client
        .create_permission(net.now, &[sa(PEER).ip()])
        .unwrap();
    net.advance(Duration::from_millis(1));
    let relayed = net.relayed();
    assert!(net.client.remove_permission(sa(PEER).ip()));
    net.advance(Duration::from_secs(301));
    net.deliver_from_peer(sa(PEER), relayed, b"late");
    assert!(
        net.at_client.is_empty(),
        "the server's permission expired after 300 s"
    );
}

#[test]
fn rest_credentials_valid_and_expired() {
    let secret = b"north-wind";
    let mut sc = server_config();
    sc.rest_secret = Some(secret.to_vec());
    sc.unix_time_at_start = 1_800_000_000;
    let (user, pass) = rest_credentials(secret, 1_800_000_000 + 3600, "bob");
    let mut net = Net::new(sc, ClientConfig::new(sa(LISTEN), sa(LOCAL), &user, &pass));
    net.advance(Duration::from_millis(1));
    assert!(
        matches!(net.events[0], ClientEvent::Allocated { .. }),
        "{:?}",
        net.events
    );

    let mut sc = server_config();
    sc.rest_secret = Some(secret.to_vec());
    sc.unix_time_at_start = 1_800_000_000;
    let (user, pass) = rest_credentials(secret, 1_800_000_000 - 1, "bob");
    let mut net = Net::new(sc, ClientConfig::new(sa(LISTEN), sa(LOCAL), &user, &pass));
    net.advance(Duration::from_secs(1));
    assert!(
        matches!(net.events[0], ClientEvent::AllocationFailed { .. }),
        "{:?}",
        net.events
    );
    assert_eq!(net.server.allocation_count(), 0);
}

#[test]
fn wrong_password_fails_and_leaves_no_state() {
    let mut net = Net::new(
        server_config(),
        ClientConfig::new(sa(LISTEN), sa(LOCAL), "alice", "looking-glass"),
    );
    net.advance(Duration::from_secs(1));
    assert!(
        matches!(net.events[0], ClientEvent::AllocationFailed { .. }),
        "{:?}",
        net.events
    );
    assert_eq!(net.server.allocation_count(), 0);
}

#[test]
fn twenty_percent_loss_still_works_and_nothing_is_done_twice() {
    let mut net = Net::new(
        server_config(),
        ClientConfig::new(sa(LISTEN), sa(LOCAL), "alice", "wonderland"),
    );
    net.drop_every = Some(5);
    net.advance(Duration::from_secs(10));
    assert!(
        matches!(net.events[0], ClientEvent::Allocated { .. }),
        "{:?}",
        net.events
    );
    net.client
        .create_permission(net.now, &[sa(PEER).ip()])
        .unwrap();
    net.client.bind_channel(net.now, sa(PEER2)).unwrap();
    net.advance(Duration::from_secs(10));
    assert_eq!(
        net.count(|e| matches!(e, ClientEvent::PermissionCreated { .. })),
        1
    );
    assert_eq!(
        net.count(|e| matches!(e, ClientEvent::ChannelBound { .. })),
        1
    );
    // Two hours of refreshes under loss.
    net.advance(Duration::from_secs(2 * 3600));
    assert_eq!(net.client.state(), ClientState::Allocated);
    assert!(
        net.dropped > 10,
        "the harness did drop datagrams: {}",
        net.dropped
    );
    assert_eq!(
        net.server.allocation_count(),
        1,
        "retransmitted Allocates made no second allocation"
    );
    // Each datagram the client sends reaches the peer once: retransmitted requests relay
    // nothing, and indications are never retransmitted.
    net.at_peers.clear();
    net.drop_every = None;
    for i in 0..10u8 {
        let t = net.client.send_to(net.now, sa(PEER2), &[i]).unwrap();
        net.deliver_to_server(t.source, t.destination, &t.payload);
    }
    let got: Vec<u8> = net.at_peers.iter().map(|(_, _, d)| d[0]).collect();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    let stats = net.server.stats();
    assert!(stats.permissions >= 1 && stats.channels == 1, "{stats:?}");
}
