//! Writing messages into a caller-provided buffer, with no allocation.

use crate::attributes::{AttributeType, EncodeAttribute, RawAttribute};
use crate::header::{HEADER_LEN, MAGIC_COOKIE, MessageType, TransactionId};
use crate::integrity::{IntegrityKey, fingerprint_covered};
use core::fmt;

/// Why a message could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The buffer is too small for the message so far.
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// An attribute value longer than 65535 bytes, or a message over 65535 bytes of
    /// attributes.
    TooLong,
    /// Only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow MESSAGE-INTEGRITY, and only
    /// FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.5–14.6).
    AfterIntegrity,
    /// Nothing may follow FINGERPRINT (RFC 8489 §14.7).
    AfterFingerprint,
    /// MESSAGE-INTEGRITY-SHA256 truncated to a length other than 16–32 in steps of 4.
    BadTruncation(usize),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::BufferTooSmall { needed, available } => {
                write!(f, "buffer of {available} bytes, message needs {needed}")
            }
            BuildError::TooLong => f.write_str("attribute or message too long"),
            BuildError::AfterIntegrity => f.write_str("attribute after message integrity"),
            BuildError::AfterFingerprint => f.write_str("attribute after fingerprint"),
            BuildError::BadTruncation(n) => write!(f, "cannot truncate HMAC-SHA256 to {n} bytes"),
        }
    }
}

impl core::error::Error for BuildError {}

/// What the builder has appended last, to enforce the attribute order rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Plain,
    AfterMi,
    AfterMi256,
    AfterFingerprint,
}

