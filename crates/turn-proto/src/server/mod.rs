//! The TURN server (RFC 8656), Sans-IO. Being built.
