//! Typed STUN attributes: decode from a parsed [`Message`](crate::Message), encode through a
//! [`MessageBuilder`](crate::MessageBuilder).
//!
//! Each attribute is a small type implementing [`Attribute`] (decode) and, where it makes
//! sense to send it, [`EncodeAttribute`]. MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and
//! FINGERPRINT are decoded here but appended by the builder's dedicated methods, since their
//! values depend on the bytes before them.

mod address;
mod credentials;
mod error_code;
mod ice;
mod integrity;
mod nat;
mod text;
mod turn;

pub use address::{
    AlternateServer, ChangedAddress, MappedAddress, OtherAddress, ResponseOrigin, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
pub use credentials::{PasswordAlgorithm, PasswordAlgorithms, PasswordAlgorithmsIter, UserHash};
pub use error_code::{
    AddressErrorCode, ErrorCode, UnknownAttributes, UnknownAttributesIter, default_reason,
};
pub use ice::{IceControlled, IceControlling, Priority, UseCandidate};
pub(crate) use integrity::valid_sha256_len;
pub use integrity::{Fingerprint, MessageIntegrity, MessageIntegritySha256};
pub use nat::{ChangeRequest, Padding, ResponsePort};
pub use text::{AlternateDomain, Nonce, Realm, Software, Username};
pub use turn::AddressFamily;
pub use turn::{
    AdditionalAddressFamily, ChannelNumber, ConnectionId, Data, DontFragment, EvenPort, Icmp,
    Lifetime, RequestedAddressFamily, RequestedTransport, ReservationToken,
};

use crate::header::TransactionId;
use core::fmt;

/// A STUN attribute type (IANA "STUN Attributes" registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

macro_rules! attribute_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl AttributeType {
            $($(#[$doc])* pub const $name: AttributeType = AttributeType($value);)*

            /// The registered name, if this crate knows the attribute.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

attribute_types! {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    CHANGE_REQUEST = 0x0003, "CHANGE-REQUEST";
    /// SOURCE-ADDRESS (RFC 3489, obsolete; recognised so old servers do not trip us).
    SOURCE_ADDRESS = 0x0004, "SOURCE-ADDRESS";
    /// CHANGED-ADDRESS (RFC 3489, obsolete; recognised so old servers do not trip us).
    CHANGED_ADDRESS = 0x0005, "CHANGED-ADDRESS";
    /// USERNAME (RFC 8489 §14.3).
    USERNAME = 0x0006, "USERNAME";
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    /// ERROR-CODE (RFC 8489 §14.8).
    ERROR_CODE = 0x0009, "ERROR-CODE";
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    /// LIFETIME (RFC 8656 §18.2).
    LIFETIME = 0x000D, "LIFETIME";
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    /// DATA (RFC 8656 §18.4).
    DATA = 0x0013, "DATA";
    /// REALM (RFC 8489 §14.9).
    REALM = 0x0014, "REALM";
    /// NONCE (RFC 8489 §14.10).
    NONCE = 0x0015, "NONCE";
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    /// EVEN-PORT (RFC 8656 §18.7).
    EVEN_PORT = 0x0018, "EVEN-PORT";
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    /// USERHASH (RFC 8489 §14.4).
    USERHASH = 0x001E, "USERHASH";
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    /// PRIORITY (RFC 8445 §16.1).
    PRIORITY = 0x0024, "PRIORITY";
    /// USE-CANDIDATE (RFC 8445 §16.1).
    USE_CANDIDATE = 0x0025, "USE-CANDIDATE";
    /// PADDING (RFC 5780 §7.6).
    PADDING = 0x0026, "PADDING";
    /// RESPONSE-PORT (RFC 5780 §7.5).
    RESPONSE_PORT = 0x0027, "RESPONSE-PORT";
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    CONNECTION_ID = 0x002A, "CONNECTION-ID";
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    /// ICMP (RFC 8656 §18.13).
    ICMP = 0x8004, "ICMP";
    /// SOFTWARE (RFC 8489 §14.14).
    SOFTWARE = 0x8022, "SOFTWARE";
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    /// FINGERPRINT (RFC 8489 §14.7).
    FINGERPRINT = 0x8028, "FINGERPRINT";
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    ICE_CONTROLLED = 0x8029, "ICE-CONTROLLED";
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    ICE_CONTROLLING = 0x802A, "ICE-CONTROLLING";
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    RESPONSE_ORIGIN = 0x802B, "RESPONSE-ORIGIN";
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    OTHER_ADDRESS = 0x802C, "OTHER-ADDRESS";
}

impl AttributeType {
    /// Types 0x0000–0x7FFF are comprehension-required (RFC 8489 §14): an agent that does not
    /// understand one cannot process the message.
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// True if this crate decodes the attribute.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "AttributeType({:#06x})", self.0),
        }
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One attribute as it appears on the wire: its type and its value without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub attr_type: AttributeType,
    /// The value, without padding.
    pub value: &'a [u8],
}

/// Why an attribute value could not be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttributeError {
    /// A required attribute is absent.
    Missing(AttributeType),
    /// The value has a length the attribute does not allow.
    BadLength {
        /// The attribute.
        attr: AttributeType,
        /// The length found.
        len: usize,
    },
    /// An address attribute names a family other than IPv4 (0x01) or IPv6 (0x02).
    BadFamily {
        /// The attribute.
        attr: AttributeType,
        /// The family byte found.
        family: u8,
    },
    /// A text attribute is not valid UTF-8.
    BadUtf8(AttributeType),
    /// A text attribute is longer than the RFC allows.
    TooLong {
        /// The attribute.
        attr: AttributeType,
        /// The length in bytes (or characters, for character limits).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is out of the attribute's range (for example an error class outside 3–6).
    BadValue {
        /// The attribute.
        attr: AttributeType,
        /// What is wrong, in a few words.
        reason: &'static str,
    },
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeError::Missing(a) => write!(f, "attribute {a} is missing"),
            AttributeError::BadLength { attr, len } => write!(f, "{attr} has bad length {len}"),
            AttributeError::BadFamily { attr, family } => {
                write!(f, "{attr} has unknown address family {family:#04x}")
            }
            AttributeError::BadUtf8(a) => write!(f, "{a} is not valid UTF-8"),
            AttributeError::TooLong { attr, len, max } => {
                write!(f, "{attr} is {len} long, the limit is {max}")
            }
            AttributeError::BadValue { attr, reason } => write!(f, "{attr}: {reason}"),
        }
    }
}

impl core::error::Error for AttributeError {}

/// An attribute that can be decoded from a message.
pub trait Attribute<'a>: Sized {
    /// The attribute type this decodes.
    const TYPE: AttributeType;

    /// Decodes the value (without padding). `transaction_id` is needed by the XOR-encoded
    /// address attributes.
    fn decode(value: &'a [u8], transaction_id: &TransactionId) -> Result<Self, AttributeError>;
}

/// An attribute that can be written by a [`MessageBuilder`](crate::MessageBuilder).
pub trait EncodeAttribute {
    /// The attribute type written.
    fn attribute_type(&self) -> AttributeType;

    /// Length of the value in bytes, without padding. At most 65535.
    fn value_len(&self) -> usize;

    /// Writes the value into `out`, which is exactly [`value_len`](Self::value_len) bytes.
    fn encode_value(&self, out: &mut [u8], transaction_id: &TransactionId);
}

impl EncodeAttribute for RawAttribute<'_> {
    fn attribute_type(&self) -> AttributeType {
        self.attr_type
    }

    fn value_len(&self) -> usize {
        self.value.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.value);
    }
}

