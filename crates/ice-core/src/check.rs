//! The STUN messages of ICE: connectivity checks (RFC 8445 §7.2), their responses (§7.3),
//! keepalive indications (§11), and the authentication of incoming checks (RFC 8489 §9.1).

use crate::config::Role;
use std::net::SocketAddr;
use stun_proto::attributes::{
    ErrorCode, IceControlled, IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
};
use stun_proto::{
    BuildError, Class, IntegrityKey, Message, MessageBuilder, MessageType, TransactionId,
};

/// Room for any message built here (USERNAME is at most 513 bytes).
const BUF_LEN: usize = 640;

/// What goes into a connectivity check.
pub(crate) struct CheckRequest<'a> {
    /// `remote-ufrag:local-ufrag` (RFC 8445 §7.2.2).
    pub(crate) username: &'a str,
    /// RFC 8445 §7.1.1: the priority a peer-reflexive candidate would get.
    pub(crate) priority: u32,
    pub(crate) role: Role,
    pub(crate) tie_breaker: u64,
    pub(crate) use_candidate: bool,
    /// The remote password's key.
    pub(crate) key: &'a IntegrityKey,
}

/// Builds a Binding request for a check: USERNAME, PRIORITY, ICE-CONTROLLING or
/// ICE-CONTROLLED, USE-CANDIDATE when nominating, MESSAGE-INTEGRITY and FINGERPRINT
/// (RFC 8445 §7.1, §7.2.4: FINGERPRINT is mandatory for checks).
pub(crate) fn build_request(
    tid: TransactionId,
    req: &CheckRequest<'_>,
) -> Result<Vec<u8>, BuildError> {
    let mut buf = [0u8; BUF_LEN];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_REQUEST, tid)?;
    let username = Username::new(req.username).map_err(|_| BuildError::TooLong)?;
    b.add(&username)?;
    b.add(&Priority(req.priority))?;
    match req.role {
        Role::Controlling => b.add(&IceControlling(req.tie_breaker))?,
        Role::Controlled => b.add(&IceControlled(req.tie_breaker))?,
    };
    // RFC 8445 §7.1.2: only the controlling agent nominates.
    if req.use_candidate && req.role == Role::Controlling {
        b.add(&UseCandidate)?;
    }
    b.add_message_integrity(req.key)?;
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

/// RFC 8445 §7.3: a success response carries XOR-MAPPED-ADDRESS (the source of the request
/// as we saw it, §7.3.1.2), MESSAGE-INTEGRITY with our password, and FINGERPRINT.
pub(crate) fn build_success(
    tid: TransactionId,
    mapped: SocketAddr,
    key: &IntegrityKey,
) -> Result<Vec<u8>, BuildError> {
    let mut buf = [0u8; BUF_LEN];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_SUCCESS, tid)?;
    b.add(&XorMappedAddress(mapped))?;
    b.add_message_integrity(key)?;
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

/// An error response. RFC 8489 §9.1.3: 400 and 401 go out without integrity (we cannot
/// know the requester's key); errors to authenticated requests (487, 420) carry it.
pub(crate) fn build_error(
    tid: TransactionId,
    code: u16,
    unknown: &[stun_proto::attributes::AttributeType],
    key: Option<&IntegrityKey>,
) -> Result<Vec<u8>, BuildError> {
    let mut buf = [0u8; BUF_LEN];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_ERROR, tid)?;
    stun_proto::server::add_error(&mut b, code, unknown)?;
    if let Some(key) = key {
        b.add_message_integrity(key)?;
    }
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

/// RFC 8445 §11: a keepalive is a Binding indication with FINGERPRINT and nothing else.
pub(crate) fn build_indication(tid: TransactionId) -> Result<Vec<u8>, BuildError> {
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_INDICATION, tid)?;
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

/// A plain Binding request to a STUN server for gathering (RFC 8445 §5.1.1.2: not
/// authenticated).
pub(crate) fn build_gather_request(tid: TransactionId) -> Result<Vec<u8>, BuildError> {
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_REQUEST, tid)?;
    b.add_fingerprint()?;
    Ok(b.finish().to_vec())
}

/// The ICE attributes of an authenticated check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IncomingCheck<'a> {
    pub(crate) tid: TransactionId,
    /// The part of USERNAME after the colon: the peer's ufrag.
    pub(crate) remote_ufrag: &'a str,
    pub(crate) priority: u32,
    pub(crate) controlling: Option<u64>,
    pub(crate) controlled: Option<u64>,
    pub(crate) use_candidate: bool,
}

/// Why an incoming check is refused, and how to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Answer 400: USERNAME or MESSAGE-INTEGRITY missing, or an ICE attribute malformed.
    BadRequest,
    /// Answer 401: the ufrag is not ours or the integrity does not match.
    Unauthenticated,
    /// Answer 420 (with integrity): unknown comprehension-required attributes.
    UnknownAttributes,
    /// Drop silently: the fingerprint is wrong, so this is not a STUN message for us.
    Drop,
}

