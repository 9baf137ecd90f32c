//! `floe demo`: floe working end to end on loopback, explained for a newcomer.

use drivers::net::bind_udp;
use drivers::stun::{BindingService, discover, query};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;
use stun_proto::client::{BindingClientConfig, BindingEvent};
use stun_proto::nat::{NatDiscoveryConfig, NatDiscoveryEvent};
use stun_proto::server::{AlternateAddress, BindingServerConfig};

/// Arguments of `floe demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(bind_udp(SocketAddr::new(ip, 0), false)?
        .local_addr()?
        .port())
}

/// Runs the demo.
pub fn run(_args: Args) -> std::io::Result<ExitCode> {
    let started = Instant::now();
    println!("floe demo: STUN on loopback\n");

    // 1. A STUN server with two addresses, so it can also answer NAT-discovery tests.
    let (a1, a2) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
    let (p1, p2) = (free_port(a1)?, free_port(a1)?);
    let listen: Vec<SocketAddr> = [(a1, p1), (a1, p2), (a2, p1), (a2, p2)]
        .into_iter()
        .map(|(ip, p)| SocketAddr::new(ip, p))
        .collect();
    let config = BindingServerConfig {
        alternate: Some(AlternateAddress {
            primary_ip: a1,
            alternate_ip: a2,
            primary_port: p1,
            alternate_port: p2,
        }),
        ..BindingServerConfig::default()
    };
    let service = BindingService::spawn(&listen, config)?;
    let server = SocketAddr::new(a1, p1);
    println!(
        "1. started floe's STUN server on {} (alternate address {}:{} for RFC 5780)",
        server, a2, p2
    );

    // 2. A Binding request: what address does the server see us as?
    let local = SocketAddr::new(a1, 0);
    match query(server, local, BindingClientConfig::default())? {
        BindingEvent::Success(r) => {
            println!("2. sent a Binding request from {} to {}", r.local, r.server);
            println!("   the server saw us as {} (XOR-MAPPED-ADDRESS)", r.mapped);
            if let Some(rtt) = r.rtt {
                println!(
                    "   round trip {:.3} ms, {} retransmissions",
                    rtt.as_secs_f64() * 1000.0,
                    r.retransmissions
                );
            }
            println!("   mapped == local: no NAT between us, as expected on loopback");
        }
        other => {
            println!("2. the Binding request failed: {other:?}");
            return Ok(ExitCode::from(1));
        }
    }

    // 3. RFC 5780: classify the "NAT" (there is none on loopback).
    match discover(server, local, NatDiscoveryConfig::default())? {
        NatDiscoveryEvent::Finished(r) => {
            println!("3. ran RFC 5780 NAT behaviour discovery against {}", server);
            println!("   mapping: {:?}, filtering: {:?}", r.mapping, r.filtering);
            println!("   {}", crate::nat::explain(&r));
        }
        other => {
            println!("3. NAT discovery failed: {other:?}");
            return Ok(ExitCode::from(1));
        }
    }
    service.stop()?;
    println!(
        "\ndone in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}
