//! `stun_parse`: the STUN codec on arbitrary bytes.
//!
//! Invariants:
//! * `Message::parse` never panics; when it succeeds, `peek_header` agrees on the type and
//!   the length, and the raw getters agree with the attribute iterator (the first of a type
//!   counts).
//! * Every typed attribute decodes without panicking; what decodes and can be encoded
//!   encodes through `MessageBuilder` and decodes back to the same value.
//! * Re-encoding the message through `MessageBuilder` (its attributes raw, then
//!   MESSAGE-INTEGRITY / -SHA256 / FINGERPRINT where the original had them, computed with
//!   a known key) gives a message that parses to the same type, transaction ID and
//!   attributes, whose integrity and fingerprint verify, and which re-encodes to the same
//!   bytes; changing any one byte of it makes the integrity check fail.
//! * Integrity and fingerprint verification of the original bytes never panic (with the
//!   RFC 5769 keys, so the vectors verify).
//! * A Binding server configured as the TURN server's never panics on the bytes, and its
//!   answer to unauthenticated input is at most
//!   [`MAX_UNAUTHENTICATED_GROWTH`](turn_proto::server::MAX_UNAUTHENTICATED_GROWTH) bytes
//!   larger than the request (a success at most 32).

use std::time::Instant;
use stun_proto::attributes::{
    AdditionalAddressFamily, AddressErrorCode, AlternateDomain, AlternateServer, Attribute,
    AttributeType, ChangeRequest, ChangedAddress, ChannelNumber, ConnectionId, Data, DontFragment,
    EncodeAttribute, ErrorCode, EvenPort, Fingerprint, IceControlled, IceControlling, Icmp,
    Lifetime, MappedAddress, MessageIntegrity, MessageIntegritySha256, Nonce, OtherAddress,
    Padding, PasswordAlgorithm, PasswordAlgorithms, Priority, Realm, RequestedAddressFamily,
    RequestedTransport, ReservationToken, ResponseOrigin, ResponsePort, Software,
    UnknownAttributes, UseCandidate, UserHash, Username, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::server::{BindingServer, BindingServerConfig};
use stun_proto::{
    Class, Input, IntegrityKey, Message, MessageBuilder, TransportProtocol, peek_header,
};
use turn_proto::server::MAX_UNAUTHENTICATED_GROWTH;

/// The RFC 5769 short-term password.
pub const RFC5769_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// The body of the target.
pub fn run(data: &[u8]) {
    binding_server(data);
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let header = peek_header(data);
    assert_eq!(header, Some((msg.message_type(), data.len())));
    first_of_each_type_counts(&msg);
    typed_attributes(&msg);
    verify_original(&msg);
    re_encode(&msg, data);
}

fn first_of_each_type_counts(msg: &Message<'_>) {
    let mut seen: Vec<AttributeType> = Vec::new();
    for a in msg.attributes() {
        if seen.contains(&a.attr_type) {
            continue;
        }
        seen.push(a.attr_type);
        assert_eq!(msg.raw(a.attr_type), Some(a.value), "{:?}", a.attr_type);
        assert!(msg.has(a.attr_type));
    }
    // Everything unknown and comprehension-required is among the attributes.
    for t in msg.unknown_comprehension_required() {
        assert!(seen.contains(&t) && t.is_comprehension_required() && !t.is_known());
    }
}

/// Decodes an attribute type; if it decodes, encodes it alone through `MessageBuilder` and
/// decodes it back. (A macro, not a function: the decoded value borrows from two different
/// buffers.)
macro_rules! round_trip {
    ($msg:expr, $t:ty) => {
        round_trip!($msg, $t, |a: &$t, b: &$t| a == b)
    };
    ($msg:expr, $t:ty, $same:expr) => {{
        let msg: &Message<'_> = $msg;
        if let Ok(Some(value)) = msg.get::<$t>() {
            let mut buf = vec![0u8; 20 + 4 + value.value_len() + 3];
            let mut b = MessageBuilder::new(&mut buf, msg.message_type(), msg.transaction_id())
                .expect("header fits");
            b.add(&value).expect("a decoded attribute re-encodes");
            let bytes = b.finish().to_vec();
            let again = Message::parse(&bytes).expect("a built message parses");
            match again.get::<$t>() {
                Ok(Some(v)) => assert!(
                    $same(&v, &value),
                    "{} does not round-trip: {v:?} != {value:?}",
                    stringify!($t)
                ),
                other => panic!("{} re-encoded does not decode: {other:?}", stringify!($t)),
            }
        }
    }};
}

/// Decodes `A` only (attributes the builder writes itself).
fn decode_only<'a, A: Attribute<'a>>(msg: &Message<'a>) {
    let _ = msg.get::<A>();
}

fn typed_attributes(msg: &Message<'_>) {
    round_trip!(msg, MappedAddress);
    round_trip!(msg, XorMappedAddress);
    round_trip!(msg, XorPeerAddress);
    round_trip!(msg, XorRelayedAddress);
    round_trip!(msg, AlternateServer);
    round_trip!(msg, ChangedAddress);
    round_trip!(msg, OtherAddress);
    round_trip!(msg, ResponseOrigin);
    round_trip!(msg, Username<'_>);
    round_trip!(msg, Realm<'_>);
    round_trip!(msg, Nonce<'_>);
    round_trip!(msg, Software<'_>);
    round_trip!(msg, AlternateDomain<'_>);
    round_trip!(msg, ErrorCode<'_>);
    round_trip!(msg, AddressErrorCode<'_>);
    round_trip!(msg, UnknownAttributes<'_>);
    round_trip!(msg, PasswordAlgorithm<'_>);
    // Compared by meaning: `==` on the wire form also compares padding inside entries,
    // which the builder writes as zeros.
    round_trip!(
        msg,
        PasswordAlgorithms<'_>,
        |a: &PasswordAlgorithms<'_>, b: &PasswordAlgorithms<'_>| a.same_as(b)
    );
    round_trip!(msg, UserHash);
    round_trip!(msg, Priority);
    round_trip!(msg, UseCandidate);
    round_trip!(msg, IceControlled);
    round_trip!(msg, IceControlling);
    round_trip!(msg, ChangeRequest);
    round_trip!(msg, ResponsePort);
    round_trip!(msg, Padding<'_>);
    round_trip!(msg, ChannelNumber);
    round_trip!(msg, Lifetime);
    round_trip!(msg, Data<'_>);
    round_trip!(msg, RequestedAddressFamily);
    round_trip!(msg, AdditionalAddressFamily);
    round_trip!(msg, EvenPort);
    round_trip!(msg, RequestedTransport);
    round_trip!(msg, DontFragment);
    round_trip!(msg, ReservationToken);
    round_trip!(msg, Icmp);
    round_trip!(msg, ConnectionId);
    decode_only::<MessageIntegrity>(msg);
    decode_only::<MessageIntegritySha256<'_>>(msg);
    decode_only::<Fingerprint>(msg);
    let _ = (msg.message_integrity(), msg.message_integrity_sha256());
    // The iterators of the list attributes.
    if let Ok(Some(list)) = msg.get::<UnknownAttributes<'_>>() {
        let _ = list.iter().count();
    }
    if let Ok(Some(list)) = msg.get::<PasswordAlgorithms<'_>>() {
        let _ = list.iter().count();
    }
}

/// The keys the original bytes are checked with: the RFC 5769 short-term and long-term
/// credentials (so the vectors verify), and the key the re-encoding uses.
fn keys() -> [IntegrityKey; 3] {
    [
        IntegrityKey::short_term(RFC5769_PASSWORD),
        LongTermKey::derive(
            Algorithm::Md5,
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        )
        .integrity_key(),
        fuzz_key(),
    ]
}

fn fuzz_key() -> IntegrityKey {
    IntegrityKey::short_term("fuzzfuzzfuzzfuzzfuzzfuzz")
}

fn verify_original(msg: &Message<'_>) {
    for key in keys() {
        let separate = match msg.has_fingerprint() {
            true => msg
                .verify_fingerprint()
                .and_then(|()| msg.verify_integrity(&key)),
            false => msg.verify_integrity(&key),
        };
        // The one-pass check must say exactly what the separate checks say.
        assert_eq!(msg.verify(&key), separate, "Message::verify disagrees");
        let _ = msg.verify_message_integrity(&key);
        let _ = msg.verify_message_integrity_sha256(&key);
    }
    let _ = msg.verify_fingerprint();
}

/// Builds `msg` again: its attributes raw, then integrity and fingerprint as it had them.
fn rebuild(msg: &Message<'_>) -> Vec<u8> {
    let key = fuzz_key();
    let mut buf = vec![0u8; msg.len() + 64];
    let mut b =
        MessageBuilder::new(&mut buf, msg.message_type(), msg.transaction_id()).expect("fits");
    let special = [
        AttributeType::MESSAGE_INTEGRITY,
        AttributeType::MESSAGE_INTEGRITY_SHA256,
        AttributeType::FINGERPRINT,
    ];
    for a in msg.attributes() {
        if !special.contains(&a.attr_type) {
            b.add_raw(a.attr_type, a.value)
                .expect("an attribute that parsed fits");
        }
    }
    if msg.has_message_integrity() {
        b.add_message_integrity(&key).expect("fits");
    }
    if let Some(mi) = msg.message_integrity_sha256() {
        b.add_message_integrity_sha256_truncated(&key, mi.0.len())
            .expect("a truncation that parsed is valid");
    }
    if msg.has_fingerprint() {
        b.add_fingerprint().expect("fits");
    }
    b.finish().to_vec()
}

fn re_encode(msg: &Message<'_>, data: &[u8]) {
    let rebuilt = rebuild(msg);
    assert!(rebuilt.len() <= data.len(), "re-encoding grew the message");
    let again = Message::parse(&rebuilt).expect("a rebuilt message parses");
    assert_eq!(again.message_type(), msg.message_type());
    assert_eq!(again.transaction_id(), msg.transaction_id());
    let types = |m: &Message<'_>| -> Vec<(AttributeType, Vec<u8>)> {
        m.attributes()
            .filter(|a| {
                !matches!(
                    a.attr_type,
                    AttributeType::MESSAGE_INTEGRITY
                        | AttributeType::MESSAGE_INTEGRITY_SHA256
                        | AttributeType::FINGERPRINT
                )
            })
            .map(|a| (a.attr_type, a.value.to_vec()))
            .collect()
    };
    assert_eq!(types(&again), types(msg));
    assert_eq!(
        (
            again.has_message_integrity(),
            again.has_message_integrity_sha256(),
            again.has_fingerprint()
        ),
        (
            msg.has_message_integrity(),
            msg.has_message_integrity_sha256(),
            msg.has_fingerprint()
        )
    );
    let key = fuzz_key();
    if again.has_message_integrity() || again.has_message_integrity_sha256() {
        again
            .verify_integrity(&key)
            .expect("the builder's integrity verifies");
        if again.has_message_integrity() {
            again
                .verify_message_integrity(&key)
                .expect("SHA-1 verifies");
        }
        // Any one byte changed (chosen by the input) breaks integrity or the parse.
        let at = usize::from(data[data.len() / 2]) % rebuilt.len();
        let mut tampered = rebuilt.clone();
        tampered[at] ^= 0x01;
        if let Ok(t) = Message::parse(&tampered) {
            let covered = integrity_covers(&again, at);
            if covered && (t.has_message_integrity() || t.has_message_integrity_sha256()) {
                assert!(
                    t.verify_integrity(&key).is_err(),
                    "flipping byte {at} went unnoticed by the integrity check"
                );
            }
        }
    }
    if again.has_fingerprint() {
        again
            .verify_fingerprint()
            .expect("the builder's fingerprint verifies");
    }
    assert_eq!(
        rebuild(&again),
        rebuilt,
        "re-encoding is not stable: encode(parse(encode(parse(x)))) != encode(parse(x))"
    );
}

/// True if byte `at` of `msg` is covered by the integrity attribute that
/// `verify_integrity` checks (the SHA-256 one when present): the HMAC input is the message
/// up to that attribute's header (RFC 8489 §14.5-14.6). The header's length field is
/// excluded: a changed length fails the parse, or moves attributes in or out of the part
/// that counts. (The attribute's own header is not covered either: changing its type turns
/// a message with both integrity attributes into one with MESSAGE-INTEGRITY only, which
/// then decides, and is still valid.)
fn integrity_covers(msg: &Message<'_>, at: usize) -> bool {
    let bytes = msg.as_bytes();
    let offset = |attr: AttributeType| -> Option<usize> {
        let mut pos = 20;
        while pos + 4 <= bytes.len() {
            let t = u16::from_be_bytes([bytes[pos], bytes[pos + 1]]);
            let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
            if t == attr.0 {
                return Some(pos);
            }
            pos += 4 + len.next_multiple_of(4);
        }
        None
    };
    let attr = if msg.has_message_integrity_sha256() {
        AttributeType::MESSAGE_INTEGRITY_SHA256
    } else {
        AttributeType::MESSAGE_INTEGRITY
    };
    let Some(start) = offset(attr) else {
        return false;
    };
    !(2..4).contains(&at) && at < start
}

/// The TURN server's embedded Binding server, on the same bytes from an IPv6 client (the
/// largest XOR-MAPPED-ADDRESS).
fn binding_server(data: &[u8]) {
    let mut server = BindingServer::new(BindingServerConfig {
        software: None,
        mapped_address: false,
        fingerprint: true,
        alternate: None,
        max_padding: 0,
    });
    let input = Input {
        transport: TransportProtocol::Udp,
        source: "[2001:db8::7]:40000".parse().expect("literal"),
        destination: "[2001:db8::1]:3478".parse().expect("literal"),
        data,
    };
    let _ = server.handle_input(Instant::now(), input);
    while let Some(t) = server.poll_transmit() {
        let growth = t.payload.len().saturating_sub(data.len());
        let resp = Message::parse(&t.payload).expect("the server's answers parse");
        // Answers go back to the source; RFC 5780 RESPONSE-PORT may change a success's port.
        assert_eq!(
            t.destination.ip(),
            input.source.ip(),
            "answer sent elsewhere"
        );
        let port = Message::parse(data)
            .ok()
            .filter(|_| resp.class() == Class::Success)
            .and_then(|m| m.get::<ResponsePort>().ok().flatten())
            .map_or(input.source.port(), |p| p.0);
        assert_eq!(t.destination.port(), port, "answer sent to another port");
        let bound = match resp.class() {
            Class::Success => 32,
            _ => MAX_UNAUTHENTICATED_GROWTH,
        };
        assert!(
            growth <= bound,
            "a {:?} of {} bytes answers a {}-byte request",
            resp.class(),
            t.payload.len(),
            data.len()
        );
    }
}
