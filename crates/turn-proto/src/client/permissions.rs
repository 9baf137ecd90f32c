//! Permissions (RFC 8656 §9–§10): the table of peer IP addresses the relay lets through,
//! and the CreatePermission requests that install and refresh them.

use super::Client;
use super::events::{ClientError, ClientEvent, ClientState, RequestFailure};
use super::request::{MAX_PEERS_PER_REQUEST, Pending, Request};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// RFC 8656 §9: "The Permission Lifetime MUST be 300 seconds".
pub(super) const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Refresh a minute before the server would let the permission lapse.
pub(super) const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// Permissions due within this long of one that is due are refreshed in the same request.
const COALESCE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
struct Permission {
    ip: IpAddr,
    /// The user (or a channel) wants it kept: refresh it.
    keep: bool,
    /// A CreatePermission for it is in flight.
    in_flight: bool,
    /// When the server's permission lapses; `None` until first installed.
    expires_at: Option<Instant>,
    /// When to refresh; `None` while in flight, before installation, or when not refreshed.
    refresh_at: Option<Instant>,
}

/// What to do after a CreatePermission failed, per peer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct FailureOutcome {
    /// Retry now: the permission still holds and the failure was a timeout.
    pub(super) retry: Vec<IpAddr>,
    /// Report as failed.
    pub(super) failed: Vec<IpAddr>,
}

/// The client's copy of the allocation's permissions.
#[derive(Clone, Debug, Default)]
pub(super) struct Permissions {
    entries: Vec<Permission>,
}

impl Permission {
    /// Keep refreshing it; an installed permission whose refreshing had stopped (removed,
    /// or a refresh failed) gets a refresh scheduled again.
    fn keep(&mut self) {
        self.keep = true;
        if let (Some(expires), None, false) = (self.expires_at, self.refresh_at, self.in_flight) {
            self.refresh_at = Some(expires - (PERMISSION_LIFETIME - PERMISSION_REFRESH));
        }
    }
}

impl Permissions {
    fn find(&mut self, ip: IpAddr) -> Option<&mut Permission> {
        self.entries.iter_mut().find(|p| p.ip == ip)
    }

