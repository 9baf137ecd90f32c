//! ICE attributes (RFC 8445 §16.1).

use super::{flag_attribute, int_attribute};

int_attribute! {
    /// PRIORITY (RFC 8445 §7.1.1): the priority a peer-reflexive candidate learnt from this
    /// check would get.
    Priority(u32) = PRIORITY, 4
}

flag_attribute! {
    /// USE-CANDIDATE (RFC 8445 §7.1.2): the controlling agent nominates this pair.
    UseCandidate = USE_CANDIDATE
}

int_attribute! {
    /// ICE-CONTROLLED (RFC 8445 §7.1.3): the sender thinks it is controlled; the value is its
    /// tie-breaker.
    IceControlled(u64) = ICE_CONTROLLED, 8
}

int_attribute! {
    /// ICE-CONTROLLING (RFC 8445 §7.1.3): the sender thinks it is controlling; the value is
    /// its tie-breaker.
    IceControlling(u64) = ICE_CONTROLLING, 8
}
