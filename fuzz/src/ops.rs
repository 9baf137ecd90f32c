//! Reading operations from fuzz input, and writing them back.
//!
//! The stateful targets implement [`Arbitrary`] by hand with the few primitives here, each
//! of which has an exact inverse in [`Encoder`]: `u8` is one byte, `u16`/`u32` are
//! little-endian (as `arbitrary` reads them), a `bool` is a byte's low bit, byte strings are
//! a `u16` length then the bytes. So the seed generator ([`crate::seeds`]) writes a session
//! as a list of operations and gets exactly the bytes that decode back to it.

pub use arbitrary::{Arbitrary, Result, Unstructured};

/// The most operations one input runs: keeps every execution short.
pub const MAX_OPS: usize = 256;

/// Writes values so that [`Unstructured`] reads them back unchanged.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A flag.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A byte string: its length as a `u16`, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = u16::try_from(b.len()).unwrap_or(u16::MAX);
        self.u16(n);
        self.bytes.extend_from_slice(&b[..usize::from(n)]);
        self
    }

    /// Something with an [`Encode`] impl.
    pub fn put<T: Encode + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.encode(self);
        self
    }

    /// The bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// The inverse of a hand-written [`Arbitrary`] impl.
pub trait Encode {
    /// Appends the bytes that decode to `self`.
    fn encode(&self, e: &mut Encoder);
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, e: &mut Encoder) {
        for v in self {
            v.encode(e);
        }
    }
}

/// Reads a byte string written by [`Encoder::bytes`], at most `max` bytes (and at most what
/// is left).
pub fn bytes<'a>(u: &mut Unstructured<'a>, max: usize) -> Result<&'a [u8]> {
    let n = usize::from(u16::arbitrary(u)?).min(max).min(u.len());
    u.bytes(n)
}

/// Reads one of `n` choices from a byte (`n` ≤ 256).
pub fn choice(u: &mut Unstructured<'_>, n: u8) -> Result<u8> {
    Ok(u8::arbitrary(u)? % n.max(1))
}

/// Reads operations until the input runs out (or [`MAX_OPS`]).
pub fn sequence<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < MAX_OPS {
        out.push(T::arbitrary(u)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_is_the_inverse_of_unstructured() {
        let mut e = Encoder::new();
        e.u8(7).u16(0x1234).u32(0xdead_beef).u64(42).bool(true);
        e.bytes(b"hello");
        let data = e.finish();
        let mut u = Unstructured::new(&data);
        assert_eq!(u8::arbitrary(&mut u).unwrap(), 7);
        assert_eq!(u16::arbitrary(&mut u).unwrap(), 0x1234);
        assert_eq!(u32::arbitrary(&mut u).unwrap(), 0xdead_beef);
        assert_eq!(u64::arbitrary(&mut u).unwrap(), 42);
        assert!(bool::arbitrary(&mut u).unwrap());
        assert_eq!(bytes(&mut u, 100).unwrap(), b"hello");
        assert!(u.is_empty());
    }
}
