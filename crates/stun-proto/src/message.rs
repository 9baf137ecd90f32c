//! The zero-copy message view: [`Message::parse`] validates once, then typed getters read
//! straight from the caller's buffer.

use crate::attributes::{Attribute, AttributeError, AttributeType, RawAttribute, be16, be32};
use crate::attributes::{MessageIntegrity, MessageIntegritySha256};
use crate::header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
use crate::integrity::{IntegrityKey, ct_eq, fingerprint_covered};
use core::fmt;

/// Why a buffer is not a valid STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the 20-byte header.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// One of the two leading bits is set: not STUN (RFC 8489 §5, RFC 7983).
    NotStun,
    /// The length field is not a multiple of 4 (RFC 8489 §5): typically a last attribute
    /// sent without its padding.
    UnalignedLength {
        /// The length field.
        length: u16,
    },
    /// The length field does not match the bytes given.
    LengthMismatch {
        /// Message length according to the header, including the header.
        header: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A classic RFC 3489 message: a STUN type, but no magic cookie.
    ClassicStun,
    /// The magic cookie is wrong and the message is not classic STUN either.
    BadMagicCookie {
        /// The value found.
        cookie: u32,
    },
    /// An attribute's declared length runs past the end of the message.
    AttributeOverflow {
        /// The attribute type.
        attr: AttributeType,
        /// Offset of its header from the start of the message.
        offset: usize,
    },
    /// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 or FINGERPRINT has an impossible length.
    BadIntegrityLength {
        /// The attribute type.
        attr: AttributeType,
        /// The length found.
        len: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort { len } => write!(f, "{len} bytes is shorter than a STUN header"),
            ParseError::NotStun => f.write_str("leading bits are not zero: not STUN"),
            ParseError::UnalignedLength { length } => {
                write!(f, "length {length} is not a multiple of 4")
            }
            ParseError::LengthMismatch { header, actual } => {
                write!(f, "header says {header} bytes, got {actual}")
            }
            ParseError::ClassicStun => f.write_str("classic RFC 3489 STUN (no magic cookie)"),
            ParseError::BadMagicCookie { cookie } => write!(f, "bad magic cookie {cookie:#010x}"),
            ParseError::AttributeOverflow { attr, offset } => {
                write!(f, "attribute {attr} at offset {offset} runs past the end")
            }
            ParseError::BadIntegrityLength { attr, len } => write!(f, "{attr} has length {len}"),
        }
    }
}

impl core::error::Error for ParseError {}

/// Why [`Message::verify_integrity`] or [`Message::verify_fingerprint`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256 (or not the one asked for).
    NoIntegrity,
    /// The HMAC does not match: wrong key or altered message.
    IntegrityMismatch,
    /// There is no FINGERPRINT.
    NoFingerprint,
    /// The FINGERPRINT does not match.
    FingerprintMismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyError::NoIntegrity => "no message integrity attribute",
            VerifyError::IntegrityMismatch => "message integrity does not match",
            VerifyError::NoFingerprint => "no fingerprint",
            VerifyError::FingerprintMismatch => "fingerprint does not match",
        })
    }
}

impl core::error::Error for VerifyError {}

/// Which integrity attribute authenticated a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrityAlgorithm {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// RFC 3489 message types, recognised to report [`ParseError::ClassicStun`].
const CLASSIC_TYPES: [u16; 6] = [0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112];

/// Reads just the header of what may be a STUN message: the type and the whole message
/// length (header included). Used by stream framers and demultiplexers; it checks the
/// leading bits, the magic cookie and the length alignment, nothing else.
pub fn peek_header(buf: &[u8]) -> Option<(MessageType, usize)> {
    if buf.len() < HEADER_LEN || be32(buf, 4) != MAGIC_COOKIE {
        return None;
    }
    let mtype = MessageType::from_u16(be16(buf, 0))?;
    let len = be16(buf, 2);
    (len % 4 == 0).then_some((mtype, HEADER_LEN + usize::from(len)))
}

