//! Every parse and verify error path has a test with its documented outcome.

use stun_proto::attributes::{AttributeType, Software, Username};
use stun_proto::{
    BuildError, IntegrityKey, Message, MessageBuilder, MessageType, ParseError, TransactionId,
    VerifyError,
};

const REQUEST: &[u8] = include_bytes!("vectors/sample_request.bin");

fn build(f: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new([3; 12]),
    )
    .unwrap();
    f(&mut b);
    let len = b.len();
    buf.truncate(len);
    buf
}

#[test]
fn truncated_header() {
    for n in 0..20 {
        assert_eq!(
            Message::parse(&REQUEST[..n]),
            Err(ParseError::TooShort { len: n })
        );
    }
}

#[test]
fn leading_bits_set_is_not_stun() {
    let mut m = REQUEST.to_vec();
    m[0] |= 0x80;
    assert_eq!(Message::parse(&m), Err(ParseError::NotStun));
    m[0] = 0x40;
    assert_eq!(Message::parse(&m), Err(ParseError::NotStun));
}

#[test]
fn bad_magic_cookie_and_classic_stun() {
    let mut m = REQUEST.to_vec();
    m[4] ^= 1;
    // A Binding request without the cookie is classic RFC 3489 STUN.
    assert_eq!(Message::parse(&m), Err(ParseError::ClassicStun));
    m[1] = 0x03; // Allocate: never existed in RFC 3489
    assert!(matches!(
        Message::parse(&m),
        Err(ParseError::BadMagicCookie { .. })
    ));
}

#[test]
fn bad_length_fields() {
    let mut m = REQUEST.to_vec();
    m[3] += 4;
    assert_eq!(
        Message::parse(&m),
        Err(ParseError::LengthMismatch {
            header: REQUEST.len() + 4,
            actual: REQUEST.len()
        })
    );
    // A trailing byte beyond the declared length.
    let mut m = REQUEST.to_vec();
    m.push(0);
    assert!(matches!(
        Message::parse(&m),
        Err(ParseError::LengthMismatch { .. })
    ));
}

