//! The Binding client, the Binding server and RFC 5780 NAT discovery, talking in memory on
//! a virtual clock, with a scripted NAT between client and server.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::client::{
    BindingClient, BindingClientConfig, BindingEvent, BindingFailure, BindingRequest,
};
use stun_proto::nat::{
    FilteringBehavior, MappingBehavior, NatDiscovery, NatDiscoveryConfig, NatDiscoveryError,
    NatDiscoveryEvent, NatReport,
};
use stun_proto::server::{AlternateAddress, BindingServer, BindingServerConfig};
use stun_proto::{Input, Message, Transmit, TransportProtocol};

const A1: &str = "198.51.100.1";
const A2: &str = "198.51.100.2";
const P1: u16 = 3478;
const P2: u16 = 3479;

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn rfc5780_server() -> BindingServer {
    BindingServer::new(BindingServerConfig {
        alternate: Some(AlternateAddress {
            primary_ip: A1.parse().unwrap(),
            alternate_ip: A2.parse().unwrap(),
            primary_port: P1,
            alternate_port: P2,
        }),
        ..BindingServerConfig::default()
    })
}

fn server_addresses() -> HashSet<SocketAddr> {
    [sa(A1, P1), sa(A1, P2), sa(A2, P1), sa(A2, P2)]
        .into_iter()
        .collect()
}

/// RFC 4787 behaviours for the scripted NAT.
#[derive(Clone, Copy, Debug)]
enum Mapping {
    Independent,
    Address,
    AddressPort,
}

/// A NAT with one public IP, scripted mapping and filtering, optional hairpinning.
struct ScriptedNat {
    public: IpAddr,
    mapping: Mapping,
    filtering: FilteringBehavior,
    hairpin: bool,
    next_port: u16,
    /// (internal endpoint, mapping key) -> external port
    mappings: HashMap<(SocketAddr, Option<SocketAddr>), u16>,
    /// external port -> internal endpoint
    reverse: HashMap<u16, SocketAddr>,
    /// (external port, remote endpoint) the inside has sent to
    sent_to: HashSet<(u16, SocketAddr)>,
}

impl ScriptedNat {
    fn new(mapping: Mapping, filtering: FilteringBehavior, hairpin: bool) -> Self {
        ScriptedNat {
            public: "203.0.113.1".parse().unwrap(),
            mapping,
            filtering,
            hairpin,
            next_port: 40000,
            mappings: HashMap::new(),
            reverse: HashMap::new(),
            sent_to: HashSet::new(),
        }
    }

    fn outbound(&mut self, from: SocketAddr, to: SocketAddr) -> SocketAddr {
        let key = match self.mapping {
            Mapping::Independent => None,
            Mapping::Address => Some(SocketAddr::new(to.ip(), 0)),
            Mapping::AddressPort => Some(to),
        };
        let port = *self.mappings.entry((from, key)).or_insert_with(|| {
            self.next_port += 1;
            self.next_port
        });
        self.reverse.insert(port, from);
        self.sent_to.insert((port, to));
        SocketAddr::new(self.public, port)
    }

    fn inbound(&self, from: SocketAddr, to: SocketAddr) -> Option<SocketAddr> {
        let internal = *self.reverse.get(&to.port())?;
        let allowed = match self.filtering {
            FilteringBehavior::EndpointIndependent => true,
            FilteringBehavior::AddressDependent => self
                .sent_to
                .iter()
                .any(|&(p, r)| p == to.port() && r.ip() == from.ip()),
            FilteringBehavior::AddressAndPortDependent => self.sent_to.contains(&(to.port(), from)),
        };
        allowed.then_some(internal)
    }
}

