//! Credential attributes: PASSWORD-ALGORITHM(S) (RFC 8489 §14.11–14.12) and USERHASH (§14.4).

use super::{Attribute, AttributeError, AttributeType, EncodeAttribute, be16, expect_len};
use crate::header::TransactionId;

/// Reads one `algorithm | length | parameters (padded)` entry at the start of `b`.
/// Returns the entry and the bytes it takes up including padding.
fn read_entry(attr: AttributeType, b: &[u8]) -> Result<(u16, &[u8], usize), AttributeError> {
    if b.len() < 4 {
        return Err(AttributeError::BadLength { attr, len: b.len() });
    }
    let algorithm = be16(b, 0);
    let len = usize::from(be16(b, 2));
    if 4 + len > b.len() {
        return Err(AttributeError::BadLength { attr, len: b.len() });
    }
    // Parameters are padded to 4 bytes like an attribute; the last entry may omit it.
    let used = (4 + len + 3) & !3;
    Ok((algorithm, &b[4..4 + len], used.min(b.len())))
}

fn entry_len(params: &[u8]) -> usize {
    4 + ((params.len() + 3) & !3)
}

fn write_entry(algorithm: u16, params: &[u8], out: &mut [u8]) -> usize {
    out[..2].copy_from_slice(&algorithm.to_be_bytes());
    out[2..4].copy_from_slice(&(params.len() as u16).to_be_bytes());
    out[4..4 + params.len()].copy_from_slice(params);
    let used = entry_len(params);
    out[4 + params.len()..used].fill(0);
    used
}

/// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm the client chose (1 = MD5,
/// 2 = SHA-256) and its parameters (none for either).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithm<'a> {
    /// The algorithm number (IANA "STUN Password Algorithms").
    pub algorithm: u16,
    /// Algorithm parameters.
    pub parameters: &'a [u8],
}

impl PasswordAlgorithm<'static> {
    /// An algorithm without parameters.
    pub const fn new(algorithm: u16) -> Self {
        PasswordAlgorithm {
            algorithm,
            parameters: &[],
        }
    }
}

impl<'a> Attribute<'a> for PasswordAlgorithm<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHM;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let (algorithm, parameters, used) = read_entry(Self::TYPE, value)?;
        if used != value.len() {
            return Err(AttributeError::BadLength {
                attr: Self::TYPE,
                len: value.len(),
            });
        }
        Ok(PasswordAlgorithm {
            algorithm,
            parameters,
        })
    }
}

impl EncodeAttribute for PasswordAlgorithm<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::PASSWORD_ALGORITHM
    }

    fn value_len(&self) -> usize {
        entry_len(self.parameters)
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        write_entry(self.algorithm, self.parameters, out);
    }
}

/// PASSWORD-ALGORITHMS (RFC 8489 §14.11): the algorithms a server offers, in its order of
/// preference. The wire form is kept; [`iter`](Self::iter) walks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithms<'a>(Repr<'a>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [u16]),
}

impl<'a> PasswordAlgorithms<'a> {
    /// Algorithms without parameters, in preference order.
    pub fn new(algorithms: &'a [u16]) -> Self {
        PasswordAlgorithms(Repr::List(algorithms))
    }

    /// The listed algorithms with their parameters.
    pub fn iter(&self) -> PasswordAlgorithmsIter<'a> {
        PasswordAlgorithmsIter {
            repr: self.0,
            at: 0,
        }
    }

    /// True if the two lists name the same algorithms with the same parameters in the same
    /// order: the bid-down check of RFC 8489 §9.2.4 compares a request's list with the one the
    /// server sent.
    pub fn same_as(&self, other: &PasswordAlgorithms<'_>) -> bool {
        let (mut a, mut b) = (self.iter(), other.iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y))
                    if x.algorithm == y.algorithm && x.parameters == y.parameters => {}
                _ => return false,
            }
        }
    }
}

/// Iterator over the entries of [`PasswordAlgorithms`].
#[derive(Clone, Debug)]
pub struct PasswordAlgorithmsIter<'a> {
    repr: Repr<'a>,
    at: usize,
}

impl<'a> Iterator for PasswordAlgorithmsIter<'a> {
    type Item = PasswordAlgorithm<'a>;

    fn next(&mut self) -> Option<PasswordAlgorithm<'a>> {
        match self.repr {
            Repr::Wire(w) => {
                let rest = w.get(self.at..).filter(|r| !r.is_empty())?;
                // The whole list was validated by decode, so this cannot fail.
                let (algorithm, parameters, used) =
                    read_entry(AttributeType::PASSWORD_ALGORITHMS, rest).ok()?;
                self.at += used;
                Some(PasswordAlgorithm {
                    algorithm,
                    parameters,
                })
            }
            Repr::List(l) => {
                let algorithm = *l.get(self.at)?;
                self.at += 1;
                Some(PasswordAlgorithm {
                    algorithm,
                    parameters: &[],
                })
            }
        }
    }
}

impl<'a> Attribute<'a> for PasswordAlgorithms<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHMS;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let mut at = 0;
        while at < value.len() {
            let (_, _, used) = read_entry(Self::TYPE, &value[at..])?;
            at += used;
        }
        Ok(PasswordAlgorithms(Repr::Wire(value)))
    }
}

impl EncodeAttribute for PasswordAlgorithms<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::PASSWORD_ALGORITHMS
    }

    fn value_len(&self) -> usize {
        self.iter().map(|p| entry_len(p.parameters)).sum()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        let mut at = 0;
        for p in self.iter() {
            at += write_entry(p.algorithm, p.parameters, &mut out[at..]);
        }
    }
}

/// USERHASH (RFC 8489 §14.4): SHA-256 of `username ":" realm`, sent instead of USERNAME for
/// username anonymity. See [`crate::credentials::userhash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserHash(pub [u8; 32]);

impl<'a> Attribute<'a> for UserHash {
    const TYPE: AttributeType = AttributeType::USERHASH;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 32)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(value);
        Ok(UserHash(hash))
    }
}

impl EncodeAttribute for UserHash {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::USERHASH
    }

    fn value_len(&self) -> usize {
        32
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_algorithms_round_trip() {
        let tid = TransactionId::default();
        let list = PasswordAlgorithms::new(&[2, 1]);
        let mut out = vec![0u8; list.value_len()];
        list.encode_value(&mut out, &tid);
        assert_eq!(out, [0, 2, 0, 0, 0, 1, 0, 0]);
        let decoded = PasswordAlgorithms::decode(&out, &tid).unwrap();
        assert!(decoded.same_as(&list));
        assert!(!decoded.same_as(&PasswordAlgorithms::new(&[1, 2])));
        assert!(!decoded.same_as(&PasswordAlgorithms::new(&[2])));
        // Parameters that run past the end are rejected.
        assert!(PasswordAlgorithms::decode(&[0, 1, 0, 9, 1, 2], &tid).is_err());
        assert!(PasswordAlgorithms::decode(&[0, 1, 0], &tid).is_err());
    }

    #[test]
    fn password_algorithm_with_parameters() {
        let tid = TransactionId::default();
        let p = PasswordAlgorithm {
            algorithm: 9,
            parameters: &[1, 2, 3],
        };
        let mut out = vec![0u8; p.value_len()];
        p.encode_value(&mut out, &tid);
        assert_eq!(out, [0, 9, 0, 3, 1, 2, 3, 0]);
        assert_eq!(PasswordAlgorithm::decode(&out, &tid).unwrap(), p);
        assert!(PasswordAlgorithm::decode(&[0, 1, 0, 0, 0, 2, 0, 0], &tid).is_err());
    }
}
