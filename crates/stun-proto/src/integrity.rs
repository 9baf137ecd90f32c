//! HMAC keys for MESSAGE-INTEGRITY (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256, and the
//! FINGERPRINT CRC.
//!
//! An [`IntegrityKey`] holds both HMACs already keyed: the inner and outer pads are hashed
//! once when the key is made, so each message costs only the hashing of its own bytes. That
//! saves two SHA-1 blocks per message over keying every time, which is most of what
//! separates a fast STUN stack from a slow one.

use core::fmt;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// The FINGERPRINT xor constant, "STUN" in ASCII (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// A prepared HMAC key for STUN message integrity.
///
/// Make one per credential and keep it: cloning the prepared state is what makes
/// [`Message::verify_integrity`](crate::Message::verify_integrity) and
/// [`MessageBuilder::add_message_integrity`](crate::MessageBuilder::add_message_integrity)
/// fast. The key bytes are not kept.
#[derive(Clone)]
pub struct IntegrityKey {
    sha1: HmacSha1,
    sha256: HmacSha256,
}

impl IntegrityKey {
    /// A key from raw key bytes: the password for short-term credentials, or the 16/32-byte
    /// digest for long-term credentials (see [`crate::credentials`]).
    pub fn new(key: &[u8]) -> IntegrityKey {
        IntegrityKey {
            sha1: keyed(key),
            sha256: keyed(key),
        }
    }

    /// The short-term credential key (RFC 8489 §9.1.1): `OpaqueString(password)`.
    ///
    /// ICE passwords are ASCII and used as they are. Non-ASCII spaces are mapped to U+0020
    /// as OpaqueString requires; see [`crate::credentials::opaque_string`] for what the
    /// preparation does not cover.
    pub fn short_term(password: &str) -> IntegrityKey {
        let prepared = crate::credentials::opaque_string_lenient(password);
        IntegrityKey::new(prepared.as_bytes())
    }

    /// HMAC-SHA1 over the concatenation of `parts`.
    pub(crate) fn sha1(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.sha1.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.sha256.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

fn keyed<M: Mac + hmac::digest::KeyInit>(key: &[u8]) -> M {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length (longer ones are hashed, RFC 2104 §2).
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

impl fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntegrityKey(..)")
    }
}

/// Compares two MACs in constant time (no early exit on the first differing byte).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The FINGERPRINT value over the concatenation of `parts`.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize() ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abcd", b"abcd"));
        assert!(!ct_eq(b"abcd", b"abce"));
        assert!(!ct_eq(b"abcd", b"abc"));
    }

    #[test]
    fn long_keys_are_hashed_not_rejected() {
        let k = IntegrityKey::new(&[7u8; 200]);
        assert_ne!(k.sha1(&[b"x"]), IntegrityKey::new(&[7u8; 10]).sha1(&[b"x"]));
    }

    #[test]
    fn parts_are_concatenated() {
        let k = IntegrityKey::new(b"key");
        assert_eq!(k.sha1(&[b"ab", b"cd"]), k.sha1(&[b"abcd"]));
        assert_eq!(k.sha256(&[b"a", b"bcd"]), k.sha256(&[b"abcd"]));
        assert_eq!(fingerprint(&[b"ab", b"cd"]), fingerprint(&[b"abcd"]));
    }
}
