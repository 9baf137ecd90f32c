//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT values.
//!
//! These decode for inspection; verification is [`Message::verify_integrity`] and
//! [`Message::verify_fingerprint`], and the builder appends them with its own methods.
//!
//! [`Message::verify_integrity`]: crate::Message::verify_integrity
//! [`Message::verify_fingerprint`]: crate::Message::verify_fingerprint

use super::{Attribute, AttributeError, AttributeType, be32, expect_len};
use crate::header::TransactionId;

/// MESSAGE-INTEGRITY (RFC 8489 §14.5): a 20-byte HMAC-SHA1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageIntegrity(pub [u8; 20]);

impl<'a> Attribute<'a> for MessageIntegrity {
    const TYPE: AttributeType = AttributeType::MESSAGE_INTEGRITY;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 20)?;
        let mut mac = [0u8; 20];
        mac.copy_from_slice(value);
        Ok(MessageIntegrity(mac))
    }
}

/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): an HMAC-SHA256, possibly truncated to 16–28
/// bytes (a multiple of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageIntegritySha256<'a>(pub &'a [u8]);

/// True if `len` is a length MESSAGE-INTEGRITY-SHA256 may have.
pub(crate) const fn valid_sha256_len(len: usize) -> bool {
    len >= 16 && len <= 32 && len % 4 == 0
}

impl<'a> Attribute<'a> for MessageIntegritySha256<'a> {
    const TYPE: AttributeType = AttributeType::MESSAGE_INTEGRITY_SHA256;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if !valid_sha256_len(value.len()) {
            return Err(AttributeError::BadLength {
                attr: Self::TYPE,
                len: value.len(),
            });
        }
        Ok(MessageIntegritySha256(value))
    }
}

/// FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message xor 0x5354554e.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u32);

impl<'a> Attribute<'a> for Fingerprint {
    const TYPE: AttributeType = AttributeType::FINGERPRINT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 4)?;
        Ok(Fingerprint(be32(value, 0)))
    }
}
