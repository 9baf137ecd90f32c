//! `floe demo`: STUN, TURN and ICE end to end in one process, explained for a newcomer.
//!
//! It starts floe's STUN/TURN server on 127.0.0.1, asks it for our address (STUN), then runs
//! two ICE agents: A may only use a relayed address on the server (TURN), B uses its host
//! address. They swap their SDP lines, check pairs, select one, exchange messages, and close
//! (A deletes its allocation). Everything runs on 127.0.0.1: the agents are given loopback
//! as their host address explicitly (RFC 8445 §5.1.1.1 leaves loopback out of gathering), so
//! every datagram stays on this machine and the demo works on any machine.

use drivers::ice::tokio::{IceAgent, IceConnection, Snapshot};
use drivers::ice::{IceError, LocalCandidate};
use drivers::net::bind_udp;
use drivers::turn_server::{self, TurnServerHandle, TurnServerOptions};
use ice_core::{Candidate, PairInfo};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stun_proto::client::{BindingClientConfig, BindingEvent};
use turn_proto::server::{IpPrefix, RelayRange, ServerConfig};

/// Arguments of `floe demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

const USER: &str = "demo";
const PASSWORD: &str = "floe-demo-password";
/// Longest wait for the agents to connect or a message to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// Milliseconds since `t0`, for the timeline.
fn ms(t0: Instant) -> String {
    format!("{:6.1} ms", t0.elapsed().as_secs_f64() * 1000.0)
}

fn failed(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Runs the demo.
pub fn run(_args: Args) -> io::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo())
}

/// floe's TURN server (which answers STUN too) on 127.0.0.1, letting clients reach `peer`.
fn start_server(peer: IpAddr) -> io::Result<TurnServerHandle> {
    let mut config = ServerConfig::new("floe.demo");
    config.add_user(USER, PASSWORD);
    config
        .relays
        .push(RelayRange::dynamic([127, 0, 0, 1].into()));
    // The peer is on a local network, which the server refuses by default (RFC 8656 §21).
    config.peer_policy.allow.push(IpPrefix::host(peer));
    let listen = SocketAddr::from(([127, 0, 0, 1], listen_port()?));
    turn_server::spawn(TurnServerOptions::new(vec![listen], config))
}

/// A free port below the relay range (49152-65535), where the OS's port 0 may land.
fn listen_port() -> io::Result<u16> {
    for _ in 0..1000 {
        let port = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), false)?
            .local_addr()?
            .port();
        if port < 49152 {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free UDP port below 49152"))
}

