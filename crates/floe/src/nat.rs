//! `floe nat SERVER`: RFC 5780 NAT behaviour discovery, explained.

use crate::resolve::{resolve, show};
use drivers::stun::{any_local_for, discover};
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitCode;
use stun_proto::nat::{
    FilteringBehavior, MappingBehavior, NatDiscoveryConfig, NatDiscoveryEvent, NatReport,
};

/// Arguments of `floe nat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A STUN server supporting RFC 5780 (two IP addresses): HOST:PORT, or HOST for port 3478.
    server: String,
    /// Local address to test from (default: any address, a port chosen by the OS).
    #[arg(long)]
    local: Option<SocketAddr>,
    /// Skip the hairpinning probe.
    #[arg(long)]
    no_hairpin: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    local: String,
    mapped: String,
    other_address: Option<String>,
    mapping: Option<&'static str>,
    filtering: Option<&'static str>,
    hairpinning: Option<bool>,
    summary: String,
}

fn mapping_name(m: MappingBehavior) -> &'static str {
    match m {
        MappingBehavior::NoNat => "no-nat",
        MappingBehavior::EndpointIndependent => "endpoint-independent",
        MappingBehavior::AddressDependent => "address-dependent",
        MappingBehavior::AddressAndPortDependent => "address-and-port-dependent",
    }
}

fn filtering_name(f: FilteringBehavior) -> &'static str {
    match f {
        FilteringBehavior::EndpointIndependent => "endpoint-independent",
        FilteringBehavior::AddressDependent => "address-dependent",
        FilteringBehavior::AddressAndPortDependent => "address-and-port-dependent",
    }
}

/// What the classification means for peer-to-peer connections, in plain words.
pub fn explain(r: &NatReport) -> String {
    match (r.mapping, r.filtering) {
        (None, _) => "The server does not support RFC 5780 (no OTHER-ADDRESS), so only the mapped \
                      address is known. Use a server with two IP addresses to classify the NAT."
            .into(),
        (Some(MappingBehavior::NoNat), Some(FilteringBehavior::EndpointIndependent)) => {
            "No NAT and no filtering firewall: peers can reach this host directly.".into()
        }
        (Some(MappingBehavior::NoNat), _) => "No NAT, but a firewall filters unsolicited traffic: \
            peers connect once this host has sent to them (ICE does this), like a cone NAT."
            .into(),
        (Some(MappingBehavior::EndpointIndependent), Some(FilteringBehavior::EndpointIndependent)) => {
            "A full-cone NAT: the mapped address works for every peer. Peer-to-peer connections \
             succeed with a STUN server alone."
                .into()
        }
        (Some(MappingBehavior::EndpointIndependent), _) => "A restricted-cone NAT: the mapped \
            address is the same for every peer, and peers get in once this host has sent to them. \
            ICE connects peer-to-peer with server-reflexive candidates; no relay is needed unless \
            the other side is symmetric."
            .into(),
        (Some(_), _) => "A symmetric NAT: each peer sees a different mapped address, so the \
            address learnt from the STUN server is useless to peers. Direct connections work only \
            with a peer that has an open or cone NAT (through peer-reflexive candidates); plan on a \
            TURN relay."
            .into(),
    }
}

/// Runs `floe nat`.
pub fn run(args: Args) -> std::io::Result<ExitCode> {
    let server = resolve(&args.server)?;
    let local = args.local.unwrap_or_else(|| any_local_for(server));
    let config = NatDiscoveryConfig {
        hairpinning: !args.no_hairpin,
        ..NatDiscoveryConfig::default()
    };
    match discover(server, local, config)? {
        NatDiscoveryEvent::Finished(r) => {
            let out = Output {
                local: show(r.local),
                mapped: show(r.mapped),
                other_address: r.other_address.map(show),
                mapping: r.mapping.map(mapping_name),
                filtering: r.filtering.map(filtering_name),
                hairpinning: r.hairpinning,
                summary: explain(&r),
            };
            if args.json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!("mapped {}", out.mapped);
                println!("mapping {}", out.mapping.unwrap_or("unknown"));
                println!("filtering {}", out.filtering.unwrap_or("unknown"));
                match out.hairpinning {
                    Some(h) => println!("hairpinning {}", if h { "yes" } else { "no" }),
                    None => println!("hairpinning not tested"),
                }
                println!();
                println!("{}", out.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        NatDiscoveryEvent::Failed(e) => {
            eprintln!("floe nat: {server}: {e}");
            Ok(ExitCode::from(1))
        }
        other => {
            eprintln!("floe nat: unexpected outcome {other:?}");
            Ok(ExitCode::from(1))
        }
    }
}
