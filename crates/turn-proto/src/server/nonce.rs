//! Stateless nonces (RFC 8489 §9.2): the nonce carries its own expiry and a MAC, so the
//! server remembers nothing per client and an unauthenticated request costs no memory.
//!
//! Layout: the 13-byte nonce cookie (RFC 8489 §9.2, announcing the security features),
//! then unpadded URL-safe base64 of `expiry (u32, seconds since the server started) |
//! salt (u32, random) | HMAC-SHA1(secret, expiry | salt | client IP)[..12]`: 40 characters.
//!
//! The salt makes two nonces issued in the same second to the same IP differ, as RFC 8489
//! §9.2.4 asks ("MUST NOT choose the same NONCE for two requests unless they have the same
//! source IP address and port"); the MAC binds the nonce to the client's IP, so a nonce
//! captured from one client is useless from another address. A nonce from a previous run
//! of the server (another secret) fails the MAC and is answered as stale, with a fresh one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::net::IpAddr;
use stun_proto::credentials::{NONCE_COOKIE_LEN, SecurityFeatures, nonce_cookie};

type HmacSha1 = Hmac<Sha1>;

/// Bytes of MAC kept: 96 bits.
const MAC_LEN: usize = 12;
/// expiry + salt + MAC.
const BODY_LEN: usize = 4 + 4 + MAC_LEN;
/// Base64 characters for the body, without padding.
const ENCODED_LEN: usize = (BODY_LEN * 8).div_ceil(6);
/// The whole nonce.
pub(crate) const NONCE_LEN: usize = NONCE_COOKIE_LEN + ENCODED_LEN;

/// Issues and checks nonces with a secret drawn from the server's seeded generator.
#[derive(Clone)]
pub(crate) struct NonceSigner {
    mac: HmacSha1,
    cookie: [u8; NONCE_COOKIE_LEN],
}

impl core::fmt::Debug for NonceSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NonceSigner(..)")
    }
}

impl NonceSigner {
    pub(crate) fn new(secret: &[u8; 32], features: SecurityFeatures) -> NonceSigner {
        let mac = match HmacSha1::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        NonceSigner {
            mac,
            cookie: nonce_cookie(features),
        }
    }

    /// A nonce valid until `expiry` (seconds since the server started) for `ip`.
    pub(crate) fn issue(&self, expiry: u32, salt: u32, ip: IpAddr) -> [u8; NONCE_LEN] {
        let mut body = [0u8; BODY_LEN];
        body[..4].copy_from_slice(&expiry.to_be_bytes());
        body[4..8].copy_from_slice(&salt.to_be_bytes());
        let tag = self.tag(&body[..8], ip);
        body[8..].copy_from_slice(&tag[..MAC_LEN]);
        let mut out = [0u8; NONCE_LEN];
        out[..NONCE_COOKIE_LEN].copy_from_slice(&self.cookie);
        // The output slot is exactly the encoded length, so this cannot fail.
        let _ = URL_SAFE_NO_PAD.encode_slice(body, &mut out[NONCE_COOKIE_LEN..]);
        out
    }

    /// True if `nonce` was issued by this server for `ip` and has not expired at `now`
    /// (seconds since the server started). The MAC is compared in constant time.
    pub(crate) fn is_valid(&self, nonce: &[u8], now: u32, ip: IpAddr) -> bool {
        let Some(encoded) = nonce.strip_prefix(&self.cookie[..]) else {
            return false;
        };
        if encoded.len() != ENCODED_LEN {
            return false;
        }
        let mut body = [0u8; BODY_LEN + 3];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut body) {
            Ok(BODY_LEN) => {}
            _ => return false,
        }
        let mut mac = self.mac.clone();
        mac.update(&body[..8]);
        update_ip(&mut mac, ip);
        if mac.verify_truncated_left(&body[8..BODY_LEN]).is_err() {
            return false;
        }
        let expiry = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        now < expiry
    }

    fn tag(&self, head: &[u8], ip: IpAddr) -> [u8; 20] {
        let mut mac = self.mac.clone();
        mac.update(head);
        update_ip(&mut mac, ip);
        mac.finalize().into_bytes().into()
    }
}

fn update_ip(mac: &mut HmacSha1, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            mac.update(&[4]);
            mac.update(&v4.octets());
        }
        IpAddr::V6(v6) => {
            mac.update(&[6]);
            mac.update(&v6.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_proto::credentials::parse_nonce_cookie;

    fn signer(secret: u8) -> NonceSigner {
        NonceSigner::new(&[secret; 32], SecurityFeatures::PASSWORD_ALGORITHMS)
    }

    #[test]
    fn round_trip_expiry_and_binding_to_ip() {
        let s = signer(1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let n = s.issue(600, 7, ip);
        assert_eq!(n.len(), 40);
        assert!(core::str::from_utf8(&n).is_ok());
        assert_eq!(
            parse_nonce_cookie(&n),
            Some(SecurityFeatures::PASSWORD_ALGORITHMS)
        );
        assert!(s.is_valid(&n, 0, ip));
        assert!(s.is_valid(&n, 599, ip));
        assert!(!s.is_valid(&n, 600, ip), "expired");
        assert!(!s.is_valid(&n, 0, other), "bound to the client IP");
        assert!(!signer(2).is_valid(&n, 0, ip), "another secret");
        assert_ne!(n, s.issue(600, 8, ip), "the salt makes nonces differ");
    }

    #[test]
    fn forged_and_garbage_nonces_are_invalid() {
        let s = signer(1);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let mut n = s.issue(600, 1, ip);
        assert!(s.is_valid(&n, 10, ip));
        // Push the expiry forward without the secret: the MAC no longer matches.
        let forged_body = {
            let mut body = [0u8; BODY_LEN + 3];
            URL_SAFE_NO_PAD
                .decode_slice(&n[NONCE_COOKIE_LEN..], &mut body)
                .unwrap();
            body[..4].copy_from_slice(&u32::MAX.to_be_bytes());
            body
        };
        URL_SAFE_NO_PAD
            .encode_slice(&forged_body[..BODY_LEN], &mut n[NONCE_COOKIE_LEN..])
            .unwrap();
        assert!(!s.is_valid(&n, 10, ip));
        assert!(!s.is_valid(b"", 0, ip));
        assert!(!s.is_valid(b"obMatJos2AAAB", 0, ip));
        assert!(!s.is_valid(b"obMatJos2AAABAAAAAAAAAAAAAAAAAAAAAAAAAA*", 0, ip));
        assert!(!s.is_valid(&[0xff; 40], 0, ip));
    }
}