async fn demo() -> io::Result<ExitCode> {
    let t0 = Instant::now();
    println!("floe demo: STUN, TURN and ICE in one process; every datagram stays on this host\n");
    let ip = IpAddr::from([127, 0, 0, 1]);
    let server = start_server(ip)?;
    let addr = server.local_addrs()[0];
    println!("{}  1. floe's STUN/TURN server listens on {addr}", ms(t0));

    stun_step(t0, ip, addr)?;

    let a = IceAgent::builder()
        .controlling(true)
        .host_ips([ip])
        .turn(addr, USER, PASSWORD)
        .relay_only(true)
        .build()
        .await
        .map_err(failed)?;
    let b = IceAgent::builder()
        .host_ips([ip])
        .build()
        .await
        .map_err(failed)?;
    println!("{}  3. two ICE agents start:", ms(t0));
    println!(
        "              A: controlling, relay only (as if behind a firewall that only lets TURN out)"
    );
    println!("              B: controlled, its host address {ip}");

    let (a, b) = (Arc::new(a), Arc::new(b));
    println!("           4. they trickle their SDP lines to each other (ufrag, pwd, candidates):");
    let signalling = tokio::spawn(signal(t0, "A", a.clone(), b.clone()));
    let signalling_b = tokio::spawn(signal(t0, "B", b.clone(), a.clone()));

    let connected = tokio::time::timeout(WAIT, async { tokio::join!(a.connect(), b.connect()) });
    let (ca, cb) = match connected.await {
        Ok((Ok(ca), Ok(cb))) => (ca, cb),
        Ok((Err(e), _) | (_, Err(e))) => return fail_ice(t0, e),
        Err(_) => return fail_ice(t0, IceError::TimedOut),
    };
    let _ = tokio::join!(signalling, signalling_b);
    connected_step(
        t0,
        &ca,
        &a.snapshot().await.map_err(failed)?,
        &b.snapshot().await.map_err(failed)?,
    );

    messages(t0, &ca, &cb).await?;

    tokio::join!(a.close(), b.close());
    let stats = server.stop()?;
    println!(
        "{}  7. closed: A deleted its TURN allocation ({} left); the server relayed {} datagrams \
         to B and {} back to A",
        ms(t0),
        stats.core.allocations,
        stats.core.to_peer.packets,
        stats.core.to_client.packets,
    );
    println!("\ndone in {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0);
    Ok(ExitCode::SUCCESS)
}

/// Step 2: a STUN Binding request from our address.
fn stun_step(t0: Instant, ip: IpAddr, server: SocketAddr) -> io::Result<()> {
    match drivers::stun::query(
        server,
        SocketAddr::new(ip, 0),
        BindingClientConfig::default(),
    )? {
        BindingEvent::Success(r) => {
            println!(
                "{}  2. STUN: a Binding request from {} came back with XOR-MAPPED-ADDRESS {}",
                ms(t0),
                r.local,
                r.mapped
            );
            println!("              (the address the server saw: no NAT in between)");
            Ok(())
        }
        other => Err(failed(format_args!("the STUN request failed: {other:?}"))),
    }
}

/// Forwards `from`'s credentials and candidates to `to`, printing the candidates.
async fn signal(t0: Instant, name: &'static str, from: Arc<IceAgent>, to: Arc<IceAgent>) {
    let creds = from.local_credentials();
    let _ = to.set_remote_credentials(&creds.ufrag, &creds.pwd).await;
    while let Some(c) = from.next_candidate().await {
        println!("{}     {name}: {}", ms(t0), explain(&c));
        let _ = to.add_remote_candidate(&c.sdp()).await;
    }
    let _ = to.end_of_remote_candidates().await;
}

/// A candidate line with what it means.
fn explain(c: &LocalCandidate) -> String {
    let what = match c.candidate.kind {
        ice_core::CandidateType::Host => "its own address",
        ice_core::CandidateType::Relayed => "an address on the TURN server, relaying for it",
        ice_core::CandidateType::ServerReflexive => "its address as the STUN server saw it",
        _ => "learnt from a check",
    };
    format!("{c}\n                   ({what})")
}

fn describe(c: &Candidate) -> String {
    format!("{} {}", c.kind, c.address)
}

/// Step 5: the selected pair, and what the checks did.
fn connected_step(t0: Instant, ca: &IceConnection, a: &Snapshot, b: &Snapshot) {
    if let Some((local, remote)) = ca.selected_pair() {
        println!(
            "{}  5. connected: A {} <-> B {}",
            ms(t0),
            describe(&local),
            describe(&remote)
        );
        println!("              a relayed pair: A's datagrams go through the TURN server");
        println!(
            "              (checks leave one per Ta = 50 ms, RFC 8445 section 14.2; A nominated"
        );
        println!("              the pair after a short wait for a better one)");
    }
    println!(
        "              checks: A sent {}, answered {}; B sent {}, answered {}",
        a.stats.checks_sent, a.stats.checks_answered, b.stats.checks_sent, b.stats.checks_answered
    );
    for p in &a.pairs {
        println!("              A's pair {}", pair_line(p));
    }
}

fn pair_line(p: &PairInfo) -> String {
    let mut flags = Vec::new();
    if p.valid {
        flags.push("valid");
    }
    if p.nominated {
        flags.push("nominated");
    }
    format!(
        "{} -> {}: {:?}{}",
        describe(&p.local),
        describe(&p.remote),
        p.state,
        match flags.is_empty() {
            true => String::new(),
            false => format!(", {}", flags.join(", ")),
        }
    )
}

/// Step 6: one message each way over the selected pair.
async fn messages(t0: Instant, ca: &IceConnection, cb: &IceConnection) -> io::Result<()> {
    let sent = Instant::now();
    ca.send(b"hello from A").await.map_err(failed)?;
    let got = tokio::time::timeout(WAIT, cb.recv())
        .await
        .map_err(failed)?;
    let got = got.map_err(failed)?;
    println!(
        "{}  6. B received {:?} ({:.2} ms after A sent it)",
        ms(t0),
        String::from_utf8_lossy(&got),
        sent.elapsed().as_secs_f64() * 1000.0
    );
    cb.send(b"hello from B").await.map_err(failed)?;
    let back = tokio::time::timeout(WAIT, ca.recv())
        .await
        .map_err(failed)?;
    println!(
        "{}     A received {:?}",
        ms(t0),
        String::from_utf8_lossy(&back.map_err(failed)?)
    );
    Ok(())
}

fn fail_ice(t0: Instant, e: IceError) -> io::Result<ExitCode> {
    println!("{}  ICE did not connect: {e}", ms(t0));
    Ok(ExitCode::from(1))
}
