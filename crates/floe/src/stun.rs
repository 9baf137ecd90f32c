//! `floe stun HOST:PORT`: one Binding request, the mapped address, RTT and retransmissions.

use crate::resolve::{resolve, show};
use drivers::stun::{any_local_for, query};
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use stun_proto::client::{BindingClientConfig, BindingEvent, BindingFailure};
use stun_proto::transaction::TransactionConfig;

/// Arguments of `floe stun`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The STUN server, HOST:PORT, or HOST for port 3478.
    server: String,
    /// Local address to send from (default: any address, a port chosen by the OS).
    #[arg(long)]
    local: Option<SocketAddr>,
    /// Initial retransmission timeout in milliseconds (RFC 8489: 500).
    #[arg(long, default_value_t = 500)]
    rto_ms: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    server: String,
    local: String,
    mapped: String,
    rtt_ms: Option<f64>,
    retransmissions: u32,
    other_address: Option<String>,
}

/// Runs `floe stun`.
pub fn run(args: Args) -> std::io::Result<ExitCode> {
    let server = resolve(&args.server)?;
    let local = args.local.unwrap_or_else(|| any_local_for(server));
    let config = BindingClientConfig {
        transactions: TransactionConfig {
            initial_rto: Duration::from_millis(args.rto_ms),
            ..TransactionConfig::default()
        },
        software: Some(concat!("floe ", env!("CARGO_PKG_VERSION")).to_string()),
        fingerprint: true,
    };
    match query(server, local, config)? {
        BindingEvent::Success(r) => {
            let out = Output {
                server: show(r.server),
                local: show(r.local),
                mapped: show(r.mapped),
                rtt_ms: r.rtt.map(|d| d.as_secs_f64() * 1000.0),
                retransmissions: r.retransmissions,
                other_address: r.other_address.map(show),
            };
            if args.json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!("mapped {}", out.mapped);
                match out.rtt_ms {
                    Some(ms) => println!("rtt {ms:.2} ms"),
                    None => println!("rtt unknown (the request was retransmitted)"),
                }
                println!("retransmissions {}", out.retransmissions);
                if let Some(other) = out.other_address {
                    println!("other-address {other} (the server supports RFC 5780)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BindingEvent::Failed { reason, .. } => {
            eprintln!("floe stun: {server}: {reason}");
            Ok(ExitCode::from(if reason == BindingFailure::TimedOut {
                3
            } else {
                1
            }))
        }
        other => {
            eprintln!("floe stun: unexpected outcome {other:?}");
            Ok(ExitCode::from(1))
        }
    }
}