    /// The user asks for `ips`. Returns the addresses that need a CreatePermission now (new
    /// ones, marked in flight) and those already installed.
    pub(super) fn request(&mut self, ips: &[IpAddr]) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let (mut new, mut installed) = (Vec::new(), Vec::new());
        for &ip in ips {
            match self.find(ip) {
                Some(p) => {
                    p.keep();
                    if p.expires_at.is_some() && !installed.contains(&ip) {
                        installed.push(ip);
                    }
                }
                None => {
                    self.entries.push(Permission {
                        ip,
                        keep: true,
                        in_flight: true,
                        expires_at: None,
                        refresh_at: None,
                    });
                    new.push(ip);
                }
            }
        }
        (new, installed)
    }

    /// A ChannelBind towards `ip` is about to be sent: it installs the permission too
    /// (RFC 8656 §12.1), so the address counts as permitted from now, and is kept.
    pub(super) fn ensure(&mut self, ip: IpAddr) {
        match self.find(ip) {
            Some(p) => p.keep(),
            None => self.entries.push(Permission {
                ip,
                keep: true,
                in_flight: false,
                expires_at: None,
                refresh_at: None,
            }),
        }
    }

    /// True if a permission for `ip` was asked for and has not lapsed. Asked-for but not yet
    /// confirmed counts: the request travels ahead of the data on the same path.
    pub(super) fn is_permitted(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|p| p.ip == ip)
    }

    /// Stops refreshing `ip`; the server lets it lapse within 300 s, and so does the client.
    pub(super) fn stop_refreshing(&mut self, ip: IpAddr) -> bool {
        match self.find(ip) {
            Some(p) if p.keep => {
                p.keep = false;
                p.refresh_at = None;
                true
            }
            _ => false,
        }
    }

    /// A CreatePermission (or ChannelBind) sent at `sent_at` succeeded for `ips`. Returns
    /// the ones installed for the first time.
    pub(super) fn on_success(&mut self, ips: &[IpAddr], sent_at: Instant) -> Vec<IpAddr> {
        let mut first = Vec::new();
        for &ip in ips {
            if let Some(p) = self.find(ip) {
                if p.expires_at.is_none() {
                    first.push(ip);
                }
                p.in_flight = false;
                // The server's 300 s start when it processes the request, no earlier than
                // when it was sent.
                p.expires_at = Some(sent_at + PERMISSION_LIFETIME);
                p.refresh_at = p.keep.then_some(sent_at + PERMISSION_REFRESH);
            }
        }
        first
    }

    /// A ChannelBind towards `ip` sent at `sent_at` succeeded: it installed or refreshed the
    /// permission too (RFC 8656 §12.3). An earlier scheduled refresh is kept, so that the
    /// permissions stay refreshed together in one CreatePermission.
    pub(super) fn refreshed_by_channel(&mut self, ip: IpAddr, sent_at: Instant) {
        let Some(p) = self.find(ip) else { return };
        let expires_at = sent_at + PERMISSION_LIFETIME;
        p.expires_at = Some(p.expires_at.map_or(expires_at, |e| e.max(expires_at)));
        let refresh_at = sent_at + PERMISSION_REFRESH;
        if p.keep && !p.in_flight {
            p.refresh_at = Some(p.refresh_at.map_or(refresh_at, |r| r.min(refresh_at)));
        }
    }

    /// A CreatePermission for `ips` failed at `now`.
    pub(super) fn on_failure(
        &mut self,
        ips: &[IpAddr],
        now: Instant,
        timed_out: bool,
    ) -> FailureOutcome {
        let mut out = FailureOutcome::default();
        for &ip in ips {
            let Some(p) = self.find(ip) else { continue };
            p.in_flight = false;
            match p.expires_at {
                // Still valid on the server: a lost exchange is worth another try.
                Some(expiry) if timed_out && now < expiry && p.keep => {
                    p.in_flight = true;
                    out.retry.push(ip);
                }
                // Installed: it lapses at its expiry.
                Some(_) => out.failed.push(ip),
                None => {
                    out.failed.push(ip);
                    self.entries.retain(|p| p.ip != ip);
                }
            }
        }
        out
    }

    /// Forgets `ip` if it was never installed and nothing is installing it (a first
    /// ChannelBind towards it failed).
    pub(super) fn forget_if_uninstalled(&mut self, ip: IpAddr) {
        self.entries
            .retain(|p| p.ip != ip || p.expires_at.is_some() || p.in_flight);
    }

    /// Removes the permissions that have lapsed.
    pub(super) fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|p| p.in_flight || p.expires_at.is_none_or(|e| e > now));
    }

    /// The kept permissions to refresh now: every one due, and with them those due within
    /// [`COALESCE`], so that one request refreshes several. They are marked in flight.
    pub(super) fn due_refresh(&mut self, now: Instant) -> Vec<IpAddr> {
        if !self
            .entries
            .iter()
            .any(|p| p.refresh_at.is_some_and(|t| t <= now))
        {
            return Vec::new();
        }
        let mut due = Vec::new();
        for p in &mut self.entries {
            if p.keep && !p.in_flight && p.refresh_at.is_some_and(|t| t <= now + COALESCE) {
                p.in_flight = true;
                p.refresh_at = None;
                due.push(p.ip);
            }
        }
        due
    }

    /// The earliest refresh or expiry.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .flat_map(|p| [p.refresh_at, p.expires_at.filter(|_| !p.in_flight)])
            .flatten()
            .min()
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl Client {
    /// Asks the server to install permissions for `peers` (RFC 8656 §10.1: one
    /// XOR-PEER-ADDRESS each, at most 32 per request) and keeps them refreshed every
    /// 240 s until [`remove_permission`](Self::remove_permission). Permissions already
    /// installed are reported again at once. Sending to the peers is allowed from now on.
    pub fn create_permission(&mut self, now: Instant, peers: &[IpAddr]) -> Result<(), ClientError> {
        self.check_peers(peers)?;
        let (new, installed) = self.permissions.request(peers);
        if !installed.is_empty() {
            self.events
                .push_back(ClientEvent::PermissionCreated { peers: installed });
        }
        for chunk in new.chunks(MAX_PEERS_PER_REQUEST) {
            let request = Request::CreatePermission {
                peers: chunk.to_vec(),
            };
            if let Err(e) = self.start_request(now, Pending::new(request, now)) {
                self.permissions.on_failure(chunk, now, false);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stops refreshing the permission for `peer`; it lapses within 300 s. Returns false if
    /// there is no such permission being refreshed, or if a channel to that address needs
    /// it (channels cannot be unbound in TURN; they and their permission live as long as the
    /// allocation).
    pub fn remove_permission(&mut self, peer: IpAddr) -> bool {
        !self.channels.has_peer_ip(peer) && self.permissions.stop_refreshing(peer)
    }

    /// True if data to and from `peer` is allowed: a permission was asked for (by
    /// `create_permission` or `bind_channel`) and has not lapsed.
    pub fn has_permission(&self, peer: IpAddr) -> bool {
        self.permissions.is_permitted(peer)
    }

    fn check_peers(&self, peers: &[IpAddr]) -> Result<(), ClientError> {
        if self.state != ClientState::Allocated {
            return Err(ClientError::NotAllocated);
        }
        if peers.is_empty() {
            return Err(ClientError::NoPeers);
        }
        match peers.iter().find(|ip| !self.has_relay_for(**ip)) {
            Some(ip) => Err(ClientError::PeerFamilyMismatch(*ip)),
            None => Ok(()),
        }
    }

    pub(super) fn on_permission_success(&mut self, peers: &[IpAddr], sent_at: Instant) {
        let first = self.permissions.on_success(peers, sent_at);
        if !first.is_empty() {
            self.events
                .push_back(ClientEvent::PermissionCreated { peers: first });
        }
    }

    pub(super) fn on_permission_failed(
        &mut self,
        now: Instant,
        peers: &[IpAddr],
        reason: RequestFailure,
    ) {
        let timed_out = reason == RequestFailure::Timeout;
        let outcome = self.permissions.on_failure(peers, now, timed_out);
        if !outcome.retry.is_empty() {
            self.send_permission_refresh(now, outcome.retry);
        }
        if !outcome.failed.is_empty() {
            self.events.push_back(ClientEvent::PermissionFailed {
                peers: outcome.failed,
                reason,
            });
        }
    }

    /// Drops lapsed permissions and sends the refreshes that are due.
    pub(super) fn permission_timers(&mut self, now: Instant) {
        self.permissions.expire(now);
        let due = self.permissions.due_refresh(now);
        if !due.is_empty() {
            self.send_permission_refresh(now, due);
        }
    }

    fn send_permission_refresh(&mut self, now: Instant, ips: Vec<IpAddr>) {
        for chunk in ips.chunks(MAX_PEERS_PER_REQUEST) {
            let request = Request::CreatePermission {
                peers: chunk.to_vec(),
            };
            if let Err(e) = self.start_request(now, Pending::new(request, now)) {
                tracing::debug!(error = %e, "permission refresh not sent");
                self.permissions.on_failure(chunk, now, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, n])
    }

    #[test]
    fn request_install_refresh_and_lapse() {
        let t0 = Instant::now();
        let mut p = Permissions::default();
        assert_eq!(p.request(&[ip(1), ip(2)]), (vec![ip(1), ip(2)], vec![]));
        assert!(p.is_permitted(ip(1)));
        assert_eq!(p.on_success(&[ip(1), ip(2)], t0), vec![ip(1), ip(2)]);
        assert_eq!(p.request(&[ip(1), ip(3)]), (vec![ip(3)], vec![ip(1)]));
        assert_eq!(p.next_timeout(), Some(t0 + PERMISSION_REFRESH));
        // Nothing due just before 240 s; at 240 s both are refreshed in one go.
        assert!(p.due_refresh(t0 + Duration::from_secs(239)).is_empty());
        assert_eq!(p.due_refresh(t0 + PERMISSION_REFRESH), vec![ip(1), ip(2)]);
        // ip(2) is no longer wanted: after its refresh succeeds it is not refreshed again.
        assert!(p.stop_refreshing(ip(2)));
        let t1 = t0 + PERMISSION_REFRESH;
        p.on_success(&[ip(1), ip(2)], t1);
        assert_eq!(p.due_refresh(t1 + PERMISSION_REFRESH), vec![ip(1)]);
        p.expire(t1 + PERMISSION_LIFETIME);
        assert!(!p.is_permitted(ip(2)));
        assert!(p.is_permitted(ip(1)), "in flight: kept");
    }

    #[test]
    fn asking_again_resumes_refreshing() {
        let t0 = Instant::now();
        let mut p = Permissions::default();
        p.request(&[ip(1)]);
        p.on_success(&[ip(1)], t0);
        p.stop_refreshing(ip(1));
        assert_eq!(p.next_timeout(), Some(t0 + PERMISSION_LIFETIME));
        assert_eq!(p.request(&[ip(1)]), (vec![], vec![ip(1)]));
        assert_eq!(p.next_timeout(), Some(t0 + PERMISSION_REFRESH));
    }

    #[test]
    fn coalescing_takes_those_due_soon() {
        let t0 = Instant::now();
        let mut p = Permissions::default();
        p.request(&[ip(1)]);
        p.on_success(&[ip(1)], t0);
        p.request(&[ip(2)]);
        p.on_success(&[ip(2)], t0 + Duration::from_secs(20));
        p.request(&[ip(3)]);
        p.on_success(&[ip(3)], t0 + Duration::from_secs(40));
        assert_eq!(p.due_refresh(t0 + PERMISSION_REFRESH), vec![ip(1), ip(2)]);
    }

    #[test]
    fn failures_retry_or_forget() {
        let t0 = Instant::now();
        let mut p = Permissions::default();
        p.request(&[ip(1), ip(2)]);
        p.on_success(&[ip(1)], t0);
        // ip(2) never installed: forgotten. ip(1) installed and a timeout: retried.
        let out = p.on_failure(&[ip(1), ip(2)], t0 + Duration::from_secs(280), true);
        assert_eq!(out.retry, vec![ip(1)]);
        assert_eq!(out.failed, vec![ip(2)]);
        assert!(!p.is_permitted(ip(2)));
        // After its expiry a timeout is final; the permission lapses.
        let out = p.on_failure(&[ip(1)], t0 + Duration::from_secs(300), true);
        assert_eq!(out.failed, vec![ip(1)]);
        p.expire(t0 + Duration::from_secs(300));
        assert!(!p.is_permitted(ip(1)));
    }
}