/// Authenticates a Binding request (RFC 8445 §7.3, RFC 8489 §9.1.3). `key_for` returns the
/// key for a local ufrag we own (current or previous generation) with a tag saying which;
/// the tag comes back with the check, or with the refusal once the ufrag was recognised.
pub(crate) fn authenticate<'a, 'k, G: Copy>(
    msg: &Message<'a>,
    key_for: impl Fn(&str) -> Option<(&'k IntegrityKey, G)>,
) -> Result<(IncomingCheck<'a>, G), (Refusal, Option<G>)> {
    if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
        return Err((Refusal::Drop, None));
    }
    if !msg.has_message_integrity() && !msg.has_message_integrity_sha256() {
        return Err((Refusal::BadRequest, None));
    }
    let (ours, theirs) = match msg.get::<Username<'a>>() {
        Ok(Some(u)) => u
            .as_str()
            .split_once(':')
            .ok_or((Refusal::Unauthenticated, None))?,
        Ok(None) | Err(_) => return Err((Refusal::BadRequest, None)),
    };
    let (key, tag) = key_for(ours).ok_or((Refusal::Unauthenticated, None))?;
    msg.verify_integrity(key)
        .map_err(|_| (Refusal::Unauthenticated, None))?;
    if msg.unknown_comprehension_required().next().is_some() {
        return Err((Refusal::UnknownAttributes, Some(tag)));
    }
    let bad = |_| (Refusal::BadRequest, Some(tag));
    // RFC 8445 §7.1.1: PRIORITY must be present.
    let priority = msg
        .get::<Priority>()
        .map_err(bad)?
        .ok_or((Refusal::BadRequest, Some(tag)))?;
    let controlling = msg.get::<IceControlling>().map_err(bad)?.map(|a| a.0);
    let controlled = msg.get::<IceControlled>().map_err(bad)?.map(|a| a.0);
    let use_candidate = msg.get::<UseCandidate>().map_err(bad)?.is_some();
    Ok((
        IncomingCheck {
            tid: msg.transaction_id(),
            remote_ufrag: theirs,
            priority: priority.0,
            controlling,
            controlled,
            use_candidate,
        },
        tag,
    ))
}

/// A response to one of our checks, after the integrity check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckResponse {
    /// Success with the mapped address.
    Success(SocketAddr),
    /// 487 Role Conflict.
    RoleConflict,
    /// Any other error, or a success without a mapped address.
    Failure(u16),
}

/// Reads a Binding response to a check. The caller has matched the transaction and
/// verified integrity with the remote password.
pub(crate) fn read_response(msg: &Message<'_>) -> CheckResponse {
    match msg.class() {
        Class::Success => match msg.get::<XorMappedAddress>() {
            Ok(Some(a)) => CheckResponse::Success(a.0),
            _ => CheckResponse::Failure(0),
        },
        _ => match msg.get::<ErrorCode<'_>>() {
            Ok(Some(e)) if e.code() == ErrorCode::ROLE_CONFLICT => CheckResponse::RoleConflict,
            Ok(Some(e)) => CheckResponse::Failure(e.code()),
            _ => CheckResponse::Failure(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(username: &str, key: &IntegrityKey) -> Vec<u8> {
        build_request(
            TransactionId::new([1; 12]),
            &CheckRequest {
                username,
                priority: 0x6e00_01ff,
                role: Role::Controlling,
                tie_breaker: 7,
                use_candidate: true,
                key,
            },
        )
        .unwrap()
    }

    #[test]
    fn request_round_trip_and_refusals() {
        let key = IntegrityKey::short_term("remotepasswordremotepass");
        let bytes = request("RFRG:LFRG", &key);
        let msg = Message::parse(&bytes).unwrap();
        let (check, tag) = authenticate(&msg, |u| (u == "RFRG").then_some((&key, 5u8))).unwrap();
        assert_eq!(tag, 5);
        assert_eq!(check.remote_ufrag, "LFRG");
        assert_eq!(check.priority, 0x6e00_01ff);
        assert_eq!(check.controlling, Some(7));
        assert!(check.use_candidate);

        // Wrong ufrag and wrong key are 401.
        let other = IntegrityKey::short_term("anotherpasswordanotherp");
        assert_eq!(
            authenticate(&msg, |u| (u == "XXXX").then_some((&key, ()))).unwrap_err(),
            (Refusal::Unauthenticated, None)
        );
        assert_eq!(
            authenticate(&msg, |_| Some((&other, ()))).unwrap_err(),
            (Refusal::Unauthenticated, None)
        );
        // A flipped byte breaks the fingerprint: dropped.
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        let msg = Message::parse(&bad).unwrap();
        assert_eq!(
            authenticate(&msg, |_| Some((&key, ()))).unwrap_err(),
            (Refusal::Drop, None)
        );
        // No integrity at all: 400.
        let bytes = build_gather_request(TransactionId::new([2; 12])).unwrap();
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(
            authenticate(&msg, |_| Some((&key, ()))).unwrap_err(),
            (Refusal::BadRequest, None)
        );
    }

    #[test]
    fn responses() {
        let key = IntegrityKey::short_term("localpasswordlocalpasswd");
        let tid = TransactionId::new([3; 12]);
        let addr: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        let ok = build_success(tid, addr, &key).unwrap();
        let msg = Message::parse(&ok).unwrap();
        assert!(msg.verify_integrity(&key).is_ok());
        assert_eq!(read_response(&msg), CheckResponse::Success(addr));
        let err = build_error(tid, 487, &[], Some(&key)).unwrap();
        let msg = Message::parse(&err).unwrap();
        assert!(msg.verify_integrity(&key).is_ok());
        assert_eq!(read_response(&msg), CheckResponse::RoleConflict);
        let err = build_error(tid, 401, &[], None).unwrap();
        assert_eq!(
            read_response(&Message::parse(&err).unwrap()),
            CheckResponse::Failure(401)
        );
    }
}
