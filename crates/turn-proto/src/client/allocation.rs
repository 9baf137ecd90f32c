//! The allocation's life (RFC 8656 §7–§8): Allocate, redirect, refresh before the lifetime
//! runs out, delete, expiry.

use super::Client;
use super::events::{
    AllocationFailure, ClientEvent, ClientState, ExpiryReason, RefusedFamily, RequestFailure,
    ServerError,
};
use super::request::{Pending, Request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stun_proto::Message;
use stun_proto::attributes::{
    AddressErrorCode, AddressFamily, AlternateServer, Attribute, AttributeType, Lifetime,
    ReservationToken, XorMappedAddress, XorRelayedAddress,
};

/// Refresh at most this long before the lifetime ends (RFC 8656 §8: "roughly 1 minute").
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Redirects followed before giving up (RFC 8489 §10 leaves the bound to the client).
const MAX_REDIRECTS: usize = 3;

/// The client's copy of the allocation (RFC 8656 §7.3).
#[derive(Clone, Debug)]
pub(super) struct Allocation {
    pub(super) relayed: Vec<SocketAddr>,
    pub(super) mapped: Option<SocketAddr>,
    /// When the server's allocation ends, counted from when the request that set it was
    /// sent: the server's timer started no earlier.
    expires_at: Instant,
    /// When to send the next Refresh; `None` while one is in flight or after refreshing
    /// failed for good.
    refresh_at: Option<Instant>,
    /// Why refreshing stopped, reported at expiry.
    failure: Option<RequestFailure>,
}

impl Allocation {
    fn set_lifetime(&mut self, sent_at: Instant, lifetime: Duration) {
        self.expires_at = sent_at + lifetime;
        self.refresh_at = Some(self.expires_at - refresh_margin(lifetime));
        self.failure = None;
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        Some(
            self.refresh_at
                .map_or(self.expires_at, |r| r.min(self.expires_at)),
        )
    }
}

/// A minute before the end, or a fifth of the lifetime for short lifetimes.
fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN.min(lifetime / 5)
}

/// What an Allocate success response says (RFC 8656 §7.2, §7.3).
struct Granted {
    relayed: Vec<SocketAddr>,
    mapped: Option<SocketAddr>,
    lifetime: Duration,
    reservation_token: Option<[u8; 8]>,
    refused_family: Option<RefusedFamily>,
}

impl Client {
    pub(super) fn start_allocate(&mut self, now: Instant) {
        if let Err(e) = self.start_request(now, Pending::new(Request::Allocate, now)) {
            tracing::debug!(error = %e, "Allocate not sent");
            let failure = RequestFailure::NotSent(e);
            self.fail_allocation(failure.into());
        }
    }

    /// Deletes the allocation: a Refresh with LIFETIME 0 (RFC 8656 §8.1), then
    /// [`ClientEvent::Deleted`]. Permissions and channels stop being refreshed at once.
    /// While allocating, the Allocate is abandoned (and, if credentials were already sent,
    /// whatever it may have created is deleted).
    pub fn delete(&mut self, now: Instant) {
        match self.state {
            ClientState::Allocated => {}
            ClientState::Allocating if self.auth.is_ready() => {}
            ClientState::Allocating => {
                self.cancel_all();
                self.state = ClientState::Deleting;
                return self.finish_delete();
            }
            _ => return,
        }
        self.cancel_all();
        self.permissions.clear();
        self.channels.clear();
        self.state = ClientState::Deleting;
        let request = Request::Refresh { lifetime: 0 };
        if self.start_request(now, Pending::new(request, now)).is_err() {
            self.finish_delete();
        }
    }

    /// The delete is done (succeeded, found nothing to delete, or gave up).
    pub(super) fn finish_delete(&mut self) {
        if self.state != ClientState::Deleting {
            return;
        }
        self.cancel_all();
        self.allocation = None;
        self.state = ClientState::Deleted;
        self.events.push_back(ClientEvent::Deleted);
    }

