//! The long-term credential mechanism from the client's side (RFC 8489 §9.2): learning
//! REALM, NONCE and PASSWORD-ALGORITHMS from a 401, following 438 Stale Nonce, choosing the
//! key algorithm and the integrity attribute, and checking responses.

use super::events::AuthFailure;
use core::fmt;
use stun_proto::attributes::{
    AttributeType, Nonce, PasswordAlgorithm, PasswordAlgorithms, Realm, UserHash, Username,
};
use stun_proto::credentials::{self, Algorithm, LongTermKey, SecurityFeatures};
use stun_proto::{BuildError, IntegrityAlgorithm, IntegrityKey, Message, MessageBuilder};

/// What a 401 or 438 taught the client: everything needed to authenticate requests.
#[derive(Clone, Debug)]
struct Challenge {
    realm: String,
    nonce: Vec<u8>,
    /// PASSWORD-ALGORITHMS exactly as the server sent it, to echo (RFC 8489 §9.2.5).
    algorithms: Option<Vec<u8>>,
    algorithm: Algorithm,
    /// Send USERHASH instead of USERNAME (nonce cookie "username anonymity" bit).
    userhash: bool,
    /// MESSAGE-INTEGRITY-SHA256 for RFC 8489 servers, MESSAGE-INTEGRITY for RFC 5389 ones.
    integrity: IntegrityAlgorithm,
    key: IntegrityKey,
}

/// The client's credentials and what it learnt from the server. Its `Debug` leaves the
/// password out.
#[derive(Clone)]
pub(super) struct Auth {
    username: String,
    password: String,
    challenge: Option<Challenge>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("realm", &self.realm())
            .field("algorithm", &self.challenge.as_ref().map(|c| c.algorithm))
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub(super) fn new(username: String, password: String) -> Self {
        Auth {
            username,
            password,
            challenge: None,
        }
    }

    /// True once a challenge was learnt: requests carry credentials and integrity, and
    /// responses must carry valid integrity.
    pub(super) fn is_ready(&self) -> bool {
        self.challenge.is_some()
    }

    /// The realm in use, if any.
    pub(super) fn realm(&self) -> Option<&str> {
        self.challenge.as_ref().map(|c| c.realm.as_str())
    }

    /// Forgets realm and nonce (after a redirect the new server challenges afresh); the
    /// username and password stay.
    pub(super) fn reset(&mut self) {
        self.challenge = None;
    }

