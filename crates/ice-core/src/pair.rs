//! Candidate pairs (RFC 8445 §6.1.2.2) and their states (§6.1.2.6).

use stun_proto::TransactionId;

/// The state of a candidate pair (RFC 8445 §6.1.2.6, figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PairState {
    /// Not checked yet, and not allowed to be until unfrozen.
    Frozen,
    /// May be checked at the next opportunity.
    Waiting,
    /// A check is in flight.
    InProgress,
    /// A check succeeded.
    Succeeded,
    /// A check failed.
    Failed,
}

impl PairState {
    /// True while a check may still be sent or answered: Frozen, Waiting or In-Progress.
    pub const fn is_pending(self) -> bool {
        matches!(
            self,
            PairState::Frozen | PairState::Waiting | PairState::InProgress
        )
    }
}

/// Identifies a pair within its stream's checklist; never reused within a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PairId(pub(crate) u32);

/// One candidate pair. Candidates are referred to by their index in the stream's local and
/// remote lists, which only grow within a generation, so a pair stays small (RFC 8445
/// figure 5: local, remote, default/valid/nominated flags, state).
#[derive(Clone, Debug)]
pub(crate) struct CandidatePair {
    pub(crate) id: PairId,
    pub(crate) local: u16,
    pub(crate) remote: u16,
    pub(crate) component: u16,
    /// RFC 8445 §6.1.2.3, recomputed when the role changes.
    pub(crate) priority: u64,
    pub(crate) state: PairState,
    /// In the valid list (RFC 8445 §7.2.5.3.2).
    pub(crate) valid: bool,
    /// The nominated flag of a valid pair (RFC 8445 §7.2.5.3.4).
    pub(crate) nominated: bool,
    /// False for valid pairs made from a reflexive local candidate, which are not in the
    /// checklist proper (RFC 8445 §7.2.5.3.2, case 3) and are never scheduled.
    pub(crate) in_checklist: bool,
    /// For a valid pair: the pair whose check produced it (itself in the common case). A
    /// nomination repeats that pair's check (RFC 8445 §8.1.1).
    pub(crate) generator: PairId,
    /// Controlling agent: the next check of this pair carries USE-CANDIDATE.
    pub(crate) use_candidate: bool,
    /// Controlled agent: a USE-CANDIDATE request triggered this pair's check, so its success
    /// nominates (RFC 8445 §7.3.1.5).
    pub(crate) nominate_on_success: bool,
    /// An authenticated check arrived over this pair: the peer vouches for the path, so its
    /// data is accepted before our own check of the pair completes.
    pub(crate) inbound: bool,
    /// The check in flight.
    pub(crate) transaction: Option<TransactionId>,
}

impl CandidatePair {
    pub(crate) fn new(id: PairId, local: u16, remote: u16, component: u16, priority: u64) -> Self {
        CandidatePair {
            id,
            local,
            remote,
            component,
            priority,
            state: PairState::Frozen,
            valid: false,
            nominated: false,
            in_checklist: true,
            generator: id,
            use_candidate: false,
            nominate_on_success: false,
            inbound: false,
            transaction: None,
        }
    }
}
