//! Memory per agent, measured with a counting allocator: one stream, one component, ten
//! pairs, connected, must fit in 8 KiB (the struct itself plus its heap).
#![allow(unsafe_code, clippy::disallowed_methods)]

use ice_core::{Agent, AgentConfig, ConnectionState, Input, Received, TransportProtocol};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.with(|l| l.set(l.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.with(|l| l.set(l.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

/// Two agents; A has one host candidate and ten remote candidates (ten pairs), of which one
/// works. Returns A after it completed, with its live heap.
fn build() -> (Box<Agent>, isize) {
    let t0 = Instant::now();
    let before = live();
    let mut a = Box::new(Agent::new(AgentConfig::default(), 1, t0));
    let mut b = Agent::new(
        AgentConfig {
            role: ice_core::Role::Controlled,
            ..AgentConfig::default()
        },
        2,
        t0,
    );
    let sa = a.add_stream(1).unwrap();
    let sb = b.add_stream(1).unwrap();
    let la: SocketAddr = "198.51.100.1:5000".parse().unwrap();
    let lb: SocketAddr = "203.0.113.1:6000".parse().unwrap();
    a.add_host_candidate(t0, sa, 1, la, TransportProtocol::Udp)
        .unwrap();
    b.add_host_candidate(t0, sb, 1, lb, TransportProtocol::Udp)
        .unwrap();
    a.finish_host_candidates(t0);
    b.finish_host_candidates(t0);
    let (ca, cb) = (a.local_credentials().clone(), b.local_credentials().clone());
    a.set_remote_credentials(t0, &cb.ufrag, &cb.pwd).unwrap();
    b.set_remote_credentials(t0, &ca.ufrag, &ca.pwd).unwrap();
    for i in 0..9u16 {
        let line = format!(
            "candidate:{i} 1 udp {} 203.0.113.{} 7000 typ host",
            2_000_000_000 + u32::from(i),
            10 + i
        );
        a.add_remote_candidate_str(t0, sa, &line).unwrap();
    }
    a.add_remote_candidate_str(
        t0,
        sa,
        "candidate:x 1 udp 2130706431 203.0.113.1 6000 typ host",
    )
    .unwrap();
    b.add_remote_candidate_str(
        t0,
        sb,
        "candidate:y 1 udp 2130706431 198.51.100.1 5000 typ host",
    )
    .unwrap();
    assert_eq!(a.pairs(sa).len(), 10);
    // Run both on a lossless zero-latency wire until completed.
    let mut now = t0;
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            if t.destination == lb {
                let input = Input {
                    transport: t.transport,
                    source: t.source,
                    destination: lb,
                    data: &t.payload,
                };
                let _ = b.handle_input(now, input);
            }
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            let input = Input {
                transport: t.transport,
                source: t.source,
                destination: la,
                data: &t.payload,
            };
            assert!(!matches!(a.handle_input(now, input), Received::Data { .. }));
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if a.connection_state() == ConnectionState::Completed && !moved {
            break;
        }
        if !moved {
            now = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_millis(10))
                .max(now);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }
    assert_eq!(a.connection_state(), ConnectionState::Completed);
    drop(b);
    let heap = live() - before - std::mem::size_of::<Agent>() as isize;
    (a, heap)
}

#[test]
fn one_stream_one_component_ten_pairs_fits_in_8_kib() {
    let (agent, heap) = build();
    let inline = std::mem::size_of::<Agent>();
    let total = inline as isize + heap;
    println!("Agent: {inline} bytes inline + {heap} bytes heap = {total} bytes");
    assert!(total <= 8 * 1024, "{total} bytes");
    drop(agent);
}
