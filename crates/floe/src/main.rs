//! The `floe` command: STUN check, NAT discovery, STUN/TURN server, ICE peer, demo.
#![allow(clippy::disallowed_methods)] // a command-line tool reads the clock
#![allow(unreachable_pub)] // a binary: `pub` marks what other modules use

mod demo;
mod ice;
mod nat;
mod resolve;
mod server;
mod stun;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// floe: NAT traversal tools built on floe's Sans-IO STUN, TURN and ICE.
#[derive(Debug, Parser)]
#[command(name = "floe", version, propagate_version = true)]
struct Cli {
    /// Log to stderr: -v for debug, -vv for trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask a STUN server for this host's mapped address.
    Stun(stun::Args),
    /// Classify the NAT in front of this host (RFC 5780).
    Nat(nat::Args),
    /// Run a STUN and TURN server.
    Server(Box<server::Args>),
    /// An ICE peer signalling with SDP lines on stdin and stdout.
    Ice(ice::Args),
    /// Show floe working end to end on loopback.
    Demo(demo::Args),
}

/// Logs to stderr at `warn` (`-v` debug, `-vv` trace); `RUST_LOG` overrides. The server
/// also logs allocations (info) by default.
fn init_logging(verbose: u8, server: bool) {
    let level = match (verbose, server) {
        (0, true) => "warn,floe_drivers::turn_server=info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, matches!(cli.command, Command::Server(_)));
    let result = match cli.command {
        Command::Stun(args) => stun::run(args),
        Command::Nat(args) => nat::run(args),
        Command::Server(args) => server::run(*args),
        Command::Ice(args) => ice::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("floe: {e}");
            ExitCode::from(1)
        }
    }
}
