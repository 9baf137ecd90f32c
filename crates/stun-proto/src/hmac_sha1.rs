//! HMAC-SHA1 (RFC 2104) for MESSAGE-INTEGRITY, with both pads hashed once per key and each
//! message fed to the SHA-1 compression function as whole blocks.
//!
//! The `hmac` crate's keyed state does the same hashing, but each message then pays for
//! copying its buffered state, feeding bytes through a block buffer and finishing two generic
//! hashers. Here a message is its whole 64-byte blocks (the first with the STUN length field
//! patched, RFC 8489 §14.5), one or two padded tail blocks (FIPS 180-4 §5.1.1) in one call, and
//! one outer block.
//!
//! # Why the blocks are built a lane at a time
//!
//! The compression function reads each block as four 16-byte loads. A load whose bytes come
//! from one earlier store of the same size is forwarded from that store at once; a load that
//! finds its bytes spread over several narrower stores (a block copied and then patched byte by
//! byte: the length field, the 0x80 marker, the bit length) cannot be, and waits until those
//! stores have reached the cache — which they do only in program order, after everything older
//! has retired, the previous message's hash included. That wait serialised consecutive
//! messages and cost ~30 ns per MAC on the benchmark machine (docs/BENCHMARKS.md). So every
//! block here is written as four whole lanes, each computed in a register (message bytes
//! masked, marker, length field and bit length merged in) and stored once.
//!
//! On x86-64 a lane is an SSE2 register (the `safe_arch` crate's safe wrappers: this crate forbids
//! `unsafe`). Elsewhere it is a `u128`; whether the compiler keeps that in one register is up
//! to the target, and the result is the same either way. Tests run both against the `hmac`
//! crate.

use core::ops::{BitAnd, BitOr};

/// The SHA-1 state after a key's inner and outer pad blocks.
#[derive(Clone)]
pub(crate) struct Sha1Pads {
    /// The SHA-1 state after the block `key ^ ipad`.
    inner: [u32; 5],
    /// The SHA-1 state after the block `key ^ opad`.
    outer: [u32; 5],
}

/// SHA-1's initial state (FIPS 180-4 §5.3.1).
const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// One SHA-1 input block, as the compression function takes it.
type Block = sha1::digest::generic_array::GenericArray<u8, sha1::digest::consts::U64>;

/// The lane type this target uses.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
type NativeLane = sse2::Lane;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
type NativeLane = portable::Lane;

impl Sha1Pads {
    pub(crate) fn new(key: &[u8]) -> Sha1Pads {
        use sha1::Digest;
        // Keys longer than a block are hashed first (RFC 2104 §2); shorter ones are
        // zero-padded to a block.
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..20].copy_from_slice(&sha1::Sha1::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let ipad = Block::from(k.map(|b| b ^ 0x36));
        let opad = Block::from(k.map(|b| b ^ 0x5c));
        let (mut inner, mut outer) = (SHA1_IV, SHA1_IV);
        sha1::compress(&mut inner, core::slice::from_ref(&ipad));
        sha1::compress(&mut outer, core::slice::from_ref(&opad));
        Sha1Pads { inner, outer }
    }

    /// The MAC of `msg[..at]` with bytes 2..4 (the STUN length field) read as `length`, as
    /// the five words of the outer SHA-1 state (the MAC is their big-endian bytes);
    /// `meanwhile` runs between the inner and the outer hash, where the outer block waits for
    /// the inner state and independent work (the FINGERPRINT CRC) fits in that wait.
    #[inline]
    pub(crate) fn mac_covered<R>(
        &self,
        msg: &[u8],
        at: usize,
        length: u16,
        meanwhile: impl FnOnce() -> R,
    ) -> ([u32; 5], R) {
        self.mac_with::<NativeLane, R>(msg, at, length, meanwhile)
    }

