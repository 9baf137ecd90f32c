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

/// `Machine` for a core whose inherent methods already have the trait's shape: each trait
/// method calls the method of the same name.
macro_rules! machine_by_delegation {
    ($($machine:ty => $event:ty),+ $(,)?) => {$(
        impl Machine for $machine {
            type Event = $event;

            fn handle_input(&mut self, now: Instant, input: Input<'_>) {
                <$machine>::handle_input(self, now, input);
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$machine>::handle_timeout(self, now);
            }
            fn poll_transmit(&mut self) -> Option<Transmit> {
                <$machine>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<Self::Event> {
                <$machine>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$machine>::poll_timeout(self)
            }
        }
    )+};
}

machine_by_delegation! {
    BindingClient => BindingEvent,
    NatDiscovery => NatDiscoveryEvent,
    BindingLifetimeDiscovery => LifetimeEvent,
}
