//! `Message::verify`: FINGERPRINT (when present) and integrity in one call, with the CRC run
//! inside the HMAC. It must agree with the two separate checks on every input.

use stun_proto::attributes::{IceControlling, Priority, UseCandidate, Username};
use stun_proto::{
    IntegrityAlgorithm, IntegrityKey, Message, MessageBuilder, MessageType, TransactionId,
    VerifyError,
};

#[derive(Clone, Copy)]
enum Mac {
    None,
    Sha1,
    Sha256,
}

fn request(key: &IntegrityKey, mac: Mac, fingerprint: bool, user: &str) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new([7; 12]),
    )
    .unwrap();
    b.add(&Username::new(user).unwrap()).unwrap();
    b.add(&Priority(0x6e00_01ff)).unwrap();
    b.add(&IceControlling(0x1234_5678_9abc_def0)).unwrap();
    b.add(&UseCandidate).unwrap();
    match mac {
        Mac::None => {}
        Mac::Sha1 => {
            b.add_message_integrity(key).unwrap();
        }
        Mac::Sha256 => {
            b.add_message_integrity_sha256(key).unwrap();
        }
    }
    if fingerprint {
        b.add_fingerprint().unwrap();
    }
    b.finish().to_vec()
}

/// What `verify` promises, spelled out with the separate calls.
fn reference(msg: &Message<'_>, key: &IntegrityKey) -> Result<IntegrityAlgorithm, VerifyError> {
    if msg.has_fingerprint() {
        msg.verify_fingerprint()?;
    }
    msg.verify_integrity(key)
}

#[test]
fn verify_reports_what_the_separate_checks_report() {
    let key = IntegrityKey::short_term("Jq3sK8vR2xPm7LwT9bYe4Zc");
    let wrong = IntegrityKey::short_term("not the password");
    let cases = [
        (Mac::Sha1, true, Ok(IntegrityAlgorithm::Sha1)),
        (Mac::Sha1, false, Ok(IntegrityAlgorithm::Sha1)),
        (Mac::Sha256, true, Ok(IntegrityAlgorithm::Sha256)),
        (Mac::Sha256, false, Ok(IntegrityAlgorithm::Sha256)),
        (Mac::None, true, Err(VerifyError::NoIntegrity)),
        (Mac::None, false, Err(VerifyError::NoIntegrity)),
    ];
    for (mac, fp, want) in cases {
        let bytes = request(&key, mac, fp, "abcd:efgh");
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.verify(&key), want);
        assert_eq!(reference(&msg, &key), want);
        if want.is_ok() {
            assert_eq!(msg.verify(&wrong), Err(VerifyError::IntegrityMismatch));
        }
    }
}

#[test]
fn a_bad_fingerprint_is_reported_before_integrity() {
    let key = IntegrityKey::short_term("pass");
    let wrong = IntegrityKey::short_term("other");
    for mac in [Mac::Sha1, Mac::Sha256] {
        let mut bytes = request(&key, mac, true, "abcd:efgh");
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // the CRC value itself
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.verify(&key), Err(VerifyError::FingerprintMismatch));
        assert_eq!(msg.verify(&wrong), Err(VerifyError::FingerprintMismatch));
    }
}

/// Every single-bit flip of messages of several lengths (so the covered part ends in every
/// position of a SHA-1 block): `verify` and the separate checks agree, and a flip anywhere up to
/// the end of the integrity attribute is caught.
#[test]
fn every_bit_flip_agrees_with_the_separate_checks() {
    let key = IntegrityKey::short_term("Jq3sK8vR2xPm7LwT9bYe4Zc");
    for user_len in [1usize, 5, 9, 20, 33, 47, 64, 100] {
        let user: String = (0..user_len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for (mac, fp) in [(Mac::Sha1, true), (Mac::Sha1, false), (Mac::Sha256, true)] {
            let good = request(&key, mac, fp, &user);
            // The integrity attribute ends here; what follows (FINGERPRINT) can turn into an
            // ignored attribute when its type is hit, so only flips before it must fail.
            let integrity_end = good.len() - if fp { 8 } else { 0 };
            for byte in 0..good.len() {
                for bit in 0..8 {
                    let mut bytes = good.clone();
                    bytes[byte] ^= 1 << bit;
                    let Ok(msg) = Message::parse(&bytes) else {
                        continue;
                    };
                    let got = msg.verify(&key);
                    assert_eq!(got, reference(&msg, &key), "user {user_len} byte {byte}");
                    if byte < integrity_end {
                        assert!(got.is_err(), "flip at byte {byte} bit {bit} not caught");
                    }
                }
            }
        }
    }
}

/// The largest messages: integrity and fingerprint at offsets above 65535, where `parse` keeps
/// offsets as quarters. Both MACs and the FINGERPRINT verify, a flipped bit in the last
/// attribute before them is caught, and the attributes are seen where they are.
#[test]
fn offsets_near_the_largest_message_length() {
    let key = IntegrityKey::short_term("pass");
    // Header 20 + big attribute + MI (24) + MI-SHA256 (36) + FINGERPRINT (8) <= 20 + 65532.
    for big in [65_000usize, 65_460] {
        let mut buf = vec![0u8; 70_000];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::BINDING_REQUEST,
            TransactionId::new([9; 12]),
        )
        .unwrap();
        let value: Vec<u8> = (0..big).map(|i| (i * 31) as u8).collect();
        b.add_raw(stun_proto::attributes::AttributeType(0x8030), &value)
            .unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_message_integrity_sha256(&key).unwrap();
        b.add_fingerprint().unwrap();
        let bytes = b.finish().to_vec();
        if big == 65_460 {
            // The longest message there is; FINGERPRINT sits at 65544.
            assert_eq!(bytes.len(), 20 + 65_532);
        }
        let msg = Message::parse(&bytes).unwrap();
        assert!(msg.has_message_integrity() && msg.has_message_integrity_sha256());
        msg.verify_message_integrity(&key).unwrap();
        msg.verify_message_integrity_sha256(&key).unwrap();
        msg.verify_fingerprint().unwrap();
        assert_eq!(msg.verify(&key), Ok(IntegrityAlgorithm::Sha256));
        use stun_proto::attributes::AttributeType as T;
        let seen: Vec<(T, usize)> = msg
            .attributes()
            .map(|a| (a.attr_type, a.value.len()))
            .collect();
        assert_eq!(
            seen,
            [
                (T(0x8030), big),
                (T::MESSAGE_INTEGRITY, 20),
                (T::MESSAGE_INTEGRITY_SHA256, 32),
                (T::FINGERPRINT, 4)
            ]
        );
        let mut bad = bytes.clone();
        bad[20 + 4 + big - 1] ^= 1;
        let msg = Message::parse(&bad).unwrap();
        assert_eq!(
            msg.verify_message_integrity(&key),
            Err(VerifyError::IntegrityMismatch)
        );
    }
}
