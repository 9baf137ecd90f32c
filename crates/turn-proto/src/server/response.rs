//! Building responses: the answers of the request handlers, signed with the request's key,
//! and the unauthenticated challenges and errors.

use super::ports::Token;
use smallvec::SmallVec;
use std::net::SocketAddr;
use stun_proto::attributes::{
    AddressErrorCode, AddressFamily, AttributeType, ConnectionId, Lifetime, Nonce,
    PasswordAlgorithms, Realm, ReservationToken, Software, XorMappedAddress, XorRelayedAddress,
};
use stun_proto::server::add_error;
use stun_proto::{
    BuildError, Class, IntegrityKey, MessageBuilder, MessageType, Method, TransactionId,
};

/// The success attributes of each method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Success {
    /// CreatePermission and ChannelBind: nothing but integrity (RFC 8656 §10.2, §12.2).
    Empty,
    /// Refresh: LIFETIME (RFC 8656 §8.2).
    Lifetime(u32),
    /// Allocate (RFC 8656 §7.2).
    Allocate(Box<AllocateSuccess>),
    /// Connect: CONNECTION-ID (RFC 6062 §5.2).
    ConnectionId(u32),
}

/// The attributes of an Allocate success response (RFC 8656 §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllocateSuccess {
    pub(crate) relayed: SmallVec<[SocketAddr; 2]>,
    /// The family not granted in a dual allocation, and why (ADDRESS-ERROR-CODE).
    pub(crate) address_error: Option<(AddressFamily, u16)>,
    pub(crate) lifetime: u32,
    pub(crate) token: Option<Token>,
    pub(crate) mapped: SocketAddr,
}

/// What a request handler decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A success response.
    Success(Success),
    /// An error response with this code.
    Error(u16),
    /// 420 listing these attributes.
    UnknownAttributes(SmallVec<[AttributeType; 4]>),
    /// No response yet: an Allocate waits for its relay bind.
    Deferred,
}

/// The key that signs a response, and which integrity attribute to use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signing<'k> {
    pub(crate) key: &'k IntegrityKey,
    pub(crate) sha256: bool,
}