/// Builds a STUN message in place in a caller's buffer.
///
/// ```
/// use stun_proto::{MessageBuilder, MessageType, TransactionId, IntegrityKey};
/// use stun_proto::attributes::{Username, Priority};
///
/// let key = IntegrityKey::short_term("password");
/// let mut buf = [0u8; 256];
/// let mut b = MessageBuilder::new(&mut buf, MessageType::BINDING_REQUEST, TransactionId::new([1; 12]))?;
/// b.add(&Username::new("remote:local")?)?;
/// b.add(&Priority(0x6e0001ff))?;
/// b.add_message_integrity(&key)?;
/// b.add_fingerprint()?;
/// let bytes = b.finish();
/// assert_eq!(stun_proto::Message::parse(bytes)?.verify_integrity(&key)?, stun_proto::IntegrityAlgorithm::Sha1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    tid: TransactionId,
    stage: Stage,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message: writes the header into `buf`.
    #[inline]
    pub fn new(
        buf: &'b mut [u8],
        mtype: MessageType,
        transaction_id: TransactionId,
    ) -> Result<Self, BuildError> {
        if buf.len() < HEADER_LEN {
            return Err(BuildError::BufferTooSmall {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        buf[..2].copy_from_slice(&mtype.to_u16().to_be_bytes());
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..HEADER_LEN].copy_from_slice(transaction_id.as_bytes());
        Ok(MessageBuilder {
            buf,
            len: HEADER_LEN,
            tid: transaction_id,
            stage: Stage::Plain,
        })
    }

    /// The transaction ID being written.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Bytes written so far.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends an attribute.
    pub fn add<A: EncodeAttribute + ?Sized>(&mut self, attr: &A) -> Result<&mut Self, BuildError> {
        if self.stage != Stage::Plain {
            return Err(self.order_error());
        }
        let value_len = attr.value_len();
        let tid = self.tid;
        let value = self.reserve(attr.attribute_type(), value_len)?;
        attr.encode_value(value, &tid);
        Ok(self)
    }

    /// Appends an attribute given as raw type and value.
    pub fn add_raw(
        &mut self,
        attr_type: AttributeType,
        value: &[u8],
    ) -> Result<&mut Self, BuildError> {
        self.add(&RawAttribute { attr_type, value })
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5).
    pub fn add_message_integrity(&mut self, key: &IntegrityKey) -> Result<&mut Self, BuildError> {
        if self.stage >= Stage::AfterMi {
            return Err(self.order_error());
        }
        let at = self.len;
        self.reserve(AttributeType::MESSAGE_INTEGRITY, 20)?;
        // The length field already counts this attribute, as the HMAC input requires.
        let mac = key.sha1_covered(self.buf, at, self.length_field());
        self.buf[at + 4..at + 24].copy_from_slice(&mac);
        self.stage = Stage::AfterMi;
        Ok(self)
    }

    /// Appends a full 32-byte MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub fn add_message_integrity_sha256(
        &mut self,
        key: &IntegrityKey,
    ) -> Result<&mut Self, BuildError> {
        self.add_message_integrity_sha256_truncated(key, 32)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 truncated to `len` bytes (16–32, a multiple of 4),
    /// for STUN usages that allow truncation.
    pub fn add_message_integrity_sha256_truncated(
        &mut self,
        key: &IntegrityKey,
        len: usize,
    ) -> Result<&mut Self, BuildError> {
        if !crate::attributes::valid_sha256_len(len) {
            return Err(BuildError::BadTruncation(len));
        }
        if self.stage >= Stage::AfterMi256 {
            return Err(self.order_error());
        }
        let at = self.len;
        self.reserve(AttributeType::MESSAGE_INTEGRITY_SHA256, len)?;
        let mac = key.sha256_covered(self.buf, at, self.length_field());
        self.buf[at + 4..at + 4 + len].copy_from_slice(&mac[..len]);
        self.stage = Stage::AfterMi256;
        Ok(self)
    }

    /// Appends FINGERPRINT (RFC 8489 §14.7). It must come last.
    pub fn add_fingerprint(&mut self) -> Result<&mut Self, BuildError> {
        if self.stage == Stage::AfterFingerprint {
            return Err(BuildError::AfterFingerprint);
        }
        let at = self.len;
        self.reserve(AttributeType::FINGERPRINT, 4)?;
        let crc = fingerprint_covered(self.buf, at, self.length_field());
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        self.stage = Stage::AfterFingerprint;
        Ok(self)
    }

    /// The finished message.
    #[inline]
    pub fn finish(self) -> &'b [u8] {
        let MessageBuilder { buf, len, .. } = self;
        &buf[..len]
    }

    /// The header's length field for the message so far.
    fn length_field(&self) -> u16 {
        (self.len - HEADER_LEN) as u16
    }

    fn order_error(&self) -> BuildError {
        match self.stage {
            Stage::AfterFingerprint => BuildError::AfterFingerprint,
            _ => BuildError::AfterIntegrity,
        }
    }

    /// Writes an attribute header and the padding, updates the length field, and returns the
    /// value's slot.
    #[inline]
    fn reserve(
        &mut self,
        attr_type: AttributeType,
        value_len: usize,
    ) -> Result<&mut [u8], BuildError> {
        let value_len16 = u16::try_from(value_len).map_err(|_| BuildError::TooLong)?;
        let padded = (value_len + 3) & !3;
        let at = self.len;
        let end = at + 4 + padded;
        let length = u16::try_from(end - HEADER_LEN).map_err(|_| BuildError::TooLong)?;
        if end > self.buf.len() {
            return Err(BuildError::BufferTooSmall {
                needed: end,
                available: self.buf.len(),
            });
        }
        let buf = &mut *self.buf;
        buf[2..4].copy_from_slice(&length.to_be_bytes());
        let slot = &mut buf[at..end];
        let [t0, t1] = attr_type.0.to_be_bytes();
        let [l0, l1] = value_len16.to_be_bytes();
        slot[..4].copy_from_slice(&[t0, t1, l0, l1]);
        if padded != value_len {
            // Zero the last word; the value then overwrites all but its padding. A fixed
            // 4-byte store, where filling 1-3 bytes would be a call to memset.
            let last = slot.len() - 4;
            slot[last..].copy_from_slice(&[0; 4]);
        }
        self.len = end;
        Ok(&mut slot[4..4 + value_len])
    }
}