/// Runs discovery from behind `nat` (or with no NAT) against the RFC 5780 server.
fn discover(nat: Option<ScriptedNat>, server: BindingServer) -> (NatDiscoveryEvent, Duration) {
    let start = Instant::now();
    let mut now = start;
    let local = if nat.is_some() {
        sa("192.168.1.2", 5000)
    } else {
        sa("203.0.113.9", 5000)
    };
    let mut nat = nat;
    let mut server = server;
    let addresses = server_addresses();
    let mut client = NatDiscovery::new(NatDiscoveryConfig::default(), 7, now, local, sa(A1, P1));
    loop {
        // Deliver everything in flight before the clock moves.
        let mut idle = false;
        while !idle {
            idle = true;
            // Client -> (NAT) -> server, or hairpinned back to the client.
            while let Some(t) = client.poll_transmit() {
                idle = false;
                let (src, dst) = match nat.as_mut() {
                    Some(n) => (n.outbound(t.source, t.destination), t.destination),
                    None => (t.source, t.destination),
                };
                if addresses.contains(&dst) {
                    let input = Input {
                        transport: t.transport,
                        source: src,
                        destination: dst,
                        data: &t.payload,
                    };
                    assert!(server.handle_input(now, input));
                } else if let Some(n) = nat.as_ref().filter(|n| n.hairpin && dst.ip() == n.public) {
                    if let Some(inside) = n.inbound(src, dst) {
                        let input = Input {
                            transport: t.transport,
                            source: src,
                            destination: inside,
                            data: &t.payload,
                        };
                        client.handle_input(now, input);
                    }
                }
            }
            // Server -> (NAT) -> client.
            while let Some(t) = server.poll_transmit() {
                idle = false;
                assert!(
                    addresses.contains(&t.source),
                    "server sends only from its own addresses"
                );
                let to = match nat.as_ref() {
                    Some(n) => n.inbound(t.source, t.destination),
                    None => (t.destination == local).then_some(local),
                };
                if let Some(to) = to {
                    let input = Input {
                        transport: t.transport,
                        source: t.source,
                        destination: to,
                        data: &t.payload,
                    };
                    assert!(
                        client.handle_input(now, input),
                        "every response answers a pending request"
                    );
                }
            }
        }
        if let Some(e) = client.poll_event() {
            return (e, now - start);
        }
        now = client
            .poll_timeout()
            .expect("discovery always has a timer until it finishes");
        client.handle_timeout(now);
    }
}

fn finished(e: NatDiscoveryEvent) -> NatReport {
    match e {
        NatDiscoveryEvent::Finished(r) => r,
        other => panic!("discovery failed: {other:?}"),
    }
}

#[test]
fn classifies_every_mapping_and_filtering_combination() {
    use FilteringBehavior as F;
    for (mapping, expected_mapping) in [
        (Mapping::Independent, MappingBehavior::EndpointIndependent),
        (Mapping::Address, MappingBehavior::AddressDependent),
        (
            Mapping::AddressPort,
            MappingBehavior::AddressAndPortDependent,
        ),
    ] {
        for filtering in [
            F::EndpointIndependent,
            F::AddressDependent,
            F::AddressAndPortDependent,
        ] {
            for hairpin in [true, false] {
                let (event, _) = discover(
                    Some(ScriptedNat::new(mapping, filtering, hairpin)),
                    rfc5780_server(),
                );
                let r = finished(event);
                let case = format!("{mapping:?}/{filtering:?}/hairpin={hairpin}");
                assert_eq!(r.mapping, Some(expected_mapping), "{case}");
                assert_eq!(r.filtering, Some(filtering), "{case}");
                // The probe goes from the tested socket to its own mapped address. With
                // endpoint-independent mapping it leaves through the same mapping, so every
                // filter lets it back in; otherwise it gets a new mapping and only
                // endpoint-independent filtering admits it.
                let observable =
                    matches!(mapping, Mapping::Independent) || filtering == F::EndpointIndependent;
                assert_eq!(r.hairpinning, Some(hairpin && observable), "{case}");
                assert_eq!(
                    r.mapped.ip(),
                    "203.0.113.1".parse::<IpAddr>().unwrap(),
                    "{case}"
                );
                assert_eq!(r.other_address, Some(sa(A2, P2)), "{case}");
            }
        }
    }
}

