//! RFC 8839 candidate lines and ICE attributes: browsers' strings round-trip, broken lines
//! give typed errors.

use ice_core::sdp::{CandidateLine, ConnectionAddress, IceAttribute, SdpError, Transport};
use ice_core::{CandidateType, Foundation, TcpType};
use proptest::prelude::*;

/// Lines as Chrome and Firefox produce them (RTCIceCandidate.candidate).
const BROWSER_LINES: &[&str] = &[
    // Chrome
    "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 ufrag EsAw network-id 1 network-cost 10",
    "candidate:3684617590 1 udp 2122260223 10.217.229.219 50028 typ host generation 0 network-id 1 network-cost 900",
    "candidate:1853887674 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0 network-id 1",
    "candidate:3005819299 1 udp 2113937151 983d4667-3222-491a-aace-e549cd9c13a8.local 54324 typ host generation 0 ufrag xMAc network-cost 999",
    "candidate:1 1 udp 41885695 198.51.100.9 3478 typ relay raddr 203.0.113.5 rport 12345 generation 0 ufrag EsAw network-id 1",
    // Firefox
    "candidate:0 1 UDP 2122187007 192.168.99.58 45274 typ host",
    "candidate:2 1 UDP 2122252543 2a02:a03f:3eb0:e000:b0aa:d60a:cff2:933c 47387 typ host",
    "candidate:3 1 TCP 2105458943 192.168.99.58 9 typ host tcptype active",
    "candidate:1 1 UDP 1686052863 203.0.113.5 54321 typ srflx raddr 192.168.99.58 rport 45274",
    "candidate:5 2 UDP 92217086 198.51.100.3 55000 typ relay raddr 203.0.113.5 rport 54321",
    "candidate:0 1 UDP 2122187007 2a9ad2b8-3f6b-4b1c-8d2b-6e5b7f1f1e1e.local 58712 typ host",
    "candidate:1 1 UDP 1686052607 203.0.113.5 54321 typ srflx raddr 0.0.0.0 rport 0",
];

#[test]
fn browser_lines_round_trip() {
    for &line in BROWSER_LINES {
        let parsed: CandidateLine = line.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(parsed.to_string(), line);
        let with_prefix = format!("a={line}\r\n");
        assert_eq!(with_prefix.parse::<CandidateLine>().unwrap(), parsed);
    }
}

#[test]
fn chrome_srflx_fields() {
    let c: CandidateLine = BROWSER_LINES[0].parse().unwrap();
    assert_eq!(c.foundation.as_str(), "842163049");
    assert_eq!((c.component, c.priority, c.port), (1, 1_677_729_535, 46154));
    assert_eq!(c.transport, Transport::Udp);
    assert_eq!(c.kind, CandidateType::ServerReflexive);
    assert_eq!(
        c.address,
        ConnectionAddress::Ip("203.0.113.7".parse().unwrap())
    );
    assert_eq!(
        c.related,
        Some((ConnectionAddress::Ip("10.0.0.2".parse().unwrap()), 46154))
    );
    assert_eq!(
        (c.generation(), c.ufrag(), c.network_id(), c.network_cost()),
        (Some(0), Some("EsAw"), Some(1), Some(10))
    );
    let tcp: CandidateLine = BROWSER_LINES[2].parse().unwrap();
    assert_eq!(
        (tcp.transport.clone(), tcp.tcp_type),
        (Transport::Tcp, Some(TcpType::Active))
    );
    let mdns: CandidateLine = BROWSER_LINES[3].parse().unwrap();
    assert!(mdns.address.is_mdns());
    assert_eq!(mdns.socket_addr(), None);
}

#[test]
fn unknown_extensions_are_kept_in_order() {
    let line = "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host zeta 1 alpha two generation 3";
    let c: CandidateLine = line.parse().unwrap();
    assert_eq!(
        c.extensions,
        [
            ("zeta".into(), "1".into()),
            ("alpha".into(), "two".into()),
            ("generation".into(), "3".into())
        ]
    );
    assert_eq!(c.to_string(), line);
}

