//! UTF-8 text attributes: USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN.
//!
//! RFC 8489 gives two limits for each: a tighter one for what we send and a looser one for
//! what we accept from older (RFC 5389) implementations. `new` enforces the first,
//! `decode` the second.

use super::{Attribute, AttributeError, AttributeType, EncodeAttribute};
use crate::header::TransactionId;
use core::fmt;

/// Largest text value accepted on receipt (RFC 8489 §14.3, §14.9, §14.10, §14.14).
pub(crate) const MAX_DECODE_BYTES: usize = 763;
/// Largest USERNAME we send: "fewer than 509 bytes" (RFC 8489 §14.3).
const MAX_USERNAME_BYTES: usize = 508;
/// REALM, NONCE, SOFTWARE and reason phrases: "fewer than 128 characters" (RFC 8489 §14).
pub(crate) const MAX_CHARS: usize = 127;
/// ALTERNATE-DOMAIN: "255 or fewer ASCII characters" (RFC 8489 §14.16).
const MAX_DOMAIN_BYTES: usize = 255;

fn check_utf8(attr: AttributeType, value: &[u8]) -> Result<&str, AttributeError> {
    core::str::from_utf8(value).map_err(|_| AttributeError::BadUtf8(attr))
}

fn check_decode_len(attr: AttributeType, value: &[u8]) -> Result<(), AttributeError> {
    if value.len() > MAX_DECODE_BYTES {
        return Err(AttributeError::TooLong {
            attr,
            len: value.len(),
            max: MAX_DECODE_BYTES,
        });
    }
    Ok(())
}

/// Checks the sending limit of "fewer than 128 characters" (at most 509 bytes follows).
pub(crate) fn check_chars(attr: AttributeType, s: &str) -> Result<(), AttributeError> {
    let chars = s.chars().count();
    if chars > MAX_CHARS {
        return Err(AttributeError::TooLong {
            attr,
            len: chars,
            max: MAX_CHARS,
        });
    }
    Ok(())
}

macro_rules! text_attribute {
    ($(#[$doc:meta])* $name:ident = $attr:ident, check: $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name<'a>(&'a str);

        impl<'a> $name<'a> {
            /// Wraps `s`, checking the RFC's limit for sending.
            pub fn new(s: &'a str) -> Result<Self, AttributeError> {
                let check: fn(AttributeType, &str) -> Result<(), AttributeError> = $check;
                check(AttributeType::$attr, s)?;
                Ok($name(s))
            }

            /// The text.
            pub fn as_str(&self) -> &'a str {
                self.0
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }

        impl<'a> Attribute<'a> for $name<'a> {
            const TYPE: AttributeType = AttributeType::$attr;

            fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
                check_decode_len(Self::TYPE, value)?;
                check_utf8(Self::TYPE, value).map($name)
            }
        }

        impl EncodeAttribute for $name<'_> {
            #[inline]
            fn attribute_type(&self) -> AttributeType {
                AttributeType::$attr
            }

            #[inline]
            fn value_len(&self) -> usize {
                self.0.len()
            }

            #[inline]
            fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
                out.copy_from_slice(self.0.as_bytes());
            }
        }
    };
}

text_attribute! {
    /// USERNAME (RFC 8489 §14.3). For ICE checks this is `remote-ufrag:local-ufrag`.
    Username = USERNAME, check: |attr, s| {
        if s.len() > MAX_USERNAME_BYTES {
            return Err(AttributeError::TooLong { attr, len: s.len(), max: MAX_USERNAME_BYTES });
        }
        Ok(())
    }
}
text_attribute! {
    /// REALM (RFC 8489 §14.9): the long-term credential realm.
    Realm = REALM, check: check_chars
}
text_attribute! {
    /// SOFTWARE (RFC 8489 §14.14): a description of the sending software.
    Software = SOFTWARE, check: check_chars
}
text_attribute! {
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16): the name to check an alternate server's
    /// certificate against.
    AlternateDomain = ALTERNATE_DOMAIN, check: |attr, s| {
        if s.len() > MAX_DOMAIN_BYTES {
            return Err(AttributeError::TooLong { attr, len: s.len(), max: MAX_DOMAIN_BYTES });
        }
        if !s.is_ascii() {
            return Err(AttributeError::BadValue { attr, reason: "domain must be ASCII (A-labels)" });
        }
        Ok(())
    }
}

/// NONCE (RFC 8489 §14.10). Kept as bytes: a nonce is opaque to the client, which echoes it
/// back unchanged, so a server that sends one outside UTF-8 still works with us.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce<'a>(&'a [u8]);

impl<'a> Nonce<'a> {
    /// Wraps a nonce, checking the limit for sending (fewer than 128 characters).
    pub fn new(nonce: &'a [u8]) -> Result<Self, AttributeError> {
        let attr = AttributeType::NONCE;
        match core::str::from_utf8(nonce) {
            Ok(s) => check_chars(attr, s)?,
            Err(_) if nonce.len() > MAX_CHARS => {
                return Err(AttributeError::TooLong {
                    attr,
                    len: nonce.len(),
                    max: MAX_CHARS,
                });
            }
            Err(_) => {}
        }
        Ok(Nonce(nonce))
    }

    /// The nonce bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The nonce as text, if it is UTF-8 (it should be: qdtext).
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.0).ok()
    }
}

impl fmt::Debug for Nonce<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "Nonce({s:?})"),
            None => write!(f, "Nonce({:02x?})", self.0),
        }
    }
}

impl<'a> Attribute<'a> for Nonce<'a> {
    const TYPE: AttributeType = AttributeType::NONCE;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        check_decode_len(Self::TYPE, value)?;
        Ok(Nonce(value))
    }
}

impl EncodeAttribute for Nonce<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::NONCE
    }

    fn value_len(&self) -> usize {
        self.0.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let long = "x".repeat(509);
        assert!(Username::new(&long[..508]).is_ok());
        assert!(matches!(
            Username::new(&long),
            Err(AttributeError::TooLong { max: 508, .. })
        ));
        assert!(Realm::new(&long[..127]).is_ok());
        assert!(Realm::new(&long[..128]).is_err());
        // 127 three-byte characters are 381 bytes and still fine.
        let wide = "\u{30DE}".repeat(127);
        assert!(Software::new(&wide).is_ok());
        assert!(AlternateDomain::new("turn.example.org").is_ok());
        assert!(AlternateDomain::new("t\u{00FC}rn.example").is_err());
        assert!(Nonce::new(&[0xff; 128]).is_err());
        assert!(Nonce::new(&[0xff; 12]).is_ok());
    }

    #[test]
    fn decode_checks_utf8_and_size() {
        let tid = TransactionId::default();
        assert_eq!(Username::decode(b"a:b", &tid).unwrap().as_str(), "a:b");
        assert_eq!(
            Username::decode(&[0xff, 0xfe], &tid),
            Err(AttributeError::BadUtf8(AttributeType::USERNAME))
        );
        assert!(Realm::decode(&[b'a'; 763], &tid).is_ok());
        assert!(matches!(
            Realm::decode(&[b'a'; 764], &tid),
            Err(AttributeError::TooLong { .. })
        ));
        assert_eq!(Nonce::decode(&[0xff], &tid).unwrap().as_str(), None);
    }
}
