//! The codec's hot paths do not allocate: parsing and verifying an ICE Binding request, and
//! building one into a reused buffer.
//!
//! A counting global allocator counts only allocations made on the current thread while it is
//! "armed", so whatever the test harness does on its other threads does not disturb the count.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use stun_proto::attributes::{
    AttributeType, IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
};
use stun_proto::{
    IntegrityAlgorithm, IntegrityKey, Message, MessageBuilder, MessageType, TransactionId,
};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with`: the allocator may be called while thread-locals are being torn down.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            COUNT.with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with the counter armed on this thread; returns its result and the allocations.
fn count_allocs<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.with(Cell::get))
}

const PASSWORD: &str = "Jq3sK8vR2xPm7LwT9bYe4Zc";
const TID: [u8; 12] = [
    0x4a, 0x1c, 0x9e, 0x02, 0x77, 0xd3, 0x5b, 0x80, 0x11, 0xe4, 0x6f, 0xa9,
];

fn build_request<'b>(buf: &'b mut [u8], key: &IntegrityKey) -> &'b [u8] {
    let mut b =
        MessageBuilder::new(buf, MessageType::BINDING_REQUEST, TransactionId::new(TID)).unwrap();
    b.add(&Username::new("abcd:efgh").unwrap()).unwrap();
    b.add(&Priority(0x6e00_01ff)).unwrap();
    b.add(&IceControlling(0x932f_f9b1_5126_3b36)).unwrap();
    b.add(&UseCandidate).unwrap();
    b.add_message_integrity(key).unwrap();
    b.add_fingerprint().unwrap();
    b.finish()
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = count_allocs(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(n >= 1, "the counting allocator is not in use");
}

#[test]
fn parse_and_verify_allocate_nothing() {
    let key = IntegrityKey::short_term(PASSWORD);
    let mut buf = [0u8; 256];
    let bytes = build_request(&mut buf, &key).to_vec();

    let (ok, n) = count_allocs(|| {
        let mut ok = true;
        for _ in 0..1000 {
            let msg = Message::parse(&bytes).unwrap();
            ok &= msg.verify_integrity(&key) == Ok(IntegrityAlgorithm::Sha1);
            ok &= msg.verify_fingerprint().is_ok();
            ok &= msg.verify(&key) == Ok(IntegrityAlgorithm::Sha1);
            ok &= msg.require::<Username<'_>>().unwrap().as_str() == "abcd:efgh";
            ok &= msg.require::<Priority>().unwrap() == Priority(0x6e00_01ff);
            ok &= msg.has(AttributeType::USE_CANDIDATE);
        }
        ok
    });
    assert!(ok);
    assert_eq!(n, 0, "parse + verify allocated {n} times in 1000 rounds");
}

#[test]
fn building_into_a_reused_buffer_allocates_nothing() {
    // The key is prepared outside the measured region.
    let key = IntegrityKey::short_term(PASSWORD);
    let mut buf = [0u8; 256];
    let mut resp = [0u8; 128];
    let mapped = "198.51.100.23:50123".parse().unwrap();

    let (len, n) = count_allocs(|| {
        let mut len = 0;
        for _ in 0..1000 {
            len = build_request(&mut buf, &key).len();
            let mut b = MessageBuilder::new(
                &mut resp,
                MessageType::BINDING_SUCCESS,
                TransactionId::new(TID),
            )
            .unwrap();
            b.add(&XorMappedAddress(mapped)).unwrap();
            b.add_message_integrity(&key).unwrap();
            b.add_fingerprint().unwrap();
            len += b.finish().len();
        }
        len
    });
    assert_eq!(n, 0, "building allocated {n} times in 1000 rounds");
    assert_eq!(len, 92 + 64);
    let msg = Message::parse(&buf[..92]).unwrap();
    msg.verify_integrity(&key).unwrap();
    msg.verify_fingerprint().unwrap();
}
