//! Channels (RFC 8656 §12): channel numbers chosen by the client, ChannelBind requests that
//! bind and refresh them, and the five-minute rule against rebinding.

use super::Client;
use super::events::{ClientError, ClientEvent, ClientState, RequestFailure};
use super::request::{Pending, Request};
use crate::channel_data::CHANNEL_RANGE;
use rand_core::Rng;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// RFC 8656 §12: "A channel binding lasts for 10 minutes unless refreshed."
pub(super) const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Refresh a minute before the binding would expire.
pub(super) const CHANNEL_REFRESH: Duration = Duration::from_secs(540);
/// RFC 8656 §12: after a binding expires, neither its number nor its peer may be bound to
/// anything else for 5 minutes.
pub(super) const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
struct Binding {
    number: u16,
    peer: SocketAddr,
    /// A ChannelBind for it is in flight.
    in_flight: bool,
    /// When the server's binding expires; `None` until the first success.
    expires_at: Option<Instant>,
    /// When to refresh; `None` while in flight or when refreshing has stopped.
    refresh_at: Option<Instant>,
}

/// A number and peer that may not be bound to anything else until `until`.
#[derive(Clone, Copy, Debug)]
struct Cooldown {
    number: u16,
    peer: SocketAddr,
    until: Instant,
}

/// What to do after a ChannelBind failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Send it again: the binding still holds and the exchange was lost.
    Retry,
    /// Report the failure.
    Failed,
}

/// The client's copy of the allocation's channel bindings.
#[derive(Clone, Debug, Default)]
pub(super) struct Channels {
    bindings: Vec<Binding>,
    cooldown: Vec<Cooldown>,
}

impl Channels {
    /// The channel for `peer`, existing or new. Returns the number and whether a ChannelBind
    /// must be sent (a new binding, marked in flight).
    pub(super) fn bind<R: Rng + ?Sized>(
        &mut self,
        peer: SocketAddr,
        now: Instant,
        rng: &mut R,
    ) -> Result<(u16, bool), ClientError> {
        if let Some(b) = self.bindings.iter_mut().find(|b| b.peer == peer) {
            // A bound channel whose refreshing stopped after a failure is tried again.
            let stalled = b.expires_at.is_some() && b.refresh_at.is_none() && !b.in_flight;
            b.in_flight |= stalled;
            return Ok((b.number, stalled));
        }
        self.cooldown.retain(|c| c.until > now);
        // The same peer may be bound again to the same number at any time; only binding it
        // (or its old number) to something else must wait (RFC 8656 §12).
        let number = match self.cooldown.iter().find(|c| c.peer == peer) {
            Some(c) => c.number,
            None => self.free_number(rng)?,
        };
        self.bindings.push(Binding {
            number,
            peer,
            in_flight: true,
            expires_at: None,
            refresh_at: None,
        });
        Ok((number, true))
    }

    /// A random unused number: from a random start, the first one neither bound nor cooling
    /// down. Random numbers make a stale binding from an earlier allocation on the same
    /// 5-tuple unlikely to collide.
    fn free_number<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<u16, ClientError> {
        let first = *CHANNEL_RANGE.start();
        let count = *CHANNEL_RANGE.end() - first + 1;
        let start = (rng.next_u32() % u32::from(count)) as u16;
        (0..count)
            .map(|i| first + (start + i) % count)
            .find(|n| {
                !self.bindings.iter().any(|b| b.number == *n)
                    && !self.cooldown.iter().any(|c| c.number == *n)
            })
            .ok_or(ClientError::NoChannelAvailable)
    }

    /// The peer a received ChannelData number belongs to. A binding still in flight counts:
    /// RFC 8656 §12 asks the client to accept ChannelData as soon as the ChannelBind is sent.
    pub(super) fn peer_of(&self, number: u16) -> Option<SocketAddr> {
        self.bindings
            .iter()
            .find(|b| b.number == number)
            .map(|b| b.peer)
    }

    /// The number to send ChannelData to `peer` on: only once the server confirmed the
    /// binding and while it holds (RFC 8656 §12: a client that wants to be safe uses Send
    /// indications until then).
    pub(super) fn confirmed(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.bindings
            .iter()
            .find(|b| b.peer == peer && b.expires_at.is_some_and(|e| e > now))
            .map(|b| b.number)
    }

    /// The number bound (or being bound) to `peer`.
    pub(super) fn number_of(&self, peer: SocketAddr) -> Option<u16> {
        self.bindings
            .iter()
            .find(|b| b.peer == peer)
            .map(|b| b.number)
    }

    pub(super) fn has_peer_ip(&self, ip: IpAddr) -> bool {
        self.bindings.iter().any(|b| b.peer.ip() == ip)
    }