    /// Learns a 401 challenge (RFC 8489 §9.2.5): REALM and NONCE are required.
    pub(super) fn learn_challenge(&mut self, msg: &Message<'_>) -> Result<(), AuthFailure> {
        let realm = match msg.get::<Realm<'_>>() {
            Ok(Some(r)) => r.as_str().to_owned(),
            Ok(None) => return Err(AuthFailure::MissingRealm),
            Err(_) => return Err(AuthFailure::Malformed),
        };
        self.learn(msg, realm)
    }

    /// Learns the new NONCE of a 438 Stale Nonce (and a new REALM or PASSWORD-ALGORITHMS if
    /// the server sent them).
    pub(super) fn learn_stale_nonce(&mut self, msg: &Message<'_>) -> Result<(), AuthFailure> {
        let realm = match (msg.get::<Realm<'_>>(), self.realm()) {
            (Ok(Some(r)), _) => r.as_str().to_owned(),
            (Ok(None), Some(current)) => current.to_owned(),
            (Ok(None), None) => return Err(AuthFailure::MissingRealm),
            (Err(_), _) => return Err(AuthFailure::Malformed),
        };
        self.learn(msg, realm)
    }

    fn learn(&mut self, msg: &Message<'_>, realm: String) -> Result<(), AuthFailure> {
        let nonce = match msg.get::<Nonce<'_>>() {
            Ok(Some(n)) => n.as_bytes().to_vec(),
            Ok(None) => return Err(AuthFailure::MissingNonce),
            Err(_) => return Err(AuthFailure::Malformed),
        };
        let cookie = credentials::parse_nonce_cookie(&nonce);
        let offered = msg
            .get::<PasswordAlgorithms<'_>>()
            .map_err(|_| AuthFailure::Malformed)?;
        // RFC 8489 §9.2.5: the cookie promises PASSWORD-ALGORITHMS; its absence is a bid-down
        // attack and the client must not retry.
        let promised = cookie.is_some_and(|f| f.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
        if promised && offered.is_none() {
            return Err(AuthFailure::PasswordAlgorithmsMissing);
        }
        let algorithm = match &offered {
            Some(list) => first_supported(list).ok_or(AuthFailure::NoSupportedAlgorithm)?,
            // Without PASSWORD-ALGORITHMS the key is MD5 (RFC 8489 §9.2.2).
            None => Algorithm::Md5,
        };
        // An RFC 8489 server announces itself with the nonce cookie; RFC 5389 servers know
        // only MESSAGE-INTEGRITY and would answer 420 to MESSAGE-INTEGRITY-SHA256.
        let integrity = if cookie.is_some() || algorithm == Algorithm::Sha256 {
            IntegrityAlgorithm::Sha256
        } else {
            IntegrityAlgorithm::Sha1
        };
        let key = LongTermKey::derive(algorithm, &self.username, &realm, &self.password);
        self.challenge = Some(Challenge {
            realm,
            algorithms: msg
                .raw(AttributeType::PASSWORD_ALGORITHMS)
                .map(<[u8]>::to_vec),
            nonce,
            algorithm,
            userhash: cookie.is_some_and(|f| f.contains(SecurityFeatures::USERNAME_ANONYMITY)),
            integrity,
            key: key.integrity_key(),
        });
        Ok(())
    }

    /// An upper bound of the bytes [`add_credentials`](Self::add_credentials) appends.
    pub(super) fn credentials_len(&self) -> usize {
        self.challenge.as_ref().map_or(0, |c| {
            let padded = |n: usize| 4 + n.next_multiple_of(4);
            padded(self.username.len().max(32))
                + padded(c.realm.len())
                + padded(c.nonce.len())
                + c.algorithms.as_ref().map_or(0, |a| padded(a.len()))
        })
    }

    /// Appends USERNAME (or USERHASH), REALM, NONCE and the password-algorithm attributes
    /// (RFC 8489 §9.2.5); nothing before a challenge was learnt.
    pub(super) fn add_credentials(&self, b: &mut MessageBuilder<'_>) -> Result<(), BuildError> {
        let Some(c) = &self.challenge else {
            return Ok(());
        };
        if c.userhash {
            b.add(&UserHash(credentials::userhash(&self.username, &c.realm)))?;
        } else {
            let username = Username::new(&self.username).map_err(|_| BuildError::TooLong)?;
            b.add(&username)?;
        }
        // REALM and NONCE are echoed as received, whatever their length.
        b.add_raw(AttributeType::REALM, c.realm.as_bytes())?;
        b.add_raw(AttributeType::NONCE, &c.nonce)?;
        if let Some(algorithms) = &c.algorithms {
            b.add_raw(AttributeType::PASSWORD_ALGORITHMS, algorithms)?;
            b.add(&PasswordAlgorithm::new(c.algorithm.code()))?;
        }
        Ok(())
    }

    /// Appends the integrity attribute, if credentials are in use.
    pub(super) fn add_integrity(&self, b: &mut MessageBuilder<'_>) -> Result<(), BuildError> {
        match &self.challenge {
            Some(c) if c.integrity == IntegrityAlgorithm::Sha256 => {
                b.add_message_integrity_sha256(&c.key)?;
            }
            Some(c) => {
                b.add_message_integrity(&c.key)?;
            }
            None => {}
        }
        Ok(())
    }

    /// True if the response carries valid integrity under the current key
    /// (MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY, RFC 8489 §9.2.5).
    pub(super) fn verify(&self, msg: &Message<'_>) -> bool {
        self.challenge
            .as_ref()
            .is_some_and(|c| msg.verify_integrity(&c.key).is_ok())
    }

    /// The key algorithm chosen, if a challenge was learnt.
    #[cfg(test)]
    pub(super) fn algorithm(&self) -> Option<Algorithm> {
        self.challenge.as_ref().map(|c| c.algorithm)
    }

    /// The integrity attribute used, if a challenge was learnt.
    #[cfg(test)]
    pub(super) fn integrity(&self) -> Option<IntegrityAlgorithm> {
        self.challenge.as_ref().map(|c| c.integrity)
    }
}

/// The first algorithm on the server's list that the client supports: RFC 8489 §9.2.5 says
/// the request MUST carry "the first algorithm supported on the list" (the server's order
/// of preference), which is SHA-256 whenever a server lists it first.
fn first_supported(list: &PasswordAlgorithms<'_>) -> Option<Algorithm> {
    list.iter()
        .filter(|p| p.parameters.is_empty())
        .find_map(|p| Algorithm::from_code(p.algorithm))
}

