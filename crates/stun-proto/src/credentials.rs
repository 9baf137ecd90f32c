//! Credentials (RFC 8489 §9): long-term keys with MD5 and SHA-256, USERHASH, the nonce
//! cookie with its security-feature bits, and OpaqueString (RFC 8265 §4.2) preparation.
//!
//! # OpaqueString: what is and is not done
//! RFC 8489 runs usernames, realms and passwords through the PRECIS OpaqueString profile.
//! [`opaque_string`] does the parts that need no Unicode tables: it maps non-ASCII spaces to
//! U+0020, and rejects empty strings, control characters and noncharacters. It does **not**
//! apply Unicode Normalization Form C, and it does not check the full FreeformClass
//! (unassigned code points, old Hangul jamo, ignorables). ASCII strings, which is what ICE
//! credentials and almost every TURN deployment use, are unaffected by either omission;
//! callers with non-ASCII credentials should pass them already in NFC.

use crate::integrity::IntegrityKey;
use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt;
use md5::{Digest, Md5};
use sha2::Sha256;

/// A password algorithm (RFC 8489 §18.5, IANA "STUN Password Algorithms").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, 16-byte key (the RFC 5389 key).
    Md5,
    /// SHA-256, 32-byte key.
    Sha256,
}

impl Algorithm {
    /// The registered number: 1 for MD5, 2 for SHA-256.
    pub const fn code(self) -> u16 {
        match self {
            Algorithm::Md5 => 0x0001,
            Algorithm::Sha256 => 0x0002,
        }
    }

    /// The algorithm for a registered number.
    pub const fn from_code(code: u16) -> Option<Algorithm> {
        match code {
            0x0001 => Some(Algorithm::Md5),
            0x0002 => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

/// The raw long-term key: `H(username ":" OpaqueString(realm) ":" OpaqueString(password))`
/// with H = MD5 or SHA-256 (RFC 8489 §9.2.2, §18.5.1). Servers may store this instead of
/// the password, as SIP servers store H(A1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LongTermKey {
    bytes: [u8; 32],
    len: u8,
}

impl LongTermKey {
    /// Derives the key. `username` is used as it appears in USERNAME (already prepared).
    pub fn derive(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Self {
        let realm = opaque_string_lenient(realm);
        let password = opaque_string_lenient(password);
        let parts: [&[u8]; 5] = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        let mut bytes = [0u8; 32];
        let len = match algorithm {
            Algorithm::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                bytes[..16].copy_from_slice(&h.finalize());
                16
            }
            Algorithm::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                bytes.copy_from_slice(&h.finalize());
                32
            }
        };
        LongTermKey { bytes, len }
    }

    /// A key from stored digest bytes (16 for MD5, 32 for SHA-256); `None` for other lengths.
    pub fn from_bytes(digest: &[u8]) -> Option<Self> {
        if digest.len() != 16 && digest.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(LongTermKey {
            bytes,
            len: digest.len() as u8,
        })
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The prepared HMAC key for this credential.
    pub fn integrity_key(&self) -> IntegrityKey {
        IntegrityKey::new(self.as_bytes())
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LongTermKey({} bytes)", self.len)
    }
}

/// `SHA-256(OpaqueString(username) ":" OpaqueString(realm))`, the USERHASH value
/// (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(opaque_string_lenient(username).as_bytes());
    h.update(b":");
    h.update(opaque_string_lenient(realm).as_bytes());
    h.finalize().into()
}

/// Why a string is not a valid OpaqueString.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrecisError {
    /// The string is empty (RFC 8265 §4.2.2 forbids zero-length results).
    Empty,
    /// The string contains a character FreeformClass disallows.
    Disallowed(char),
}

impl fmt::Display for PrecisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrecisError::Empty => f.write_str("empty string"),
            PrecisError::Disallowed(c) => write!(f, "disallowed character U+{:04X}", u32::from(*c)),
        }
    }
}

impl core::error::Error for PrecisError {}

/// Non-ASCII space separators (Unicode category Zs), mapped to U+0020 by OpaqueString.
fn is_non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

fn is_disallowed(c: char) -> bool {
    let cp = u32::from(c);
    c.is_control() || (0xFDD0..=0xFDEF).contains(&cp) || (cp & 0xFFFE) == 0xFFFE
}

/// Prepares and enforces `s` under OpaqueString (RFC 8265 §4.2), within the limits stated
/// in the module documentation.
pub fn opaque_string(s: &str) -> Result<Cow<'_, str>, PrecisError> {
    if s.is_empty() {
        return Err(PrecisError::Empty);
    }
    if let Some(c) = s.chars().find(|&c| is_disallowed(c)) {
        return Err(PrecisError::Disallowed(c));
    }
    Ok(opaque_string_lenient(s))
}

/// The mapping part of OpaqueString only, never failing: used when deriving keys from
/// credentials that were configured (and validated) elsewhere.
pub(crate) fn opaque_string_lenient(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || !s.chars().any(is_non_ascii_space) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if is_non_ascii_space(c) { ' ' } else { c })
            .collect::<String>(),
    )
}

/// The 24 STUN Security Feature bits carried in the nonce cookie (RFC 8489 §9.2, §18.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SecurityFeatures(u32);

impl SecurityFeatures {
    /// No features.
    pub const NONE: SecurityFeatures = SecurityFeatures(0);
    /// "Password algorithms": the server offers PASSWORD-ALGORITHMS and checks the client
    /// echoes it (bid-down protection, §9.2.4).
    pub const PASSWORD_ALGORITHMS: SecurityFeatures = SecurityFeatures(1 << 0);
    /// "Username anonymity": the server accepts USERHASH.
    pub const USERNAME_ANONYMITY: SecurityFeatures = SecurityFeatures(1 << 1);