/// Builds the response to an authenticated request: the answer's attributes, SOFTWARE
/// when given, the integrity attribute and FINGERPRINT.
pub(crate) fn build_answer(
    buf: &mut [u8],
    method: Method,
    tid: TransactionId,
    answer: &Answer,
    signing: Signing<'_>,
    software: Option<&str>,
) -> Result<Vec<u8>, BuildError> {
    let class = match answer {
        Answer::Success(_) => Class::Success,
        _ => Class::Error,
    };
    let mut b = MessageBuilder::new(buf, MessageType::new(method, class), tid)?;
    match answer {
        Answer::Success(s) => add_success(&mut b, s)?,
        Answer::Error(code) => add_error(&mut b, *code, &[])?,
        Answer::UnknownAttributes(list) => add_error(&mut b, 420, list)?,
        Answer::Deferred => {}
    }
    if let Some(s) = software.and_then(|s| Software::new(s).ok()) {
        b.add(&s)?;
    }
    if signing.sha256 {
        b.add_message_integrity_sha256(signing.key)?;
    } else {
        b.add_message_integrity(signing.key)?;
    }
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

fn add_success(b: &mut MessageBuilder<'_>, s: &Success) -> Result<(), BuildError> {
    match s {
        Success::Empty => {}
        Success::Lifetime(l) => {
            b.add(&Lifetime(*l))?;
        }
        Success::ConnectionId(id) => {
            b.add(&ConnectionId(*id))?;
        }
        Success::Allocate(a) => {
            for r in &a.relayed {
                b.add(&XorRelayedAddress(*r))?;
            }
            if let Some((family, code)) = a.address_error {
                let reason = stun_proto::attributes::default_reason(code);
                let e =
                    AddressErrorCode::new(family, code, reason).map_err(|_| BuildError::TooLong)?;
                b.add(&e)?;
            }
            b.add(&Lifetime(a.lifetime))?;
            if let Some(t) = a.token {
                b.add(&ReservationToken(t))?;
            }
            b.add(&XorMappedAddress(a.mapped))?;
        }
    }
    Ok(())
}

/// Builds an unauthenticated error: 401 or 438 carry REALM, a fresh NONCE and
/// PASSWORD-ALGORITHMS (RFC 8489 §9.2.4); other codes (400, 420) only ERROR-CODE and
/// UNKNOWN-ATTRIBUTES. No SOFTWARE, to keep answers to unauthenticated (possibly spoofed)
/// requests small. FINGERPRINT on all.
pub(crate) fn build_challenge(
    buf: &mut [u8],
    method: Method,
    tid: TransactionId,
    code: u16,
    unknown: &[AttributeType],
    realm_nonce: Option<(&str, &[u8])>,
    algorithms: &[u16],
) -> Result<Vec<u8>, BuildError> {
    let mut b = MessageBuilder::new(buf, MessageType::new(method, Class::Error), tid)?;
    add_error(&mut b, code, unknown)?;
    if let Some((realm, nonce)) = realm_nonce {
        b.add(&Realm::new(realm).map_err(|_| BuildError::TooLong)?)?;
        b.add(&Nonce::new(nonce).map_err(|_| BuildError::TooLong)?)?;
        b.add(&PasswordAlgorithms::new(algorithms))?;
    }
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_proto::Message;
    use stun_proto::attributes::{ErrorCode, UnknownAttributes};

    #[test]
    fn answers_are_signed_and_fingerprinted() {
        let key = IntegrityKey::new(b"k");
        let tid = TransactionId::new([1; 12]);
        let mut buf = [0u8; 512];
        let ok = Answer::Success(Success::Allocate(Box::new(AllocateSuccess {
            relayed: ["192.0.2.1:50000".parse().unwrap()].into_iter().collect(),
            address_error: Some((AddressFamily::Ipv6, 440)),
            lifetime: 600,
            token: Some([3; 8]),
            mapped: "198.51.100.1:4000".parse().unwrap(),
        })));
        for sha256 in [false, true] {
            let bytes = build_answer(
                &mut buf,
                Method::ALLOCATE,
                tid,
                &ok,
                Signing { key: &key, sha256 },
                Some("floe"),
            )
            .unwrap();
            let m = Message::parse(&bytes).unwrap();
            assert_eq!(m.class(), Class::Success);
            let used = m.verify_integrity(&key).unwrap();
            assert_eq!(used == stun_proto::IntegrityAlgorithm::Sha256, sha256);
            m.verify_fingerprint().unwrap();
            assert_eq!(m.require::<Lifetime>().unwrap(), Lifetime(600));
            assert_eq!(m.require::<AddressErrorCode<'_>>().unwrap().code(), 440);
            assert_eq!(m.require::<ReservationToken>().unwrap().0, [3; 8]);
        }
        let unknown =
            Answer::UnknownAttributes([AttributeType::DONT_FRAGMENT].into_iter().collect());
        let bytes = build_answer(
            &mut buf,
            Method::ALLOCATE,
            tid,
            &unknown,
            Signing {
                key: &key,
                sha256: false,
            },
            None,
        )
        .unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.require::<ErrorCode<'_>>().unwrap().code(), 420);
        assert!(
            m.require::<UnknownAttributes<'_>>()
                .unwrap()
                .iter()
                .eq([AttributeType::DONT_FRAGMENT])
        );
    }

    #[test]
    fn challenges_carry_realm_nonce_and_algorithms() {
        let mut buf = [0u8; 512];
        let tid = TransactionId::new([2; 12]);
        let bytes = build_challenge(
            &mut buf,
            Method::REFRESH,
            tid,
            438,
            &[],
            Some(("example.org", b"obMatJos2AAABxyz")),
            &[2, 1],
        )
        .unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.require::<ErrorCode<'_>>().unwrap().code(), 438);
        assert_eq!(m.require::<Realm<'_>>().unwrap().as_str(), "example.org");
        assert_eq!(
            m.require::<Nonce<'_>>().unwrap().as_bytes(),
            b"obMatJos2AAABxyz"
        );
        assert!(
            m.require::<PasswordAlgorithms<'_>>()
                .unwrap()
                .same_as(&PasswordAlgorithms::new(&[2, 1]))
        );
        assert!(!m.has_message_integrity());
        let bytes = build_challenge(&mut buf, Method::ALLOCATE, tid, 400, &[], None, &[]).unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert!(!m.has(AttributeType::REALM));
        m.verify_fingerprint().unwrap();
    }
}
