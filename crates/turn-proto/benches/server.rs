//! TURN server benchmarks.
//!
//! - `relay/channel_data_to_peer`, `relay/channel_data_to_client`: ns per 100-byte packet
//!   through `handle_input` with 10,000 allocations live (each with a permission and a
//!   channel), cycling over all of them so the tables are exercised, not one cache line.
//! - `allocate/authenticated`: one authenticated Allocate (integrity check, port choice,
//!   response with MESSAGE-INTEGRITY and FINGERPRINT), on a server holding 10,000.
//! - Printed before the timed runs: the time to create 100,000 allocations (Allocate and
//!   ChannelBind each) in one server, and the heap bytes per allocation with one permission
//!   and one channel, measured with a counting allocator.
//!
//! Run with `cargo bench -p turn-proto --bench server`.
#![allow(unsafe_code, missing_docs, clippy::disallowed_methods)]

use criterion::{Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};
use stun_proto::attributes::{
    ChannelNumber, EncodeAttribute, Lifetime, Nonce, Realm, RequestedTransport, Username,
    XorPeerAddress, XorRelayedAddress,
};
use stun_proto::credentials::{Algorithm, LongTermKey};
use stun_proto::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_proto::server::{
    RelayBinding, RelayRange, Server, ServerConfig, ServerInput, ServerOutput,
};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REALM: &str = "example.org";

fn listen() -> SocketAddr {
    "192.0.2.1:3478".parse().unwrap()
}

fn peer() -> SocketAddr {
    "203.0.113.5:7000".parse().unwrap()
}

fn server(now: Instant) -> Server {
    let mut c = ServerConfig::new(REALM);
    for ip in ["192.0.2.1", "192.0.2.2"] {
        c.relays.push(RelayRange {
            ip: ip.parse().unwrap(),
            ports: 10000..=65535,
        });
    }
    c.add_user("alice", "alice-pw");
    c.relay_binding = RelayBinding::Automatic;
    c.quotas.total = None;
    c.quotas.per_user = None;
    c.quotas.per_client_ip = None;
    Server::new(c, 1, now).unwrap()
}

/// A scripted client on one IP: its nonce serves every port on that IP.
struct Clients {
    key: IntegrityKey,
    nonces: Vec<Vec<u8>>,
    next_tid: u64,
}

fn client_addr(i: usize) -> SocketAddr {
    let ip = IpAddr::from([198, 51, (100 + i / 60_000) as u8, 1]);
    SocketAddr::new(ip, 1024 + (i % 60_000) as u16)
}

