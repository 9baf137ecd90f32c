//! ICE-TCP (RFC 6544): the connection lifecycle the agent drives and the driver carries out.
//! A check over a TCP pair needs the pair's connection first (§7.1); checks, responses and
//! data then travel over it as RFC 4571 frames (§3); a connection that cannot be opened, or
//! that closes, fails the pairs that depend on it.

use super::{Agent, CheckContext};
use crate::candidate::{CandidateType, TcpType};
use crate::events::{Event, StreamId};
use crate::pair::{PairId, PairState};
use crate::stream::Via;
use crate::tcp::{TcpConnection, TcpState};
use std::net::SocketAddr;
use std::time::Instant;

impl Agent {
    /// The driver opened the connection the agent asked for with [`Event::TcpConnect`] (for
    /// a simultaneous open: the one connection both sides' attempts made). Checks waiting
    /// for it are sent at once. A connection the agent does not wait for is ignored.
    pub fn tcp_connected(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        if self.closed {
            return;
        }
        match self.tcp.get_mut(local, remote) {
            Some(c) if matches!(c.state, TcpState::Connecting { .. }) => {
                c.state = TcpState::Connected;
            }
            _ => {
                tracing::debug!(%local, %remote, "unexpected TCP connection ignored");
                return;
            }
        }
        tracing::debug!(%local, %remote, "TCP connected");
        self.send_waiting_checks(now, local, remote);
        self.update_states(now);
    }

    /// The connection asked for with [`Event::TcpConnect`] could not be opened (refused,
    /// unreachable, timed out in the driver): the checks waiting for it fail (RFC 6544 §7.1).
    pub fn tcp_connect_failed(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        if self.closed {
            return;
        }
        let connecting = self
            .tcp
            .get(local, remote)
            .is_some_and(|c| matches!(c.state, TcpState::Connecting { .. }));
        if !connecting {
            return;
        }
        self.tcp.remove(local, remote);
        tracing::debug!(%local, %remote, "TCP connection failed");
        self.stats.tcp_connect_failures += 1;
        self.fail_tcp_pairs(now, local, remote, false);
        self.update_states(now);
    }

    /// The driver accepted a connection on the listening socket `local` from `remote`. The
    /// agent keeps it if `local` is one of its passive (or simultaneous-open) TCP candidates
    /// and it has room (`max_tcp_connections`): then it returns true and the peer's checks
    /// arrive over it. On false, close the connection (or offer it to another agent).
    pub fn tcp_accepted(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) -> bool {
        if self.closed {
            return false;
        }
        let ours = self.streams.iter().flat_map(|s| &s.local).any(|l| {
            l.via() == Via::Tcp
                && l.cand.kind == CandidateType::Host
                && l.cand.base == local
                && l.cand.tcp_type != Some(TcpType::Active)
        });
        if !ours {
            self.stats.tcp_refused += 1;
            return false;
        }
        if let Some(c) = self.tcp.get(local, remote) {
            if matches!(c.state, TcpState::Connecting { .. }) {
                // A simultaneous open reported by the listening side.
                self.tcp_connected(now, local, remote);
            }
            return true;
        }
        if self.tcp.len() >= self.config.max_tcp_connections {
            tracing::debug!(%local, %remote, "TCP connection refused: too many");
            self.stats.tcp_refused += 1;
            return false;
        }
        tracing::debug!(%local, %remote, "TCP connection accepted");
        self.tcp.insert(TcpConnection {
            local,
            remote,
            state: TcpState::Connected,
        });
        true
    }

    /// An open connection closed (the peer closed it, it broke, or its byte stream could not
    /// be framed). Checks in flight on it fail, its pairs can no longer be used, and a
    /// selected pair on it loses consent ([`Event::ConsentLost`]): nothing more is sent there.
    pub fn tcp_closed(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        if self.closed || self.tcp.remove(local, remote).is_none() {
            return;
        }
        tracing::debug!(%local, %remote, "TCP connection closed");
        self.fail_tcp_pairs(now, local, remote, true);
        self.lose_tcp_paths(local, remote);
        self.update_states(now);
    }

    /// RFC 6544 §7.1: the connection of a TCP pair must be open before its check goes out.
    /// True if it is; otherwise the agent asks for it (from an active or simultaneous-open
    /// candidate) and the pair waits In-Progress, or the pair fails (a passive candidate
    /// whose connection is gone cannot open another).
    pub(super) fn tcp_ready_for_check(
        &mut self,
        now: Instant,
        stream: usize,
        id: PairId,
        ctx: &CheckContext,
    ) -> bool {
        let state = self.tcp.get(ctx.socket, ctx.remote).map(|c| c.state);
        if state == Some(TcpState::Connected) {
            return true;
        }
        let tcp_type = self
            .streams
            .get(stream)
            .and_then(|s| s.local.get(usize::from(s.checklist.get(id)?.local)))
            .and_then(|l| l.cand.tcp_type);
        let wait = match (state, tcp_type) {
            (Some(_), _) => true,
            (None, Some(t @ (TcpType::Active | TcpType::SimultaneousOpen)))
                if self.tcp.len() < self.config.max_tcp_connections =>
            {
                self.tcp.insert(TcpConnection {
                    local: ctx.socket,
                    remote: ctx.remote,
                    state: TcpState::Connecting {
                        deadline: now + self.config.tcp_connect_timeout,
                    },
                });
                self.stats.tcp_connects += 1;
                tracing::debug!(local = %ctx.socket, remote = %ctx.remote, ?t, "TCP connect");
                self.emit(Event::TcpConnect {
                    local: ctx.socket,
                    remote: ctx.remote,
                    tcp_type: t,
                });
                true
            }
            _ => false,
        };
        if let Some(p) = self
            .streams
            .get_mut(stream)
            .and_then(|s| s.checklist.get_mut(id))
        {
            p.state = PairState::InProgress;
            p.transaction = None;
        }
        if !wait {
            self.check_failed(now, *ctx);
        }
        false
    }

