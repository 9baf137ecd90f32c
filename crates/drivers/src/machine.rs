//! The trait every floe state machine is driven through.

use std::time::Instant;
use stun_proto::client::{BindingClient, BindingEvent};
use stun_proto::nat::lifetime::{BindingLifetimeDiscovery, LifetimeEvent};
use stun_proto::nat::{NatDiscovery, NatDiscoveryEvent};
use stun_proto::server::BindingServer;
use stun_proto::{Input, Transmit};

/// A Sans-IO state machine as a driver sees it.
///
/// Data a machine hands back from `handle_input` (application data on an ICE pair, peer data
/// on a TURN allocation) comes out as an event of the machine's own type, so one runner can
/// drive them all.
pub trait Machine {
    /// What the machine reports.
    type Event;

    /// A datagram arrived.
    fn handle_input(&mut self, now: Instant, input: Input<'_>);
    /// A timeout is due (calling early is harmless).
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl Machine for BindingServer {
    type Event = std::convert::Infallible;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        BindingServer::handle_input(self, now, input);
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        BindingServer::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

impl Machine for BindingClient {
    type Event = BindingEvent;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        BindingClient::handle_input(self, now, input);
    }
    fn handle_timeout(&mut self, now: Instant) {
        BindingClient::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        BindingClient::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        BindingClient::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        BindingClient::poll_timeout(self)
    }
}

impl Machine for BindingLifetimeDiscovery {
    type Event = LifetimeEvent;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        BindingLifetimeDiscovery::handle_input(self, now, input);
    }
    fn handle_timeout(&mut self, now: Instant) {
        BindingLifetimeDiscovery::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        BindingLifetimeDiscovery::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        BindingLifetimeDiscovery::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        BindingLifetimeDiscovery::poll_timeout(self)
    }
}

impl Machine for NatDiscovery {
    type Event = NatDiscoveryEvent;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        NatDiscovery::handle_input(self, now, input);
    }
    fn handle_timeout(&mut self, now: Instant) {
        NatDiscovery::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        NatDiscovery::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        NatDiscovery::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        NatDiscovery::poll_timeout(self)
    }
}