/// A validated STUN message borrowed from the caller's buffer.
///
/// Parsing checks the header and walks the attribute list once, noting where the integrity
/// and fingerprint attributes are. Per RFC 8489 §14.5–14.7, attributes after
/// MESSAGE-INTEGRITY are ignored except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, attributes
/// after MESSAGE-INTEGRITY-SHA256 except FINGERPRINT, and anything after FINGERPRINT.
/// "Ignored" means the getters and [`attributes`](Self::attributes) do not see them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    mtype: MessageType,
    /// End of the ordinary attributes: the offset of the first of MESSAGE-INTEGRITY,
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, or the message end.
    plain_end: usize,
    /// Offsets of the attribute headers; 0 means absent (the header occupies offset 0).
    mi: usize,
    mi256: usize,
    fp: usize,
}

impl<'a> Message<'a> {
    /// Validates `buf` as one complete STUN message (RFC 8489 §6.3): leading zero bits,
    /// magic cookie, a length that is a multiple of 4 and equals the buffer, attributes
    /// inside the bounds. Padding contents are ignored.
    ///
    /// Inlined into the caller, with the attribute walk out of line returning its findings
    /// in registers. A `Message` returned from an out-of-line call is written field by field
    /// and then copied by the caller with wider loads, which the CPU cannot forward from the
    /// pending narrower stores: each such copy waited for every older instruction to retire
    /// (the previous message's HMAC included), ~35 ns per verified message
    /// (docs/BENCHMARKS.md).
    #[inline(always)]
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if buf.len() < HEADER_LEN {
            return Err(ParseError::TooShort { len: buf.len() });
        }
        let raw_type = be16(buf, 0);
        let mtype = MessageType::from_u16(raw_type).ok_or(ParseError::NotStun)?;
        let length = be16(buf, 2);
        if length % 4 != 0 {
            return Err(ParseError::UnalignedLength { length });
        }
        let total = HEADER_LEN + usize::from(length);
        if total != buf.len() {
            return Err(ParseError::LengthMismatch {
                header: total,
                actual: buf.len(),
            });
        }
        let cookie = be32(buf, 4);
        if cookie != MAGIC_COOKIE {
            return Err(if CLASSIC_TYPES.contains(&raw_type) {
                ParseError::ClassicStun
            } else {
                ParseError::BadMagicCookie { cookie }
            });
        }

