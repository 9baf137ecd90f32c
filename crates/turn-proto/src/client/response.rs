//! Incoming STUN messages: matching responses to transactions, the authentication gate of
//! RFC 8489 §9.2.5, the 401/438/300/420 retries, and dispatch to the request's handler.

use super::Client;
use super::auth::is_bid_down;
use super::events::{ErrorKind, ExpiryReason, Received, RequestFailure, ServerError};
use super::request::{Pending, Request};
use std::time::Instant;
use stun_proto::attributes::{AttributeType, ErrorCode, Realm, UnknownAttributes};
use stun_proto::{Class, Input, Message, Method};

/// 438 Stale Nonce retries in a row before giving up (a server that keeps sending fresh
/// nonces that it then rejects would otherwise loop).
const MAX_STALE_RETRIES: u8 = 3;
/// 401 retries in a row: the first challenge, and one more if the realm changes.
const MAX_AUTH_RETRIES: u8 = 2;

/// The TURN request methods whose responses the client owns.
fn is_turn_method(m: Method) -> bool {
    matches!(
        m,
        Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND
            | Method::CONNECT
            | Method::CONNECTION_BIND
    )
}

impl Client {
    pub(super) fn handle_stun<'a>(&mut self, now: Instant, input: Input<'a>) -> Received<'a> {
        let msg = match Message::parse(input.data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "malformed STUN from the server dropped");
                self.stats.dropped_malformed += 1;
                return Received::Consumed;
            }
        };
        match msg.class() {
            Class::Indication if msg.method() == Method::DATA => self.on_data_indication(&msg),
            Class::Indication if msg.method() == Method::CONNECTION_ATTEMPT => {
                self.on_connection_attempt(now, &msg)
            }
            Class::Success | Class::Error if is_turn_method(msg.method()) => {
                self.on_response(now, input, &msg);
                Received::Consumed
            }
            // Binding responses and the like belong to whoever shares the socket (ICE).
            _ => Received::NotMine,
        }
    }

    /// Input on an RFC 6062 data connection whose ConnectionBind runs: only the response
    /// to it belongs there; anything else is dropped.
    pub(super) fn handle_data_connection<'a>(
        &mut self,
        now: Instant,
        input: Input<'a>,
    ) -> Received<'a> {
        match Message::parse(input.data) {
            Ok(msg)
                if matches!(msg.class(), Class::Success | Class::Error)
                    && msg.method() == Method::CONNECTION_BIND =>
            {
                self.on_response(now, input, &msg)
            }
            _ => {
                tracing::debug!("unexpected input on a data connection dropped");
                self.stats.dropped_malformed += 1;
            }
        }
        Received::Consumed
    }

    fn on_response(&mut self, now: Instant, input: Input<'_>, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let Some(pending) = self.transactions.context(&tid) else {
            tracing::debug!(%tid, "response to no transaction in flight dropped");
            self.stats.dropped_unmatched += 1;
            return;
        };
        if pending.request.method() != msg.method() {
            self.stats.dropped_unmatched += 1;
            return;
        }
        let authenticated = pending.authenticated;
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            self.stats.dropped_malformed += 1;
            return;
        }
        let error = match msg.class() {
            Class::Error => match msg.get::<ErrorCode<'_>>() {
                Ok(Some(e)) => Some(ServerError::new(e.code(), e.reason())),
                _ => {
                    tracing::debug!(%tid, "error response without a valid ERROR-CODE dropped");
                    self.stats.dropped_malformed += 1;
                    return;
                }
            },
            _ => None,
        };
        if !self.is_authentic(msg, error.as_ref(), authenticated) {
            tracing::debug!(%tid, "response failed authentication, dropped");
            self.stats.dropped_unauthenticated += 1;
            return self.on_integrity_failure(now, tid);
        }
        let Some(done) = self.transactions.match_response(now, &tid, input.source) else {
            return;
        };
        self.take_integrity_failure(&tid);
        let pending = done.context;
        // RFC 8489 §6.3.3–6.3.4: unknown comprehension-required attributes fail the
        // transaction.
        let unknown: Vec<u16> = msg.unknown_comprehension_required().map(|t| t.0).collect();
        if !unknown.is_empty() {
            let failure = RequestFailure::UnknownAttributes(unknown);
            return self.on_request_failed(now, pending, failure);
        }
        match error {
            None => self.on_success(now, pending, msg),
            Some(e) => self.on_error(now, pending, msg, e),
        }
    }

    /// RFC 8489 §9.2.5. 401 and 438 are the challenges themselves and carry no integrity.
    /// Any other response carrying a nonce cookie that promises PASSWORD-ALGORITHMS without
    /// the attribute is ignored. A response to a request sent with credentials must carry
    /// valid integrity; without it (a 400 included) it is discarded as if never received.
    fn is_authentic(&self, msg: &Message<'_>, error: Option<&ServerError>, authed: bool) -> bool {
        if error.is_some_and(|e| e.code == 401 || e.code == 438) {
            return true;
        }
        if is_bid_down(msg) {
            return false;
        }
        !authed || self.auth.verify(msg)
    }

    /// Over UDP a response with bad integrity is discarded and retransmission goes on; the
    /// timeout is then reported as an integrity violation. Over TCP/TLS the transaction ends
    /// at once (RFC 8489 §9.2.5).
    fn on_integrity_failure(&mut self, now: Instant, tid: stun_proto::TransactionId) {
        if self.config.transport.is_reliable() {
            if let Some(pending) = self.transactions.cancel(&tid) {
                self.on_request_failed(now, pending, RequestFailure::IntegrityViolation);
            }
        } else if !self.integrity_failed.contains(&tid) {
            self.integrity_failed.push(tid);
        }
    }

    fn on_success(&mut self, now: Instant, pending: Pending, msg: &Message<'_>) {
        let sent_at = pending.sent_at;
        match pending.request {
            Request::Allocate => self.on_allocate_success(now, sent_at, msg),
            Request::Refresh { lifetime: 0 } => self.finish_delete(),
            Request::Refresh { .. } => self.on_refresh_success(now, sent_at, msg),
            Request::CreatePermission { peers } => self.on_permission_success(&peers, sent_at),
            Request::ChannelBind { channel, peer } => {
                self.on_channel_success(channel, peer, sent_at)
            }
            Request::Connect { peer } => self.on_connect_success(now, peer, msg),
            Request::ConnectionBind {
                connection_id,
                local,
            } => self.on_connection_bound(connection_id, local),
        }
    }

    fn on_error(&mut self, now: Instant, pending: Pending, msg: &Message<'_>, e: ServerError) {
        match e.code {
            401 => self.on_unauthenticated(now, pending, msg, e),
            438 => self.on_stale_nonce(now, pending, msg, e),
            300 if pending.request == Request::Allocate => {
                self.on_try_alternate(now, &pending, msg)
            }
            420 if pending.request == Request::Allocate && self.refuses_dont_fragment(msg) => {
                // RFC 8656 §7.4: the server cannot set DF; the Allocate MAY be retried
                // without DONT-FRAGMENT.
                self.dont_fragment = false;
                self.retry(now, pending);
            }
            _ => self.on_request_failed(now, pending, RequestFailure::Rejected(e)),
        }
    }

    fn refuses_dont_fragment(&self, msg: &Message<'_>) -> bool {
        self.dont_fragment
            && msg
                .get::<UnknownAttributes<'_>>()
                .ok()
                .flatten()
                .is_some_and(|u| u.iter().any(|t| t == AttributeType::DONT_FRAGMENT))
    }

    /// RFC 8489 §9.2.5: learn the challenge and retry, unless credentials were already sent
    /// for this realm (the server refuses them) or the retries are used up.
    fn on_unauthenticated(
        &mut self,
        now: Instant,
        pending: Pending,
        msg: &Message<'_>,
        e: ServerError,
    ) {
        let realm_changed = match msg.get::<Realm<'_>>() {
            Ok(Some(r)) => Some(r.as_str()) != self.auth.realm(),
            _ => false,
        };
        if (pending.authenticated && !realm_changed) || pending.auth_retries >= MAX_AUTH_RETRIES {
            return self.on_request_failed(now, pending, RequestFailure::Rejected(e));
        }
        match self.auth.learn_challenge(msg) {
            Ok(()) => {
                let mut next = pending;
                next.auth_retries += 1;
                self.retry(now, next);
            }
            Err(a) => self.on_request_failed(now, pending, RequestFailure::Auth(a)),
        }
    }

    /// RFC 8489 §9.2.5: retry with the new NONCE, a bounded number of times.
    fn on_stale_nonce(
        &mut self,
        now: Instant,
        pending: Pending,
        msg: &Message<'_>,
        e: ServerError,
    ) {
        if pending.stale_retries >= MAX_STALE_RETRIES {
            return self.on_request_failed(now, pending, RequestFailure::Rejected(e));
        }
        match self.auth.learn_stale_nonce(msg) {
            Ok(()) => {
                let mut next = pending;
                next.stale_retries += 1;
                self.retry(now, next);
            }
            Err(a) => self.on_request_failed(now, pending, RequestFailure::Auth(a)),
        }
    }

    /// A request failed for good (or timed out): route to its owner.
    pub(super) fn on_request_failed(
        &mut self,
        now: Instant,
        pending: Pending,
        failure: RequestFailure,
    ) {
        tracing::debug!(request = ?pending.request, %failure, "request failed");
        let mismatch = matches!(&failure, RequestFailure::Rejected(e) if e.kind == ErrorKind::AllocationMismatch);
        match pending.request {
            Request::Allocate => self.fail_allocation(failure.into()),
            // A data connection's failure is its own: the allocation is not in question.
            Request::ConnectionBind { connection_id, .. } => {
                self.on_connection_bind_failed(connection_id, failure)
            }
            // RFC 8656 §8.3: a 437 to a delete means it is already gone; any other failure
            // leaves nothing more to do but let it lapse.
            Request::Refresh { lifetime: 0 } => self.finish_delete(),
            // RFC 8656 §5: "A client receiving a 437 error response to a request other than
            // Allocate MUST assume the allocation no longer exists."
            _ if mismatch => self.expire(ExpiryReason::Failure(failure)),
            Request::Refresh { .. } => self.on_refresh_failed(now, failure),
            Request::CreatePermission { ref peers } => {
                self.on_permission_failed(now, peers, failure)
            }
            Request::ChannelBind { channel, peer } => {
                self.on_channel_failed(now, &pending, channel, peer, failure)
            }
            Request::Connect { peer } => self.on_connect_failed(peer, failure),
        }
    }
}
