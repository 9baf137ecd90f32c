//! The TURN client (RFC 8656 §7–§12), Sans-IO. Being built.
