//! The fixed 20-byte STUN header: message type (method and class) and transaction ID.
//!
//! RFC 8489 §5: the two leading bits are zero, then 14 bits of message type in which the
//! 12 method bits and the 2 class bits are interleaved, then the 16-bit length, the magic
//! cookie and the 96-bit transaction ID.

use core::fmt;

/// The magic cookie every RFC 5389/8489 message carries (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the STUN header in bytes.
pub const HEADER_LEN: usize = 20;

/// The class of a STUN message (RFC 8489 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request: expects a response.
    Request,
    /// An indication: no response.
    Indication,
    /// A success response.
    Success,
    /// An error response (carries ERROR-CODE).
    Error,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    const fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }

    /// True for success and error responses.
    pub const fn is_response(self) -> bool {
        matches!(self, Class::Success | Class::Error)
    }
}

/// A STUN method: the 12-bit operation code (IANA "STUN Methods" registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656).
    pub const REFRESH: Method = Method(0x004);
    /// Send (RFC 8656), indication only.
    pub const SEND: Method = Method(0x006);
    /// Data (RFC 8656), indication only.
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656).
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// Connect (RFC 6062).
    pub const CONNECT: Method = Method(0x00A);
    /// ConnectionBind (RFC 6062).
    pub const CONNECTION_BIND: Method = Method(0x00B);
    /// ConnectionAttempt (RFC 6062).
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);

    /// A method from its 12-bit code; `None` if the code does not fit in 12 bits.
    pub const fn new(code: u16) -> Option<Method> {
        if code <= 0x0FFF {
            Some(Method(code))
        } else {
            None
        }
    }

    /// The 12-bit method code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The registered name of the method, if it is one this crate knows.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x001 => "Binding",
            0x003 => "Allocate",
            0x004 => "Refresh",
            0x006 => "Send",
            0x007 => "Data",
            0x008 => "CreatePermission",
            0x009 => "ChannelBind",
            0x00A => "Connect",
            0x00B => "ConnectionBind",
            0x00C => "ConnectionAttempt",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Method and class together: the 14-bit STUN message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// Binding request.
    pub const BINDING_REQUEST: MessageType = MessageType::new(Method::BINDING, Class::Request);
    /// Binding success response.
    pub const BINDING_SUCCESS: MessageType = MessageType::new(Method::BINDING, Class::Success);
    /// Binding error response.
    pub const BINDING_ERROR: MessageType = MessageType::new(Method::BINDING, Class::Error);
    /// Binding indication (keepalive).
    pub const BINDING_INDICATION: MessageType =
        MessageType::new(Method::BINDING, Class::Indication);

    /// A message type from method and class.
    pub const fn new(method: Method, class: Class) -> MessageType {
        MessageType { method, class }
    }

    /// The 16-bit wire value (two leading zero bits, RFC 8489 §5 figure 3).
    pub const fn to_u16(self) -> u16 {
        let m = self.method.0;
        let c = self.class.bits();
        ((m & 0x0F80) << 2)
            | ((m & 0x0070) << 1)
            | (m & 0x000F)
            | ((c & 0b10) << 7)
            | ((c & 0b01) << 4)
    }

    /// Decodes the wire value; `None` if either of the two leading bits is set.
    pub const fn from_u16(value: u16) -> Option<MessageType> {
        if value & 0xC000 != 0 {
            return None;
        }
        let method = ((value >> 2) & 0x0F80) | ((value >> 1) & 0x0070) | (value & 0x000F);
        let class = ((value >> 7) & 0b10) | ((value >> 4) & 0b01);
        Some(MessageType {
            method: Method(method),
            class: Class::from_bits(class),
        })
    }
}

/// The 96-bit transaction ID (RFC 8489 §5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// A transaction ID from its 12 bytes.
    pub const fn new(bytes: [u8; 12]) -> TransactionId {
        TransactionId(bytes)
    }

    /// A fresh transaction ID drawn from `rng`. RFC 8489 §5 asks for a cryptographically
    /// random value; callers pass their seeded ChaCha generator.
    pub fn random<R: rand_core::Rng + ?Sized>(rng: &mut R) -> TransactionId {
        let mut bytes = [0u8; 12];
        rng.fill_bytes(&mut bytes);
        TransactionId(bytes)
    }

    /// The 12 bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl From<[u8; 12]> for TransactionId {
    fn from(bytes: [u8; 12]) -> Self {
        TransactionId(bytes)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactionId(")?;
        fmt::Display::fmt(self, f)?;
        f.write_str(")")
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips_every_value() {
        for value in 0u16..=0x3FFF {
            let t = MessageType::from_u16(value).unwrap();
            assert_eq!(t.to_u16(), value);
        }
        assert!(MessageType::from_u16(0x4001).is_none());
        assert!(MessageType::from_u16(0x8001).is_none());
    }

    #[test]
    fn known_message_type_values() {
        // RFC 8489 §5 and RFC 8656 §18 wire values.
        assert_eq!(MessageType::BINDING_REQUEST.to_u16(), 0x0001);
        assert_eq!(MessageType::BINDING_INDICATION.to_u16(), 0x0011);
        assert_eq!(MessageType::BINDING_SUCCESS.to_u16(), 0x0101);
        assert_eq!(MessageType::BINDING_ERROR.to_u16(), 0x0111);
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::Request).to_u16(),
            0x0003
        );
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::Error).to_u16(),
            0x0113
        );
        assert_eq!(
            MessageType::new(Method::SEND, Class::Indication).to_u16(),
            0x0016
        );
        assert_eq!(
            MessageType::new(Method::DATA, Class::Indication).to_u16(),
            0x0017
        );
        assert_eq!(
            MessageType::new(Method::CHANNEL_BIND, Class::Success).to_u16(),
            0x0109
        );
    }

    #[test]
    fn method_bounds() {
        assert!(Method::new(0x0FFF).is_some());
        assert!(Method::new(0x1000).is_none());
        assert_eq!(
            format!("{:?}", Method::new(0x0ABC).unwrap()),
            "Method(0xabc)"
        );
    }
}