    #[inline(always)]
    fn mac_with<L: Lane, R>(
        &self,
        msg: &[u8],
        at: usize,
        length: u16,
        meanwhile: impl FnOnce() -> R,
    ) -> ([u32; 5], R) {
        let covered = &msg[..at];
        let field = length.to_be_bytes();
        let mut state = self.inner;
        let mut chunks = covered.chunks_exact(64);
        let mut first = true;
        for chunk in &mut chunks {
            let mut block = Block::default();
            for (j, dst) in block.chunks_exact_mut(16).enumerate() {
                let mut lane = L::load(&bytes16(chunk, 16 * j));
                if first && j == 0 {
                    lane = lane.with_length_field(field);
                }
                lane.store(dst);
            }
            first = false;
            sha1::compress(&mut state, core::slice::from_ref(&block));
        }

        // The tail: the last `rest` bytes, 0x80, zeros, and the bit length of key block +
        // message in the last 8 bytes: one block, or two when fewer than 9 bytes are left.
        let rest = chunks.remainder().len();
        let start = at - rest;
        let copy;
        // The buffer normally goes on past `at` (a received message has the integrity
        // attribute there; a builder's buffer has room), so the lanes read it in place and
        // mask off what lies past `at`. Only a buffer that ends sooner is copied first.
        let src: &[u8] = match msg.get(start..start + 64) {
            Some(src) => src,
            None => {
                let mut c = [0u8; 64];
                c[..rest].copy_from_slice(&covered[start..]);
                copy = c;
                &copy
            }
        };
        let blocks = if rest >= 56 { 2 } else { 1 };
        // The bit length, big-endian, as the last 8 bytes of a lane.
        let bits = L::from_halves(0, u64::from_le_bytes(((64 + at as u64) * 8).to_be_bytes()));
        let mut tail = [Block::default(), Block::default()];
        for (j, dst) in tail[0].chunks_exact_mut(16).enumerate() {
            // The window of KEEP/MARK that lines up with bytes 16j..16j+16 of the tail.
            let w = 64 + 16 * j - rest;
            let mut lane = L::load(&bytes16(src, 16 * j)) & L::load(&bytes16(&KEEP, w))
                | L::load(&bytes16(&MARK, w));
            if first && j == 0 && rest >= 4 {
                lane = lane.with_length_field(field);
            }
            if blocks == 1 && j == 3 {
                lane = lane | bits;
            }
            lane.store(dst);
        }
        if blocks == 2 {
            bits.store(&mut tail[1][48..]);
        }
        sha1::compress(&mut state, &tail[..blocks]);
        let r = meanwhile();

        // Outer hash: the 20-byte inner digest, 0x80, zeros, and the bit length 84 * 8.
        let be = |i: usize| u64::from(u32::from_le_bytes(state[i].to_be_bytes()));
        let mut outer = Block::default();
        L::from_halves(be(0) | be(1) << 32, be(2) | be(3) << 32).store(&mut outer[..16]);
        L::from_halves(be(4) | 0x80 << 32, 0).store(&mut outer[16..32]);
        L::from_halves(0, u64::from_le_bytes(((64u64 + 20) * 8).to_be_bytes()))
            .store(&mut outer[48..]);
        let mut state = self.outer;
        sha1::compress(&mut state, core::slice::from_ref(&outer));
        (state, r)
    }
}

/// 64 bytes of 0xFF, then 64 of zeros: `KEEP[64 - n..]` starts with `n` bytes to keep.
static KEEP: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 64 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

/// 64 zeros, SHA-1's 0x80 marker, then zeros: `MARK[64 - n..]` has the marker at byte `n`.
static MARK: [u8; 128] = {
    let mut t = [0u8; 128];
    t[64] = 0x80;
    t
};

/// The 16 bytes of `bytes` from `at` (zeros for any past its end, which the callers never
/// reach; this keeps the function total).
#[inline(always)]
fn bytes16(bytes: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(b) = bytes.get(at..at + 16) {
        out.copy_from_slice(b);
    }
    out
}

/// 16 bytes of a block, held in one register where the target has one wide enough.
trait Lane: Copy + BitAnd<Output = Self> + BitOr<Output = Self> {
    fn load(bytes: &[u8; 16]) -> Self;
    /// The lane whose bytes are `lo`'s then `hi`'s, each little-endian.
    fn from_halves(lo: u64, hi: u64) -> Self;
    /// The lane with bytes 2..4 set to `field` (the STUN length field of a message's first
    /// lane).
    fn with_length_field(self, field: [u8; 2]) -> Self;
    /// Writes the lane to `out[..16]` with one store.
    fn store(self, out: &mut [u8]);
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use safe_arch::{
        bitand_m128i, bitor_m128i, insert_i16_from_i32_m128i, load_unaligned_m128i, m128i,
        set_i64_m128i, store_unaligned_m128i,
    };

    #[derive(Clone, Copy)]
    pub(super) struct Lane(m128i);

    impl core::ops::BitAnd for Lane {
        type Output = Lane;
        #[inline(always)]
        fn bitand(self, rhs: Lane) -> Lane {
            Lane(bitand_m128i(self.0, rhs.0))
        }
    }

    impl core::ops::BitOr for Lane {
        type Output = Lane;
        #[inline(always)]
        fn bitor(self, rhs: Lane) -> Lane {
            Lane(bitor_m128i(self.0, rhs.0))
        }
    }

    impl super::Lane for Lane {
        #[inline(always)]
        fn load(bytes: &[u8; 16]) -> Lane {
            Lane(load_unaligned_m128i(bytes))
        }

