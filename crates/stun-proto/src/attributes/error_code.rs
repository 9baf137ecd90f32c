//! ERROR-CODE (RFC 8489 §14.8), ADDRESS-ERROR-CODE (RFC 8656 §18.12) and
//! UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).

use super::text::{MAX_DECODE_BYTES, check_chars};
use super::turn::AddressFamily;
use super::{Attribute, AttributeError, AttributeType, EncodeAttribute, be16};
use crate::header::TransactionId;

/// ERROR-CODE: a numeric code 300–699 and a reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode<'a> {
    code: u16,
    reason: &'a str,
}

impl<'a> ErrorCode<'a> {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 403 Forbidden (RFC 8656).
    pub const FORBIDDEN: u16 = 403;
    /// 405 Mobility Forbidden (RFC 8016).
    pub const MOBILITY_FORBIDDEN: u16 = 405;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 437 Allocation Mismatch (RFC 8656).
    pub const ALLOCATION_MISMATCH: u16 = 437;
    /// 438 Stale Nonce.
    pub const STALE_NONCE: u16 = 438;
    /// 440 Address Family not Supported (RFC 8656).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    /// 441 Wrong Credentials (RFC 8656).
    pub const WRONG_CREDENTIALS: u16 = 441;
    /// 442 Unsupported Transport Protocol (RFC 8656).
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: u16 = 442;
    /// 443 Peer Address Family Mismatch (RFC 8656).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    /// 446 Connection Already Exists (RFC 6062).
    pub const CONNECTION_ALREADY_EXISTS: u16 = 446;
    /// 447 Connection Timeout or Failure (RFC 6062).
    pub const CONNECTION_TIMEOUT_OR_FAILURE: u16 = 447;
    /// 486 Allocation Quota Reached (RFC 8656).
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// 487 Role Conflict (RFC 8445).
    pub const ROLE_CONFLICT: u16 = 487;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;
    /// 508 Insufficient Capacity (RFC 8656).
    pub const INSUFFICIENT_CAPACITY: u16 = 508;

    /// An error code with the given reason phrase. The code must be 300–699 and the phrase
    /// fewer than 128 characters.
    pub fn new(code: u16, reason: &'a str) -> Result<Self, AttributeError> {
        let attr = AttributeType::ERROR_CODE;
        if !(300..=699).contains(&code) {
            return Err(AttributeError::BadValue {
                attr,
                reason: "code outside 300-699",
            });
        }
        check_chars(attr, reason)?;
        Ok(ErrorCode { code, reason })
    }

    /// An error code with the IANA-recommended reason phrase.
    pub fn with_default_reason(code: u16) -> Result<ErrorCode<'static>, AttributeError> {
        ErrorCode::new(code, default_reason(code))
    }

    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason phrase (diagnostic only). A phrase that is not UTF-8 decodes as empty:
    /// the code is what carries meaning.
    pub fn reason(&self) -> &'a str {
        self.reason
    }
}

/// The recommended reason phrase for a code, or "" when there is none.
pub const fn default_reason(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthenticated",
        403 => "Forbidden",
        405 => "Mobility Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        446 => "Connection Already Exists",
        447 => "Connection Timeout or Failure",
        486 => "Allocation Quota Reached",
        487 => "Role Conflict",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "",
    }
}

/// Decodes the shared `class | number | reason` tail; `value` starts at the class byte's word.
fn decode_code(attr: AttributeType, value: &[u8]) -> Result<(u16, &str), AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::BadLength {
            attr,
            len: value.len(),
        });
    }
    if value.len() > 4 + MAX_DECODE_BYTES {
        return Err(AttributeError::TooLong {
            attr,
            len: value.len() - 4,
            max: MAX_DECODE_BYTES,
        });
    }
    // RFC 8489 §14.8: the class is the hundreds digit (3-6), the number is code mod 100.
    let class = u16::from(value[2] & 0x07);
    let number = u16::from(value[3]);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(AttributeError::BadValue {
            attr,
            reason: "error class or number out of range",
        });
    }
    let reason = core::str::from_utf8(&value[4..]).unwrap_or("");
    Ok((class * 100 + number, reason))
}

fn encode_code(code: u16, reason: &str, out: &mut [u8]) {
    out[2] = (code / 100) as u8;
    out[3] = (code % 100) as u8;
    out[4..].copy_from_slice(reason.as_bytes());
}

impl<'a> Attribute<'a> for ErrorCode<'a> {
    const TYPE: AttributeType = AttributeType::ERROR_CODE;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let (code, reason) = decode_code(Self::TYPE, value)?;
        Ok(ErrorCode { code, reason })
    }
}

impl EncodeAttribute for ErrorCode<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::ERROR_CODE
    }

    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].fill(0);
        encode_code(self.code, self.reason, out);
    }
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): why the server could not allocate a relayed address
/// of one family when two were asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressErrorCode<'a> {
    /// The address family the error is about.
    pub family: AddressFamily,
    code: u16,
    reason: &'a str,
}

