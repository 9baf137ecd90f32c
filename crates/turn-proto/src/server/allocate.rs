//! Allocate (RFC 8656 §7.2) and the relay binds it waits for.
//!
//! An Allocate that passes every check takes its port(s) from the pool at once, creates
//! the allocation in a pending state, and asks the driver to bind the relay socket(s)
//! ([`ServerEvent::BindRelay`]). The response waits until every bind is reported (or the
//! bind timeout passes): all failed -> 508; some failed in a dual allocation -> success
//! with ADDRESS-ERROR-CODE for the missing family (§7.2 step 9).

use super::allocation::{Allocation, FiveTuple, Relay, family_index};
use super::auth::Authenticated;
use super::config::RelayBinding;
use super::io::{BindFailure, DeleteReason, RelayBoundError, ServerEvent};
use super::ports::{PortRequest, Token};
use super::response::{AllocateSuccess, Answer, Signing, Success};
use super::table::NEVER;
use super::{Millis, Server};
use rand_core::Rng;
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::attributes::{
    AdditionalAddressFamily, AddressFamily, AttributeType, EvenPort, Lifetime,
    RequestedAddressFamily, RequestedTransport, ReservationToken,
};
use stun_proto::{IntegrityKey, Message, Method, TransactionId, TransportProtocol};

/// The state of one relay socket bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bind {
    Waiting,
    Bound,
    Failed,
}

/// An Allocate waiting for its relay bind(s).
#[derive(Debug)]
pub(crate) struct PendingAllocate {
    tid: TransactionId,
    sha256: bool,
    lifetime: u32,
    /// Indexed like [`Allocation::relays`].
    binds: [Option<Bind>; 2],
    /// ADDITIONAL-ADDRESS-FAMILY was asked for: one family failing is not fatal.
    dual: bool,
}

/// The Allocate attributes, decoded; `None` from [`read`](Self::read) if one is malformed.
#[derive(Clone, Copy, Debug)]
struct AllocateAttrs {
    even_port: Option<EvenPort>,
    family: Option<AddressFamily>,
    additional: Option<AddressFamily>,
    token: Option<Token>,
    lifetime: Option<u32>,
    /// UDP, or TCP for an RFC 6062 allocation.
    relay_transport: TransportProtocol,
}

impl AllocateAttrs {
    fn read(msg: &Message<'_>, relay_transport: TransportProtocol) -> Option<AllocateAttrs> {
        Some(AllocateAttrs {
            relay_transport,
            even_port: msg.get::<EvenPort>().ok()?,
            family: msg.get::<RequestedAddressFamily>().ok()?.map(|f| f.0),
            additional: msg.get::<AdditionalAddressFamily>().ok()?.map(|f| f.0),
            token: msg.get::<ReservationToken>().ok()?.map(|t| t.0),
            lifetime: msg.get::<Lifetime>().ok()?.map(|l| l.0),
        })
    }
}

/// The relayed addresses chosen for a new allocation.
#[derive(Debug, Default)]
struct Chosen {
    relays: [Option<SocketAddr>; 2],
    token: Option<Token>,
    address_error: Option<(AddressFamily, u16)>,
}

fn index(family: AddressFamily) -> usize {
    match family {
        AddressFamily::Ipv4 => 0,
        AddressFamily::Ipv6 => 1,
    }
}

fn family_at(i: usize) -> AddressFamily {
    if i == 0 {
        AddressFamily::Ipv4
    } else {
        AddressFamily::Ipv6
    }
}

impl Server {
    /// RFC 8656 §7.2. The request is authenticated (step 1).
    pub(super) fn handle_allocate(
        &mut self,
        now: Millis,
        tuple: FiveTuple,
        msg: &Message<'_>,
        auth: &Authenticated<'_>,
        existing: Option<u32>,
    ) -> Answer {
        // Step 2: the 5-tuple is in use. A retransmission the cache no longer holds is
        // answered again from the allocation (RFC 8656 §5, "stateless stack approach").
        if let Some(id) = existing {
            return self.answer_existing(now, id, msg.transaction_id(), auth);
        }
        let attrs = match self.check_allocate(&tuple, msg) {
            Ok(a) => a,
            Err(answer) => return answer,
        };
        // Step 10: quotas (by username, as the RFC advises, and by client IP).
        let quota_key = self.auth.credentials.quota_key(&auth.username);
        let total_full = self
            .config
            .quotas
            .total
            .is_some_and(|t| self.table.len() >= t);
        if total_full
            || self
                .users
                .over_quota(&self.config.quotas, quota_key, tuple.client.ip())
        {
            return Answer::Error(486);
        }
        let chosen = match self.choose_relays(now, &attrs) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        let user = self
            .users
            .acquire(&auth.username, quota_key, tuple.client.ip());
        let id = self.create_pending(now, tuple, msg, auth, user, &attrs, chosen);
        if self.config.relay_binding == RelayBinding::Automatic {
            if let Some(p) = self.pending.get_mut(&id) {
                p.binds.iter_mut().flatten().for_each(|b| *b = Bind::Bound);
            }
            self.finish_pending(now, id);
        }
        Answer::Deferred
    }

