//! Property tests: attributes round-trip, random bytes never panic, random messages
//! round-trip through the builder and the parser.

use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use stun_proto::attributes::*;
use stun_proto::{IntegrityKey, Message, MessageBuilder, MessageType, TransactionId};

/// Decodes every attribute type this crate knows; none may panic.
fn decode_everything(m: &Message<'_>) {
    let _ = m.get::<MappedAddress>();
    let _ = m.get::<XorMappedAddress>();
    let _ = m.get::<AlternateServer>();
    let _ = m.get::<XorPeerAddress>();
    let _ = m.get::<XorRelayedAddress>();
    let _ = m.get::<ResponseOrigin>();
    let _ = m.get::<OtherAddress>();
    let _ = m.get::<Username<'_>>();
    let _ = m.get::<Realm<'_>>();
    let _ = m.get::<Nonce<'_>>();
    let _ = m.get::<Software<'_>>();
    let _ = m.get::<AlternateDomain<'_>>();
    let _ = m.get::<ErrorCode<'_>>();
    let _ = m.get::<AddressErrorCode<'_>>();
    if let Ok(Some(u)) = m.get::<UnknownAttributes<'_>>() {
        let _ = u.iter().count();
    }
    let _ = m.get::<UserHash>();
    let _ = m.get::<PasswordAlgorithm<'_>>();
    if let Ok(Some(p)) = m.get::<PasswordAlgorithms<'_>>() {
        let _ = p.iter().count();
    }
    let _ = m.get::<MessageIntegrity>();
    let _ = m.get::<MessageIntegritySha256<'_>>();
    let _ = m.get::<Fingerprint>();
    let _ = m.get::<ChannelNumber>();
    let _ = m.get::<Lifetime>();
    let _ = m.get::<Data<'_>>();
    let _ = m.get::<RequestedAddressFamily>();
    let _ = m.get::<AdditionalAddressFamily>();
    let _ = m.get::<EvenPort>();
    let _ = m.get::<RequestedTransport>();
    let _ = m.get::<DontFragment>();
    let _ = m.get::<ReservationToken>();
    let _ = m.get::<Icmp>();
    let _ = m.get::<ConnectionId>();
    let _ = m.get::<Priority>();
    let _ = m.get::<UseCandidate>();
    let _ = m.get::<IceControlled>();
    let _ = m.get::<IceControlling>();
    let _ = m.get::<ChangeRequest>();
    let _ = m.get::<ResponsePort>();
    let _ = m.get::<Padding<'_>>();
    let _ = m.unknown_comprehension_required().count();
    let _ = m.attributes().count();
    let key = IntegrityKey::short_term("k");
    let _ = m.verify_integrity(&key);
    let _ = m.verify_message_integrity(&key);
    let _ = m.verify_fingerprint();
    let _ = format!("{m:?}");
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

