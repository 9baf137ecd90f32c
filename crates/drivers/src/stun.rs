//! Ready-made STUN drivers: query a server, discover NAT behaviour, run a Binding server.

use crate::blocking::{Runner, StopHandle, Stopped};
use crate::net::bind_udp;
use crate::os;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::ControlFlow;
use std::thread::JoinHandle;
use stun_proto::TransportProtocol;
use stun_proto::client::{BindingClient, BindingClientConfig, BindingEvent, BindingRequest};
use stun_proto::nat::lifetime::{BindingLifetimeDiscovery, LifetimeConfig, LifetimeEvent};
use stun_proto::nat::{NatDiscovery, NatDiscoveryConfig, NatDiscoveryEvent};
use stun_proto::server::{BindingServer, BindingServerConfig};

/// The wildcard address of the server's family, port 0: where a client socket binds by default.
pub fn any_local_for(server: SocketAddr) -> SocketAddr {
    let ip = if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}

/// Sends one Binding request from `local` to `server` and waits for the outcome (at most the
/// transaction timeout of `config`, 39.5 s by default).
pub fn query(
    server: SocketAddr,
    local: SocketAddr,
    config: BindingClientConfig,
) -> io::Result<BindingEvent> {
    let client = BindingClient::new(config, os::seed()?, os::now());
    let mut runner = Runner::new(client);
    let local = runner.add_socket(bind_udp(local, false)?)?;
    runner
        .machine_mut()
        .send(
            os::now(),
            local,
            server,
            TransportProtocol::Udp,
            BindingRequest::default(),
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut outcome = None;
    runner.run(None, |_, event| {
        outcome = Some(event);
        ControlFlow::Break(())
    })?;
    outcome.ok_or_else(|| io::Error::other("stopped without an outcome"))
}

/// Runs RFC 5780 NAT behaviour discovery from `local` against `server`.
pub fn discover(
    server: SocketAddr,
    local: SocketAddr,
    config: NatDiscoveryConfig,
) -> io::Result<NatDiscoveryEvent> {
    let socket = bind_udp(local, false)?;
    let local = socket.local_addr()?;
    let discovery = NatDiscovery::new(config, os::seed()?, os::now(), local, server);
    let mut runner = Runner::new(discovery);
    runner.add_socket(socket)?;
    let mut outcome = None;
    runner.run(None, |_, event| {
        outcome = Some(event);
        ControlFlow::Break(())
    })?;
    outcome.ok_or_else(|| io::Error::other("stopped without an outcome"))
}

/// Runs the RFC 5780 §4.6 binding lifetime search against `server` from two sockets: one
/// bound to `local`, one to the same IP on a port the OS picks. `progress` sees each round's
/// verdict as it comes; the final event (finished or failed) is returned. This takes as long
/// as the search: tens of minutes to hours (see [`BindingLifetimeDiscovery`]).
pub fn discover_lifetime(
    server: SocketAddr,
    local: SocketAddr,
    config: LifetimeConfig,
    mut progress: impl FnMut(&LifetimeEvent),
) -> io::Result<LifetimeEvent> {
    let x = bind_udp(local, false)?;
    let y = bind_udp(SocketAddr::new(local.ip(), 0), false)?;
    let (x_addr, y_addr) = (x.local_addr()?, y.local_addr()?);
    let search =
        BindingLifetimeDiscovery::new(config, os::seed()?, os::now(), x_addr, y_addr, server);
    let mut runner = Runner::new(search);
    runner.add_socket(x)?;
    runner.add_socket(y)?;
    let mut outcome = None;
    runner.run(None, |_, event| match event {
        LifetimeEvent::Probed { .. } => {
            progress(&event);
            ControlFlow::Continue(())
        }
        event => {
            outcome = Some(event);
            ControlFlow::Break(())
        }
    })?;
    outcome.ok_or_else(|| io::Error::other("stopped without an outcome"))
}

/// A Binding server running on its own thread.
#[derive(Debug)]
pub struct BindingService {
    addrs: Vec<SocketAddr>,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<Stopped>>>,
}

impl BindingService {
    /// Binds every address in `listen` and serves Binding requests on all of them. For
    /// RFC 5780, pass the four combinations of two IPs and two ports and set
    /// `config.alternate`.
    pub fn spawn(listen: &[SocketAddr], config: BindingServerConfig) -> io::Result<BindingService> {
        let mut runner = Runner::new(BindingServer::new(config));
        for addr in listen {
            runner.add_socket(bind_udp(*addr, false)?)?;
        }
        let addrs = runner.local_addrs();
        let stop = runner.stop_handle();
        let thread = std::thread::Builder::new()
            .name("floe-stun-server".into())
            .spawn(move || runner.run(None, |_, never| match never {}))?;
        Ok(BindingService {
            addrs,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound addresses (with the ports the OS chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map(|_| ()),
            Some(Err(_)) => Err(io::Error::other("server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for BindingService {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_proto::server::AlternateAddress;

    #[test]
    fn query_a_loopback_server() {
        let service = BindingService::spawn(
            &["127.0.0.1:0".parse().unwrap()],
            BindingServerConfig::default(),
        )
        .unwrap();
        let server = service.local_addrs()[0];
        match query(
            server,
            "127.0.0.1:0".parse().unwrap(),
            BindingClientConfig::default(),
        )
        .unwrap()
        {
            BindingEvent::Success(r) => {
                assert_eq!(r.mapped.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
                assert_eq!(r.mapped, r.local, "no NAT on loopback");
                assert!(r.rtt.is_some());
            }
            other => panic!("{other:?}"),
        }
        service.stop().unwrap();
    }

    #[test]
    fn discover_on_loopback_with_two_addresses() {
        // 127.0.0.1 and 127.0.0.2 are both loopback on Linux: an RFC 5780 server on one host.
        let p1 = bind_udp("127.0.0.1:0".parse().unwrap(), false)
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p2 = bind_udp("127.0.0.1:0".parse().unwrap(), false)
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (a1, a2): (IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
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
        let service = BindingService::spawn(&listen, config).unwrap();
        let event = discover(
            SocketAddr::new(a1, p1),
            "127.0.0.1:0".parse().unwrap(),
            NatDiscoveryConfig::default(),
        )
        .unwrap();
        match event {
            NatDiscoveryEvent::Finished(r) => {
                assert_eq!(r.mapping, Some(stun_proto::nat::MappingBehavior::NoNat));
                assert_eq!(
                    r.filtering,
                    Some(stun_proto::nat::FilteringBehavior::EndpointIndependent)
                );
                assert_eq!(r.other_address, Some(SocketAddr::new(a2, p2)));
            }
            other => panic!("{other:?}"),
        }
        drop(service);
    }
}
