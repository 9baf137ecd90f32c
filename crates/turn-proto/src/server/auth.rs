//! The long-term credential mechanism on the server side (RFC 8489 §9.2.4, RFC 8656 §5):
//! static users and TURN REST shared-secret credentials, password algorithms with bid-down
//! protection, USERHASH, and stateless nonces.
//!
//! # REST credentials
//!
//! The common form coturn implements: the username is `expiry:user` (or just `expiry`),
//! where `expiry` is a Unix time, and the password is `base64(HMAC-SHA1(secret,
//! username))`. The key is then the ordinary long-term key (RFC 8489 §9.2.2) derived from
//! that password. A username whose expiry has passed is not valid (401). The check is made
//! when a request has to be authenticated from the credential; requests on an existing
//! allocation by the same user are checked against the key stored with the allocation
//! (RFC 8656 §6), so an allocation made with a valid credential can be refreshed after the
//! credential's expiry, as coturn does.

use super::config::{ServerConfig, UserSecret};
use super::hasher::{KeyedMap, KeyedState};
use super::nonce::NonceSigner;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::borrow::Cow;
use std::net::IpAddr;
use stun_proto::attributes::{
    Nonce, PasswordAlgorithm, PasswordAlgorithms, Realm, UserHash, Username,
};
use stun_proto::credentials::{
    Algorithm, LongTermKey, SecurityFeatures, parse_nonce_cookie, userhash,
};
use stun_proto::{IntegrityKey, Message};

type HmacSha1 = Hmac<Sha1>;

/// The password algorithms offered, in order of preference (RFC 8489 §14.11).
pub(crate) const OFFERED_ALGORITHMS: [u16; 2] = [Algorithm::Sha256.code(), Algorithm::Md5.code()];

/// The TURN REST credentials for `user`, valid until `expires_at` (Unix seconds) under
/// `secret`: the username `"<expires_at>:<user>"` and the password
/// `base64(HMAC-SHA1(secret, username))`. What a web service hands to its clients; also
/// handy in tests.
///
/// ```
/// let (username, password) = turn_proto::server::rest_credentials(b"secret", 1_700_000_000, "alice");
/// assert_eq!(username, "1700000000:alice");
/// assert_eq!(password.len(), 28); // base64 of a 20-byte HMAC-SHA1
/// ```
pub fn rest_credentials(secret: &[u8], expires_at: u64, user: &str) -> (String, String) {
    let username = format!("{expires_at}:{user}");
    let password = rest_password(&hmac_key(secret), &username);
    (username, password)
}

fn hmac_key(secret: &[u8]) -> HmacSha1 {
    match HmacSha1::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

fn rest_password(mac: &HmacSha1, username: &str) -> String {
    let mut mac = mac.clone();
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Splits a REST username into its expiry and its user part.
fn parse_rest(username: &str) -> Option<(u64, &str)> {
    let (expiry, user) = username.split_once(':').unwrap_or((username, ""));
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((expiry.parse().ok()?, user))
}

#[derive(Debug, Default)]
struct StaticUser {
    md5: Option<LongTermKey>,
    sha256: Option<LongTermKey>,
}

/// Where long-term keys come from.
pub(crate) struct Credentials {
    realm: Box<str>,
    users: KeyedMap<Box<str>, StaticUser>,
    by_hash: KeyedMap<[u8; 32], Box<str>>,
    rest: Option<HmacSha1>,
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("rest", &self.rest.is_some())
            .finish()
    }
}

impl Credentials {
    pub(crate) fn new(config: &ServerConfig, hasher: KeyedState) -> Credentials {
        let realm = config.realm.as_str();
        let mut users = KeyedMap::with_hasher(hasher);
        let mut by_hash = KeyedMap::with_hasher(hasher);
        for (name, secret) in &config.users {
            let mut user = StaticUser::default();
            match secret {
                UserSecret::Password(p) => {
                    user.md5 = Some(LongTermKey::derive(Algorithm::Md5, name, realm, p));
                    user.sha256 = Some(LongTermKey::derive(Algorithm::Sha256, name, realm, p));
                }
                UserSecret::Key(k) if k.as_bytes().len() == 16 => user.md5 = Some(*k),
                UserSecret::Key(k) => user.sha256 = Some(*k),
            }
            by_hash.insert(userhash(name, realm), name.as_str().into());
            users.insert(name.as_str().into(), user);
        }
        Credentials {
            realm: realm.into(),
            users,
            by_hash,
            rest: config.rest_secret.as_deref().map(hmac_key),
        }
    }

    /// The key for `username` under `algorithm`; `None` if the username is not valid (not a
    /// static user, not a live REST username) or has no key for that algorithm.
    fn key(&self, username: &str, algorithm: Algorithm, wall_now: u64) -> Option<LongTermKey> {
        if let Some(user) = self.users.get(username) {
            return match algorithm {
                Algorithm::Md5 => user.md5,
                Algorithm::Sha256 => user.sha256,
            };
        }
        let mac = self.rest.as_ref()?;
        let (expiry, _) = parse_rest(username)?;
        if expiry <= wall_now {
            tracing::debug!(username, "expired REST credential");
            return None;
        }
        let password = rest_password(mac, username);
        Some(LongTermKey::derive(
            algorithm,
            username,
            &self.realm,
            &password,
        ))
    }

    /// What counts against the per-user quota: the user part of a REST username, else the
    /// username itself.
    pub(crate) fn quota_key<'u>(&self, username: &'u str) -> &'u str {
        if self.rest.is_some() && !self.users.contains_key(username) {
            if let Some((_, user)) = parse_rest(username) {
                return user;
            }
        }
        username
    }
}