        match walk_attributes(buf) {
            Ok(found) => Ok(Message {
                buf,
                mtype,
                plain_end: found.get(Found::PLAIN_END),
                mi: found.get(Found::MI),
                mi256: found.get(Found::MI256),
                fp: found.get(Found::FP),
            }),
            Err(e) => Err(e.into_parse_error()),
        }
    }

    /// The message bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The whole message length in bytes, header included.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Method and class.
    pub fn message_type(&self) -> MessageType {
        self.mtype
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.mtype.class
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.mtype.method
    }

    /// The transaction ID.
    #[inline]
    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.buf[8..HEADER_LEN]);
        TransactionId::new(id)
    }

    /// The attributes that count, in order: the ordinary ones, then MESSAGE-INTEGRITY,
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT where present.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            msg: *self,
            at: HEADER_LEN,
            tail: 0,
        }
    }

    /// The value of the first attribute of type `attr`, raw.
    #[inline]
    pub fn raw(&self, attr: AttributeType) -> Option<&'a [u8]> {
        let at = match attr {
            AttributeType::MESSAGE_INTEGRITY => self.mi,
            AttributeType::MESSAGE_INTEGRITY_SHA256 => self.mi256,
            AttributeType::FINGERPRINT => self.fp,
            _ => return self.plain().find(|a| a.attr_type == attr).map(|a| a.value),
        };
        (at != 0).then(|| self.value_at(at))
    }

    /// True if an attribute of type `attr` is present (and counts).
    pub fn has(&self, attr: AttributeType) -> bool {
        self.raw(attr).is_some()
    }

    /// Decodes the first attribute of type `A`; `Ok(None)` if absent.
    #[inline]
    pub fn get<A: Attribute<'a>>(&self) -> Result<Option<A>, AttributeError> {
        match self.raw(A::TYPE) {
            Some(value) => A::decode(value, &self.transaction_id()).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes the first attribute of type `A`; [`AttributeError::Missing`] if absent.
    #[inline]
    pub fn require<A: Attribute<'a>>(&self) -> Result<A, AttributeError> {
        self.get::<A>()?.ok_or(AttributeError::Missing(A::TYPE))
    }

    /// The comprehension-required attribute types (0x0000–0x7FFF) this crate does not
    /// understand. A server answers a request carrying any with 420 and lists them in
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1); a client drops such a response (§6.3.3).
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.plain()
            .map(|a| a.attr_type)
            .filter(|t| t.is_comprehension_required() && !t.is_known())
    }

    /// True if MESSAGE-INTEGRITY is present.
    pub fn has_message_integrity(&self) -> bool {
        self.mi != 0
    }

    /// True if MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_message_integrity_sha256(&self) -> bool {
        self.mi256 != 0
    }

    /// True if FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fp != 0
    }

    /// Verifies message integrity with `key` the way RFC 8489 §9.1.3 and §9.2.4 say: with
    /// MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY. The comparison is
    /// constant-time. Returns which attribute was checked.
    #[inline]
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<IntegrityAlgorithm, VerifyError> {
        if self.mi256 != 0 {
            self.verify_message_integrity_sha256(key)
                .map(|()| IntegrityAlgorithm::Sha256)
        } else {
            self.verify_message_integrity(key)
                .map(|()| IntegrityAlgorithm::Sha1)
        }
    }

    /// Verifies FINGERPRINT when the message has one, and message integrity as
    /// [`verify_integrity`](Self::verify_integrity) does: what a receiver of ICE checks or TURN
    /// requests wants, in one call. A wrong FINGERPRINT is reported before any integrity error
    /// (it says the datagram is not STUN at all, RFC 8489 §7.3).
    ///
    /// Faster than the two calls one after the other: the CRC runs while the HMAC-SHA1's outer
    /// block waits for its inner hash.
    #[inline]
    pub fn verify(&self, key: &IntegrityKey) -> Result<IntegrityAlgorithm, VerifyError> {
        if self.mi256 != 0 || self.mi == 0 {
            if self.fp != 0 {
                self.verify_fingerprint()?;
            }
            return self.verify_integrity(key);
        }
        let length = self.covered_length(self.mi, 20);
        let (mac_ok, fp_ok) =
            key.sha1_covered_matches_and(self.buf, self.mi, length, self.value_at(self.mi), || {
                self.fp == 0 || self.verify_fingerprint().is_ok()
            });
        match (fp_ok, mac_ok) {
            (false, _) => Err(VerifyError::FingerprintMismatch),
            (true, false) => Err(VerifyError::IntegrityMismatch),
            (true, true) => Ok(IntegrityAlgorithm::Sha1),
        }
    }

    /// Verifies MESSAGE-INTEGRITY (HMAC-SHA1) only.
    #[inline]
    pub fn verify_message_integrity(&self, key: &IntegrityKey) -> Result<(), VerifyError> {
        if self.mi == 0 {
            return Err(VerifyError::NoIntegrity);
        }
        let length = self.covered_length(self.mi, 20);
        match key.sha1_covered_matches(self.buf, self.mi, length, self.value_at(self.mi)) {
            true => Ok(()),
            false => Err(VerifyError::IntegrityMismatch),
        }
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 only (full or truncated).
    pub fn verify_message_integrity_sha256(&self, key: &IntegrityKey) -> Result<(), VerifyError> {
        if self.mi256 == 0 {
            return Err(VerifyError::NoIntegrity);
        }
        let value = self.value_at(self.mi256);
        let length = self.covered_length(self.mi256, value.len());
        let mac = key.sha256_covered(self.buf, self.mi256, length);
        match ct_eq(&mac[..value.len()], value) {
            true => Ok(()),
            false => Err(VerifyError::IntegrityMismatch),
        }
    }

    /// Verifies FINGERPRINT (RFC 8489 §14.7).
    #[inline]
    pub fn verify_fingerprint(&self) -> Result<(), VerifyError> {
        if self.fp == 0 {
            return Err(VerifyError::NoFingerprint);
        }
        let expected = be32(self.value_at(self.fp), 0);
        let length = self.covered_length(self.fp, 4);
        match fingerprint_covered(self.buf, self.fp, length) == expected {
            true => Ok(()),
            false => Err(VerifyError::FingerprintMismatch),
        }
    }

    /// The length field as an integrity or fingerprint attribute at `at` sees it: ending at
    /// that attribute (RFC 8489 §14.5). The hash covers the message up to `at` with this length.
    #[inline]
    fn covered_length(&self, at: usize, value_len: usize) -> u16 {
        (at + 4 + value_len - HEADER_LEN) as u16
    }

    /// The value of the attribute whose header is at `at` (validated by `parse`).
    #[inline]
    fn value_at(&self, at: usize) -> &'a [u8] {
        let len = usize::from(be16(self.buf, at + 2));
        &self.buf[at + 4..at + 4 + len]
    }

    fn plain(&self) -> Attributes<'a> {
        Attributes {
            msg: *self,
            at: HEADER_LEN,
            tail: 3,
        }
    }
}