    /// The allocation is gone.
    pub(super) fn expire(&mut self, reason: ExpiryReason) {
        tracing::debug!(?reason, "allocation expired");
        self.cancel_all();
        self.allocation = None;
        self.permissions.clear();
        self.channels.clear();
        self.state = ClientState::Expired;
        self.events.push_back(ClientEvent::Expired { reason });
    }

    /// No allocation will be made.
    pub(super) fn fail_allocation(&mut self, reason: AllocationFailure) {
        tracing::debug!(%reason, "allocation failed");
        self.cancel_all();
        self.state = ClientState::Failed;
        self.events
            .push_back(ClientEvent::AllocationFailed { reason });
    }

    /// Refreshes, expiries and the permission and channel timers.
    pub(super) fn run_timers(&mut self, now: Instant) {
        if self.state != ClientState::Allocated {
            return;
        }
        let Some(a) = self.allocation.as_mut() else {
            return;
        };
        if a.expires_at <= now {
            let failure = a.failure.take().unwrap_or(RequestFailure::Timeout);
            return self.expire(ExpiryReason::Failure(failure));
        }
        if a.refresh_at.is_some_and(|t| t <= now) {
            a.refresh_at = None;
            self.send_refresh(now);
        }
        self.permission_timers(now);
        self.channel_timers(now);
        self.data_connection_timers(now);
    }

    fn send_refresh(&mut self, now: Instant) {
        let request = Request::Refresh {
            lifetime: self.config.lifetime_secs(),
        };
        if let Err(e) = self.start_request(now, Pending::new(request, now)) {
            tracing::debug!(error = %e, "Refresh not sent");
            let failure = RequestFailure::NotSent(e);
            if let Some(a) = self.allocation.as_mut() {
                a.failure = Some(failure);
            }
        }
    }

    pub(super) fn on_allocate_success(
        &mut self,
        now: Instant,
        sent_at: Instant,
        msg: &Message<'_>,
    ) {
        let granted = match self.granted(msg) {
            Ok(g) => g,
            Err(reason) => {
                self.fail_allocation(reason);
                // RFC 8656 §7.3: an allocation the client cannot use MUST be deleted.
                let request = Request::Refresh { lifetime: 0 };
                if self.start_request(now, Pending::new(request, now)).is_err() {
                    tracing::debug!("delete of the unusable allocation not sent");
                }
                return;
            }
        };
        let mut allocation = Allocation {
            relayed: granted.relayed.clone(),
            mapped: granted.mapped,
            expires_at: sent_at,
            refresh_at: None,
            failure: None,
        };
        allocation.set_lifetime(sent_at, granted.lifetime);
        self.allocation = Some(allocation);
        self.state = ClientState::Allocated;
        self.events.push_back(ClientEvent::Allocated {
            relayed: granted.relayed,
            mapped: granted.mapped,
            lifetime: granted.lifetime,
            reservation_token: granted.reservation_token,
            refused_family: granted.refused_family,
        });
    }

    /// Reads an Allocate success response: one XOR-RELAYED-ADDRESS per family asked for,
    /// LIFETIME, and the optional XOR-MAPPED-ADDRESS, RESERVATION-TOKEN and
    /// ADDRESS-ERROR-CODE.
    fn granted(&self, msg: &Message<'_>) -> Result<Granted, AllocationFailure> {
        let malformed = |what| AllocationFailure::Request(RequestFailure::MalformedResponse(what));
        let tid = msg.transaction_id();
        let wanted = self.config.wanted_families();
        let mut relayed: Vec<SocketAddr> = Vec::new();
        let attrs = msg.attributes();
        for a in attrs.filter(|a| a.attr_type == AttributeType::XOR_RELAYED_ADDRESS) {
            let addr = XorRelayedAddress::decode(a.value, &tid)
                .map_err(|_| malformed("bad XOR-RELAYED-ADDRESS"))?
                .0;
            if !wanted.contains(&AddressFamily::of(&addr.ip())) {
                return Err(AllocationFailure::UnexpectedFamily { relayed: addr });
            }
            if relayed.iter().any(|r| r.is_ipv4() == addr.is_ipv4()) {
                return Err(malformed("two relayed addresses of one family"));
            }
            relayed.push(addr);
        }
        if relayed.is_empty() {
            return Err(malformed("no XOR-RELAYED-ADDRESS"));
        }
        let Ok(Some(Lifetime(secs))) = msg.get::<Lifetime>() else {
            return Err(malformed("no LIFETIME"));
        };
        let refused_family =
            msg.get::<AddressErrorCode<'_>>()
                .ok()
                .flatten()
                .map(|e| RefusedFamily {
                    family: e.family,
                    error: ServerError::new(e.code(), e.reason()),
                });
        Ok(Granted {
            relayed,
            mapped: msg.get::<XorMappedAddress>().ok().flatten().map(|a| a.0),
            lifetime: Duration::from_secs(u64::from(secs)),
            reservation_token: msg.get::<ReservationToken>().ok().flatten().map(|t| t.0),
            refused_family,
        })
    }