/// Why a request failed authentication; each maps to one error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// 400: integrity without USERNAME/USERHASH, REALM or NONCE, malformed credential
    /// attributes, or a failed bid-down check.
    BadRequest,
    /// 401: no integrity, an unknown user, or an integrity mismatch.
    Unauthenticated,
    /// 438: the request is authentic but its nonce is expired, forged, or another
    /// client's.
    StaleNonce,
}

impl AuthError {
    pub(crate) fn code(self) -> u16 {
        match self {
            AuthError::BadRequest => 400,
            AuthError::Unauthenticated => 401,
            AuthError::StaleNonce => 438,
        }
    }
}

/// An authenticated request.
#[derive(Debug)]
pub(crate) struct Authenticated<'m> {
    pub(crate) username: Cow<'m, str>,
    pub(crate) key: LongTermKey,
    /// The prepared key, for the response's integrity.
    pub(crate) integrity: IntegrityKey,
    /// Answer with MESSAGE-INTEGRITY-SHA256 (else MESSAGE-INTEGRITY).
    pub(crate) sha256: bool,
}

/// What the server knows while authenticating one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuthContext<'s> {
    pub(crate) client_ip: IpAddr,
    /// Seconds since the server started (nonce clock).
    pub(crate) now_secs: u32,
    /// Unix time (REST expiry).
    pub(crate) wall_now: u64,
    /// The username and key of the allocation on this 5-tuple, if any.
    pub(crate) existing: Option<(&'s str, &'s LongTermKey)>,
}

/// The server's authenticator: credentials and nonces.
#[derive(Debug)]
pub(crate) struct Authenticator {
    pub(crate) credentials: Credentials,
    pub(crate) nonces: NonceSigner,
}

impl Authenticator {
    /// The checks of RFC 8489 §9.2.4, in its order.
    pub(crate) fn check<'m>(
        &self,
        msg: &Message<'m>,
        cx: AuthContext<'_>,
    ) -> Result<Authenticated<'m>, AuthError> {
        use AuthError::{BadRequest, StaleNonce, Unauthenticated};
        // RFC 8489 §9.2.4: no integrity at all -> 401 with a realm and a fresh nonce.
        if !msg.has_message_integrity() && !msg.has_message_integrity_sha256() {
            return Err(Unauthenticated);
        }
        // Integrity but a missing USERNAME/USERHASH, REALM or NONCE -> 400.
        let username = msg.get::<Username<'m>>().map_err(|_| BadRequest)?;
        let hash = msg.get::<UserHash>().map_err(|_| BadRequest)?;
        let realm = msg.get::<Realm<'m>>().map_err(|_| BadRequest)?;
        let nonce = msg.get::<Nonce<'m>>().map_err(|_| BadRequest)?;
        let (Some(realm), Some(nonce)) = (realm, nonce) else {
            return Err(BadRequest);
        };
        let (algorithm, negotiated) = select_algorithm(msg, nonce.as_bytes())?;
        let username: Cow<'m, str> = match (username, hash) {
            (Some(u), _) => Cow::Borrowed(u.as_str()),
            (None, Some(h)) => match self.credentials.by_hash.get(&h.0) {
                Some(name) => Cow::Owned(name.to_string()),
                None => return Err(Unauthenticated),
            },
            (None, None) => return Err(BadRequest),
        };
        // A realm other than ours cannot produce our key: the user is not valid here.
        if realm.as_str() != &*self.credentials.realm {
            return Err(Unauthenticated);
        }
        let key = self.key(&username, algorithm, &cx).ok_or(Unauthenticated)?;
        let integrity = key.integrity_key();
        msg.verify_integrity(&integrity)
            .map_err(|_| Unauthenticated)?;
        // Only an authentic request learns that its nonce is stale (RFC 8489 §9.2.4 order).
        if !self
            .nonces
            .is_valid(nonce.as_bytes(), cx.now_secs, cx.client_ip)
        {
            return Err(StaleNonce);
        }
        Ok(Authenticated {
            username,
            key,
            integrity,
            // RFC 8489 §9.2.4: MESSAGE-INTEGRITY-SHA256 unless processed as MD5 because
            // neither PASSWORD-ALGORITHM(S) was sent; and whenever the request used it.
            sha256: negotiated || msg.has_message_integrity_sha256(),
        })
    }

    fn key(
        &self,
        username: &str,
        algorithm: Algorithm,
        cx: &AuthContext<'_>,
    ) -> Option<LongTermKey> {
        // RFC 8656 §6: requests on an allocation by its own user use the stored key.
        if let Some((name, key)) = cx.existing {
            if name == username && key.as_bytes().len() == key_len(algorithm) {
                return Some(*key);
            }
        }
        self.credentials.key(username, algorithm, cx.wall_now)
    }
}