    /// True if every feature in `other` is set here.
    pub const fn contains(self, other: SecurityFeatures) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: SecurityFeatures) -> SecurityFeatures {
        SecurityFeatures(self.0 | other.0)
    }
}

impl fmt::Debug for SecurityFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecurityFeatures({:#08x})", self.0)
    }
}

/// The fixed start of a nonce cookie (RFC 8489 §9.2).
pub const NONCE_COOKIE_PREFIX: &str = "obMatJos2";
/// Length of a whole nonce cookie: the prefix and four base64 characters.
pub const NONCE_COOKIE_LEN: usize = 13;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 13-byte nonce cookie announcing `features`, to start a server's NONCE with.
///
/// Bits are numbered from the least significant bit of the 24-bit value, as the verified
/// erratum 6290 to RFC 8489 corrects (so "Password algorithms" alone encodes as `AAAB`).
pub fn nonce_cookie(features: SecurityFeatures) -> [u8; NONCE_COOKIE_LEN] {
    let mut out = [0u8; NONCE_COOKIE_LEN];
    out[..9].copy_from_slice(NONCE_COOKIE_PREFIX.as_bytes());
    let v = features.0 & 0x00FF_FFFF;
    for i in 0..4 {
        out[9 + i] = BASE64[((v >> (18 - 6 * i)) & 0x3F) as usize];
    }
    out
}

/// Reads the security features from a NONCE that starts with the nonce cookie; `None` if
/// it does not (an RFC 5389 server).
///
/// Servers that number the bits from the most significant end, as RFC 8489's prose did
/// before erratum 6290, are understood too: either position sets the feature.
pub fn parse_nonce_cookie(nonce: &[u8]) -> Option<SecurityFeatures> {
    let rest = nonce.strip_prefix(NONCE_COOKIE_PREFIX.as_bytes())?;
    let chars = rest.get(..4)?;
    let mut v = 0u32;
    for &c in chars {
        let d = BASE64.iter().position(|&b| b == c)? as u32;
        v = (v << 6) | d;
    }
    let mut features = SecurityFeatures(v & 0b11);
    if v & 0x80_0000 != 0 {
        features = features.union(SecurityFeatures::PASSWORD_ALGORITHMS);
    }
    if v & 0x40_0000 != 0 {
        features = features.union(SecurityFeatures::USERNAME_ANONYMITY);
    }
    Some(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn md5_key_matches_rfc8489_example() {
        // RFC 8489 §9.2.2: MD5("user:realm:pass").
        let k = LongTermKey::derive(Algorithm::Md5, "user", "realm", "pass");
        assert_eq!(hex(k.as_bytes()), "8493fbc53ba582fb4c044c456bdc40eb");
    }

    #[test]
    fn sha256_key_and_userhash_match_independent_computation() {
        // Values computed independently (sha256sum over the same strings).
        let k = LongTermKey::derive(Algorithm::Sha256, "user", "example.org", "secret");
        assert_eq!(
            hex(k.as_bytes()),
            "bf9f8cc2da128fcb78077f794a818f9d3ccf550dab291cb21c82f29a153b3355"
        );
        assert_eq!(
            hex(&userhash("user", "example.org")),
            "cf9fa894dfc9b7680968aec1efb3a6b8b2a1cac25c0461cab3b0c2f87c25eeaf"
        );
    }

    #[test]
    fn opaque_string_rules() {
        assert_eq!(opaque_string("TheMatrIX").unwrap(), "TheMatrIX");
        assert_eq!(opaque_string("a\u{3000}b").unwrap(), "a b");
        assert_eq!(opaque_string(""), Err(PrecisError::Empty));
        assert_eq!(
            opaque_string("a\u{0007}"),
            Err(PrecisError::Disallowed('\u{0007}'))
        );
        assert_eq!(
            opaque_string("a\u{FDD0}"),
            Err(PrecisError::Disallowed('\u{FDD0}'))
        );
        assert_eq!(
            opaque_string("a\u{1FFFF}"),
            Err(PrecisError::Disallowed('\u{1FFFF}'))
        );
        assert!(matches!(opaque_string("plain"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn nonce_cookie_round_trip() {
        assert_eq!(&nonce_cookie(SecurityFeatures::NONE), b"obMatJos2AAAA");
        assert_eq!(
            &nonce_cookie(SecurityFeatures::PASSWORD_ALGORITHMS),
            b"obMatJos2AAAB"
        );
        assert_eq!(
            &nonce_cookie(SecurityFeatures::USERNAME_ANONYMITY),
            b"obMatJos2AAAC"
        );
        let both =
            SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY);
        let mut nonce = nonce_cookie(both).to_vec();
        nonce.extend_from_slice(b"f//499k954d6OL34oL9FSTvy64sA");
        assert_eq!(parse_nonce_cookie(&nonce), Some(both));
        assert_eq!(parse_nonce_cookie(b"f//499k954d6OL34oL9FSTvy64sA"), None);
        assert_eq!(parse_nonce_cookie(b"obMatJos2AA"), None);
        assert_eq!(parse_nonce_cookie(b"obMatJos2AA*A"), None);
        // The pre-erratum bit order (most significant bit first) is understood.
        assert_eq!(
            parse_nonce_cookie(b"obMatJos2gAAAxyz"),
            Some(SecurityFeatures::PASSWORD_ALGORITHMS)
        );
    }
}