impl<'a> AddressErrorCode<'a> {
    /// An address error; the code must be 300–699 and the phrase fewer than 128 characters.
    pub fn new(family: AddressFamily, code: u16, reason: &'a str) -> Result<Self, AttributeError> {
        let e = ErrorCode::new(code, reason)?;
        Ok(AddressErrorCode {
            family,
            code: e.code,
            reason: e.reason,
        })
    }

    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'a str {
        self.reason
    }
}

impl<'a> Attribute<'a> for AddressErrorCode<'a> {
    const TYPE: AttributeType = AttributeType::ADDRESS_ERROR_CODE;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let (code, reason) = decode_code(Self::TYPE, value)?;
        let family = AddressFamily::from_wire(Self::TYPE, value[0])?;
        Ok(AddressErrorCode {
            family,
            code,
            reason,
        })
    }
}

impl EncodeAttribute for AddressErrorCode<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::ADDRESS_ERROR_CODE
    }

    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = self.family.to_wire();
        out[1] = 0;
        encode_code(self.code, self.reason, out);
    }
}

/// UNKNOWN-ATTRIBUTES: the comprehension-required attribute types a server did not
/// understand (sent with 420).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(Repr<'a>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [AttributeType]),
}

impl<'a> UnknownAttributes<'a> {
    /// The attribute types to report.
    pub fn new(types: &'a [AttributeType]) -> Self {
        UnknownAttributes(Repr::List(types))
    }

    /// The attribute types listed.
    pub fn iter(&self) -> UnknownAttributesIter<'a> {
        UnknownAttributesIter {
            repr: self.0,
            at: 0,
        }
    }
}

/// Iterator over the types in an [`UnknownAttributes`].
#[derive(Clone, Debug)]
pub struct UnknownAttributesIter<'a> {
    repr: Repr<'a>,
    at: usize,
}

impl Iterator for UnknownAttributesIter<'_> {
    type Item = AttributeType;

    fn next(&mut self) -> Option<AttributeType> {
        let item = match self.repr {
            Repr::Wire(w) => {
                (self.at * 2 + 2 <= w.len()).then(|| AttributeType(be16(w, self.at * 2)))
            }
            Repr::List(l) => l.get(self.at).copied(),
        };
        self.at += usize::from(item.is_some());
        item
    }
}

impl<'a> Attribute<'a> for UnknownAttributes<'a> {
    const TYPE: AttributeType = AttributeType::UNKNOWN_ATTRIBUTES;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if value.len() % 2 != 0 {
            return Err(AttributeError::BadLength {
                attr: Self::TYPE,
                len: value.len(),
            });
        }
        Ok(UnknownAttributes(Repr::Wire(value)))
    }
}

impl EncodeAttribute for UnknownAttributes<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::UNKNOWN_ATTRIBUTES
    }

    fn value_len(&self) -> usize {
        match self.0 {
            Repr::Wire(w) => w.len(),
            Repr::List(l) => l.len() * 2,
        }
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        for (chunk, t) in out.chunks_exact_mut(2).zip(self.iter()) {
            chunk.copy_from_slice(&t.0.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_round_trip_and_range() {
        let tid = TransactionId::default();
        let e = ErrorCode::with_default_reason(438).unwrap();
        let mut out = vec![0u8; e.value_len()];
        e.encode_value(&mut out, &tid);
        assert_eq!(&out[..4], &[0, 0, 4, 38]);
        assert_eq!(ErrorCode::decode(&out, &tid).unwrap(), e);
        assert!(ErrorCode::new(299, "").is_err());
        assert!(ErrorCode::new(700, "").is_err());
        assert!(ErrorCode::decode(&[0, 0, 2, 0], &tid).is_err());
        assert!(ErrorCode::decode(&[0, 0, 4, 100], &tid).is_err());
        assert!(ErrorCode::decode(&[0, 0, 4], &tid).is_err());
        // The reserved bits above the class are ignored.
        assert_eq!(
            ErrorCode::decode(&[0xff, 0xff, 0xfc, 1], &tid)
                .unwrap()
                .code(),
            401
        );
        // A reason that is not UTF-8 keeps the code.
        assert_eq!(
            ErrorCode::decode(&[0, 0, 4, 1, 0xff], &tid)
                .unwrap()
                .reason(),
            ""
        );
    }

    #[test]
    fn unknown_attributes_round_trip() {
        let tid = TransactionId::default();
        let types = [
            AttributeType(0x0031),
            AttributeType(0x7fff),
            AttributeType(0x0002),
        ];
        let u = UnknownAttributes::new(&types);
        let mut out = [0u8; 6];
        u.encode_value(&mut out, &tid);
        let d = UnknownAttributes::decode(&out, &tid).unwrap();
        assert!(d.iter().eq(types.iter().copied()));
        assert!(UnknownAttributes::decode(&[0, 1, 2], &tid).is_err());
    }

    #[test]
    fn address_error_code_round_trip() {
        let tid = TransactionId::default();
        let e = AddressErrorCode::new(AddressFamily::Ipv6, 440, "no v6").unwrap();
        let mut out = vec![0u8; e.value_len()];
        e.encode_value(&mut out, &tid);
        assert_eq!(AddressErrorCode::decode(&out, &tid).unwrap(), e);
    }
}