fn key_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Md5 => 16,
        Algorithm::Sha256 => 32,
    }
}

/// RFC 8489 §9.2.4, bid-down protection: if our nonce announced password algorithms, the
/// request carries neither PASSWORD-ALGORITHM nor PASSWORD-ALGORITHMS (processed as MD5),
/// or both, with PASSWORD-ALGORITHMS exactly as offered and PASSWORD-ALGORITHM one of them.
/// Returns the algorithm and whether it was negotiated.
fn select_algorithm(msg: &Message<'_>, nonce: &[u8]) -> Result<(Algorithm, bool), AuthError> {
    let chosen = msg
        .get::<PasswordAlgorithm<'_>>()
        .map_err(|_| AuthError::BadRequest)?;
    let listed = msg
        .get::<PasswordAlgorithms<'_>>()
        .map_err(|_| AuthError::BadRequest)?;
    let announced = parse_nonce_cookie(nonce)
        .is_some_and(|f| f.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
    let algorithm = |code: u16| Algorithm::from_code(code).ok_or(AuthError::BadRequest);
    match (chosen, listed) {
        (None, None) => Ok((Algorithm::Md5, false)),
        (Some(pa), Some(pas)) => {
            let offered = PasswordAlgorithms::new(&OFFERED_ALGORITHMS);
            if announced && !pas.same_as(&offered) {
                return Err(AuthError::BadRequest);
            }
            if !pas.iter().any(|a| a == pa) {
                return Err(AuthError::BadRequest);
            }
            Ok((algorithm(pa.algorithm)?, true))
        }
        // One without the other: a stripped or forged list when we announced algorithms.
        (Some(pa), None) if !announced => Ok((algorithm(pa.algorithm)?, true)),
        _ => Err(AuthError::BadRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_usernames() {
        assert_eq!(
            parse_rest("1700000000:alice"),
            Some((1_700_000_000, "alice"))
        );
        assert_eq!(parse_rest("1700000000"), Some((1_700_000_000, "")));
        assert_eq!(parse_rest("alice:1700000000"), None);
        assert_eq!(parse_rest(":x"), None);
        assert_eq!(parse_rest("+5:x"), None);
        assert_eq!(parse_rest("99999999999999999999999:x"), None);
    }

    #[test]
    fn rest_password_matches_independent_computation() {
        // echo -n "1600000000:user" | openssl dgst -sha1 -hmac secret -binary | base64
        let (u, p) = rest_credentials(b"secret", 1_600_000_000, "user");
        assert_eq!(u, "1600000000:user");
        assert_eq!(p, "BwzEW9gDEHXnNCRCm1qZLqyo+hg=");
    }

    #[test]
    fn key_lookup_static_rest_and_expiry() {
        let mut c = ServerConfig::new("example.org");
        c.add_user("alice", "pw");
        c.add_user_key(
            "bob",
            LongTermKey::derive(Algorithm::Sha256, "bob", "example.org", "x"),
        );
        c.rest_secret = Some(b"secret".to_vec());
        let creds = Credentials::new(&c, KeyedState::new(1, 1));
        assert_eq!(
            creds.key("alice", Algorithm::Md5, 0),
            Some(LongTermKey::derive(
                Algorithm::Md5,
                "alice",
                "example.org",
                "pw"
            ))
        );
        assert!(creds.key("bob", Algorithm::Sha256, 0).is_some());
        assert_eq!(
            creds.key("bob", Algorithm::Md5, 0),
            None,
            "key serves its algorithm only"
        );
        let (u, p) = rest_credentials(b"secret", 1000, "carol");
        assert_eq!(
            creds.key(&u, Algorithm::Md5, 999),
            Some(LongTermKey::derive(Algorithm::Md5, &u, "example.org", &p))
        );
        assert_eq!(creds.key(&u, Algorithm::Md5, 1000), None, "expired");
        assert_eq!(creds.key("mallory", Algorithm::Md5, 0), None);
        assert_eq!(creds.quota_key(&u), "carol");
        assert_eq!(creds.quota_key("alice"), "alice");
        assert_eq!(
            creds
                .by_hash
                .get(&userhash("alice", "example.org"))
                .map(|s| &**s),
            Some("alice")
        );
    }
}
