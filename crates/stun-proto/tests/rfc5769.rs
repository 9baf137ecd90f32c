//! RFC 5769 test vectors: every sample decodes, verifies, and carries the RFC's values.

use stun_proto::attributes::{
    IceControlled, Nonce, Priority, Realm, Software, Username, XorMappedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::{Class, IntegrityAlgorithm, IntegrityKey, Message, Method, VerifyError};

const REQUEST: &[u8] = include_bytes!("vectors/sample_request.bin");
const IPV4_RESPONSE: &[u8] = include_bytes!("vectors/sample_ipv4_response.bin");
const IPV6_RESPONSE: &[u8] = include_bytes!("vectors/sample_ipv6_response.bin");
const LONG_TERM: &[u8] = include_bytes!("vectors/sample_request_long_term.bin");
const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sample_request() {
    // RFC 5769 §2.1
    let m = Message::parse(REQUEST).unwrap();
    assert_eq!(m.method(), Method::BINDING);
    assert_eq!(m.class(), Class::Request);
    assert_eq!(m.transaction_id().as_bytes(), &TID);
    assert_eq!(
        m.require::<Software<'_>>().unwrap().as_str(),
        "STUN test client"
    );
    assert_eq!(m.require::<Priority>().unwrap(), Priority(0x6e0001ff));
    assert_eq!(
        m.require::<IceControlled>().unwrap(),
        IceControlled(0x932ff9b151263b36)
    );
    // USERNAME is padded with 0x20 bytes, which must be ignored.
    assert_eq!(m.require::<Username<'_>>().unwrap().as_str(), "evtj:h6vY");
    assert_eq!(
        hex(&m.message_integrity().unwrap().0),
        "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    );
    assert_eq!(
        m.verify_integrity(&IntegrityKey::short_term(PASSWORD)),
        Ok(IntegrityAlgorithm::Sha1)
    );
    m.verify_fingerprint().unwrap();
    assert_eq!(
        m.get::<stun_proto::attributes::Fingerprint>()
            .unwrap()
            .unwrap()
            .0,
        0xe57a3bcf
    );
    assert_eq!(m.unknown_comprehension_required().count(), 0);
    assert_eq!(
        m.verify_integrity(&IntegrityKey::short_term("wrong")),
        Err(VerifyError::IntegrityMismatch)
    );
}

#[test]
fn sample_ipv4_response() {
    // RFC 5769 §2.2
    let m = Message::parse(IPV4_RESPONSE).unwrap();
    assert_eq!(m.class(), Class::Success);
    assert_eq!(m.transaction_id().as_bytes(), &TID);
    assert_eq!(m.require::<Software<'_>>().unwrap().as_str(), "test vector");
    assert_eq!(
        m.require::<XorMappedAddress>().unwrap().0,
        "192.0.2.1:32853".parse().unwrap()
    );
    assert_eq!(
        hex(&m.message_integrity().unwrap().0),
        "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    );
    m.verify_integrity(&IntegrityKey::short_term(PASSWORD))
        .unwrap();
    m.verify_fingerprint().unwrap();
    assert_eq!(
        m.get::<stun_proto::attributes::Fingerprint>()
            .unwrap()
            .unwrap()
            .0,
        0xc07d4c96
    );
}

#[test]
fn sample_ipv6_response() {
    // RFC 5769 §2.3
    let m = Message::parse(IPV6_RESPONSE).unwrap();
    assert_eq!(
        m.require::<XorMappedAddress>().unwrap().0,
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap()
    );
    assert_eq!(
        hex(&m.message_integrity().unwrap().0),
        "a382954e4be67bf11784c97c8292c275bfe3ed41"
    );
    m.verify_integrity(&IntegrityKey::short_term(PASSWORD))
        .unwrap();
    m.verify_fingerprint().unwrap();
    assert_eq!(
        m.get::<stun_proto::attributes::Fingerprint>()
            .unwrap()
            .unwrap()
            .0,
        0xc8fb0b4c
    );
}

#[test]
fn sample_request_long_term() {
    // RFC 5769 §2.4
    let m = Message::parse(LONG_TERM).unwrap();
    assert_eq!(
        m.transaction_id().as_bytes(),
        &[
            0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e
        ]
    );
    let username = m.require::<Username<'_>>().unwrap();
    assert_eq!(
        username.as_str(),
        "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}"
    );
    assert_eq!(
        m.require::<Nonce<'_>>().unwrap().as_bytes(),
        b"f//499k954d6OL34oL9FSTvy64sA"
    );
    let realm = m.require::<Realm<'_>>().unwrap();
    assert_eq!(realm.as_str(), "example.org");
    assert_eq!(
        hex(&m.message_integrity().unwrap().0),
        "f67024656dd64a3e02b8e0712e85c9a28ca89666"
    );
    assert_eq!(m.verify_fingerprint(), Err(VerifyError::NoFingerprint));
    let key = LongTermKey::derive(
        Algorithm::Md5,
        username.as_str(),
        realm.as_str(),
        "TheMatrIX",
    );
    m.verify_integrity(&key.integrity_key()).unwrap();
    let wrong = LongTermKey::derive(
        Algorithm::Md5,
        username.as_str(),
        realm.as_str(),
        "TheMatrix",
    );
    assert_eq!(
        m.verify_integrity(&wrong.integrity_key()),
        Err(VerifyError::IntegrityMismatch)
    );
}

#[test]
fn rebuilding_the_sample_request_gives_the_same_bytes_except_padding() {
    use stun_proto::{MessageBuilder, TransactionId};
    let key = IntegrityKey::short_term(PASSWORD);
    let mut buf = [0u8; 200];
    let mut b = MessageBuilder::new(
        &mut buf,
        stun_proto::MessageType::BINDING_REQUEST,
        TransactionId::new(TID),
    )
    .unwrap();
    b.add(&Software::new("STUN test client").unwrap()).unwrap();
    b.add(&Priority(0x6e0001ff)).unwrap();
    b.add(&IceControlled(0x932ff9b151263b36)).unwrap();
    b.add(&Username::new("evtj:h6vY").unwrap()).unwrap();
    b.add_message_integrity(&key).unwrap();
    b.add_fingerprint().unwrap();
    let built = b.finish();
    // We pad with zeros where RFC 5769 used 0x20, so MI and FINGERPRINT differ; every byte
    // up to the end of the USERNAME value (offset 73) matches, and the message verifies.
    assert_eq!(built.len(), REQUEST.len());
    assert_eq!(&built[..73], &REQUEST[..73]);
    assert_eq!(&built[73..76], &[0, 0, 0]);
    let m = Message::parse(built).unwrap();
    m.verify_integrity(&key).unwrap();
    m.verify_fingerprint().unwrap();
}
