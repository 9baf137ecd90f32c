//! Paths in use: data (RFC 8445 §12), consent freshness (RFC 7675) and keepalives (§11).

use super::Agent;
use crate::check::{self, CheckRequest};
use crate::consent::{Consent, ConsentChange};
use crate::error::SendError;
use crate::events::{Event, StreamId};
use crate::priority::check_priority;
use crate::stream::{Path, Via};
use rand_core::Rng;
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::{Class, Message};

/// Which of a component's paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Selected,
    Previous,
}

/// Something due on a path.
#[derive(Clone, Copy, Debug)]
struct Due {
    stream: usize,
    component: u16,
    which: Which,
}

impl Agent {
    fn path(&self, due: Due) -> Option<&Path> {
        let c = self.streams.get(due.stream)?.component(due.component)?;
        match due.which {
            Which::Selected => c.selected.as_deref(),
            Which::Previous => c.previous.as_deref(),
        }
    }

    fn path_mut(&mut self, due: Due) -> Option<&mut Path> {
        let c = self
            .streams
            .get_mut(due.stream)?
            .component_mut(due.component)?;
        match due.which {
            Which::Selected => c.selected.as_deref_mut(),
            Which::Previous => c.previous.as_deref_mut(),
        }
    }

    fn all_paths(&self) -> Vec<Due> {
        let mut out = Vec::new();
        for (i, s) in self.streams.iter().enumerate() {
            for (c, comp) in s.components.iter().enumerate() {
                let component = c as u16 + 1;
                if comp.selected.is_some() {
                    out.push(Due {
                        stream: i,
                        component,
                        which: Which::Selected,
                    });
                }
                if comp.previous.is_some() {
                    out.push(Due {
                        stream: i,
                        component,
                        which: Which::Previous,
                    });
                }
            }
        }
        out
    }

    /// A fresh consent state for a path validated just now.
    pub(super) fn new_consent(&mut self, now: Instant) -> Consent {
        let interval = Consent::interval(&self.config.consent, self.rng.next_u32());
        Consent::new(now, interval)
    }

    /// Consent checks, expiry and keepalives that are due.
    pub(super) fn run_paths(&mut self, now: Instant) {
        for due in self.all_paths() {
            self.run_path(now, due);
        }
    }

    fn run_path(&mut self, now: Instant, due: Due) {
        let full = !self.config.lite;
        let consent = self.config.consent.clone();
        let keepalive = self.config.keepalive_interval;
        let Some(path) = self.path_mut(due) else {
            return;
        };
        if path.consent.lost {
            return;
        }
        if consent.enabled {
            match path.consent.check(now, &consent) {
                ConsentChange::Lost => {
                    tracing::debug!(remote = %path.remote.address, "consent lost");
                    self.emit(Event::ConsentLost {
                        stream: StreamId(due.stream as u16),
                        component: due.component,
                    });
                    return;
                }
                ConsentChange::Disconnected => {
                    tracing::debug!(remote = %path.remote.address, "no consent response: disconnected");
                }
                _ => {}
            }
            if full && now >= path.consent.next_check {
                self.send_consent_check(now, due);
            }
        }
        let Some(path) = self.path_mut(due) else {
            return;
        };
        // RFC 8445 §11: a Binding indication when nothing was sent for Tr.
        if now >= path.consent.last_sent + keepalive {
            path.consent.last_sent = now;
            let (socket, remote, via) = (path.socket(), path.remote.address, path.via);
            let tid = self.random_transaction_id();
            if let Ok(payload) = check::build_indication(tid) {
                if let Some(t) = self.wrap(now, socket, remote, via, payload) {
                    self.stats.keepalives_sent += 1;
                    self.transmits.push_back(t);
                }
            }
        }
    }