/// Where [`walk_attributes`] found the integrity and fingerprint attributes, packed into one
/// word so that the walk's result comes back in registers: four header offsets divided by 4
/// (every offset is a multiple of 4 below 20 + 65536, so a quarter fits 16 bits), 0 for
/// absent.
#[derive(Clone, Copy)]
struct Found(u64);

impl Found {
    /// End of the ordinary attributes (`Message`'s `plain_end`).
    const PLAIN_END: u32 = 0;
    const MI: u32 = 1;
    const MI256: u32 = 2;
    const FP: u32 = 3;

    #[inline(always)]
    fn get(self, field: u32) -> usize {
        ((self.0 >> (16 * field)) & 0xFFFF) as usize * 4
    }

    #[inline(always)]
    fn set(&mut self, field: u32, offset: usize) {
        let quarter = ((offset / 4) & 0xFFFF) as u64;
        self.0 = self.0 & !(0xFFFF << (16 * field)) | quarter << (16 * field);
    }
}

/// Why [`walk_attributes`] rejected a message, packed into one word like [`Found`]: the
/// attribute type in bits 0..16, the offset (overflow) or the length (bad integrity length)
/// in bits 16..48, and bit 63 set for a bad length.
#[derive(Clone, Copy)]
struct WalkError(u64);

impl WalkError {
    const BAD_LENGTH: u64 = 1 << 63;

    fn overflow(attr: AttributeType, offset: usize) -> WalkError {
        WalkError(u64::from(attr.0) | (offset as u64 & 0xFFFF_FFFF) << 16)
    }

    fn bad_length(attr: AttributeType, len: u16) -> WalkError {
        WalkError(u64::from(attr.0) | u64::from(len) << 16 | WalkError::BAD_LENGTH)
    }

    fn into_parse_error(self) -> ParseError {
        let attr = AttributeType(self.0 as u16);
        let value = ((self.0 >> 16) & 0xFFFF_FFFF) as usize;
        match self.0 & WalkError::BAD_LENGTH {
            0 => ParseError::AttributeOverflow {
                attr,
                offset: value,
            },
            _ => ParseError::BadIntegrityLength { attr, len: value },
        }
    }
}