/// True if a response's NONCE carries the cookie promising PASSWORD-ALGORITHMS while the
/// attribute is absent: RFC 8489 §9.2.5 says such a response (other than 401 and 438) MUST
/// be ignored.
pub(super) fn is_bid_down(msg: &Message<'_>) -> bool {
    let Some(nonce) = msg.raw(AttributeType::NONCE) else {
        return false;
    };
    credentials::parse_nonce_cookie(nonce)
        .is_some_and(|f| f.contains(SecurityFeatures::PASSWORD_ALGORITHMS))
        && !msg.has(AttributeType::PASSWORD_ALGORITHMS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_proto::attributes::ErrorCode;
    use stun_proto::{Class, MessageType, Method, TransactionId};

    fn challenge(nonce: &[u8], algorithms: Option<&[u16]>) -> Vec<u8> {
        let mut buf = vec![0u8; 512];
        let t = MessageType::new(Method::ALLOCATE, Class::Error);
        let mut b = MessageBuilder::new(&mut buf, t, TransactionId::new([1; 12])).unwrap();
        b.add(&ErrorCode::with_default_reason(401).unwrap())
            .unwrap();
        b.add(&Realm::new("example.org").unwrap()).unwrap();
        b.add(&Nonce::new(nonce).unwrap()).unwrap();
        if let Some(list) = algorithms {
            b.add(&PasswordAlgorithms::new(list)).unwrap();
        }
        b.finish().to_vec()
    }

    fn learn(bytes: &[u8]) -> (Auth, Result<(), AuthFailure>) {
        let mut auth = Auth::new("user".into(), "pass".into());
        let r = auth.learn_challenge(&Message::parse(bytes).unwrap());
        (auth, r)
    }

    #[test]
    fn rfc5389_server_gets_md5_and_message_integrity() {
        let (auth, r) = learn(&challenge(b"plain-nonce", None));
        assert_eq!(r, Ok(()));
        assert_eq!(auth.algorithm(), Some(Algorithm::Md5));
        assert_eq!(auth.integrity(), Some(IntegrityAlgorithm::Sha1));
    }

    #[test]
    fn first_supported_algorithm_on_the_list_wins() {
        let (auth, _) = learn(&challenge(b"obMatJos2AAABxyz", Some(&[2, 1])));
        assert_eq!(auth.algorithm(), Some(Algorithm::Sha256));
        assert_eq!(auth.integrity(), Some(IntegrityAlgorithm::Sha256));
        // Unknown algorithms are skipped; MD5 first means MD5 (with the SHA-256 integrity
        // attribute, since the cookie says RFC 8489).
        let (auth, _) = learn(&challenge(b"obMatJos2AAABxyz", Some(&[7, 1, 2])));
        assert_eq!(auth.algorithm(), Some(Algorithm::Md5));
        assert_eq!(auth.integrity(), Some(IntegrityAlgorithm::Sha256));
        let (_, r) = learn(&challenge(b"obMatJos2AAABxyz", Some(&[7])));
        assert_eq!(r, Err(AuthFailure::NoSupportedAlgorithm));
    }

    #[test]
    fn cookie_without_algorithms_is_a_bid_down() {
        let bytes = challenge(b"obMatJos2AAABxyz", None);
        let (auth, r) = learn(&bytes);
        assert_eq!(r, Err(AuthFailure::PasswordAlgorithmsMissing));
        assert!(!auth.is_ready());
        assert!(is_bid_down(&Message::parse(&bytes).unwrap()));
        assert!(!is_bid_down(
            &Message::parse(&challenge(b"obMatJos2AAABxyz", Some(&[2]))).unwrap()
        ));
    }

    #[test]
    fn stale_nonce_keeps_the_realm() {
        let (mut auth, _) = learn(&challenge(b"one", None));
        let mut buf = vec![0u8; 256];
        let t = MessageType::new(Method::REFRESH, Class::Error);
        let mut b = MessageBuilder::new(&mut buf, t, TransactionId::new([2; 12])).unwrap();
        b.add(&ErrorCode::with_default_reason(438).unwrap())
            .unwrap();
        b.add(&Nonce::new(b"two").unwrap()).unwrap();
        let bytes = b.finish().to_vec();
        assert_eq!(
            auth.learn_stale_nonce(&Message::parse(&bytes).unwrap()),
            Ok(())
        );
        assert_eq!(auth.realm(), Some("example.org"));
        assert_eq!(auth.challenge.as_ref().unwrap().nonce, b"two");
    }
}