    /// RFC 7675 §5.1: a Binding request with the usual check attributes and a new
    /// transaction ID, at a randomised interval.
    fn send_consent_check(&mut self, now: Instant, due: Due) {
        let Some(path) = self.path(due) else { return };
        let (socket, remote, via) = (path.socket(), path.remote.address, path.via);
        let priority = check_priority(&path.local);
        let generation = match due.which {
            Which::Selected => Some(&self.current),
            Which::Previous => self.previous.as_deref(),
        };
        let Some(creds) = generation.and_then(|g| g.remote.as_ref()) else {
            return;
        };
        let tid = stun_proto::TransactionId::random(&mut self.rng);
        let request = CheckRequest {
            username: &creds.username,
            priority,
            role: self.role,
            tie_breaker: self.tie_breaker,
            use_candidate: false,
            key: &creds.key,
        };
        let Ok(payload) = check::build_request(tid, &request) else {
            return;
        };
        let next = Consent::interval(&self.config.consent, self.rng.next_u32());
        if let Some(t) = self.wrap(now, socket, remote, via, payload) {
            self.transmits.push_back(t);
            self.stats.consent_checks_sent += 1;
        }
        if let Some(path) = self.path_mut(due) {
            path.consent.record_check(now, tid, next);
        }
    }

    /// A response to a consent check: authenticated and symmetric, it refreshes consent.
    pub(super) fn on_consent_response(
        &mut self,
        now: Instant,
        socket: SocketAddr,
        from: SocketAddr,
        via: Via,
        msg: &Message<'_>,
    ) -> bool {
        let tid = msg.transaction_id();
        let Some(due) = self
            .all_paths()
            .into_iter()
            .find(|&d| self.path(d).is_some_and(|p| p.consent.is_outstanding(&tid)))
        else {
            return false;
        };
        let generation = match due.which {
            Which::Selected => Some(&self.current),
            Which::Previous => self.previous.as_deref(),
        };
        let authentic = generation
            .and_then(|g| g.remote.as_ref())
            .is_some_and(|r| msg.verify(&r.key).is_ok());
        let Some(path) = self.path_mut(due) else {
            return false;
        };
        let symmetric = from == path.remote.address && socket == path.socket() && via == path.via;
        if !authentic || !symmetric {
            self.stats.responses_dropped += 1;
            return true;
        }
        path.consent.take(&tid);
        // RFC 7675 §5.1: only a success response grants consent.
        if msg.class() == Class::Success {
            path.consent.refresh(now);
        }
        true
    }

    /// The next consent, expiry or keepalive deadline.
    pub(super) fn paths_timeout(&self) -> Option<Instant> {
        let full = !self.config.lite;
        let consent = &self.config.consent;
        // No allocation: this runs after every datagram.
        self.streams
            .iter()
            .flat_map(|s| s.components.iter())
            .flat_map(|c| [c.selected.as_deref(), c.previous.as_deref()])
            .flatten()
            .filter(|p| !p.consent.lost)
            .flat_map(|p| {
                let check = (full && consent.enabled).then_some(p.consent.next_check);
                let expiry = if consent.enabled {
                    p.consent.deadline(consent)
                } else {
                    None
                };
                [
                    check,
                    expiry,
                    Some(p.consent.last_sent + self.config.keepalive_interval),
                ]
            })
            .flatten()
            .min()
    }

    /// Where a component's data goes: the selected pair; before selection the best valid
    /// pair (RFC 8445 §12.1); during a restart the previous selected pair.
    pub(super) fn data_path(
        &self,
        stream: StreamId,
        component: u16,
    ) -> Result<(SocketAddr, SocketAddr, Via), SendError> {
        let s = self
            .streams
            .get(stream.index())
            .ok_or(SendError::UnknownStream)?;
        let c = s.component(component).ok_or(SendError::UnknownComponent)?;
        let on = |p: &Path| {
            if p.consent.lost {
                Err(SendError::ConsentExpired)
            } else {
                Ok((p.socket(), p.remote.address, p.via))
            }
        };
        if let Some(p) = &c.selected {
            return on(p);
        }
        if let Some(v) = s.checklist.best_valid(component) {
            if let (Some(l), Some(r)) = (
                s.local.get(usize::from(v.local)),
                s.remote.get(usize::from(v.remote)),
            ) {
                return Ok((l.cand.base, r.cand.address, l.via()));
            }
        }
        match &c.previous {
            Some(p) => on(p),
            None => Err(SendError::NotConnected),
        }
    }
}
