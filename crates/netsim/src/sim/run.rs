//! Virtual time: processing events in order and driving the nodes.

use std::time::{Duration, Instant};

use super::Sim;
use super::queue::{Event, Scheduled};

/// Events one instant may hold before the simulator concludes that a node keeps asking to
/// be woken at a deadline that has already passed (and time would never advance).
const MAX_EVENTS_PER_INSTANT: u64 = 1_000_000;

impl Sim {
    /// Process the next event (a node timer, a packet coming out of a link, a TCP timer),
    /// advancing virtual time to it. Events run in order of time, then of scheduling.
    /// Returns `false` when nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.poll_dirty();
        let Some(event) = self.pop_live() else {
            return false;
        };
        self.advance(event.at);
        match event.event {
            Event::Timer { node } => {
                self.nodes[node].timer = None;
                let now = self.now;
                self.nodes[node].node.handle_timeout(now);
                self.poll_node(node);
            }
            Event::LinkExit { link, dir, packet } => self.link_exit(link, dir, packet),
            Event::TcpTimer { conn } => self.tcp_timer(conn),
        }
        true
    }

    /// When the next event is due, if any.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        self.poll_dirty();
        self.skip_stale();
        self.queue.peek().map(|e| e.at)
    }

    /// Process every event due at or before `deadline`, then set the clock to `deadline`
    /// (time never goes backwards: an earlier deadline does nothing).
    pub fn run_until(&mut self, deadline: Instant) {
        while self.next_event_time().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.advance(deadline);
    }

    /// [`run_until`](Self::run_until) `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Run until nothing is scheduled (returns `true`, the clock stays at the last event) or
    /// `deadline` (returns `false`, the clock is at `deadline`). Nodes with periodic timers
    /// never go idle.
    pub fn run_until_idle(&mut self, deadline: Instant) -> bool {
        loop {
            match self.next_event_time() {
                None => return true,
                Some(t) if t > deadline => {
                    self.advance(deadline);
                    return false;
                }
                Some(_) => self.step(),
            };
        }
    }

    /// Run until `done` holds (checked now and after every event; returns `true`, the clock at
    /// the event that made it hold) or `deadline` passes (returns `false`, the clock at
    /// `deadline`). `done` gets the simulator, so it can look at nodes.
    pub fn run_until_condition(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Sim) -> bool,
    ) -> bool {
        if done(self) {
            return true;
        }
        while self.next_event_time().is_some_and(|t| t <= deadline) {
            self.step();
            if done(self) {
                return true;
            }
        }
        self.advance(deadline);
        false
    }

    fn advance(&mut self, to: Instant) {
        if to > self.now {
            self.now = to;
            self.events_at_now = 0;
        }
    }

    /// Pop the next event that is still wanted (a node's or connection's timer is stale once
    /// it asked for another deadline, or the connection is gone).
    fn pop_live(&mut self) -> Option<Scheduled> {
        self.skip_stale();
        let event = self.queue.pop()?;
        self.events_at_now += 1;
        assert!(
            event.at > self.now || self.events_at_now < MAX_EVENTS_PER_INSTANT,
            "netsim: {MAX_EVENTS_PER_INSTANT} events at one instant; does a node keep \
             returning a poll_timeout that has passed?"
        );
        Some(event)
    }

    fn skip_stale(&mut self) {
        while let Some(e) = self.queue.peek() {
            let stale = match e.event {
                Event::Timer { node } => self.nodes[node].timer != Some((e.at, e.seq)),
                Event::LinkExit { .. } => false,
                Event::TcpTimer { conn } => self.tcp_timer_is_stale(conn, e.at, e.seq),
            };
            if !stale {
                return;
            }
            self.queue.pop();
        }
    }

    /// Poll the nodes the test touched (or added) since the last event.
    fn poll_dirty(&mut self) {
        while let Some(node) = self.dirty.pop_first() {
            self.poll_node(node);
        }
    }

    /// Sans-IO order: drain the node's transmits, then its TCP commands (handing it the
    /// events they cause at once, and polling again), then read its timeout and (re)arm its
    /// timer.
    pub(super) fn poll_node(&mut self, node: usize) {
        let now = self.now;
        loop {
            while let Some(dg) = self.nodes[node].node.poll_transmit() {
                self.send_from_node(node, dg);
            }
            let mut immediate = Vec::new();
            while let Some(command) = self.nodes[node].node.poll_tcp() {
                self.tcp_command(node, command, &mut immediate);
            }
            if immediate.is_empty() {
                break;
            }
            for event in immediate {
                self.nodes[node].node.handle_tcp(now, event);
            }
        }
        // An overdue deadline fires at once, never in the past.
        let wanted = self.nodes[node].node.poll_timeout().map(|t| t.max(now));
        let current = self.nodes[node].timer.map(|(at, _)| at);
        if wanted == current {
            return;
        }
        self.nodes[node].timer = wanted.map(|at| (at, self.queue.push(at, Event::Timer { node })));
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use crate::{Datagram, LinkConfig, Node, RealmId, Sim};

    /// A node whose deadline the test moves around.
    struct Movable {
        deadline: Option<Instant>,
        fired: Vec<Instant>,
    }

    impl Node for Movable {
        fn handle_datagram(&mut self, _: Instant, _: Datagram) {}
        fn handle_timeout(&mut self, now: Instant) {
            self.fired.push(now);
            self.deadline = None;
        }
        fn poll_transmit(&mut self) -> Option<Datagram> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
    }

    #[test]
    fn a_moved_deadline_fires_once_at_its_new_time() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut sim = Sim::new(1, t0);
        let ip = "192.0.2.1".parse().unwrap();
        let h = sim.add_host(RealmId::INTERNET, &[ip], LinkConfig::default());
        let node = Movable {
            deadline: Some(t0 + ms(10)),
            fired: Vec::new(),
        };
        let id = sim.add_node(h, &[SocketAddr::new(ip, 1)], node).unwrap();
        assert_eq!(sim.next_event_time(), Some(t0 + ms(10)));
        // The test moves the deadline later; the old timer event is stale and skipped.
        sim.node_mut(id).deadline = Some(t0 + ms(30));
        assert_eq!(sim.next_event_time(), Some(t0 + ms(30)));
        // Then cancels it; nothing is left.
        sim.node_mut(id).deadline = None;
        assert_eq!(sim.next_event_time(), None);
        sim.node_mut(id).deadline = Some(t0 + ms(20));
        sim.run_for(ms(100));
        assert_eq!(sim.node(id).fired, [t0 + ms(20)]);
    }
}