        #[inline(always)]
        fn from_halves(lo: u64, hi: u64) -> Lane {
            Lane(set_i64_m128i(hi as i64, lo as i64))
        }

        #[inline(always)]
        fn with_length_field(self, field: [u8; 2]) -> Lane {
            // 16-bit element 1 is bytes 2..4, little-endian.
            Lane(insert_i16_from_i32_m128i::<1>(
                self.0,
                i32::from(u16::from_le_bytes(field)),
            ))
        }

        #[inline(always)]
        fn store(self, out: &mut [u8]) {
            if let Some(out) = out.first_chunk_mut::<16>() {
                store_unaligned_m128i(out, self.0);
            }
        }
    }
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
mod portable {
    #[derive(Clone, Copy)]
    pub(super) struct Lane(u128);

    impl core::ops::BitAnd for Lane {
        type Output = Lane;
        #[inline(always)]
        fn bitand(self, rhs: Lane) -> Lane {
            Lane(self.0 & rhs.0)
        }
    }

    impl core::ops::BitOr for Lane {
        type Output = Lane;
        #[inline(always)]
        fn bitor(self, rhs: Lane) -> Lane {
            Lane(self.0 | rhs.0)
        }
    }

    impl super::Lane for Lane {
        #[inline(always)]
        fn load(bytes: &[u8; 16]) -> Lane {
            Lane(u128::from_le_bytes(*bytes))
        }

        #[inline(always)]
        fn from_halves(lo: u64, hi: u64) -> Lane {
            Lane(u128::from(lo) | u128::from(hi) << 64)
        }

        #[inline(always)]
        fn with_length_field(self, field: [u8; 2]) -> Lane {
            let field = u128::from(u16::from_le_bytes(field)) << 16;
            Lane(self.0 & !(0xFFFF << 16) | field)
        }

        #[inline(always)]
        fn store(self, out: &mut [u8]) {
            if let Some(out) = out.first_chunk_mut::<16>() {
                *out = self.0.to_le_bytes();
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;
    use hmac::{Hmac, Mac};

    fn mac_bytes(state: [u32; 5]) -> [u8; 20] {
        let mut mac = [0u8; 20];
        for (dst, word) in mac.chunks_exact_mut(4).zip(state) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        mac
    }

    /// The reference cases for a hand-built HMAC-SHA1: key lengths around the block size (long
    /// keys are hashed), message lengths around every padding boundary, two length fields.
    /// `check(key, msg, len, field, want)` gets each message as it is and with 1 to 100 bytes
    /// after the covered `len` (the integrity attribute, or a builder's spare room), which must
    /// not leak into the MAC; `want` is the `hmac` crate's MAC of `msg[..len]` with bytes 2..4
    /// set to `field`.
    pub(crate) fn reference_cases(mut check: impl FnMut(&[u8], &[u8], usize, u16, [u8; 20])) {
        for key_len in [0usize, 1, 16, 20, 55, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 3) as u8).collect();
            for len in (0..200).chain([255, 256, 257, 1000]) {
                let msg: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                for field in [0x1234u16, 0xffff] {
                    let mut patched = msg.clone();
                    if len >= 4 {
                        patched[2..4].copy_from_slice(&field.to_be_bytes());
                    }
                    let mut reference = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&key).unwrap();
                    reference.update(&patched);
                    let want: [u8; 20] = reference.finalize().into_bytes().into();
                    check(&key, &msg, len, field, want);
                    for extra in [1usize, 8, 63, 64, 100] {
                        let mut longer = msg.clone();
                        longer.extend((0..extra).map(|i| 0xA5 ^ i as u8));
                        check(&key, &longer, len, field, want);
                    }
                }
            }
        }
    }

    /// A lane kind against the `hmac` crate, on every reference case.
    fn matches_the_hmac_crate<L: Lane>() {
        reference_cases(|key, msg, len, field, want| {
            let (got, ()) = Sha1Pads::new(key).mac_with::<L, ()>(msg, len, field, || ());
            let (key_len, msg_len) = (key.len(), msg.len());
            assert_eq!(
                mac_bytes(got),
                want,
                "key {key_len} covered {len} of {msg_len}"
            );
        });
    }

    #[test]
    fn portable_lanes_match_the_hmac_crate() {
        matches_the_hmac_crate::<portable::Lane>();
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn sse2_lanes_match_the_hmac_crate() {
        matches_the_hmac_crate::<sse2::Lane>();
    }

    #[test]
    fn meanwhile_runs_once_and_its_result_comes_back() {
        let pads = Sha1Pads::new(b"key");
        let mut runs = 0;
        let (_, r) = pads.mac_covered(b"0123456789abcdef0123", 20, 0, || {
            runs += 1;
            7
        });
        assert_eq!((runs, r), (1, 7));
    }
}