    /// The checks that waited for a connection go out (they had their Ta slot when the
    /// connection was asked for).
    fn send_waiting_checks(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        for (stream, id) in self.tcp_pairs(local, remote, true) {
            self.start_check(now, stream, id);
        }
    }

    /// The pairs of every stream over the connection `(local, remote)`; with `waiting`, only
    /// those In-Progress without a transaction: waiting for the connection to open.
    fn tcp_pairs(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        waiting: bool,
    ) -> Vec<(usize, PairId)> {
        let mut out = Vec::new();
        for (i, s) in self.streams.iter().enumerate() {
            for p in &s.checklist.pairs {
                let on_conn = s
                    .local
                    .get(usize::from(p.local))
                    .is_some_and(|l| l.via() == Via::Tcp && l.cand.base == local)
                    && s.remote
                        .get(usize::from(p.remote))
                        .is_some_and(|r| r.cand.address == remote);
                let is_waiting = p.state == PairState::InProgress && p.transaction.is_none();
                if on_conn && (!waiting || is_waiting) {
                    out.push((i, p.id));
                }
            }
        }
        out
    }

    /// A connection failed or closed: checks on it fail (RFC 6544 §7.1); with `closed`, its
    /// succeeded and valid pairs are unusable too.
    fn fail_tcp_pairs(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        closed: bool,
    ) {
        for (stream, id) in self.tcp_pairs(local, remote, false) {
            let Some(p) = self.streams.get(stream).and_then(|s| s.checklist.get(id)) else {
                continue;
            };
            match p.state {
                PairState::InProgress => {
                    if let Some(tid) = p.transaction {
                        self.transactions.cancel(&tid);
                    }
                    let ctx = self.check_context(stream, id).map(|(c, _)| c);
                    if let Some(p) = self.pair_mut(stream, id) {
                        p.transaction = None;
                    }
                    if let Some(ctx) = ctx {
                        self.check_failed(now, ctx);
                    }
                }
                _ if closed => {
                    if let Some(p) = self.pair_mut(stream, id) {
                        p.state = PairState::Failed;
                        p.valid = false;
                        p.inbound = false;
                    }
                }
                _ => {}
            }
        }
    }

    fn pair_mut(&mut self, stream: usize, id: PairId) -> Option<&mut crate::pair::CandidatePair> {
        self.streams.get_mut(stream)?.checklist.get_mut(id)
    }

    /// A selected (or previous) path over a closed connection can no longer carry anything.
    fn lose_tcp_paths(&mut self, local: SocketAddr, remote: SocketAddr) {
        let mut lost = Vec::new();
        for (i, s) in self.streams.iter_mut().enumerate() {
            for (c, comp) in s.components.iter_mut().enumerate() {
                for path in [comp.selected.as_mut(), comp.previous.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    let on_conn = path.via == Via::Tcp
                        && path.socket() == local
                        && path.remote.address == remote;
                    if on_conn && !path.consent.lost {
                        path.consent.lost = true;
                        lost.push((i, c as u16 + 1));
                    }
                }
            }
        }
        for (stream, component) in lost {
            self.emit(Event::ConsentLost {
                stream: StreamId(stream as u16),
                component,
            });
        }
        self.data_route = None;
    }

    /// Connection attempts that took too long are abandoned and fail their checks.
    pub(super) fn tcp_timeouts(&mut self, now: Instant) {
        for c in self.tcp.take_expired(now) {
            tracing::debug!(local = %c.local, remote = %c.remote, "TCP connect timed out");
            self.stats.tcp_connect_failures += 1;
            self.emit(Event::TcpClose {
                local: c.local,
                remote: c.remote,
            });
            self.fail_tcp_pairs(now, c.local, c.remote, false);
        }
    }

    /// The next connection deadline, or the end of a wait for inbound connections.
    pub(super) fn tcp_timeout(&self) -> Option<Instant> {
        let accept = self
            .streams
            .iter()
            .filter(|s| s.checklist.state == crate::checklist::CheckListState::Running)
            .filter_map(|s| s.accept_deadline)
            .min();
        [self.tcp.timeout(), accept].into_iter().flatten().min()
    }

    /// Closes every connection (the agent is closing).
    pub(super) fn close_all_tcp(&mut self) {
        for c in self.tcp.take_all() {
            self.emit(Event::TcpClose {
                local: c.local,
                remote: c.remote,
            });
        }
    }

    /// Once every component has its selected pair, connections no path uses are closed:
    /// they carried checks that lost (RFC 8445 §8.1.2 stops checking the other pairs).
    pub(super) fn sweep_tcp(&mut self) {
        let unused: Vec<(SocketAddr, SocketAddr)> = self
            .tcp
            .iter()
            .filter(|c| {
                !self
                    .streams
                    .iter()
                    .flat_map(|s| &s.components)
                    .flat_map(|c| [c.selected.as_deref(), c.previous.as_deref()])
                    .flatten()
                    .any(|p| {
                        p.via == Via::Tcp && p.socket() == c.local && p.remote.address == c.remote
                    })
            })
            .map(|c| (c.local, c.remote))
            .collect();
        for (local, remote) in unused {
            tracing::debug!(%local, %remote, "closing unused TCP connection");
            self.tcp.remove(local, remote);
            self.emit(Event::TcpClose { local, remote });
        }
    }
}
