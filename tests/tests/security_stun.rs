//! STUN codec and Binding server security (`stun_proto`), through the public API: every
//! malformed message class gets its typed error or its documented answer, integrity and
//! fingerprint notice any changed byte, the Binding server's answers stay within a stated
//! size bound, and client transactions only accept what answers them.
//!
//! `docs/SECURITY.md` maps each defence to its test.
#![allow(clippy::disallowed_methods)] // Instant::now() once, as the virtual clock's origin

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    AttributeType, ChangeRequest, EncodeAttribute, ErrorCode, Padding, Priority, RawAttribute,
    ResponsePort, Software, UnknownAttributes, Username,
};
use stun_proto::server::{AlternateAddress, BindingServer, BindingServerConfig};
use stun_proto::transaction::{ClientTransactions, StartError, TransactionConfig};
use stun_proto::{
    Class, Input, IntegrityAlgorithm, IntegrityKey, Message, MessageBuilder, MessageType, Method,
    ParseError, TransactionId, Transmit, TransportProtocol, VerifyError,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn build(
    mtype: MessageType,
    attrs: &[&dyn EncodeAttribute],
    finish: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut b = MessageBuilder::new(&mut buf, mtype, TransactionId::new([7; 12])).unwrap();
    for a in attrs {
        b.add(*a).unwrap();
    }
    finish(&mut b);
    b.finish().to_vec()
}

fn request(attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
    build(MessageType::BINDING_REQUEST, attrs, |b| {
        b.add_fingerprint().unwrap();
    })
}

// ---------------------------------------------------------------------------------------
// The codec: each malformed class, its typed error
// ---------------------------------------------------------------------------------------

#[test]
fn every_malformed_message_class_gets_its_typed_error() {
    let good = request(&[&Software::new("x").unwrap()]);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let mi = build(MessageType::BINDING_REQUEST, &[], |b| {
        b.add_message_integrity(&IntegrityKey::new(b"k")).unwrap();
    });
    /// (name, bytes, the error expected)
    type Case = (&'static str, Vec<u8>, fn(&ParseError) -> bool);
    let cases: Vec<Case> = vec![
        ("empty", vec![], |e| {
            matches!(e, ParseError::TooShort { len: 0 })
        }),
        ("19 bytes", good[..19].to_vec(), |e| {
            matches!(e, ParseError::TooShort { len: 19 })
        }),
        ("first bit set (RTP)", with(&|b| b[0] |= 0x80), |e| {
            *e == ParseError::NotStun
        }),
        ("second bit set", with(&|b| b[0] |= 0x40), |e| {
            *e == ParseError::NotStun
        }),
        ("length not a multiple of 4", with(&|b| b[3] += 1), |e| {
            matches!(e, ParseError::UnalignedLength { .. })
        }),
        (
            "bytes beyond the length",
            with(&|b| b.extend_from_slice(&[0; 4])),
            |e| matches!(e, ParseError::LengthMismatch { .. }),
        ),
        (
            "length beyond the bytes",
            good[..good.len() - 4].to_vec(),
            |e| matches!(e, ParseError::LengthMismatch { .. }),
        ),
        (
            "classic RFC 3489",
            with(&|b| b[4..8].copy_from_slice(&[0; 4])),
            |e| *e == ParseError::ClassicStun,
        ),
        (
            "bad magic cookie",
            with(&|b| {
                b[1] = 0x03; // Allocate: not an RFC 3489 type
                b[4] ^= 1;
            }),
            |e| matches!(e, ParseError::BadMagicCookie { .. }),
        ),
        (
            "attribute past the end",
            with(&|b| b[22..24].copy_from_slice(&100u16.to_be_bytes())),
            |e| matches!(e, ParseError::AttributeOverflow { .. }),
        ),
        (
            "MESSAGE-INTEGRITY of 16 bytes",
            {
                let mut b = mi.clone();
                b[22..24].copy_from_slice(&16u16.to_be_bytes());
                b.truncate(b.len() - 4);
                let len = (b.len() - 20) as u16;
                b[2..4].copy_from_slice(&len.to_be_bytes());
                b
            },
            |e| matches!(e, ParseError::BadIntegrityLength { .. }),
        ),
        (
            "FINGERPRINT of 8 bytes",
            build(
                MessageType::BINDING_REQUEST,
                &[&RawAttribute {
                    attr_type: AttributeType::FINGERPRINT,
                    value: &[0; 8],
                }],
                |_| {},
            ),
            |e| matches!(e, ParseError::BadIntegrityLength { .. }),
        ),
        (
            "MESSAGE-INTEGRITY-SHA256 of 12 bytes",
            build(
                MessageType::BINDING_REQUEST,
                &[&RawAttribute {
                    attr_type: AttributeType::MESSAGE_INTEGRITY_SHA256,
                    value: &[0; 12],
                }],
                |_| {},
            ),
            |e| matches!(e, ParseError::BadIntegrityLength { .. }),
        ),
    ];
    for (name, bytes, expected) in cases {
        match Message::parse(&bytes) {
            Err(e) => assert!(expected(&e), "{name}: {e:?}"),
            Ok(m) => panic!("{name}: parsed as {m:?}"),
        }
    }
    assert!(Message::parse(&good).is_ok());
}

#[test]
fn integrity_and_fingerprint_notice_every_changed_byte() {
    let key = IntegrityKey::short_term("passwordpasswordpassword");
    for sha256 in [None, Some(16), Some(32)] {
        let bytes = build(
            MessageType::BINDING_REQUEST,
            &[&Username::new("a:b").unwrap(), &Priority(7)],
            |b| {
                match sha256 {
                    None => b.add_message_integrity(&key).unwrap(),
                    Some(n) => b.add_message_integrity_sha256_truncated(&key, n).unwrap(),
                };
                b.add_fingerprint().unwrap();
            },
        );
        let m = Message::parse(&bytes).unwrap();
        let algorithm = if sha256.is_some() {
            IntegrityAlgorithm::Sha256
        } else {
            IntegrityAlgorithm::Sha1
        };
        assert_eq!(m.verify_integrity(&key), Ok(algorithm));
        assert_eq!(
            m.verify_integrity(&IntegrityKey::short_term("otherpasswordotherpasswo")),
            Err(VerifyError::IntegrityMismatch)
        );
        m.verify_fingerprint().unwrap();
        // Every single bit of every byte: the message no longer parses, or the fingerprint
        // fails; and wherever the MAC covers the byte or holds it, integrity fails too.
        let mac_end = bytes.len() - 8;
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                let Ok(t) = Message::parse(&b) else { continue };
                let fp = t.verify_fingerprint();
                assert!(
                    fp.is_err(),
                    "byte {at} bit {bit}: fingerprint still matches"
                );
                let kinds =
                    |m: &Message<'_>| (m.has_message_integrity(), m.has_message_integrity_sha256());
                if at < mac_end && !(2..4).contains(&at) && kinds(&t) == kinds(&m) {
                    assert!(
                        t.verify_integrity(&key).is_err(),
                        "byte {at} bit {bit} (sha256 {sha256:?}): integrity still verifies"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The Binding server
// ---------------------------------------------------------------------------------------

fn input<'a>(source: SocketAddr, data: &'a [u8]) -> Input<'a> {
    Input {
        transport: TransportProtocol::Udp,
        source,
        destination: sa("192.0.2.1:3478"),
        data,
    }
}

fn answer_code(t: &Transmit) -> Option<u16> {
    let m = Message::parse(&t.payload).unwrap();
    m.verify_fingerprint().unwrap();
    match m.class() {
        Class::Success => None,
        _ => Some(m.require::<ErrorCode<'_>>().unwrap().code()),
    }
}

#[test]
fn binding_server_answers_or_drops_each_class_and_counts_it() {
    let now = Instant::now();
    let mut server = BindingServer::new(BindingServerConfig::default());
    let client = sa("198.51.100.1:4000");
    let unknown = RawAttribute {
        attr_type: AttributeType(0x7001),
        value: b"",
    };
    let mut bad_fp = request(&[]);
    let n = bad_fp.len();
    bad_fp[n - 1] ^= 1;
    let mut overflow = request(&[&Software::new("abc").unwrap()]);
    overflow[22..24].copy_from_slice(&200u16.to_be_bytes());
    /// (name, bytes, answer (None: dropped; Some(None): success), consumed)
    type Case = (&'static str, Vec<u8>, Option<Option<u16>>, bool);
    let cases: Vec<Case> = vec![
        ("Binding request", request(&[]), Some(None), true),
        (
            "unknown comprehension-required attribute",
            request(&[&unknown]),
            Some(Some(420)),
            true,
        ),
        (
            "CHANGE-REQUEST without RFC 5780",
            request(&[&ChangeRequest {
                change_ip: true,
                change_port: false,
            }]),
            Some(Some(420)),
            true,
        ),
        (
            "PADDING with RESPONSE-PORT",
            request(&[&Padding(&[0; 4]), &ResponsePort(9)]),
            Some(Some(400)),
            true,
        ),
        ("attribute past the end", overflow, Some(Some(400)), true),
        (
            "another method",
            build(
                MessageType::new(Method::ALLOCATE, Class::Request),
                &[],
                |_| {},
            ),
            Some(Some(400)),
            true,
        ),
        ("bad FINGERPRINT", bad_fp, None, true),
        (
            "a response",
            build(MessageType::BINDING_SUCCESS, &[], |_| {}),
            None,
            true,
        ),
        (
            "Binding indication",
            build(MessageType::BINDING_INDICATION, &[], |_| {}),
            None,
            true,
        ),
        ("not STUN", vec![0x80, 1, 2, 3], None, false),
        ("empty", vec![], None, false),
    ];
    let mut expected_stats = server.stats();
    for (name, bytes, answer, consumed) in cases {
        assert_eq!(
            server.handle_input(now, input(client, &bytes)),
            consumed,
            "{name}"
        );
        let out: Vec<Transmit> = std::iter::from_fn(|| server.poll_transmit()).collect();
        match answer {
            None => assert!(out.is_empty(), "{name}: answered"),
            Some(code) => {
                assert_eq!(out.len(), 1, "{name}");
                assert_eq!(answer_code(&out[0]), code, "{name}");
                assert_eq!(out[0].destination, client, "{name}");
            }
        }
        match answer {
            Some(None) => expected_stats.success += 1,
            Some(Some(400)) => expected_stats.bad_request += 1,
            Some(Some(_)) => expected_stats.unknown_attribute += 1,
            None if name == "Binding indication" => expected_stats.indications += 1,
            None => expected_stats.dropped += 1,
        }
        assert_eq!(server.stats(), expected_stats, "{name}");
    }
    // The 420 lists the unknown attribute.
    server.handle_input(now, input(client, &request(&[&unknown])));
    let t = server.poll_transmit().unwrap();
    let m = Message::parse(&t.payload).unwrap();
    let listed: Vec<_> = m
        .require::<UnknownAttributes<'_>>()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(listed, [AttributeType(0x7001)]);
}

/// The stated bounds: the default Binding server (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS,
/// SOFTWARE, FINGERPRINT) answers at most 100 bytes more than it was sent
/// (`turn_proto::server::MAX_UNAUTHENTICATED_GROWTH`); with RFC 5780 enabled
/// (OTHER-ADDRESS and RESPONSE-ORIGIN too) at most 148. PADDING is never echoed longer than
/// the request's. Checked over many request shapes from IPv4 and IPv6 clients.
#[test]
fn binding_answers_stay_within_the_stated_growth() {
    let now = Instant::now();
    let alternate = AlternateAddress {
        primary_ip: "192.0.2.1".parse().unwrap(),
        alternate_ip: "192.0.2.2".parse().unwrap(),
        primary_port: 3478,
        alternate_port: 3479,
    };
    let unknown: Vec<RawAttribute<'static>> = (0..40u16)
        .map(|i| RawAttribute {
            attr_type: AttributeType(0x7100 + i),
            value: b"",
        })
        .collect();
    for (rfc5780, bound) in [
        (false, turn_proto::server::MAX_UNAUTHENTICATED_GROWTH),
        (true, 148),
    ] {
        let mut server = BindingServer::new(BindingServerConfig {
            alternate: rfc5780.then_some(alternate),
            ..BindingServerConfig::default()
        });
        let pads = [Padding(&[0; 4]), Padding(&[0; 1200])];
        let mut shapes: Vec<Vec<&dyn EncodeAttribute>> = vec![vec![]];
        shapes.push(vec![&pads[0]]);
        shapes.push(vec![&pads[1]]);
        shapes.push(
            unknown
                .iter()
                .take(1)
                .map(|u| u as &dyn EncodeAttribute)
                .collect(),
        );
        shapes.push(unknown.iter().map(|u| u as &dyn EncodeAttribute).collect());
        let change = ChangeRequest {
            change_ip: true,
            change_port: true,
        };
        shapes.push(vec![&change]);
        let mut checked = 0;
        for client in ["198.51.100.1:1", "[2001:db8:1::1]:65535"] {
            for attrs in &shapes {
                for fingerprint in [false, true] {
                    let bytes = build(MessageType::BINDING_REQUEST, attrs, |b| {
                        if fingerprint {
                            b.add_fingerprint().unwrap();
                        }
                    });
                    server.handle_input(now, input(sa(client), &bytes));
                    while let Some(t) = server.poll_transmit() {
                        assert!(
                            t.payload.len() <= bytes.len() + bound,
                            "{} bytes answer {} (RFC 5780: {rfc5780})",
                            t.payload.len(),
                            bytes.len()
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 20);
    }
}

// ---------------------------------------------------------------------------------------
// Client transactions
// ---------------------------------------------------------------------------------------

#[test]
fn transactions_accept_only_their_own_responses_and_stay_bounded() {
    let now = Instant::now();
    let mut tx = ClientTransactions::new(TransactionConfig {
        max_pending: 4,
        ..TransactionConfig::default()
    });
    let server = sa("192.0.2.1:3478");
    let request = |payload: u8| Transmit {
        transport: TransportProtocol::Udp,
        source: sa("10.0.0.1:5000"),
        destination: server,
        payload: vec![payload],
    };
    for i in 0..4u8 {
        tx.start(now, TransactionId::new([i; 12]), request(i), i)
            .unwrap();
    }
    assert_eq!(
        tx.start(now, TransactionId::new([9; 12]), request(9), 9),
        Err(StartError::TooManyPending),
        "max_pending bounds the memory"
    );
    assert_eq!(
        tx.start(now, TransactionId::new([1; 12]), request(1), 1),
        Err(StartError::Duplicate(TransactionId::new([1; 12])))
    );
    // A response from another address, or with an unknown transaction ID, completes nothing.
    let spoofed = sa("203.0.113.66:3478");
    assert!(
        tx.match_response(now, &TransactionId::new([0; 12]), spoofed)
            .is_none()
    );
    assert!(
        tx.match_response(now, &TransactionId::new([42; 12]), server)
            .is_none()
    );
    assert_eq!(tx.len(), 4);
    // The right one completes once; a duplicate completes nothing.
    let done = tx
        .match_response(
            now + Duration::from_millis(20),
            &TransactionId::new([0; 12]),
            server,
        )
        .unwrap();
    assert_eq!(
        (done.context, done.rtt),
        (0, Some(Duration::from_millis(20)))
    );
    assert!(
        tx.match_response(now, &TransactionId::new([0; 12]), server)
            .is_none()
    );
    assert_eq!(tx.len(), 3);
}
