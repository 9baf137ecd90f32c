//! `floe nat SERVER`: RFC 5780 NAT behaviour discovery, explained.

use crate::resolve::{resolve, show};
use drivers::stun::{any_local_for, discover, discover_lifetime};
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use stun_proto::nat::lifetime::{LifetimeConfig, LifetimeEvent};
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
    /// Also measure how long the NAT keeps an idle UDP mapping (RFC 5780 §4.6; needs a
    /// server that honours RESPONSE-PORT). A binary search over idle times: with the
    /// defaults, tens of minutes, up to ~2.7 hours when mappings outlive --lifetime-max.
    #[arg(long)]
    lifetime: bool,
    /// The longest lifetime the search considers, in seconds.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(1..))]
    lifetime_max: u64,
    /// Stop when the lifetime is known to within this many seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    lifetime_precision: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct LifetimeOutput {
    /// The mapping was still there after this many seconds idle.
    at_least_secs: f64,
    /// It was gone after this many (absent if it never expired up to the maximum).
    less_than_secs: Option<f64>,
    rounds: u32,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    binding_lifetime: Option<LifetimeOutput>,
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
    let report = match discover(server, local, config)? {
        NatDiscoveryEvent::Finished(r) => r,
        NatDiscoveryEvent::Failed(e) => {
            eprintln!("floe nat: {server}: {e}");
            return Ok(ExitCode::from(1));
        }
        other => {
            eprintln!("floe nat: unexpected outcome {other:?}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut out = Output {
        local: show(report.local),
        mapped: show(report.mapped),
        other_address: report.other_address.map(show),
        mapping: report.mapping.map(mapping_name),
        filtering: report.filtering.map(filtering_name),
        hairpinning: report.hairpinning,
        summary: explain(&report),
        binding_lifetime: None,
    };
    if args.lifetime {
        let max = Duration::from_secs(args.lifetime_max);
        let config = LifetimeConfig {
            min: LifetimeConfig::default().min.min(max),
            max,
            precision: Duration::from_secs(args.lifetime_precision),
            ..LifetimeConfig::default()
        };
        eprintln!("floe nat: measuring the binding lifetime (up to {max:?}; this takes a while)");
        let progress = |e: &LifetimeEvent| {
            if let LifetimeEvent::Probed { idle, alive } = e {
                let verdict = if *alive { "alive" } else { "expired" };
                eprintln!("floe nat: after {} s idle: {verdict}", idle.as_secs());
            }
        };
        // The search binds its own two sockets on the local IP.
        match discover_lifetime(server, local, config, progress)? {
            LifetimeEvent::Finished(r) => {
                out.binding_lifetime = Some(LifetimeOutput {
                    at_least_secs: r.at_least.as_secs_f64(),
                    less_than_secs: r.less_than.map(|d| d.as_secs_f64()),
                    rounds: r.rounds,
                });
            }
            LifetimeEvent::Failed(e) => {
                eprintln!("floe nat: binding lifetime: {e}");
                return Ok(ExitCode::from(1));
            }
            other => {
                eprintln!("floe nat: unexpected outcome {other:?}");
                return Ok(ExitCode::from(1));
            }
        }
    }
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
        if let Some(l) = &out.binding_lifetime {
            match l.less_than_secs {
                Some(hi) => println!(
                    "binding lifetime at least {:.0} s, less than {hi:.0} s: keepalives every \
                     {:.0} s keep mappings open",
                    l.at_least_secs,
                    (l.at_least_secs * 0.8).floor().max(1.0)
                ),
                None => println!(
                    "binding lifetime at least {:.0} s (never expired in the search)",
                    l.at_least_secs
                ),
            }
        }
        println!();
        println!("{}", out.summary);
    }
    Ok(ExitCode::SUCCESS)
}
