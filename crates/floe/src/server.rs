//! `floe server`: a STUN server (Binding, and RFC 5780 with a second address).

use drivers::stun::BindingService;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;
use stun_proto::server::{AlternateAddress, BindingServerConfig};

/// Arguments of `floe server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (repeatable).
    #[arg(long = "listen", default_value = "0.0.0.0:3478")]
    listen: Vec<SocketAddr>,
    /// RFC 5780 NAT behaviour discovery: the server's second IP address. The server then
    /// also listens on it and on --alternate-port, on both IPs.
    #[arg(long)]
    alternate_ip: Option<IpAddr>,
    /// RFC 5780: the second port.
    #[arg(long, default_value_t = 3479)]
    alternate_port: u16,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    duration: Option<u64>,
}

/// Runs `floe server`.
pub fn run(args: Args) -> std::io::Result<ExitCode> {
    let mut listen = args.listen.clone();
    let mut config = BindingServerConfig::default();
    if let Some(alt_ip) = args.alternate_ip {
        let primary = args.listen[0];
        config.alternate = Some(AlternateAddress {
            primary_ip: primary.ip(),
            alternate_ip: alt_ip,
            primary_port: primary.port(),
            alternate_port: args.alternate_port,
        });
        for (ip, port) in [
            (primary.ip(), args.alternate_port),
            (alt_ip, primary.port()),
            (alt_ip, args.alternate_port),
        ] {
            listen.push(SocketAddr::new(ip, port));
        }
    }
    let service = BindingService::spawn(&listen, config)?;
    for addr in service.local_addrs() {
        println!("listening udp {addr}");
    }
    match args.duration {
        Some(secs) => std::thread::sleep(Duration::from_secs(secs)),
        None => loop {
            std::thread::park();
        },
    }
    service.stop()?;
    Ok(ExitCode::SUCCESS)
}