impl Clients {
    fn new(server: &mut Server, now: Instant, ips: usize) -> Clients {
        let mut c = Clients {
            key: LongTermKey::derive(Algorithm::Md5, "alice", REALM, "alice-pw").integrity_key(),
            nonces: Vec::new(),
            next_tid: 0,
        };
        for ip in 0..ips {
            let req = c.build(Method::ALLOCATE, &[&RequestedTransport::UDP], None);
            let resp = exchange(server, now, client_addr(ip * 60_000), &req);
            let m = Message::parse(&resp).unwrap();
            c.nonces
                .push(m.require::<Nonce<'_>>().unwrap().as_bytes().to_vec());
        }
        c
    }

    fn build(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
        nonce: Option<&[u8]>,
    ) -> Vec<u8> {
        self.next_tid += 1;
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&self.next_tid.to_be_bytes());
        let mut buf = vec![0u8; 512];
        let mtype = MessageType::new(method, Class::Request);
        let mut b = MessageBuilder::new(&mut buf, mtype, TransactionId::new(id)).unwrap();
        for a in attrs {
            b.add(*a).unwrap();
        }
        if let Some(n) = nonce {
            b.add(&Username::new("alice").unwrap()).unwrap();
            b.add(&Realm::new(REALM).unwrap()).unwrap();
            b.add(&Nonce::new(n).unwrap()).unwrap();
            b.add_message_integrity(&self.key).unwrap();
        }
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    fn signed(&mut self, i: usize, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let nonce = self.nonces[i / 60_000].clone();
        self.build(method, attrs, Some(&nonce))
    }
}

fn exchange(server: &mut Server, now: Instant, from: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut buf = req.to_vec();
    let _ = server.handle_input(now, ServerInput::udp(from, listen(), &mut buf));
    let resp = server.poll_transmit().expect("a response");
    while server.poll_event().is_some() {}
    resp.payload
}

/// Client `i` allocates and binds channel 0x4000 to `peer()`; returns its relayed address.
fn populate_one(server: &mut Server, now: Instant, clients: &mut Clients, i: usize) -> SocketAddr {
    let from = client_addr(i);
    let req = clients.signed(
        i,
        Method::ALLOCATE,
        &[&RequestedTransport::UDP, &Lifetime(3600)],
    );
    let resp = exchange(server, now, from, &req);
    let m = Message::parse(&resp).unwrap();
    let relayed = m.require::<XorRelayedAddress>().expect("allocated").0;
    let req = clients.signed(
        i,
        Method::CHANNEL_BIND,
        &[&ChannelNumber(0x4000), &XorPeerAddress(peer())],
    );
    let resp = exchange(server, now, from, &req);
    assert_eq!(Message::parse(&resp).unwrap().class(), Class::Success);
    relayed
}

fn populate(server: &mut Server, now: Instant, n: usize) -> (Clients, Vec<SocketAddr>) {
    let mut clients = Clients::new(server, now, n.div_ceil(60_000));
    let relayed = (0..n)
        .map(|i| populate_one(server, now, &mut clients, i))
        .collect();
    (clients, relayed)
}

/// 100,000 allocations in one server: time, and heap bytes per allocation.
fn scale_and_memory(n: usize) {
    let t0 = Instant::now();
    let mut s = server(t0);
    let mut clients = Clients::new(&mut s, t0, n.div_ceil(60_000));
    // Let the 401 responses' cache entries age out before the baseline.
    s.handle_timeout(t0 + Duration::from_secs(41));
    let now = t0 + Duration::from_secs(41);
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..n {
        populate_one(&mut s, now, &mut clients, i);
    }
    let elapsed = start.elapsed();
    // Forget the cached responses (40 s), so that only allocation state is counted.
    let later = now + Duration::from_secs(41);
    s.handle_timeout(later);
    let after = LIVE.load(Ordering::Relaxed);
    let stats = s.stats();
    assert_eq!(
        (
            stats.allocations,
            stats.permissions,
            stats.channels,
            stats.cached_responses
        ),
        (n, n, n, 0)
    );
    let per = (after - before) as f64 / n as f64;
    println!(
        "scale: {n} allocations (Allocate + ChannelBind each) in {:.2} s, {:.2} us per allocation",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    println!("memory: {per:.0} heap bytes per allocation with one permission and one channel");
    assert!(per < 1024.0, "over 1 KiB per allocation: {per}");
    black_box(s);
}

fn relay(c: &mut Criterion, n: usize) {
    let now = Instant::now();
    let mut s = server(now);
    let (_, relayed) = populate(&mut s, now, n);
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    let payload = [0xAB; 100];

    let mut to_peer = vec![0u8; 104];
    to_peer[..4].copy_from_slice(&[0x40, 0x00, 0x00, 100]);
    to_peer[4..].copy_from_slice(&payload);
    let mut i = 0;
    g.bench_function("channel_data_to_peer", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            // The server does not write into a client's datagram: the buffer is reused.
            let input = ServerInput::udp(client_addr(i), listen(), &mut to_peer);
            match s.handle_input(now, input) {
                ServerOutput::Send(d) => black_box(d.data.len()),
                _ => panic!("not relayed"),
            }
        })
    });

    let mut buf = vec![0u8; 4 + payload.len()];
    buf[4..].copy_from_slice(&payload);
    g.bench_function("channel_data_to_client", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            // Only the 4-byte headroom is written: the buffer is reused as it is.
            let input = ServerInput::udp_with_headroom(peer(), relayed[i], &mut buf, 4);
            match s.handle_input(now, input) {
                ServerOutput::Send(d) => black_box(d.data.len()),
                _ => panic!("not relayed"),
            }
        })
    });
    g.finish();
}

fn allocate(c: &mut Criterion, n: usize) {
    let now = Instant::now();
    let mut s = server(now);
    let (mut clients, _) = populate(&mut s, now, n);
    let mut g = c.benchmark_group("allocate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("authenticated", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for k in 0..iters as usize {
                let i = n + k % 50_000;
                let from = client_addr(i);
                let req = clients.signed(i, Method::ALLOCATE, &[&RequestedTransport::UDP]);
                let mut buf = req.clone();
                let t = Instant::now();
                let _ = s.handle_input(now, ServerInput::udp(from, listen(), &mut buf));
                let resp = s.poll_transmit();
                total += t.elapsed();
                black_box(resp);
                while s.poll_event().is_some() {}
                // Delete it again, untimed, so the server does not grow.
                let del = clients.signed(i, Method::REFRESH, &[&Lifetime(0)]);
                let _ = exchange(&mut s, now, from, &del);
            }
            total
        })
    });
    g.finish();
}

fn main() {
    // Under `cargo test --benches` each benchmark runs once: keep the setup small.
    let full = std::env::args().any(|a| a == "--bench");
    let live = if full { 10_000 } else { 100 };
    scale_and_memory(if full { 100_000 } else { 1_000 });
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    relay(&mut c, live);
    allocate(&mut c, live);
    c.final_summary();
}
