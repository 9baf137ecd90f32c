//! Many sessions on one port: routing datagrams to agents, and pacing all of them together.
//!
//! An SFU or an ICE-lite server answers thousands of peers on one UDP port. [`Demux`] is
//! the routing table: a check goes to the agent whose local ufrag is the first half of its
//! USERNAME (RFC 8445 §7.2.2), anything else to the agent that owns the (local, remote)
//! address pair. [`AgentSet`] owns the agents, routes with a `Demux`, keeps their timers in
//! one heap and paces their checks with one [`Pacer`] (RFC 8445 §14.2).

use crate::agent::Agent;
use crate::events::{Event, Received};
use crate::pacer::Pacer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::attributes::Username;
use stun_proto::{Class, Input, Message, Method, Transmit};

/// A routing table from datagrams to sessions of type `K`.
#[derive(Debug)]
pub struct Demux<K> {
    by_ufrag: HashMap<Box<str>, K>,
    by_path: HashMap<(SocketAddr, SocketAddr), K>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Demux {
            by_ufrag: HashMap::new(),
            by_path: HashMap::new(),
        }
    }
}

/// The local ufrag of an ICE check: the part of USERNAME before the colon. `None` for
/// anything that is not a Binding request with a USERNAME.
pub fn check_ufrag(data: &[u8]) -> Option<&str> {
    if data.first().is_none_or(|&b| b > 3) {
        return None;
    }
    let msg = Message::parse(data).ok()?;
    if msg.method() != Method::BINDING || msg.class() != Class::Request {
        return None;
    }
    let username = msg.get::<Username<'_>>().ok()??;
    username.as_str().split_once(':').map(|(ours, _)| ours)
}

impl<K: Copy + PartialEq> Demux<K> {
    /// An empty table.
    pub fn new() -> Self {
        Demux::default()
    }

    /// Routes checks whose USERNAME starts with `ufrag` to `key`.
    pub fn insert_ufrag(&mut self, ufrag: &str, key: K) -> Option<K> {
        self.by_ufrag.insert(ufrag.into(), key)
    }

    /// Stops routing by `ufrag`.
    pub fn remove_ufrag(&mut self, ufrag: &str) -> Option<K> {
        self.by_ufrag.remove(ufrag)
    }

    /// Routes everything from `remote` arriving on `local` to `key`.
    pub fn insert_path(&mut self, local: SocketAddr, remote: SocketAddr, key: K) -> Option<K> {
        self.by_path.insert((local, remote), key)
    }

    /// Forgets every route to `key`.
    pub fn remove_key(&mut self, key: K) {
        self.by_ufrag.retain(|_, k| *k != key);
        self.by_path.retain(|_, k| *k != key);
    }

    /// The session for a datagram: by ufrag for checks, by address pair otherwise.
    pub fn route(&self, input: &Input<'_>) -> Option<K> {
        if let Some(ufrag) = check_ufrag(input.data) {
            if let Some(&k) = self.by_ufrag.get(ufrag) {
                return Some(k);
            }
        }
        self.by_path
            .get(&(input.destination, input.source))
            .copied()
    }

    /// Number of ufrag routes and path routes.
    pub fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_path.len())
    }

    /// True if no route is known.
    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty() && self.by_path.is_empty()
    }
}

/// Identifies an agent in an [`AgentSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u32);

impl SessionId {
    /// The slot index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug)]
struct Entry {
    agent: Agent,
    ufrag: String,
    /// The earliest deadline queued in the heap for this agent.
    scheduled: Option<Instant>,
}

/// Many agents behind one demultiplexer, one timer heap and one pacer.
///
/// Sans-IO like the agents: feed every datagram of the shared socket(s) to
/// [`handle_input`](Self::handle_input), call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout), drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event). Commands go to one agent through
/// [`command`](Self::command), which keeps routes and timers in step.
#[derive(Debug)]
pub struct AgentSet {
    /// Boxed entries: a growing slot vector then wastes pointers, not whole agents.
    slots: Vec<Option<Box<Entry>>>,
    free: Vec<u32>,
    demux: Demux<SessionId>,
    pacer: Pacer,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(SessionId, Event)>,
    len: usize,
}

impl Default for AgentSet {
    fn default() -> Self {
        AgentSet::new(Pacer::default())
    }
}

impl AgentSet {
    /// An empty set whose agents share `pacer`.
    pub fn new(pacer: Pacer) -> AgentSet {
        AgentSet {
            slots: Vec::new(),
            free: Vec::new(),
            demux: Demux::new(),
            pacer,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            len: 0,
        }
    }