#[test]
fn malformed_lines_give_typed_errors() {
    let cases: &[(&str, SdpError)] = &[
        (
            "a=candidat:1 1 udp 1 192.0.2.1 1 typ host",
            SdpError::NotACandidate,
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1",
            SdpError::MissingField("typ"),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1",
            SdpError::MissingField("port"),
        ),
        ("candidate:", SdpError::MissingField("foundation")),
        (
            "candidate:f@o 1 udp 1 192.0.2.1 1 typ host",
            SdpError::InvalidFoundation("f@o".into()),
        ),
        (
            "candidate:1 0 udp 1 192.0.2.1 1 typ host",
            SdpError::InvalidComponent("0".into()),
        ),
        (
            "candidate:1 257 udp 1 192.0.2.1 1 typ host",
            SdpError::InvalidComponent("257".into()),
        ),
        (
            "candidate:1 1 udp 4294967296 192.0.2.1 1 typ host",
            SdpError::InvalidPriority("4294967296".into()),
        ),
        (
            "candidate:1 1 udp -5 192.0.2.1 1 typ host",
            SdpError::InvalidPriority("-5".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1/24 1 typ host",
            SdpError::InvalidAddress("192.0.2.1/24".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 65536 typ host",
            SdpError::InvalidPort("65536".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 type host",
            SdpError::MissingTyp,
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ nat",
            SdpError::UnknownType("nat".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ srflx raddr",
            SdpError::DanglingExtension("raddr".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ host generation",
            SdpError::DanglingExtension("generation".into()),
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ srflx raddr 10.0.0.1",
            SdpError::IncompleteRelatedAddress,
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ srflx raddr 10.0.0.1 generation 0",
            SdpError::IncompleteRelatedAddress,
        ),
        (
            "candidate:1 1 udp 1 192.0.2.1 1 typ srflx rport x",
            SdpError::InvalidPort("x".into()),
        ),
        (
            "candidate:1 1 tcp 1 192.0.2.1 9 typ host tcptype maybe",
            SdpError::InvalidTcpType("maybe".into()),
        ),
    ];
    for (line, error) in cases {
        assert_eq!(line.parse::<CandidateLine>().as_ref(), Err(error), "{line}");
    }
}

#[test]
fn ice_attributes() {
    let lines = [
        "a=ice-ufrag:EsAw",
        "a=ice-pwd:asd88fgpdd777uzjYhagZg",
        "a=ice-options:trickle ice2",
        "a=ice-lite",
        "a=ice-pacing:50",
        "a=end-of-candidates",
        "a=candidate:1 1 UDP 2130706431 2001:db8::1 5000 typ host ufrag 8hhY",
    ];
    for line in lines {
        let attr: IceAttribute = line.parse().unwrap();
        assert_eq!(attr.to_string(), line);
    }
    assert_eq!(
        "a=ice-options:trickle".parse::<IceAttribute>().unwrap(),
        IceAttribute::Options(vec!["trickle".into()])
    );
    assert!(matches!(
        "a=ice-ufrag:abc".parse::<IceAttribute>(),
        Err(SdpError::InvalidCredential(_))
    ));
    assert!(matches!(
        "a=ice-pwd:short".parse::<IceAttribute>(),
        Err(SdpError::InvalidCredential(_))
    ));
    assert!(matches!(
        "a=ice-ufrag:ab cd".parse::<IceAttribute>(),
        Err(SdpError::InvalidCredential(_))
    ));
    assert!(matches!(
        "a=rtcp-mux".parse::<IceAttribute>(),
        Err(SdpError::UnknownAttribute(_))
    ));
}

#[test]
fn agent_candidates_format_as_sdp() {
    let c = ice_core::Candidate {
        kind: CandidateType::ServerReflexive,
        transport: ice_core::TransportProtocol::Udp,
        tcp_type: None,
        component: 1,
        address: "203.0.113.7:46154".parse().unwrap(),
        base: "10.0.0.2:46154".parse().unwrap(),
        related: Some("10.0.0.2:46154".parse().unwrap()),
        priority: 1_677_729_535,
        foundation: Foundation::new("4").unwrap(),
    };
    assert_eq!(
        c.to_sdp(),
        "candidate:4 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154"
    );
}

fn ice_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{1,32}"
}

fn line_strategy() -> impl Strategy<Value = CandidateLine> {
    let address = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| ConnectionAddress::Ip(std::net::Ipv4Addr::from(b).into())),
        any::<[u8; 16]>().prop_map(|b| ConnectionAddress::Ip(std::net::Ipv6Addr::from(b).into())),
        "[a-f0-9]{8}-[a-f0-9]{4}".prop_map(|n| ConnectionAddress::Name(format!("{n}.local"))),
    ];
    let kind = prop_oneof![
        Just(CandidateType::Host),
        Just(CandidateType::ServerReflexive),
        Just(CandidateType::PeerReflexive),
        Just(CandidateType::Relayed)
    ];
    (
        ice_token(),
        1u16..=256,
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)],
        1u32..,
        address,
        any::<u16>(),
        kind,
        proptest::option::of((any::<[u8; 4]>(), any::<u16>())),
        proptest::option::of(prop_oneof![
            Just(TcpType::Active),
            Just(TcpType::Passive),
            Just(TcpType::SimultaneousOpen)
        ]),
        proptest::collection::vec(("[a-z][a-z-]{0,10}", "[A-Za-z0-9]{1,8}"), 0..4),
    )
        .prop_map(
            |(f, component, transport, priority, address, port, kind, related, tcp, ext)| {
                let mut line = CandidateLine::new(
                    Foundation::new(&f).unwrap(),
                    component,
                    transport,
                    priority,
                    address,
                    port,
                    kind,
                );
                line.related = related.map(|(ip, p)| {
                    (
                        ConnectionAddress::Ip(std::net::Ipv4Addr::from(ip).into()),
                        p,
                    )
                });
                line.tcp_type = tcp;
                line.extensions = ext
                    .into_iter()
                    .filter(|(n, _)| !matches!(n.as_str(), "raddr" | "rport" | "tcptype"))
                    .collect();
                line
            },
        )
}

