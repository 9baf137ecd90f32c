//! A virtual clock, and the timer invariant every stateful target checks.
//!
//! # The timer invariant, precisely
//!
//! The drivers sleep until `poll_timeout()` and then call `handle_timeout(now)` with the
//! current time. Between `handle_*` calls a machine may return a deadline at or before the
//! last `now` it saw: that means "due at once" (a command queued work, or the driver slept
//! too long), and the driver's next `handle_timeout(now)` does it. What must never happen:
//!
//! * **settled**: right after `handle_timeout(now)` (the machine has done everything due at
//!   `now`), `poll_timeout()` is `None` or strictly later than `now`. A deadline at or
//!   before `now` at that point would make a driver spin: it would call `handle_timeout`
//!   again and again without the clock moving on. Since the `now`s a driver passes never
//!   decrease, this is what "timers never go backwards" means: once a machine is up to
//!   date at `now`, it never asks to be woken at an instant earlier than (or equal to) any
//!   `now` it was given.
//! * **idempotent**: a second `handle_timeout(now)` at the same `now` emits nothing (no
//!   datagram, no event): "calling it twice is harmless" (the Sans-IO contract).
//!
//! [`Clock::settle`] drives a machine to that point and checks both.

use std::time::{Duration, Instant};

/// The shortest step the targets take: time in whole milliseconds keeps the server's
/// millisecond clock and the harness's model in agreement.
pub const TICK: Duration = Duration::from_millis(1);

/// A virtual clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Time zero.
    pub origin: Instant,
    /// Now.
    pub now: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock at its origin.
    pub fn new() -> Clock {
        let origin = Instant::now();
        Clock {
            origin,
            now: origin,
        }
    }

    /// Milliseconds since the origin.
    pub fn millis(&self) -> u128 {
        (self.now - self.origin).as_millis()
    }

    /// Moves forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

/// What a stateful target needs from a machine to check the timer invariant.
pub trait Timed {
    /// `handle_timeout(now)`.
    fn timeout(&mut self, now: Instant);
    /// `poll_timeout()`.
    fn deadline(&self) -> Option<Instant>;
    /// Drains transmits and events; returns how many there were.
    fn drain(&mut self) -> usize;
}

/// Checks the invariant after `handle_timeout(now)` has been called and the output drained:
/// the next deadline is after `now`, and a second call at `now` emits nothing.
pub fn check_settled<M: Timed + ?Sized>(name: &str, m: &mut M, now: Instant) {
    if let Some(t) = m.deadline() {
        assert!(
            t > now,
            "{name}: right after handle_timeout(now), poll_timeout() is {:?} before now",
            now.saturating_duration_since(t)
        );
    }
    m.timeout(now);
    let extra = m.drain();
    assert_eq!(
        extra, 0,
        "{name}: a second handle_timeout at the same instant emitted {extra} datagrams/events"
    );
}

/// Runs every deadline up to `until` at its own instant (as a driver woken on time would),
/// then `handle_timeout(until)`; checks the invariant at each step. `on_output` sees the
/// output after each call. Gives up after `max_steps` deadlines (and asserts the machine is
/// not asking for an unbounded number of wake-ups in a bounded time).
pub fn run_until<M: Timed + ?Sized>(
    name: &str,
    m: &mut M,
    clock: &mut Clock,
    until: Instant,
    max_steps: usize,
    mut on_output: impl FnMut(&mut M, Instant),
) {
    let mut steps = 0;
    while let Some(t) = m.deadline() {
        if t > until {
            break;
        }
        steps += 1;
        assert!(
            steps <= max_steps,
            "{name}: more than {max_steps} wake-ups before {:?}",
            until - clock.origin
        );
        clock.now = clock.now.max(t);
        m.timeout(clock.now);
        on_output(m, clock.now);
        check_settled(name, m, clock.now);
    }
    clock.now = clock.now.max(until);
    m.timeout(clock.now);
    on_output(m, clock.now);
    check_settled(name, m, clock.now);
}