    /// Adds an agent; its checks are routed by its local ufrag from now on.
    pub fn insert(&mut self, agent: Agent) -> SessionId {
        let ufrag = agent.local_credentials().ufrag.clone();
        let entry = Box::new(Entry {
            agent,
            ufrag,
            scheduled: None,
        });
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(entry);
                SessionId(i)
            }
            None => {
                self.slots.push(Some(entry));
                SessionId(self.slots.len() as u32 - 1)
            }
        };
        self.len += 1;
        if let Some(e) = self.slots[id.index()].as_ref() {
            self.demux.insert_ufrag(&e.ufrag, id);
        }
        self.sync(id);
        id
    }

    /// Removes an agent and its routes.
    pub fn remove(&mut self, id: SessionId) -> Option<Agent> {
        let entry = self.slots.get_mut(id.index())?.take()?;
        self.demux.remove_key(id);
        self.free.push(id.0);
        self.len -= 1;
        Some(entry.agent)
    }

    /// The agent of a session.
    pub fn get(&self, id: SessionId) -> Option<&Agent> {
        self.slots.get(id.index())?.as_ref().map(|e| &e.agent)
    }

    /// Runs a command on one agent, then collects its output and updates its routes and
    /// timer (a restart changes its ufrag).
    pub fn command<R>(&mut self, id: SessionId, f: impl FnOnce(&mut Agent) -> R) -> Option<R> {
        let entry = self.slots.get_mut(id.index())?.as_mut()?;
        let r = f(&mut entry.agent);
        self.sync(id);
        Some(r)
    }

    /// The sessions, in slot order.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| SessionId(i as u32))
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no agents.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The routing table.
    pub fn demux(&self) -> &Demux<SessionId> {
        &self.demux
    }

    /// The shared pacer.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Routes a datagram to its agent. Returns the session (if any) and what it made of
    /// the datagram.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        input: Input<'a>,
    ) -> (Option<SessionId>, Received<'a>) {
        let Some(id) = self.demux.route(&input) else {
            return (None, Received::NotMine);
        };
        let Some(entry) = self.slots.get_mut(id.index()).and_then(Option::as_mut) else {
            return (None, Received::NotMine);
        };
        let received = entry.agent.handle_input(now, input);
        if let Received::Data { .. } = received {
            return (Some(id), received); // data changes no agent state
        }
        // A check the agent accepted vouches for the path: route its data there from now on.
        let key = (input.destination, input.source);
        if self.demux.by_path.get(&key) != Some(&id) && entry.agent.route(key.0, key.1).is_some() {
            self.demux.insert_path(key.0, key.1, id);
        }
        self.sync(id);
        (Some(id), received)
    }

    /// Runs the timers that are due, pacing new checks of all agents with the shared pacer.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let id = SessionId(index);
            let Some(entry) = self.slots.get_mut(id.index()).and_then(Option::as_mut) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue; // superseded by an earlier deadline that already ran
            }
            entry.scheduled = None;
            entry.agent.handle_timeout_paced(now, &mut self.pacer);
            self.sync(id);
        }
    }

    /// The next datagram to send, from any agent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, with the session it came from.
    pub fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        self.events.pop_front()
    }

    /// The earliest deadline of any agent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Collects an agent's output, updates its ufrag route and reschedules its timer.
    fn sync(&mut self, id: SessionId) {
        let Some(entry) = self.slots.get_mut(id.index()).and_then(Option::as_mut) else {
            return;
        };
        while let Some(t) = entry.agent.poll_transmit() {
            // Our own requests (checks, TURN) get their responses routed back by path.
            if is_request(&t.payload) {
                self.demux.insert_path(t.source, t.destination, id);
            }
            self.transmits.push_back(t);
        }
        while let Some(e) = entry.agent.poll_event() {
            self.events.push_back((id, e));
        }
        let ufrag = &entry.agent.local_credentials().ufrag;
        if *ufrag != entry.ufrag {
            self.demux.remove_ufrag(&entry.ufrag);
            entry.ufrag = ufrag.clone();
            self.demux.insert_ufrag(&entry.ufrag, id);
        }
        // Only an earlier deadline needs a new heap entry: a later one is found when the
        // earlier fires (handle_timeout early is harmless), which keeps the heap small.
        let next = entry.agent.poll_timeout();
        if let Some(t) = next {
            if entry.scheduled.is_none_or(|s| t < s) {
                entry.scheduled = Some(t);
                self.timers.push(Reverse((t, id.0)));
            }
        }
    }
}

fn is_request(payload: &[u8]) -> bool {
    stun_proto::peek_header(payload).is_some_and(|(t, _)| t.class == Class::Request)
}