proptest! {
    #[test]
    fn format_then_parse_is_identity(line in line_strategy()) {
        let text = line.to_string();
        let back: CandidateLine = text.parse().unwrap();
        prop_assert_eq!(back.to_string(), text);
        prop_assert_eq!(back.foundation, line.foundation);
        prop_assert_eq!(back.priority, line.priority);
        prop_assert_eq!(&back.address, &line.address);
        prop_assert_eq!(&back.related, &line.related);
        prop_assert_eq!(&back.extensions, &line.extensions);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,120}") {
        let _ = s.parse::<CandidateLine>();
        let _ = s.parse::<IceAttribute>();
    }
}

/// Control characters inside a line are refused: `trickle\r` would format to a line whose
/// trailing CR the next parse strips (found by the `sdp` fuzz target).
#[test]
fn control_characters_inside_lines_are_refused() {
    use ice_core::sdp::{CandidateLine, IceAttribute, SdpError};
    for bad in [
        "a=ice-options:trickle\r ",
        "a=ice-options:tri\u{0}ckle",
        "a=ice-options:trickle\tx",
    ] {
        assert_eq!(
            bad.parse::<IceAttribute>(),
            Err(SdpError::ControlCharacter),
            "{bad:?}"
        );
    }
    for bad in [
        "candidate:1 1 udp 1 192.0.2.1 9 typ host x y\r ",
        "candidate:1 1 udp 1 192.0.2.1 9 typ host x \u{0}y",
    ] {
        assert_eq!(
            bad.parse::<CandidateLine>(),
            Err(SdpError::ControlCharacter),
            "{bad:?}"
        );
    }
    // A trailing CRLF is still fine.
    assert!("a=ice-options:trickle\r\n".parse::<IceAttribute>().is_ok());
    assert!(
        "candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n"
            .parse::<CandidateLine>()
            .is_ok()
    );
}