    /// A ChannelBind sent at `sent_at` succeeded. Returns true the first time.
    pub(super) fn on_success(&mut self, number: u16, sent_at: Instant) -> bool {
        let Some(b) = self.bindings.iter_mut().find(|b| b.number == number) else {
            return false;
        };
        let first = b.expires_at.is_none();
        b.in_flight = false;
        b.expires_at = Some(sent_at + CHANNEL_LIFETIME);
        b.refresh_at = Some(sent_at + CHANNEL_REFRESH);
        first
    }

    /// A ChannelBind sent at `sent_at` failed at `now`.
    pub(super) fn on_failure(
        &mut self,
        number: u16,
        now: Instant,
        sent_at: Instant,
        timed_out: bool,
    ) -> Outcome {
        let Some(i) = self.bindings.iter().position(|b| b.number == number) else {
            return Outcome::Failed;
        };
        let b = &mut self.bindings[i];
        b.in_flight = false;
        match b.expires_at {
            Some(expiry) if timed_out && now < expiry => {
                b.in_flight = true;
                Outcome::Retry
            }
            // Bound: it stays usable until it expires.
            Some(_) => Outcome::Failed,
            None => {
                let b = self.bindings.swap_remove(i);
                if timed_out {
                    // The server may have bound it without our hearing: treat the number and
                    // peer as bound until then, and cooling down after.
                    self.cooldown.push(Cooldown {
                        number,
                        peer: b.peer,
                        until: sent_at + CHANNEL_LIFETIME + CHANNEL_COOLDOWN,
                    });
                }
                Outcome::Failed
            }
        }
    }

    /// Removes expired bindings; their number and peer cool down for 5 minutes.
    pub(super) fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.bindings.len() {
            let b = &self.bindings[i];
            match b.expires_at {
                Some(e) if e <= now && !b.in_flight => {
                    self.cooldown.push(Cooldown {
                        number: b.number,
                        peer: b.peer,
                        until: e + CHANNEL_COOLDOWN,
                    });
                    self.bindings.swap_remove(i);
                }
                _ => i += 1,
            }
        }
    }

    /// The bindings to refresh now, marked in flight.
    pub(super) fn due_refresh(&mut self, now: Instant) -> Vec<(u16, SocketAddr)> {
        let mut due = Vec::new();
        for b in &mut self.bindings {
            if !b.in_flight && b.refresh_at.is_some_and(|t| t <= now) {
                b.in_flight = true;
                b.refresh_at = None;
                due.push((b.number, b.peer));
            }
        }
        due
    }

    /// The earliest refresh or expiry.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.bindings
            .iter()
            .flat_map(|b| [b.refresh_at, b.expires_at.filter(|_| !b.in_flight)])
            .flatten()
            .min()
    }

    pub(super) fn clear(&mut self) {
        self.bindings.clear();
        self.cooldown.clear();
    }
}