#[test]
fn no_nat_is_detected() {
    let (event, elapsed) = discover(None, rfc5780_server());
    let r = finished(event);
    assert_eq!(r.mapping, Some(MappingBehavior::NoNat));
    assert_eq!(r.filtering, Some(FilteringBehavior::EndpointIndependent));
    assert_eq!(r.hairpinning, None);
    assert!(
        elapsed < Duration::from_millis(1),
        "all answers are immediate: {elapsed:?}"
    );
}

#[test]
fn server_without_rfc5780_gives_only_the_mapped_address() {
    let (event, _) = discover(
        Some(ScriptedNat::new(
            Mapping::Independent,
            FilteringBehavior::EndpointIndependent,
            false,
        )),
        BindingServer::new(BindingServerConfig::default()),
    );
    let r = finished(event);
    assert_eq!(
        (r.mapping, r.filtering, r.other_address),
        (None, None, None)
    );
    assert_eq!(r.mapped.ip(), "203.0.113.1".parse::<IpAddr>().unwrap());
}

#[test]
fn unreachable_server_fails_after_the_discovery_timeout() {
    let start = Instant::now();
    let mut d = NatDiscovery::new(
        NatDiscoveryConfig::default(),
        1,
        start,
        sa("10.0.0.1", 1),
        sa(A1, P1),
    );
    let mut sends = 0;
    let mut now = start;
    let event = loop {
        sends += std::iter::from_fn(|| d.poll_transmit()).count();
        if let Some(e) = d.poll_event() {
            break e;
        }
        now = d.poll_timeout().unwrap();
        d.handle_timeout(now);
    };
    assert_eq!(
        event,
        NatDiscoveryEvent::Failed(NatDiscoveryError::NoResponse)
    );
    assert_eq!(sends, 4);
    assert_eq!(now - start, Duration::from_millis(5500));
    assert!(d.is_done());
}

/// A plain client and server: the mapped address, RTT and the response's attributes.
#[test]
fn binding_client_and_server_in_memory() {
    let start = Instant::now();
    let mut client = BindingClient::new(BindingClientConfig::default(), 3, start);
    let mut server = BindingServer::new(BindingServerConfig::default());
    let local = sa("192.0.2.10", 40000);
    let server_addr = sa(A1, P1);
    let tid = client
        .send(
            start,
            local,
            server_addr,
            TransportProtocol::Udp,
            BindingRequest::default(),
        )
        .unwrap();
    let request = client.poll_transmit().unwrap();
    assert_eq!((request.source, request.destination), (local, server_addr));
    let later = start + Duration::from_millis(20);
    server.handle_input(
        later,
        Input {
            transport: request.transport,
            source: local,
            destination: server_addr,
            data: &request.payload,
        },
    );
    let response = server.poll_transmit().unwrap();
    assert_eq!(
        (response.source, response.destination),
        (server_addr, local)
    );
    let m = Message::parse(&response.payload).unwrap();
    m.verify_fingerprint().unwrap();
    assert!(
        m.get::<stun_proto::attributes::Software<'_>>()
            .unwrap()
            .is_some()
    );
    assert_eq!(
        m.require::<stun_proto::attributes::MappedAddress>()
            .unwrap()
            .0,
        local
    );
    let later = start + Duration::from_millis(40);
    assert!(client.handle_input(
        later,
        Input {
            transport: response.transport,
            source: server_addr,
            destination: local,
            data: &response.payload
        }
    ));
    match client.poll_event().unwrap() {
        BindingEvent::Success(r) => {
            assert_eq!(r.transaction_id, tid);
            assert_eq!(r.mapped, local);
            assert_eq!(r.rtt, Some(Duration::from_millis(40)));
            assert_eq!(r.retransmissions, 0);
            assert_eq!(r.other_address, None);
        }
        other => panic!("{other:?}"),
    }
    // A duplicate of the response is not ours any more.
    assert!(!client.handle_input(
        later,
        Input {
            transport: response.transport,
            source: server_addr,
            destination: local,
            data: &response.payload
        }
    ));
    assert_eq!(server.stats().success, 1);
}