    /// Steps 3 to 9: the attributes.
    fn check_allocate(
        &self,
        tuple: &FiveTuple,
        msg: &Message<'_>,
    ) -> Result<AllocateAttrs, Answer> {
        // Step 3: REQUESTED-TRANSPORT missing or malformed -> 400; not UDP -> 442, unless
        // TCP allocations are enabled (RFC 6062 §5.1).
        let relay_transport = match msg.get::<RequestedTransport>() {
            Ok(Some(RequestedTransport::UDP)) => TransportProtocol::Udp,
            Ok(Some(RequestedTransport::TCP)) if self.config.tcp_allocations => {
                // RFC 6062 §5.1: over a UDP control connection, or with DONT-FRAGMENT,
                // EVEN-PORT or RESERVATION-TOKEN: 400.
                if !tuple.transport.is_reliable()
                    || msg.has(AttributeType::DONT_FRAGMENT)
                    || msg.has(AttributeType::EVEN_PORT)
                    || msg.has(AttributeType::RESERVATION_TOKEN)
                {
                    return Err(Answer::Error(400));
                }
                TransportProtocol::Tcp
            }
            Ok(Some(_)) => return Err(Answer::Error(442)),
            _ => return Err(Answer::Error(400)),
        };
        // Step 4: DONT-FRAGMENT the driver cannot honour is an unknown attribute.
        if msg.has(AttributeType::DONT_FRAGMENT) && !self.config.dont_fragment {
            return Err(Answer::UnknownAttributes(
                [AttributeType::DONT_FRAGMENT].into_iter().collect(),
            ));
        }
        let a = AllocateAttrs::read(msg, relay_transport).ok_or(Answer::Error(400))?;
        // Step 5: RESERVATION-TOKEN excludes EVEN-PORT and both family attributes; an
        // unknown or expired token -> 508.
        if let Some(token) = &a.token {
            if a.even_port.is_some() || a.family.is_some() || a.additional.is_some() {
                return Err(Answer::Error(400));
            }
            if self.ports.reservation_family(token).is_none() {
                return Err(Answer::Error(508));
            }
            return Ok(a);
        }
        // Step 6: not both family attributes.
        if a.family.is_some() && a.additional.is_some() {
            return Err(Answer::Error(400));
        }
        // Step 7: the family asked for (IPv4 by default) must be served -> else 440.
        if !self
            .ports
            .has_family(a.family.unwrap_or(AddressFamily::Ipv4))
        {
            return Err(Answer::Error(440));
        }
        // Step 8: EVEN-PORT with R cannot go with a dual allocation.
        if a.even_port.is_some_and(|e| e.reserve) && a.additional.is_some() {
            return Err(Answer::Error(400));
        }
        // Step 9: ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6.
        if a.additional == Some(AddressFamily::Ipv4) {
            return Err(Answer::Error(400));
        }
        Ok(a)
    }