/// Encodes `attr` alone into a message with `tid`, parses it back and decodes it as `A`.
fn round_trip<'a, A>(attr: &A, tid: TransactionId, buf: &'a mut Vec<u8>) -> A
where
    A: Attribute<'a> + EncodeAttribute + std::fmt::Debug,
{
    buf.resize(70_000, 0);
    let mut b = MessageBuilder::new(buf, MessageType::BINDING_REQUEST, tid).unwrap();
    b.add(attr).unwrap();
    let bytes = b.finish();
    Message::parse(bytes).unwrap().require::<A>().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::parse(&bytes) {
            decode_everything(&m);
        }
        let _ = stun_proto::peek_header(&bytes);
    }

    #[test]
    fn random_attribute_bodies_never_panic(
        words in proptest::collection::vec(any::<[u8; 4]>(), 0..100),
        tid in any::<[u8; 12]>(),
        mtype in 0u16..0x4000,
    ) {
        // A valid header over random attribute bytes reaches the attribute walk.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&mtype.to_be_bytes());
        bytes.extend_from_slice(&((words.len() * 4) as u16).to_be_bytes());
        bytes.extend_from_slice(&stun_proto::MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&tid);
        words.iter().for_each(|w| bytes.extend_from_slice(w));
        if let Ok(m) = Message::parse(&bytes) {
            decode_everything(&m);
        }
    }

    #[test]
    fn random_messages_round_trip(
        attrs in proptest::collection::vec(
            (0u16..=0xFFFF, proptest::collection::vec(any::<u8>(), 0..64)), 0..12),
        tid in any::<[u8; 12]>(),
        mtype in 0u16..0x4000,
        integrity in any::<bool>(),
        fp in any::<bool>(),
    ) {
        let reserved = [
            AttributeType::MESSAGE_INTEGRITY.0,
            AttributeType::MESSAGE_INTEGRITY_SHA256.0,
            AttributeType::FINGERPRINT.0,
        ];
        let attrs: Vec<_> = attrs.into_iter().filter(|(t, _)| !reserved.contains(t)).collect();
        let key = IntegrityKey::short_term("pw");
        let mut buf = vec![0u8; 2048];
        let mut b = MessageBuilder::new(
            &mut buf, MessageType::from_u16(mtype).unwrap(), TransactionId::new(tid)).unwrap();
        for (t, v) in &attrs {
            b.add_raw(AttributeType(*t), v).unwrap();
        }
        if integrity {
            b.add_message_integrity(&key).unwrap();
        }
        if fp {
            b.add_fingerprint().unwrap();
        }
        let bytes = b.finish();
        let m = Message::parse(bytes).unwrap();
        prop_assert_eq!(m.message_type().to_u16(), mtype);
        prop_assert_eq!(*m.transaction_id().as_bytes(), tid);
        let got: Vec<_> = m.attributes().take(attrs.len())
            .map(|a| (a.attr_type.0, a.value.to_vec())).collect();
        prop_assert_eq!(&got, &attrs);
        prop_assert_eq!(m.verify_integrity(&key).is_ok(), integrity);
        prop_assert_eq!(m.verify_fingerprint().is_ok(), fp);
        decode_everything(&m);
    }

    #[test]
    fn address_attributes_round_trip(addr in arb_addr(), tid in any::<[u8; 12]>()) {
        let tid = TransactionId::new(tid);
        let mut buf = Vec::new();
        prop_assert_eq!(round_trip(&XorMappedAddress(addr), tid, &mut buf), XorMappedAddress(addr));
        prop_assert_eq!(round_trip(&MappedAddress(addr), tid, &mut buf), MappedAddress(addr));
        prop_assert_eq!(round_trip(&XorPeerAddress(addr), tid, &mut buf), XorPeerAddress(addr));
        prop_assert_eq!(round_trip(&XorRelayedAddress(addr), tid, &mut buf), XorRelayedAddress(addr));
        prop_assert_eq!(round_trip(&AlternateServer(addr), tid, &mut buf), AlternateServer(addr));
        prop_assert_eq!(round_trip(&ResponseOrigin(addr), tid, &mut buf), ResponseOrigin(addr));
        prop_assert_eq!(round_trip(&OtherAddress(addr), tid, &mut buf), OtherAddress(addr));
    }

    #[test]
    fn integer_and_flag_attributes_round_trip(
        a in any::<u32>(), b in any::<u64>(), c in any::<u16>(), d in any::<u8>(),
        flag in any::<bool>(), token in any::<[u8; 8]>(), hash in any::<[u8; 32]>(),
    ) {
        let tid = TransactionId::default();
        let mut buf = Vec::new();
        prop_assert_eq!(round_trip(&Priority(a), tid, &mut buf), Priority(a));
        prop_assert_eq!(round_trip(&Lifetime(a), tid, &mut buf), Lifetime(a));
        prop_assert_eq!(round_trip(&ConnectionId(a), tid, &mut buf), ConnectionId(a));
        prop_assert_eq!(round_trip(&IceControlled(b), tid, &mut buf), IceControlled(b));
        prop_assert_eq!(round_trip(&IceControlling(b), tid, &mut buf), IceControlling(b));
        prop_assert_eq!(round_trip(&ChannelNumber(c), tid, &mut buf), ChannelNumber(c));
        prop_assert_eq!(round_trip(&ResponsePort(c), tid, &mut buf), ResponsePort(c));
        prop_assert_eq!(round_trip(&RequestedTransport(d), tid, &mut buf), RequestedTransport(d));
        prop_assert_eq!(round_trip(&EvenPort { reserve: flag }, tid, &mut buf), EvenPort { reserve: flag });
        let cr = ChangeRequest { change_ip: flag, change_port: !flag };
        prop_assert_eq!(round_trip(&cr, tid, &mut buf), cr);
        prop_assert_eq!(round_trip(&UseCandidate, tid, &mut buf), UseCandidate);
        prop_assert_eq!(round_trip(&DontFragment, tid, &mut buf), DontFragment);
        prop_assert_eq!(round_trip(&ReservationToken(token), tid, &mut buf), ReservationToken(token));
        prop_assert_eq!(round_trip(&UserHash(hash), tid, &mut buf), UserHash(hash));
        let icmp = Icmp { icmp_type: d, code: d.wrapping_add(1), error_data: a };
        prop_assert_eq!(round_trip(&icmp, tid, &mut buf), icmp);
        let fam = if flag { AddressFamily::Ipv4 } else { AddressFamily::Ipv6 };
        prop_assert_eq!(round_trip(&RequestedAddressFamily(fam), tid, &mut buf), RequestedAddressFamily(fam));
        prop_assert_eq!(round_trip(&AdditionalAddressFamily(fam), tid, &mut buf), AdditionalAddressFamily(fam));
    }

    #[test]
    fn text_and_byte_attributes_round_trip(
        s in "[\\PC]{0,100}",
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        code in 300u16..700,
    ) {
        let tid = TransactionId::default();
        let mut buf = Vec::new();
        if let Ok(u) = Username::new(&s) {
            prop_assert_eq!(round_trip(&u, tid, &mut buf).as_str(), s.as_str());
        }
        if let Ok(r) = Realm::new(&s) {
            prop_assert_eq!(round_trip(&r, tid, &mut buf).as_str(), s.as_str());
        }
        if let Ok(w) = Software::new(&s) {
            prop_assert_eq!(round_trip(&w, tid, &mut buf).as_str(), s.as_str());
        }
        if let Ok(n) = Nonce::new(s.as_bytes()) {
            prop_assert_eq!(round_trip(&n, tid, &mut buf).as_bytes(), s.as_bytes());
        }
        if let Ok(d) = AlternateDomain::new(&s) {
            prop_assert_eq!(round_trip(&d, tid, &mut buf).as_str(), s.as_str());
        }
        if let Ok(e) = ErrorCode::new(code, &s) {
            let back = round_trip(&e, tid, &mut buf);
            prop_assert_eq!((back.code(), back.reason()), (code, s.as_str()));
        }
        prop_assert_eq!(round_trip(&Data(&bytes), tid, &mut buf).0, &bytes[..]);
        prop_assert_eq!(round_trip(&Padding(&bytes), tid, &mut buf).0, &bytes[..]);
        let algs: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).take(20).collect();
        let list = PasswordAlgorithms::new(&algs);
        prop_assert!(round_trip(&list, tid, &mut buf).same_as(&list));
        let pa = PasswordAlgorithm { algorithm: code, parameters: &bytes[..bytes.len().min(40)] };
        prop_assert_eq!(round_trip(&pa, tid, &mut buf), pa);
        let types: Vec<AttributeType> = algs.iter().map(|&t| AttributeType(t)).collect();
        let ua = UnknownAttributes::new(&types);
        prop_assert!(round_trip(&ua, tid, &mut buf).iter().eq(types.iter().copied()));
        if let Ok(ae) = AddressErrorCode::new(AddressFamily::Ipv6, code, &s) {
            prop_assert_eq!(round_trip(&ae, tid, &mut buf), ae);
        }
    }
}