fn request_with(f: impl FnOnce(&mut stun_proto::MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 2000];
    let mut b = stun_proto::MessageBuilder::new(
        &mut buf,
        stun_proto::MessageType::BINDING_REQUEST,
        stun_proto::TransactionId::new([5; 12]),
    )
    .unwrap();
    f(&mut b);
    let n = b.len();
    buf.truncate(n);
    buf
}

fn exchange(server: &mut BindingServer, data: &[u8]) -> Option<Transmit> {
    let input = Input {
        transport: TransportProtocol::Udp,
        source: sa("192.0.2.10", 40000),
        destination: sa(A1, P1),
        data,
    };
    server.handle_input(Instant::now(), input);
    server.poll_transmit()
}

fn error_code(t: &Transmit) -> u16 {
    Message::parse(&t.payload)
        .unwrap()
        .require::<stun_proto::attributes::ErrorCode<'_>>()
        .unwrap()
        .code()
}

#[test]
fn server_answers_420_for_unknown_required_attributes() {
    let mut server = BindingServer::new(BindingServerConfig::default());
    let req = request_with(|b| {
        b.add_raw(stun_proto::attributes::AttributeType(0x0031), b"?")
            .unwrap();
    });
    let t = exchange(&mut server, &req).unwrap();
    assert_eq!(error_code(&t), 420);
    let m = Message::parse(&t.payload).unwrap();
    let unknown = m
        .require::<stun_proto::attributes::UnknownAttributes<'_>>()
        .unwrap();
    assert_eq!(
        unknown.iter().collect::<Vec<_>>(),
        [stun_proto::attributes::AttributeType(0x0031)]
    );
    // CHANGE-REQUEST without an alternate address is unknown too (RFC 5780 §6).
    let req = request_with(|b| {
        b.add(&stun_proto::attributes::ChangeRequest {
            change_ip: true,
            change_port: false,
        })
        .unwrap();
    });
    let t = exchange(&mut server, &req).unwrap();
    assert_eq!(error_code(&t), 420);
    assert_eq!(server.stats().unknown_attribute, 2);
}

#[test]
fn server_answers_400_to_malformed_requests_and_drops_the_rest() {
    let mut server = BindingServer::new(BindingServerConfig::default());
    // An attribute overflowing the message: the header is fine, so 400.
    let mut req = request_with(|b| {
        b.add_raw(stun_proto::attributes::AttributeType::SOFTWARE, b"abcd")
            .unwrap();
    });
    req[23] = 40;
    let t = exchange(&mut server, &req).unwrap();
    assert_eq!(error_code(&t), 400);
    // A request of another method: 400.
    let mut other = request_with(|_| {});
    other[1] = 0x03; // Allocate
    assert_eq!(error_code(&exchange(&mut server, &other).unwrap()), 400);
    // PADDING together with RESPONSE-PORT: 400.
    let both = request_with(|b| {
        b.add(&stun_proto::attributes::ResponsePort(9)).unwrap();
        b.add(&stun_proto::attributes::Padding(&[0; 8])).unwrap();
    });
    let mut alt = rfc5780_server();
    assert_eq!(error_code(&exchange(&mut alt, &both).unwrap()), 400);
    // Not STUN, a response, a bad fingerprint: dropped and counted, no answer.
    assert!(exchange(&mut server, b"\x80hello rtp").is_none());
    let mut response = request_with(|_| {});
    response[0] = 0x01; // Binding success
    assert!(exchange(&mut server, &response).is_none());
    let mut bad_fp = request_with(|b| {
        b.add_fingerprint().unwrap();
    });
    let last = bad_fp.len() - 1;
    bad_fp[last] ^= 1;
    assert!(exchange(&mut server, &bad_fp).is_none());
    assert_eq!(server.stats().dropped, 3);
    assert_eq!(server.stats().bad_request, 2);
}

