//! Gathering server-reflexive candidates (RFC 8445 §5.1.1.2): a Binding request from each
//! host base to each STUN server of its address family, paced by Ta.

use crate::events::GatheringState;
use std::collections::VecDeque;

/// One Binding transaction towards a STUN server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GatherJob {
    pub(crate) stream: u16,
    /// The host candidate the request leaves from.
    pub(crate) local: u16,
    /// Index into the configured STUN servers.
    pub(crate) server: u8,
}

/// Gathering progress.
#[derive(Debug)]
pub(crate) struct Gathering {
    /// Jobs waiting for a Ta slot.
    pub(crate) queue: VecDeque<GatherJob>,
    /// Jobs with a transaction in flight.
    pub(crate) in_flight: usize,
    /// The caller said no more host candidates will come.
    pub(crate) hosts_done: bool,
    pub(crate) state: GatheringState,
    /// Server-reflexive and relayed candidates expected, for the gathering RTO (§14.3).
    pub(crate) expected: usize,
}

impl Default for Gathering {
    fn default() -> Self {
        Gathering {
            queue: VecDeque::new(),
            in_flight: 0,
            hosts_done: false,
            state: GatheringState::New,
            expected: 0,
        }
    }
}

impl Gathering {
    /// True while STUN transactions are queued or in flight.
    pub(crate) fn busy(&self) -> bool {
        !self.queue.is_empty() || self.in_flight > 0
    }

    pub(crate) fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}