impl Client {
    /// Binds a channel to `peer` (RFC 8656 §12.1) and keeps it refreshed every 540 s; the
    /// ChannelBind also installs the permission for the peer's IP, which is then refreshed
    /// every 240 s. Returns the channel number (0x4000–0x4FFF, chosen at random by the
    /// seeded generator); binding the same peer again returns the same number.
    ///
    /// Until [`ClientEvent::ChannelBound`] the client sends to the peer with Send
    /// indications and accepts ChannelData on the number already.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, ClientError> {
        if self.state != ClientState::Allocated {
            return Err(ClientError::NotAllocated);
        }
        if self.config.relay_transport != stun_proto::TransportProtocol::Udp {
            return Err(ClientError::RelayTransportMismatch);
        }
        if !self.has_relay_for(peer.ip()) {
            return Err(ClientError::PeerFamilyMismatch(peer.ip()));
        }
        let (channel, new) = self.channels.bind(peer, now, &mut self.rng)?;
        if new {
            self.permissions.ensure(peer.ip());
            let request = Request::ChannelBind { channel, peer };
            if let Err(e) = self.start_request(now, Pending::new(request, now)) {
                self.channels.on_failure(channel, now, now, false);
                self.permissions.forget_if_uninstalled(peer.ip());
                return Err(e);
            }
        }
        Ok(channel)
    }

    /// The channel number bound (or being bound) to `peer`.
    pub fn channel(&self, peer: SocketAddr) -> Option<u16> {
        self.channels.number_of(peer)
    }

    pub(super) fn on_channel_success(&mut self, channel: u16, peer: SocketAddr, sent_at: Instant) {
        // RFC 8656 §12.3: the success also installs or refreshes the permission.
        self.permissions.refreshed_by_channel(peer.ip(), sent_at);
        if self.channels.on_success(channel, sent_at) {
            self.events
                .push_back(ClientEvent::ChannelBound { peer, channel });
        }
    }

    pub(super) fn on_channel_failed(
        &mut self,
        now: Instant,
        pending: &Pending,
        channel: u16,
        peer: SocketAddr,
        reason: RequestFailure,
    ) {
        let timed_out = reason == RequestFailure::Timeout;
        match self
            .channels
            .on_failure(channel, now, pending.sent_at, timed_out)
        {
            Outcome::Retry => self.send_channel_bind(now, channel, peer),
            Outcome::Failed => {
                self.permissions.forget_if_uninstalled(peer.ip());
                self.events.push_back(ClientEvent::ChannelBindFailed {
                    peer,
                    channel,
                    reason,
                });
            }
        }
    }

    /// Drops expired bindings and sends the refreshes that are due.
    pub(super) fn channel_timers(&mut self, now: Instant) {
        self.channels.expire(now);
        for (channel, peer) in self.channels.due_refresh(now) {
            self.send_channel_bind(now, channel, peer);
        }
    }

    fn send_channel_bind(&mut self, now: Instant, channel: u16, peer: SocketAddr) {
        let request = Request::ChannelBind { channel, peer };
        if let Err(e) = self.start_request(now, Pending::new(request, now)) {
            tracing::debug!(error = %e, channel, "ChannelBind refresh not sent");
            self.channels.on_failure(channel, now, now, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn peer(n: u8) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, n], 7000))
    }

    #[test]
    fn numbers_are_in_range_distinct_and_stable_per_peer() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut c = Channels::default();
        let (a, new) = c.bind(peer(1), t0, &mut rng).unwrap();
        assert!(new && CHANNEL_RANGE.contains(&a));
        assert_eq!(c.bind(peer(1), t0, &mut rng).unwrap(), (a, false));
        let (b, _) = c.bind(peer(2), t0, &mut rng).unwrap();
        assert_ne!(a, b);
        assert_eq!(c.peer_of(a), Some(peer(1)), "accepted before confirmation");
        assert_eq!(
            c.confirmed(peer(1), t0),
            None,
            "not sent on before confirmation"
        );
        assert!(c.on_success(a, t0));
        assert_eq!(c.confirmed(peer(1), t0), Some(a));
        assert!(!c.on_success(a, t0), "only the first success is news");
        // A refresh that failed for good stops refreshing; binding again tries again.
        c.due_refresh(t0 + CHANNEL_REFRESH);
        let late = t0 + CHANNEL_REFRESH;
        assert_eq!(c.on_failure(a, late, late, false), Outcome::Failed);
        assert_eq!(c.next_timeout(), Some(t0 + CHANNEL_LIFETIME));
        assert_eq!(c.bind(peer(1), late, &mut rng).unwrap(), (a, true));
        assert_eq!(c.bind(peer(1), late, &mut rng).unwrap(), (a, false));
    }

    #[test]
    fn all_numbers_can_be_used_then_none() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut c = Channels::default();
        for i in 0..4096u32 {
            let p = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1));
            c.bind(p, t0, &mut rng).unwrap();
        }
        assert_eq!(
            c.bind(peer(1), t0, &mut rng),
            Err(ClientError::NoChannelAvailable)
        );
    }

    #[test]
    fn expired_binding_cools_down_for_five_minutes() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut c = Channels::default();
        let (a, _) = c.bind(peer(1), t0, &mut rng).unwrap();
        c.on_success(a, t0);
        let expiry = t0 + CHANNEL_LIFETIME;
        c.expire(expiry);
        assert_eq!(c.peer_of(a), None);
        // The same peer gets its old number back; another peer never gets it while cooling.
        let (again, _) = c.bind(peer(1), expiry, &mut rng).unwrap();
        assert_eq!(again, a);
        c.clear();
        let (a, _) = c.bind(peer(1), t0, &mut rng).unwrap();
        c.on_success(a, t0);
        c.expire(expiry);
        for i in 0..4095u32 {
            let p = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1));
            assert_ne!(c.bind(p, expiry, &mut rng).unwrap().0, a);
        }
        // After the cool-down the number is free again.
        let later = expiry + CHANNEL_COOLDOWN;
        assert_eq!(c.bind(peer(9), later, &mut rng).unwrap().0, a);
    }

    #[test]
    fn failures() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut c = Channels::default();
        let (a, _) = c.bind(peer(1), t0, &mut rng).unwrap();
        // A first bind that timed out may exist on the server: its number stays reserved.
        let later = t0 + Duration::from_secs(40);
        assert_eq!(c.on_failure(a, later, t0, true), Outcome::Failed);
        assert_eq!(c.peer_of(a), None);
        assert_eq!(c.bind(peer(1), later, &mut rng).unwrap().0, a);
        // A bound channel whose refresh timed out is retried while it holds.
        c.on_success(a, later);
        assert_eq!(
            c.on_failure(a, later + Duration::from_secs(580), later, true),
            Outcome::Retry
        );
        assert_eq!(
            c.on_failure(a, later + Duration::from_secs(600), later, true),
            Outcome::Failed
        );
    }
}