/// Walks the attributes of a message whose header `parse` has checked (so `buf.len()` is
/// 20 + a multiple of 4 below 65556): every attribute inside the bounds, and the positions
/// of MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT under the "ignore what
/// follows" rules of RFC 8489 §14.5–14.7.
#[inline(never)]
fn walk_attributes(buf: &[u8]) -> Result<Found, WalkError> {
    let total = buf.len();
    let mut found = Found(0);
    found.set(Found::PLAIN_END, total);
    // `total` and every step are multiples of 4, so an attribute header always fits before
    // `total`; only its value can overflow.
    let mut at = HEADER_LEN;
    while let Some(&[t0, t1, l0, l1]) = buf.get(at..at + 4) {
        let attr = AttributeType(u16::from_be_bytes([t0, t1]));
        let len = u16::from_be_bytes([l0, l1]);
        let next = at + 4 + ((usize::from(len) + 3) & !3);
        if next > total {
            return Err(WalkError::overflow(attr, at));
        }
        // Nothing counts after FINGERPRINT.
        if found.get(Found::FP) == 0 {
            let field = match attr {
                AttributeType::MESSAGE_INTEGRITY
                    if found.get(Found::MI) == 0 && found.get(Found::MI256) == 0 =>
                {
                    if len != 20 {
                        return Err(WalkError::bad_length(attr, len));
                    }
                    Some(Found::MI)
                }
                AttributeType::MESSAGE_INTEGRITY_SHA256 if found.get(Found::MI256) == 0 => {
                    if !crate::attributes::valid_sha256_len(usize::from(len)) {
                        return Err(WalkError::bad_length(attr, len));
                    }
                    Some(Found::MI256)
                }
                AttributeType::FINGERPRINT => {
                    if len != 4 {
                        return Err(WalkError::bad_length(attr, len));
                    }
                    Some(Found::FP)
                }
                _ => None,
            };
            if let Some(field) = field {
                found.set(field, at);
                let plain_end = found.get(Found::PLAIN_END).min(at);
                found.set(Found::PLAIN_END, plain_end);
            }
        }
        at = next;
    }
    debug_assert_eq!(at, total);
    Ok(found)
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("type", &self.mtype)
            .field("transaction_id", &self.transaction_id())
            .field("len", &self.buf.len());
        d.field("attributes", &DebugAttrs(*self));
        d.finish()
    }
}

struct DebugAttrs<'a>(Message<'a>);

impl fmt::Debug for DebugAttrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.attributes().map(|a| a.attr_type))
            .finish()
    }
}

/// Iterator over the attributes of a [`Message`] that count; see [`Message::attributes`].
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    msg: Message<'a>,
    at: usize,
    /// Which of MI, MI-SHA256, FINGERPRINT comes next after the ordinary ones (3 = done).
    tail: u8,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        let m = &self.msg;
        if self.at < m.plain_end {
            let attr_type = AttributeType(be16(m.buf, self.at));
            let value = m.value_at(self.at);
            self.at += 4 + ((value.len() + 3) & !3);
            return Some(RawAttribute { attr_type, value });
        }
        while self.tail < 3 {
            let (at, attr_type) = match self.tail {
                0 => (m.mi, AttributeType::MESSAGE_INTEGRITY),
                1 => (m.mi256, AttributeType::MESSAGE_INTEGRITY_SHA256),
                _ => (m.fp, AttributeType::FINGERPRINT),
            };
            self.tail += 1;
            if at != 0 {
                return Some(RawAttribute {
                    attr_type,
                    value: m.value_at(at),
                });
            }
        }
        None
    }
}

/// Typed access to the integrity values, for callers that inspect them.
impl<'a> Message<'a> {
    /// The MESSAGE-INTEGRITY value, if present.
    pub fn message_integrity(&self) -> Option<MessageIntegrity> {
        self.get::<MessageIntegrity>().ok().flatten()
    }

    /// The MESSAGE-INTEGRITY-SHA256 value, if present.
    pub fn message_integrity_sha256(&self) -> Option<MessageIntegritySha256<'a>> {
        self.get::<MessageIntegritySha256<'a>>().ok().flatten()
    }
}