    /// Takes the relayed address(es) from the pool (508 if none can be had).
    fn choose_relays(&mut self, now: Millis, a: &AllocateAttrs) -> Result<Chosen, Answer> {
        let slot = self.table.next_slot();
        let mut c = Chosen::default();
        if let Some(token) = &a.token {
            // RFC 8656 §7.2: the previously reserved address, if still available.
            let addr = self
                .ports
                .take_reservation(token, slot, now)
                .ok_or(Answer::Error(508))?;
            c.relays[family_index(addr.ip())] = Some(addr);
            return Ok(c);
        }
        let primary = a.family.unwrap_or(AddressFamily::Ipv4);
        let request = match a.even_port {
            None => PortRequest::Any,
            Some(e) if e.reserve => PortRequest::EvenReserveNext,
            Some(_) => PortRequest::Even,
        };
        let first = self.ports.acquire(&mut self.rng, primary, slot, request);
        if let Some((addr, next)) = first {
            c.relays[index(primary)] = Some(addr);
            if let Some(next) = next {
                // RFC 8656 §7.2: hold N+1 for at least 30 s under a token.
                let mut token = [0u8; 8];
                self.rng.fill_bytes(&mut token);
                let expires = now + self.config.reservation_lifetime.as_millis() as Millis;
                self.ports.reserve(next, token, expires);
                c.token = Some(token);
            }
        }
        if a.additional == Some(AddressFamily::Ipv6) {
            // Step 9: a family that cannot be served is reported, not fatal.
            if !self.ports.has_family(AddressFamily::Ipv6) {
                c.address_error = Some((AddressFamily::Ipv6, 440));
            } else {
                match self
                    .ports
                    .acquire(&mut self.rng, AddressFamily::Ipv6, slot, PortRequest::Any)
                {
                    Some((addr, _)) => c.relays[1] = Some(addr),
                    None => c.address_error = Some((AddressFamily::Ipv6, 508)),
                }
            }
            if first.is_none() && c.relays[1].is_some() {
                c.address_error = Some((AddressFamily::Ipv4, 508));
            }
        }
        if c.relays.iter().all(Option::is_none) {
            return Err(Answer::Error(508));
        }
        Ok(c)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_pending(
        &mut self,
        now: Millis,
        tuple: FiveTuple,
        msg: &Message<'_>,
        auth: &Authenticated<'_>,
        user: u32,
        attrs: &AllocateAttrs,
        chosen: Chosen,
    ) -> u32 {
        let lifetime = self.clamp_lifetime(attrs.lifetime);
        // Until the binds are reported the relays "expire" at the bind deadline, so the
        // allocation's timer doubles as the bind timeout. Automatic binds need none.
        let expires = match self.config.relay_binding {
            RelayBinding::Automatic => now + Millis::from(lifetime) * 1000,
            _ => now + self.config.relay_bind_timeout.as_millis() as Millis,
        };
        let relays = chosen.relays.map(|r| r.map(|addr| Relay { addr, expires }));
        self.learn_listening_address(tuple.server);
        let id = self.table.insert(Allocation {
            five_tuple: tuple,
            relays,
            user,
            key: auth.key,
            allocate_tid: msg.transaction_id(),
            reservation_token: chosen.token,
            address_error: chosen.address_error,
            active: false,
            relay_transport: attrs.relay_transport,
            timer: NEVER,
            permissions: SmallVec::new(),
            channels: SmallVec::new(),
        });
        for relayed in chosen.relays.iter().flatten() {
            self.events.push_back(ServerEvent::BindRelay {
                relayed: *relayed,
                transport: attrs.relay_transport,
            });
        }
        let pending = PendingAllocate {
            tid: msg.transaction_id(),
            sha256: auth.sha256,
            lifetime,
            binds: chosen.relays.map(|r| r.map(|_| Bind::Waiting)),
            dual: attrs.additional.is_some(),
        };
        self.pending.insert(id, pending);
        id
    }

    /// RFC 8656 §7.2: `min(requested, max)`, but never below the default; the default when
    /// none is asked for.
    pub(super) fn clamp_lifetime(&self, requested: Option<u32>) -> u32 {
        let default = self.config.default_lifetime.as_secs() as u32;
        let max = self.config.max_lifetime.as_secs() as u32;
        requested.map_or(default, |r| r.min(max).max(default))
    }

    /// An Allocate on a 5-tuple that has an allocation: the same transaction again gets
    /// the success response; anything else 437 (RFC 8656 §7.2 step 2).
    fn answer_existing(
        &self,
        now: Millis,
        id: u32,
        tid: TransactionId,
        auth: &Authenticated<'_>,
    ) -> Answer {
        match self.table.get(id) {
            Some(a)
                if a.active
                    && a.allocate_tid == tid
                    && self.users.name(a.user) == auth.username =>
            {
                Answer::Success(Success::Allocate(Box::new(allocate_success(a, now))))
            }
            _ => Answer::Error(437),
        }
    }

    /// The driver reports the bind of a relay socket asked for by
    /// [`ServerEvent::BindRelay`]. When every bind of an Allocate is reported, its response
    /// is queued: success, or 508 if no relay could be bound. A failed port is kept out of
    /// the pool for [`failed_port_quarantine`](super::ServerConfig::failed_port_quarantine).
    pub fn relay_bound(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        result: Result<(), BindFailure>,
    ) -> Result<(), RelayBoundError> {
        let not_pending = RelayBoundError::NotPending(relayed);
        let now_ms = self.millis(now);
        let id = self.ports.owner(relayed).ok_or(not_pending)?;
        let f = family_index(relayed.ip());
        let ours = self
            .table
            .get(id)
            .and_then(|a| a.relays[f])
            .is_some_and(|r| r.addr == relayed);
        let bind = self
            .pending
            .get_mut(&id)
            .and_then(|p| p.binds[f].as_mut())
            .filter(|b| ours && **b == Bind::Waiting)
            .ok_or(not_pending)?;
        *bind = if result.is_ok() {
            Bind::Bound
        } else {
            Bind::Failed
        };
        if let Err(failure) = result {
            tracing::debug!(%relayed, ?failure, "relay bind failed");
            self.stats.failed_binds += 1;
            let until = now_ms + self.config.failed_port_quarantine.as_millis() as Millis;
            self.ports.quarantine(relayed, until);
        }
        let done = self
            .pending
            .get(&id)
            .is_some_and(|p| !p.binds.contains(&Some(Bind::Waiting)));
        if done {
            self.finish_pending(now_ms, id);
        }
        Ok(())
    }

    /// Answers a pending Allocate: its binds are all reported, or the timeout passed (the
    /// binds still waiting count as failed, and their sockets are released in case the
    /// driver binds them late).
    pub(super) fn finish_pending(&mut self, now: Millis, id: u32) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let quarantine = now + self.config.failed_port_quarantine.as_millis() as Millis;
        let Some(alloc) = self.table.get_mut(id) else {
            return;
        };
        let mut late: SmallVec<[SocketAddr; 2]> = SmallVec::new();
        let mut failed = None;
        for (i, bind) in p.binds.iter().enumerate() {
            match bind {
                Some(Bind::Bound) => {
                    if let Some(r) = alloc.relays[i].as_mut() {
                        r.expires = now + Millis::from(p.lifetime) * 1000;
                    }
                }
                Some(Bind::Waiting) | Some(Bind::Failed) => {
                    if let (Some(r), Some(Bind::Waiting)) = (alloc.relays[i].take(), bind) {
                        late.push(r.addr);
                    }
                    failed = Some(family_at(i));
                }
                None => {}
            }
        }
        let tuple = alloc.five_tuple;
        let key = alloc.key;
        let relay_transport = alloc.relay_transport;
        let answer = if alloc.is_empty() {
            Answer::Error(508)
        } else {
            if let (true, Some(family)) = (p.dual, failed) {
                alloc.address_error = Some((family, 508));
            }
            alloc.active = true;
            Answer::Success(Success::Allocate(Box::new(allocate_success(alloc, now))))
        };
        for addr in late {
            self.release_relay(addr, relay_transport);
            self.ports.quarantine(addr, quarantine);
        }
        if let Answer::Success(Success::Allocate(s)) = &answer {
            self.table.schedule(id);
            let username = self
                .table
                .get(id)
                .map(|a| self.users.name(a.user).to_string());
            self.events.push_back(ServerEvent::AllocationCreated {
                five_tuple: tuple,
                username: username.unwrap_or_default(),
                relayed: s.relayed.to_vec(),
            });
        } else {
            if let Some(token) = self.table.get(id).and_then(|a| a.reservation_token) {
                self.ports.cancel_reservation(&token);
            }
            self.delete_allocation(id, DeleteReason::BindFailed);
        }
        let integrity = IntegrityKey::new(key.as_bytes());
        let signing = Signing {
            key: &integrity,
            sha256: p.sha256,
        };
        self.send_answer(now, tuple, Method::ALLOCATE, p.tid, &answer, signing);
    }
}

/// The Allocate success attributes of an allocation (RFC 8656 §7.2): its relayed
/// address(es), the time-to-expiry now, the reservation token and the client's mapped
/// address.
fn allocate_success(a: &Allocation, now: Millis) -> AllocateSuccess {
    let relays = a.relays.iter().flatten();
    let remaining = relays
        .clone()
        .map(|r| r.expires.saturating_sub(now).div_ceil(1000))
        .min()
        .unwrap_or(0);
    AllocateSuccess {
        relayed: relays.map(|r| r.addr).collect(),
        address_error: a.address_error,
        lifetime: remaining as u32,
        token: a.reservation_token,
        mapped: a.five_tuple.client,
    }
}
