//! ice-core benchmarks.
//!
//! * `demux_lite/10000_sessions`: connectivity checks answered per second by an `AgentSet`
//!   holding 10,000 ICE-lite sessions on one port: route by USERNAME, authenticate, answer,
//!   learn nothing new (steady state, as under consent checks).
//! * `lite_agent/check`: one lite agent answering checks, without the demultiplexer.
//! * `data/receive`, `data/send`: the data path of a connected full agent.
//!
//! Before timing, the memory of the 10,000 sessions is measured with a counting allocator and
//! printed as `memory:` lines, as is a full agent with one stream, one component and ten
//! pairs. Run with `cargo bench -p ice-core --bench agents`.
#![allow(
    unsafe_code,
    missing_docs,
    clippy::disallowed_methods,
    clippy::unwrap_used
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ice_core::{Agent, AgentConfig, AgentSet, Input, Received, TransportProtocol};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;
use stun_proto::attributes::{IceControlling, Priority, UseCandidate, Username};
use stun_proto::{IntegrityKey, MessageBuilder, MessageType, TransactionId};

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

const SESSIONS: usize = 10_000;
const SERVER: &str = "203.0.113.1:3478";

/// A check from `client` for a session, as a browser sends it.
fn check(ufrag: &str, pwd: &str, nominate: bool, tid: u32) -> Vec<u8> {
    let key = IntegrityKey::short_term(pwd);
    let mut id = [7u8; 12];
    id[..4].copy_from_slice(&tid.to_be_bytes());
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId::new(id),
    )
    .unwrap();
    b.add(&Username::new(&format!("{ufrag}:Clnt")).unwrap())
        .unwrap();
    b.add(&Priority(1_862_270_975)).unwrap();
    b.add(&IceControlling(0x1234_5678)).unwrap();
    if nominate {
        b.add(&UseCandidate).unwrap();
    }
    b.add_message_integrity(&key).unwrap();
    b.add_fingerprint().unwrap();
    b.finish().to_vec()
}

fn client(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0xC633_6400 + (i / 50_000) as u32)),
        1024 + (i % 50_000) as u16,
    )
}

/// 10,000 lite sessions on one port, each nominated by its client once. Returns the set,
/// the steady-state checks, and the live heap the sessions take.
fn sessions(now: Instant) -> (AgentSet, Vec<(SocketAddr, Vec<u8>)>, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut set = AgentSet::default();
    let mut creds = Vec::with_capacity(SESSIONS);
    let server: SocketAddr = SERVER.parse().unwrap();
    for i in 0..SESSIONS {
        let mut agent = Agent::new(AgentConfig::lite(), i as u64, now);
        let s = agent.add_stream(1).unwrap();
        agent
            .add_host_candidate(now, s, 1, server, TransportProtocol::Udp)
            .unwrap();
        agent.finish_host_candidates(now);
        agent
            .set_remote_credentials(now, "Clnt", "clientpasswordclientpassword")
            .unwrap();
        creds.push(agent.local_credentials().clone());
        set.insert(agent);
    }
    // Each client nominates once: the sessions reach their steady state.
    for (i, c) in creds.iter().enumerate() {
        let bytes = check(&c.ufrag, &c.pwd, true, i as u32);
        let input = Input {
            transport: TransportProtocol::Udp,
            source: client(i),
            destination: server,
            data: &bytes,
        };
        let (id, r) = set.handle_input(now, input);
        assert!(id.is_some() && r == Received::Consumed);
        while set.poll_transmit().is_some() {}
        while set.poll_event().is_some() {}
    }
    let heap = LIVE.load(Ordering::Relaxed) - before;
    let checks = creds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                client(i),
                check(&c.ufrag, &c.pwd, false, (SESSIONS + i) as u32),
            )
        })
        .collect();
    (set, checks, heap)
}

fn demux(c: &mut Criterion) {
    let now = Instant::now();
    let (mut set, checks, heap) = sessions(now);
    println!(
        "memory: {SESSIONS} lite sessions in an AgentSet: {heap} bytes heap, {} bytes per session",
        heap / SESSIONS as isize
    );
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut g = c.benchmark_group("demux_lite");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("10000_sessions", |b| {
        b.iter(|| {
            let (from, bytes) = &checks[i % SESSIONS];
            i += 1;
            let input = Input {
                transport: TransportProtocol::Udp,
                source: *from,
                destination: server,
                data: bytes,
            };
            black_box(set.handle_input(now, input));
            while let Some(t) = set.poll_transmit() {
                let _ = black_box(t);
            }
        })
    });
    g.finish();
    let ids: Vec<_> = set.sessions().collect();
    let answered: u64 = ids
        .iter()
        .filter_map(|&id| set.get(id))
        .map(|a| a.stats().checks_answered)
        .sum();
    assert!(
        answered > SESSIONS as u64,
        "the benchmark's checks were answered"
    );
}

fn lite_agent(c: &mut Criterion) {
    let now = Instant::now();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut agent = Agent::new(AgentConfig::lite(), 1, now);
    let s = agent.add_stream(1).unwrap();
    agent
        .add_host_candidate(now, s, 1, server, TransportProtocol::Udp)
        .unwrap();
    agent
        .set_remote_credentials(now, "Clnt", "clientpasswordclientpassword")
        .unwrap();
    let creds = agent.local_credentials().clone();
    let first = check(&creds.ufrag, &creds.pwd, true, 0);
    let input = Input {
        transport: TransportProtocol::Udp,
        source: client(0),
        destination: server,
        data: &first,
    };
    let _ = agent.handle_input(now, input);
    let bytes = check(&creds.ufrag, &creds.pwd, false, 1);
    let mut g = c.benchmark_group("lite_agent");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check", |b| {
        b.iter(|| {
            let input = Input {
                transport: TransportProtocol::Udp,
                source: client(0),
                destination: server,
                data: &bytes,
            };
            black_box(agent.handle_input(now, input));
            let _ = black_box(agent.poll_transmit());
        })
    });
    g.finish();
}

fn data(c: &mut Criterion) {
    let now = Instant::now();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut agent = Agent::new(AgentConfig::lite(), 1, now);
    let s = agent.add_stream(1).unwrap();
    agent
        .add_host_candidate(now, s, 1, server, TransportProtocol::Udp)
        .unwrap();
    let creds = agent.local_credentials().clone();
    let first = check(&creds.ufrag, &creds.pwd, true, 0);
    let input = Input {
        transport: TransportProtocol::Udp,
        source: client(0),
        destination: server,
        data: &first,
    };
    let _ = agent.handle_input(now, input);
    while agent.poll_transmit().is_some() {}
    let packet = [0x80u8; 1200];
    let mut g = c.benchmark_group("data");
    g.throughput(Throughput::Bytes(packet.len() as u64));
    g.bench_function("receive", |b| {
        b.iter(|| {
            let input = Input {
                transport: TransportProtocol::Udp,
                source: client(0),
                destination: server,
                data: &packet,
            };
            let r = agent.handle_input(now, input);
            assert!(matches!(r, Received::Data { .. }));
            black_box(r);
        })
    });
    g.bench_function("send", |b| {
        b.iter(|| {
            let _ = black_box(agent.send(now, s, 1, &packet).unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, demux, lite_agent, data);
criterion_main!(benches);
