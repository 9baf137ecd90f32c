//! STUN messages from clients: requests are checked (RFC 8489 §6.3, §9.2.4), handed to the
//! method handlers, and answered; the response to an authenticated request is signed and
//! cached for retransmissions (RFC 8489 §6.3.1, RFC 8656 §5).

use super::auth::{AuthContext, AuthError, Authenticated, OFFERED_ALGORITHMS};
use super::response::{Answer, Signing, build_answer, build_challenge};
use super::{FiveTuple, MAX_UNKNOWN_LISTED, Millis, RESPONSE_BUF, Server, ServerOutput};
use rand_core::Rng;
use smallvec::SmallVec;
use std::time::Instant;
use stun_proto::attributes::{AttributeType, ErrorCode};
use stun_proto::{Class, HEADER_LEN, Input, Message, Method, TransactionId, Transmit, peek_header};

impl Server {
    /// A STUN message from a client: requests are answered (queued for `poll_transmit`),
    /// Send indications relayed, anything else dropped and counted.
    pub(super) fn handle_stun<'a>(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        data: &'a [u8],
    ) -> ServerOutput<'a> {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(error) => {
                tracing::debug!(%error, from = %tuple.client, "malformed STUN");
                self.handle_malformed(tuple, data);
                return ServerOutput::Handled;
            }
        };
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            self.stats.drops.bad_fingerprint += 1;
            return ServerOutput::Handled;
        }
        match (msg.class(), msg.method()) {
            (Class::Request, _) => {
                self.handle_request(now, tuple, &msg);
                ServerOutput::Handled
            }
            (Class::Indication, Method::SEND) => {
                let now_ms = self.millis(now);
                self.relay_send_indication(now_ms, &tuple, &msg)
            }
            // A Binding indication is a keepalive: nothing to do.
            (Class::Indication, Method::BINDING) => ServerOutput::Handled,
            _ => {
                self.stats.drops.unexpected_stun += 1;
                ServerOutput::Handled
            }
        }
    }

    /// A message that does not parse: a 400 if the header shows a request (RFC 8489
    /// §6.3.1), else dropped.
    fn handle_malformed(&mut self, tuple: FiveTuple, data: &[u8]) {
        match peek_header(data) {
            Some((mtype, _)) if mtype.class == Class::Request => {
                let mut id = [0u8; 12];
                id.copy_from_slice(&data[8..HEADER_LEN]);
                self.reply_unauthenticated(
                    tuple,
                    mtype.method,
                    TransactionId::new(id),
                    400,
                    &[],
                    0,
                );
            }
            _ => self.stats.drops.malformed_stun += 1,
        }
    }

    fn handle_request(&mut self, now: Instant, tuple: FiveTuple, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let method = msg.method();
        if method == Method::BINDING {
            return self.handle_binding(now, tuple, msg);
        }
        // RFC 8489 §6.3.1, RFC 8656 §5: a retransmission gets the identical response and is
        // not executed again.
        if let Some(cached) = self.cache.get(&tid, tuple.client) {
            self.stats.retransmissions += 1;
            let payload = cached.to_vec();
            self.queue(tuple, payload);
            return;
        }
        let rfc6062 = self.config.tcp_allocations
            && matches!(method, Method::CONNECT | Method::CONNECTION_BIND);
        if !rfc6062
            && !matches!(
                method,
                Method::ALLOCATE
                    | Method::REFRESH
                    | Method::CREATE_PERMISSION
                    | Method::CHANNEL_BIND
            )
        {
            return self.reply_unauthenticated(tuple, method, tid, 400, &[], 0);
        }
        // RFC 8489 §6.3.1.1: unknown comprehension-required attributes -> 420.
        let unknown: SmallVec<[AttributeType; 4]> = msg
            .unknown_comprehension_required()
            .take(MAX_UNKNOWN_LISTED)
            .collect();
        if !unknown.is_empty() {
            return self.reply_unauthenticated(tuple, method, tid, 420, &unknown, 0);
        }
        let existing = self.table.find(&tuple);
        if let Some(id) = existing.filter(|id| self.pending.contains_key(id)) {
            if method == Method::ALLOCATE
                && self.table.get(id).is_some_and(|a| a.allocate_tid == tid)
            {
                // The answer comes when the relay bind is reported.
                self.stats.drops.pending_retransmission += 1;
                return;
            }
        }
        if method == Method::CONNECTION_BIND {
            // Authenticated against the allocation its CONNECTION-ID names.
            return self.handle_connection_bind(now, tuple, msg, existing);
        }
        let now_ms = self.millis(now);
        let auth = match self.authenticate(now_ms, &tuple, msg, existing) {
            Ok(a) => a,
            Err(e) => return self.reply_auth_error(now_ms, tuple, method, tid, e),
        };
        let answer = match method {
            Method::ALLOCATE => self.handle_allocate(now_ms, tuple, msg, &auth, existing),
            _ => match self.owned_allocation(existing, &auth) {
                Err(code) => Answer::Error(code),
                Ok(id) => self.dispatch(now_ms, id, method, msg, auth.sha256),
            },
        };
        if answer != Answer::Deferred {
            let signing = Signing {
                key: &auth.integrity,
                sha256: auth.sha256,
            };
            self.send_answer(now_ms, tuple, method, tid, &answer, signing);
        }
    }

    fn dispatch(
        &mut self,
        now: Millis,
        id: u32,
        method: Method,
        msg: &Message<'_>,
        sha256: bool,
    ) -> Answer {
        match method {
            Method::REFRESH => self.handle_refresh(now, id, msg),
            Method::CREATE_PERMISSION => self.handle_create_permission(now, id, msg),
            Method::CHANNEL_BIND => self.handle_channel_bind(now, id, msg),
            Method::CONNECT => self.handle_connect(now, id, msg, sha256),
            _ => Answer::Error(400),
        }
    }

    fn handle_binding(&mut self, now: Instant, tuple: FiveTuple, msg: &Message<'_>) {
        let input = Input {
            transport: tuple.transport,
            source: tuple.client,
            destination: tuple.server,
            data: msg.as_bytes(),
        };
        let _ = self.binding.handle_input(now, input);
        while let Some(t) = self.binding.poll_transmit() {
            let parsed = Message::parse(&t.payload);
            match parsed
                .as_ref()
                .map(|m| (m.class(), m.get::<ErrorCode<'_>>()))
            {
                Ok((Class::Success, _)) => self.stats.success_responses += 1,
                Ok((_, Ok(Some(e)))) => self.stats.errors.count(e.code()),
                _ => self.stats.errors.count(400),
            }
            self.transmits.push_back(t);
        }
    }

    /// RFC 8656 §5: non-Allocate requests need an allocation on the 5-tuple (437) created
    /// by the same user (441).
    fn owned_allocation(
        &self,
        existing: Option<u32>,
        auth: &Authenticated<'_>,
    ) -> Result<u32, u16> {
        let id = existing
            .filter(|id| !self.pending.contains_key(id))
            .ok_or(437u16)?;
        let alloc = self.table.get(id).ok_or(437u16)?;
        if self.users.name(alloc.user) != auth.username {
            return Err(441);
        }
        Ok(id)
    }

    fn authenticate<'m>(
        &self,
        now: Millis,
        tuple: &FiveTuple,
        msg: &Message<'m>,
        existing: Option<u32>,
    ) -> Result<Authenticated<'m>, AuthError> {
        let existing = existing
            .and_then(|id| self.table.get(id))
            .map(|a| (self.users.name(a.user), &a.key));
        let cx = AuthContext {
            client_ip: tuple.client.ip(),
            now_secs: (now / 1000) as u32,
            wall_now: self.config.unix_time_at_start + now / 1000,
            existing,
        };
        self.auth.check(msg, cx)
    }

    /// 401 and 438 carry the realm and a fresh nonce; 400 nothing (RFC 8489 §9.2.4).
    pub(super) fn reply_auth_error(
        &mut self,
        now: Millis,
        tuple: FiveTuple,
        method: Method,
        tid: TransactionId,
        error: AuthError,
    ) {
        tracing::debug!(?error, client = %tuple.client, "authentication failed");
        self.reply_unauthenticated(tuple, method, tid, error.code(), &[], now);
    }

    /// An error response to a request that was not (or could not be) authenticated. For
    /// 401 and 438 a fresh nonce valid from `now` is added.
    fn reply_unauthenticated(
        &mut self,
        tuple: FiveTuple,
        method: Method,
        tid: TransactionId,
        code: u16,
        unknown: &[AttributeType],
        now: Millis,
    ) {
        let nonce = matches!(code, 401 | 438).then(|| {
            let expiry =
                ((now / 1000) as u32).saturating_add(self.config.nonce_lifetime.as_secs() as u32);
            let salt = self.rng.next_u32();
            self.auth.nonces.issue(expiry, salt, tuple.client.ip())
        });
        let realm_nonce = nonce.as_ref().map(|n| (self.config.realm.as_str(), &n[..]));
        let mut buf = [0u8; RESPONSE_BUF];
        match build_challenge(
            &mut buf,
            method,
            tid,
            code,
            unknown,
            realm_nonce,
            &OFFERED_ALGORITHMS,
        ) {
            Ok(payload) => {
                self.stats.errors.count(code);
                self.queue(tuple, payload);
            }
            Err(error) => tracing::warn!(%error, "could not build an error response"),
        }
    }

    /// Sends (and caches) the response to an authenticated request.
    pub(super) fn send_answer(
        &mut self,
        now: Millis,
        tuple: FiveTuple,
        method: Method,
        tid: TransactionId,
        answer: &Answer,
        signing: Signing<'_>,
    ) {
        // RFC 8656 §5: SOFTWARE in all Allocate and Refresh responses.
        let software = matches!(method, Method::ALLOCATE | Method::REFRESH)
            .then_some(self.config.software.as_deref())
            .flatten();
        let mut buf = [0u8; RESPONSE_BUF];
        match build_answer(&mut buf, method, tid, answer, signing, software) {
            Ok(payload) => {
                match answer {
                    Answer::Success(_) => self.stats.success_responses += 1,
                    Answer::Error(code) => self.stats.errors.count(*code),
                    Answer::UnknownAttributes(_) => self.stats.errors.count(420),
                    Answer::Deferred => {}
                }
                let at = self.instant(now);
                self.cache.insert(at, tid, tuple.client, payload.clone());
                self.queue(tuple, payload);
            }
            Err(error) => tracing::warn!(%error, "could not build a response"),
        }
    }

    pub(super) fn queue(&mut self, tuple: FiveTuple, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: tuple.transport,
            source: tuple.server,
            destination: tuple.client,
            payload,
        });
    }
}