/// Reads a big-endian `u16` at `at`; callers have checked the bounds.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`; callers have checked the bounds.
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks that a fixed-size attribute has exactly `len` bytes.
pub(crate) fn expect_len(
    attr: AttributeType,
    value: &[u8],
    len: usize,
) -> Result<(), AttributeError> {
    if value.len() == len {
        Ok(())
    } else {
        Err(AttributeError::BadLength {
            attr,
            len: value.len(),
        })
    }
}

/// Defines a fixed-size big-endian integer attribute (PRIORITY, LIFETIME, ...).
macro_rules! int_attribute {
    ($(#[$doc:meta])* $name:ident($ty:ty) = $attr:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub $ty);

        impl<'a> $crate::attributes::Attribute<'a> for $name {
            const TYPE: $crate::attributes::AttributeType = $crate::attributes::AttributeType::$attr;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::attributes::AttributeError> {
                $crate::attributes::expect_len(Self::TYPE, value, $len)?;
                let mut bytes = [0u8; core::mem::size_of::<$ty>()];
                bytes.copy_from_slice(&value[..core::mem::size_of::<$ty>()]);
                Ok($name(<$ty>::from_be_bytes(bytes)))
            }
        }

        impl $crate::attributes::EncodeAttribute for $name {
            #[inline]
            fn attribute_type(&self) -> $crate::attributes::AttributeType {
                $crate::attributes::AttributeType::$attr
            }

            #[inline]
            fn value_len(&self) -> usize {
                $len
            }

            #[inline]
            fn encode_value(&self, out: &mut [u8], _: &$crate::header::TransactionId) {
                // `out` is exactly `$len` bytes: write the integer, then zero any RFFU tail
                // (never an unconditional `fill`, which is a call to memset).
                let (int, rest) = out.split_at_mut(core::mem::size_of::<$ty>());
                int.copy_from_slice(&self.0.to_be_bytes());
                if !rest.is_empty() {
                    rest.fill(0);
                }
            }
        }
    };
}

/// Defines an attribute with an empty value (USE-CANDIDATE, DONT-FRAGMENT).
macro_rules! flag_attribute {
    ($(#[$doc:meta])* $name:ident = $attr:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
        pub struct $name;

        impl<'a> $crate::attributes::Attribute<'a> for $name {
            const TYPE: $crate::attributes::AttributeType = $crate::attributes::AttributeType::$attr;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::attributes::AttributeError> {
                $crate::attributes::expect_len(Self::TYPE, value, 0)?;
                Ok($name)
            }
        }

        impl $crate::attributes::EncodeAttribute for $name {
            #[inline]
            fn attribute_type(&self) -> $crate::attributes::AttributeType {
                $crate::attributes::AttributeType::$attr
            }

            #[inline]
            fn value_len(&self) -> usize {
                0
            }

            #[inline]
            fn encode_value(&self, _: &mut [u8], _: &$crate::header::TransactionId) {}
        }
    };
}

pub(crate) use flag_attribute;
pub(crate) use int_attribute;
