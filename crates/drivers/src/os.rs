//! The only places floe reads the operating system's clock and randomness.

use std::io;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A 64-bit seed from the OS random generator, for a state machine's `new(config, seed, now)`.
pub fn seed() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch, for wall-clock needs such as TURN REST credential expiry.
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