#[test]
fn missing_padding_gives_unaligned_length() {
    // A last attribute of 5 bytes sent without its 3 padding bytes: length 9.
    let mut m = build(|_| {});
    m.extend_from_slice(&[0x80, 0x22, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    m[3] = 9;
    assert_eq!(
        Message::parse(&m),
        Err(ParseError::UnalignedLength { length: 9 })
    );
}

#[test]
fn overlong_attribute() {
    let mut m = build(|b| {
        b.add(&Software::new("abcd").unwrap()).unwrap();
    });
    m[23] = 9; // SOFTWARE claims 9 bytes where 4 exist
    assert_eq!(
        Message::parse(&m),
        Err(ParseError::AttributeOverflow {
            attr: AttributeType::SOFTWARE,
            offset: 20
        })
    );
    // A value that fits but whose padding would not: 5 bytes declared, 4 + 4 available.
    m[23] = 5;
    assert_eq!(
        Message::parse(&m),
        Err(ParseError::AttributeOverflow {
            attr: AttributeType::SOFTWARE,
            offset: 20
        })
    );
}

#[test]
fn bad_integrity_lengths() {
    let mut m = build(|b| {
        b.add_raw(AttributeType::MESSAGE_INTEGRITY, &[0; 16])
            .unwrap();
    });
    assert_eq!(
        Message::parse(&m),
        Err(ParseError::BadIntegrityLength {
            attr: AttributeType::MESSAGE_INTEGRITY,
            len: 16
        })
    );
    m = build(|b| {
        b.add_raw(AttributeType::MESSAGE_INTEGRITY_SHA256, &[0; 12])
            .unwrap();
    });
    assert!(matches!(
        Message::parse(&m),
        Err(ParseError::BadIntegrityLength { len: 12, .. })
    ));
    m = build(|b| {
        b.add_raw(AttributeType::FINGERPRINT, &[0; 8]).unwrap();
    });
    assert!(matches!(
        Message::parse(&m),
        Err(ParseError::BadIntegrityLength { len: 8, .. })
    ));
}

#[test]
fn wrong_integrity() {
    let key = IntegrityKey::short_term("secret");
    let mut m = build(|b| {
        b.add(&Username::new("a:b").unwrap()).unwrap();
        b.add_message_integrity(&key).unwrap();
    });
    Message::parse(&m).unwrap().verify_integrity(&key).unwrap();
    // Wrong key.
    assert_eq!(
        Message::parse(&m)
            .unwrap()
            .verify_integrity(&IntegrityKey::short_term("other")),
        Err(VerifyError::IntegrityMismatch)
    );
    // Altered covered byte.
    m[25] ^= 1;
    assert_eq!(
        Message::parse(&m).unwrap().verify_integrity(&key),
        Err(VerifyError::IntegrityMismatch)
    );
    // No integrity at all.
    let plain = build(|_| {});
    assert_eq!(
        Message::parse(&plain).unwrap().verify_integrity(&key),
        Err(VerifyError::NoIntegrity)
    );
}

#[test]
fn wrong_fingerprint() {
    let mut m = build(|b| {
        b.add_fingerprint().unwrap();
    });
    Message::parse(&m).unwrap().verify_fingerprint().unwrap();
    let last = m.len() - 1;
    m[last] ^= 0xff;
    assert_eq!(
        Message::parse(&m).unwrap().verify_fingerprint(),
        Err(VerifyError::FingerprintMismatch)
    );
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let key = IntegrityKey::short_term("secret");
    let mut m = build(|b| {
        b.add(&Username::new("a:b").unwrap()).unwrap();
        b.add_message_integrity(&key).unwrap();
    });
    // An attacker appends SOFTWARE and an unknown comprehension-required attribute after
    // MESSAGE-INTEGRITY and fixes up the length.
    m.extend_from_slice(&[0x80, 0x22, 0, 4, b'e', b'v', b'i', b'l']);
    m.extend_from_slice(&[0x00, 0x31, 0, 0]);
    let len = (m.len() - 20) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let msg = Message::parse(&m).unwrap();
    assert!(msg.get::<Software<'_>>().unwrap().is_none());
    assert_eq!(msg.unknown_comprehension_required().count(), 0);
    assert_eq!(msg.attributes().count(), 2);
    // Integrity still verifies: the length field is rewritten to end at MESSAGE-INTEGRITY.
    msg.verify_integrity(&key).unwrap();
}

#[test]
fn sha256_and_fingerprint_still_count_after_integrity() {
    let key = IntegrityKey::short_term("secret");
    let m = build(|b| {
        b.add(&Username::new("a:b").unwrap()).unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_message_integrity_sha256(&key).unwrap();
        b.add_fingerprint().unwrap();
    });
    let msg = Message::parse(&m).unwrap();
    assert!(msg.has_message_integrity() && msg.has_message_integrity_sha256());
    assert_eq!(
        msg.verify_integrity(&key),
        Ok(stun_proto::IntegrityAlgorithm::Sha256)
    );
    msg.verify_message_integrity(&key).unwrap();
    msg.verify_fingerprint().unwrap();
    let types: Vec<_> = msg.attributes().map(|a| a.attr_type).collect();
    assert_eq!(
        types,
        [
            AttributeType::USERNAME,
            AttributeType::MESSAGE_INTEGRITY,
            AttributeType::MESSAGE_INTEGRITY_SHA256,
            AttributeType::FINGERPRINT
        ]
    );
}

#[test]
fn truncated_sha256_integrity() {
    let key = IntegrityKey::short_term("secret");
    for len in [16, 20, 24, 28, 32] {
        let m = build(|b| {
            b.add_message_integrity_sha256_truncated(&key, len).unwrap();
        });
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.message_integrity_sha256().unwrap().0.len(), len);
        msg.verify_integrity(&key).unwrap();
        assert_eq!(
            msg.verify_integrity(&IntegrityKey::short_term("x")),
            Err(VerifyError::IntegrityMismatch)
        );
    }
    let mut buf = [0u8; 100];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::default(),
    )
    .unwrap();
    assert_eq!(
        b.add_message_integrity_sha256_truncated(&key, 18)
            .unwrap_err(),
        BuildError::BadTruncation(18)
    );
    assert_eq!(
        b.add_message_integrity_sha256_truncated(&key, 12)
            .unwrap_err(),
        BuildError::BadTruncation(12)
    );
}

#[test]
fn unknown_comprehension_required_attributes_are_reported() {
    let m = build(|b| {
        b.add_raw(AttributeType(0x0031), b"x").unwrap(); // unknown, required
        b.add_raw(AttributeType(0xC001), b"y").unwrap(); // unknown, optional
        b.add(&Username::new("u").unwrap()).unwrap(); // known
        b.add_raw(AttributeType(0x7FFF), b"").unwrap(); // unknown, required
    });
    let msg = Message::parse(&m).unwrap();
    let unknown: Vec<_> = msg.unknown_comprehension_required().collect();
    assert_eq!(unknown, [AttributeType(0x0031), AttributeType(0x7FFF)]);
    // Unknown attributes are kept raw.
    assert_eq!(msg.raw(AttributeType(0xC001)), Some(&b"y"[..]));
}

#[test]
fn builder_order_and_size_errors() {
    let key = IntegrityKey::short_term("k");
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::default(),
    )
    .unwrap();
    b.add_message_integrity(&key).unwrap();
    assert_eq!(
        b.add(&Username::new("u").unwrap()).unwrap_err(),
        BuildError::AfterIntegrity
    );
    assert_eq!(
        b.add_message_integrity(&key).unwrap_err(),
        BuildError::AfterIntegrity
    );
    b.add_fingerprint().unwrap();
    assert_eq!(
        b.add_fingerprint().unwrap_err(),
        BuildError::AfterFingerprint
    );
    assert_eq!(
        b.add_message_integrity_sha256(&key).unwrap_err(),
        BuildError::AfterFingerprint
    );

    let mut small = [0u8; 30];
    let mut b = MessageBuilder::new(
        &mut small,
        MessageType::BINDING_REQUEST,
        TransactionId::default(),
    )
    .unwrap();
    assert_eq!(
        b.add(&Username::new("a long username").unwrap())
            .unwrap_err(),
        BuildError::BufferTooSmall {
            needed: 20 + 4 + 16,
            available: 30
        }
    );
    // The failed add left the message intact.
    assert_eq!(b.len(), 20);
    assert!(Message::parse(b.finish()).is_ok());
    let mut tiny = [0u8; 19];
    assert!(
        MessageBuilder::new(
            &mut tiny,
            MessageType::BINDING_REQUEST,
            TransactionId::default()
        )
        .is_err()
    );
}

#[test]
fn duplicate_attributes_first_one_wins() {
    let m = build(|b| {
        b.add(&Software::new("first").unwrap()).unwrap();
        b.add(&Software::new("second").unwrap()).unwrap();
    });
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.require::<Software<'_>>().unwrap().as_str(), "first");
}

#[test]
fn malformed_attribute_value_is_a_typed_error() {
    let m = build(|b| {
        b.add_raw(AttributeType::XOR_MAPPED_ADDRESS, &[0, 9, 0, 0, 1, 2, 3, 4])
            .unwrap();
    });
    let msg = Message::parse(&m).unwrap();
    assert!(matches!(
        msg.get::<stun_proto::attributes::XorMappedAddress>(),
        Err(stun_proto::attributes::AttributeError::BadFamily { family: 9, .. })
    ));
    assert!(matches!(
        msg.require::<Username<'_>>(),
        Err(stun_proto::attributes::AttributeError::Missing(
            AttributeType::USERNAME
        ))
    ));
}
