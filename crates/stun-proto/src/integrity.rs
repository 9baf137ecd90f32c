//! HMAC keys for MESSAGE-INTEGRITY (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256, and the
//! FINGERPRINT CRC.
//!
//! An [`IntegrityKey`] holds both HMACs already keyed: the inner and outer pads are hashed
//! once when the key is made, so each message costs only the hashing of its own bytes. That
//! saves two SHA-1 blocks per message over keying every time, which is most of what
//! separates a fast STUN stack from a slow one.

use core::fmt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::hmac_sha1::Sha1Pads;

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
    sha1: Sha1Pads,
    sha256: HmacSha256,
}

impl IntegrityKey {
    /// A key from raw key bytes: the password for short-term credentials, or the 16/32-byte
    /// digest for long-term credentials (see [`crate::credentials`]).
    pub fn new(key: &[u8]) -> IntegrityKey {
        IntegrityKey {
            sha1: Sha1Pads::new(key),
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
    #[cfg(test)]
    pub(crate) fn sha1(&self, parts: &[&[u8]]) -> [u8; 20] {
        let msg = parts.concat();
        let field = match msg.get(2..4) {
            Some(f) => u16::from_be_bytes([f[0], f[1]]),
            None => 0,
        };
        self.sha1_covered(&msg, msg.len(), field)
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    #[cfg(test)]
    pub(crate) fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.sha256.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA1 over `msg[..at]` with the header's length field read as `length`: the input of
    /// an integrity attribute at offset `at` (RFC 8489 §14.5).
    pub(crate) fn sha1_covered(&self, msg: &[u8], at: usize, length: u16) -> [u8; 20] {
        let mut mac = [0u8; 20];
        for (dst, word) in mac
            .chunks_exact_mut(4)
            .zip(self.sha1.mac_covered(msg, at, length, || ()).0)
        {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        mac
    }

    /// Whether `expected` is the HMAC-SHA1 of `msg[..at]` with the length field read as
    /// `length`, compared in constant time. The MAC stays in the five state words and each is
    /// compared with the matching 4 bytes of `expected`, so it is never turned into bytes.
    #[inline]
    pub(crate) fn sha1_covered_matches(
        &self,
        msg: &[u8],
        at: usize,
        length: u16,
        expected: &[u8],
    ) -> bool {
        self.sha1_covered_matches_and(msg, at, length, expected, || ())
            .0
    }

    /// [`sha1_covered_matches`](Self::sha1_covered_matches), running `meanwhile` between the
    /// inner and the outer hash. The outer block waits ~30 ns for the inner state; work that
    /// does not depend on the MAC (the FINGERPRINT CRC) placed there runs in that wait instead
    /// of after it.
    #[inline]
    pub(crate) fn sha1_covered_matches_and<R>(
        &self,
        msg: &[u8],
        at: usize,
        length: u16,
        expected: &[u8],
        meanwhile: impl FnOnce() -> R,
    ) -> (bool, R) {
        let (state, r) = self.sha1.mac_covered(msg, at, length, meanwhile);
        let Ok(expected) = <&[u8; 20]>::try_from(expected) else {
            return (false, r);
        };
        let mut diff = 0u32;
        for (word, bytes) in state.iter().zip(expected.chunks_exact(4)) {
            diff |= word ^ u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        (bool::from(diff.ct_eq(&0)), r)
    }

    /// HMAC-SHA256 over `msg[..at]` with the header's length field read as `length`
    /// (RFC 8489 §14.6).
    pub(crate) fn sha256_covered(&self, msg: &[u8], at: usize, length: u16) -> [u8; 32] {
        let mut mac = self.sha256.clone();
        update_covered(&mut mac, msg, at, length);
        mac.finalize().into_bytes().into()
    }
}

/// The hash input of an integrity attribute at `at` is the message up to it, with the length
/// field rewritten to end at that attribute. When the attribute is the last one (always, when
/// building) the field already says so and the bytes are hashed as they are, in one call;
/// otherwise the patched field goes in between the type field and the rest. (Copying and
/// patching the first block instead measured no faster.)
fn update_covered(mac: &mut impl Mac, msg: &[u8], at: usize, length: u16) {
    let field = length.to_be_bytes();
    let covered = &msg[..at];
    if covered.get(2..4) == Some(field.as_slice()) {
        mac.update(covered);
        return;
    }
    mac.update(&covered[..2]);
    mac.update(&field);
    mac.update(&covered[4..]);
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
///
/// The bytes are folded eight at a time into one difference word with xor and or, which has no
/// data-dependent branch, and only that word goes through `subtle` (one optimisation barrier
/// instead of one per byte).
#[inline]
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        diff |= word(x) ^ word(y);
    }
    for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
        diff |= u64::from(x ^ y);
    }
    bool::from(diff.ct_eq(&0))
}

/// Eight bytes as a word (native order: only compared for equality).
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_ne_bytes(w)
}

/// The FINGERPRINT value over the concatenation of `parts`.
#[cfg(test)]
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize() ^ FINGERPRINT_XOR
}

/// The FINGERPRINT value of an attribute at `at`: the CRC of `msg[..at]` with the header's
/// length field read as `length` (RFC 8489 §14.7). FINGERPRINT is normally last, so the field
/// already matches and the CRC runs over the bytes as they are in one call.
pub(crate) fn fingerprint_covered(msg: &[u8], at: usize, length: u16) -> u32 {
    let msg = &msg[..at];
    let field = length.to_be_bytes();
    let crc = match (msg.get(..4), msg.get(4..)) {
        (Some(head), Some(rest)) if head[2..] != field => {
            let mut h = crc32fast::Hasher::new();
            h.update(&[head[0], head[1], field[0], field[1]]);
            h.update(rest);
            h.finalize()
        }
        _ => crc32fast::hash(msg),
    };
    crc ^ FINGERPRINT_XOR
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
    fn constant_time_compare_every_position() {
        let a: [u8; 32] = core::array::from_fn(|i| i as u8);
        for len in [0, 1, 7, 8, 9, 16, 20, 28, 32] {
            assert!(ct_eq(&a[..len], &a[..len]));
            for i in 0..len {
                let mut b = a;
                b[i] ^= 0x80;
                assert!(!ct_eq(&a[..len], &b[..len]), "len {len} byte {i}");
            }
        }
    }

    #[test]
    fn covered_input_patches_the_length_field() {
        let k = IntegrityKey::new(b"key");
        for len in [20usize, 24, 60, 64, 68, 100, 140] {
            let msg: alloc::vec::Vec<u8> = (0..len as u8).collect();
            let mut patched = msg.clone();
            patched[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
            assert_eq!(k.sha1_covered(&msg, len, 0x1234), k.sha1(&[&patched]));
            assert_eq!(k.sha256_covered(&msg, len, 0x1234), k.sha256(&[&patched]));
            assert_eq!(
                fingerprint_covered(&msg, len, 0x1234),
                fingerprint(&[&patched])
            );
            // Already matching: hashed as is.
            assert_eq!(k.sha1_covered(&patched, len, 0x1234), k.sha1(&[&patched]));
            assert_eq!(
                fingerprint_covered(&patched, len, 0x1234),
                fingerprint(&[&patched])
            );
        }
    }

    /// The prepared key's HMAC-SHA1 and its constant-time comparison on every reference case
    /// of the hand-built HMAC (`hmac_sha1::tests::reference_cases`): the MAC matches the
    /// `hmac` crate's and the right MAC is accepted; and (on each message without bytes past
    /// the covered part) a MAC with the low bit of any byte flipped, or one byte short, is
    /// refused.
    #[test]
    fn sha1_pads_match_the_hmac_crate() {
        crate::hmac_sha1::tests::reference_cases(|key, msg, len, field, want| {
            let key = IntegrityKey::new(key);
            let msg_len = msg.len();
            assert_eq!(
                key.sha1_covered(msg, len, field),
                want,
                "covered {len} of {msg_len}"
            );
            assert!(key.sha1_covered_matches(msg, len, field, &want));
            if msg_len != len {
                return; // the refusals once per case, on the message as it is
            }
            for i in 0..20 {
                let mut wrong = want;
                wrong[i] ^= 1;
                assert!(!key.sha1_covered_matches(msg, len, field, &wrong));
            }
            assert!(!key.sha1_covered_matches(msg, len, field, &want[..19]));
        });
    }

    #[test]
    fn parts_are_concatenated() {
        let k = IntegrityKey::new(b"key");
        assert_eq!(k.sha1(&[b"ab", b"cd"]), k.sha1(&[b"abcd"]));
        assert_eq!(k.sha256(&[b"a", b"bcd"]), k.sha256(&[b"abcd"]));
        assert_eq!(fingerprint(&[b"ab", b"cd"]), fingerprint(&[b"abcd"]));
    }
}