#[test]
fn rfc5780_change_request_response_port_and_padding() {
    let mut server = rfc5780_server();
    let client = sa("192.0.2.10", 40000);
    for (ip, port, from) in [
        (false, false, sa(A1, P1)),
        (true, false, sa(A2, P1)),
        (false, true, sa(A1, P2)),
        (true, true, sa(A2, P2)),
    ] {
        let req = request_with(|b| {
            b.add(&stun_proto::attributes::ChangeRequest {
                change_ip: ip,
                change_port: port,
            })
            .unwrap();
        });
        let t = exchange(&mut server, &req).unwrap();
        assert_eq!(t.source, from, "change ip={ip} port={port}");
        assert_eq!(t.destination, client);
        let m = Message::parse(&t.payload).unwrap();
        assert_eq!(
            m.require::<stun_proto::attributes::ResponseOrigin>()
                .unwrap()
                .0,
            from
        );
        assert_eq!(
            m.require::<stun_proto::attributes::OtherAddress>()
                .unwrap()
                .0,
            sa(A2, P2)
        );
    }
    // RESPONSE-PORT redirects the response to the client's IP on that port.
    let req = request_with(|b| {
        b.add(&stun_proto::attributes::ResponsePort(5555)).unwrap();
    });
    assert_eq!(
        exchange(&mut server, &req).unwrap().destination,
        sa("192.0.2.10", 5555)
    );
    // PADDING is echoed, never longer than the request's own.
    let req = request_with(|b| {
        b.add(&stun_proto::attributes::Padding(&[7; 100])).unwrap();
    });
    let t = exchange(&mut server, &req).unwrap();
    let m = Message::parse(&t.payload).unwrap();
    assert_eq!(
        m.require::<stun_proto::attributes::Padding<'_>>()
            .unwrap()
            .0
            .len(),
        100
    );
    assert!(
        t.payload.len() <= req.len() + 100,
        "no amplification: {} vs {}",
        t.payload.len(),
        req.len()
    );
}

#[test]
fn client_reports_error_responses_and_timeouts() {
    let start = Instant::now();
    let mut client = BindingClient::new(BindingClientConfig::default(), 3, start);
    let local = sa("192.0.2.10", 40000);
    let server = sa(A1, P1);
    let tid = client
        .send(
            start,
            local,
            server,
            TransportProtocol::Udp,
            BindingRequest::default(),
        )
        .unwrap();
    let _ = client.poll_transmit();
    let err = stun_proto::server::build_error_response(stun_proto::Method::BINDING, tid, 401, &[])
        .unwrap();
    assert!(client.handle_input(
        start,
        Input {
            transport: TransportProtocol::Udp,
            source: server,
            destination: local,
            data: &err
        }
    ));
    assert_eq!(
        client.poll_event(),
        Some(BindingEvent::Failed {
            transaction_id: tid,
            server,
            reason: BindingFailure::ErrorResponse(401)
        })
    );
    let tid = client
        .send(
            start,
            local,
            server,
            TransportProtocol::Udp,
            BindingRequest::default(),
        )
        .unwrap();
    let mut now = start;
    while let Some(t) = client.poll_timeout() {
        now = t;
        client.handle_timeout(now);
    }
    assert_eq!(now - start, Duration::from_millis(39_500));
    assert_eq!(
        client.poll_event(),
        Some(BindingEvent::Failed {
            transaction_id: tid,
            server,
            reason: BindingFailure::TimedOut
        })
    );
}

/// The same seed and inputs give byte-identical output; another seed gives other bytes.
#[test]
fn seeded_clients_are_deterministic() {
    let run = |seed: u64| -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut d = NatDiscovery::new(
            NatDiscoveryConfig::default(),
            seed,
            start,
            sa("10.0.0.1", 1),
            sa(A1, P1),
        );
        let mut out = Vec::new();
        while let Some(t) = d.poll_timeout() {
            out.extend(std::iter::from_fn(|| d.poll_transmit()).map(|t| t.payload));
            d.handle_timeout(t);
        }
        out
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}