    /// RFC 8656 §8.3: a success updates the lifetime.
    pub(super) fn on_refresh_success(&mut self, now: Instant, sent_at: Instant, msg: &Message<'_>) {
        let lifetime = match msg.get::<Lifetime>() {
            Ok(Some(Lifetime(secs))) if secs > 0 => Duration::from_secs(u64::from(secs)),
            _ => {
                let failure = RequestFailure::MalformedResponse("no LIFETIME");
                return self.on_refresh_failed(now, failure);
            }
        };
        if self.state != ClientState::Allocated {
            return;
        }
        if let Some(a) = self.allocation.as_mut() {
            a.set_lifetime(sent_at, lifetime);
            self.events.push_back(ClientEvent::Refreshed { lifetime });
        }
    }

    /// A Refresh failed: try again while the allocation holds if it was a timeout; otherwise
    /// stop refreshing and let it expire, reporting why.
    pub(super) fn on_refresh_failed(&mut self, now: Instant, failure: RequestFailure) {
        if self.state != ClientState::Allocated {
            return;
        }
        let Some(a) = self.allocation.as_mut() else {
            return;
        };
        let retry = failure == RequestFailure::Timeout && now < a.expires_at;
        a.failure = Some(failure);
        if retry {
            self.send_refresh(now);
        }
    }

    /// RFC 8656 §7.4 / RFC 8489 §10: an authenticated 300 moves the Allocate to the
    /// ALTERNATE-SERVER, from the same local address, with the same credentials and a fresh
    /// challenge. An unauthenticated one is not followed.
    pub(super) fn on_try_alternate(&mut self, now: Instant, pending: &Pending, msg: &Message<'_>) {
        let alternate = msg.get::<AlternateServer>().ok().flatten().map(|a| a.0);
        if !pending.authenticated {
            return self.fail_allocation(AllocationFailure::UnverifiedRedirect { alternate });
        }
        let Some(alternate) = alternate else {
            let e = ServerError::new(300, "Try Alternate without ALTERNATE-SERVER");
            return self.fail_allocation(RequestFailure::Rejected(e).into());
        };
        if self.visited.len() > MAX_REDIRECTS || self.visited.contains(&alternate) {
            return self.fail_allocation(AllocationFailure::TooManyRedirects { alternate });
        }
        if alternate.is_ipv4() != self.config.local.is_ipv4() {
            return self.fail_allocation(AllocationFailure::UnreachableAlternate { alternate });
        }
        let from = self.server;
        self.visited.push(alternate);
        self.server = alternate;
        self.auth.reset();
        self.dont_fragment = self.config.dont_fragment;
        self.cancel_all();
        self.events.push_back(ClientEvent::Redirected {
            from,
            to: alternate,
        });
        self.start_allocate(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_a_minute_or_a_fifth() {
        assert_eq!(refresh_margin(Duration::from_secs(600)), REFRESH_MARGIN);
        assert_eq!(refresh_margin(Duration::from_secs(3600)), REFRESH_MARGIN);
        assert_eq!(
            refresh_margin(Duration::from_secs(100)),
            Duration::from_secs(20)
        );
    }
}
