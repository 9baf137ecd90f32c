//! The ICE agent as a [`Machine`]: owned outputs, the relay-only firewall, and the commands
//! both flavours share.

use super::IceError;
use crate::machine::Machine;
use core::fmt;
use ice_core::mdns::{MdnsOutcome, MdnsResolver};
use ice_core::sdp::CandidateLine;
use ice_core::{
    Agent, Candidate, CandidateType, Event, Input, Received, StreamId, Transmit, TransportProtocol,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The one component of the one stream the drivers run (data, or RTP/RTCP-mux).
const COMPONENT: u16 = 1;

/// A local candidate to signal to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCandidate {
    /// The candidate.
    pub candidate: Candidate,
    /// The local username fragment of the generation it belongs to.
    pub ufrag: String,
}

impl LocalCandidate {
    /// The SDP attribute line (RFC 8839 §5.1), `a=candidate:...`, as [`Display`](fmt::Display)
    /// writes it.
    pub fn sdp(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for LocalCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a={}", CandidateLine::from_candidate(&self.candidate))
    }
}

/// What an [`AgentMachine`] hands its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceOutput {
    /// A local candidate to signal (with relay-only, relayed candidates only).
    Candidate(LocalCandidate),
    /// Gathering is over: signal `a=end-of-candidates`.
    EndOfCandidates,
    /// Any other event of the agent: states, the selected pair, role changes.
    Event(Event),
    /// Application data from the peer.
    Data {
        /// The peer's address (for relayed paths, as the TURN server saw it).
        from: SocketAddr,
        /// The bytes, copied out of the receive buffer.
        data: Vec<u8>,
    },
    /// After [`AgentMachine::close`]: the TURN allocations are released (or given up on),
    /// nothing more will be sent, and the sockets can go.
    Released,
}

/// An [`ice_core::Agent`] with one stream of one component, as a [`Machine`].
///
/// Application data that [`Agent::handle_input`] hands back becomes [`IceOutput::Data`]. With
/// relay-only set, the host sockets act as behind a firewall that lets through only the
/// configured STUN and TURN servers, and only relayed candidates are reported: the agent
/// itself knows nothing of the policy.
#[derive(Debug)]
pub struct AgentMachine {
    agent: Agent,
    stream: StreamId,
    /// With relay-only: the only addresses the host sockets may talk to.
    servers: Option<Vec<SocketAddr>>,
    out: VecDeque<IceOutput>,
    closing: bool,
    released: bool,
    /// The mDNS querier and the local address of its socket, when names are resolved.
    mdns: Option<(SocketAddr, MdnsResolver)>,
    /// The latest time the machine was given, for the querier's timers when an event asks
    /// for a name.
    now: Option<Instant>,
}

impl AgentMachine {
    /// Wraps an agent whose stream `stream` has one component. With `relay_only`, host
    /// sockets only talk to the agent's configured STUN and TURN servers.
    pub fn new(agent: Agent, stream: StreamId, relay_only: bool) -> AgentMachine {
        let servers = relay_only.then(|| {
            let config = agent.config();
            config
                .turn_servers
                .iter()
                .map(|t| t.server)
                .chain(config.stun_servers.iter().copied())
                .collect()
        });
        AgentMachine {
            agent,
            stream,
            servers,
            out: VecDeque::new(),
            closing: false,
            released: false,
            mdns: None,
            now: None,
        }
    }

    /// Resolves the peer's mDNS candidate names with `resolver`, whose queries go out of the
    /// driver's UDP socket bound to `local` (and whose answers arrive there). Without this,
    /// candidates with `.local` names are dropped.
    pub fn with_mdns(mut self, local: SocketAddr, resolver: MdnsResolver) -> AgentMachine {
        self.mdns = Some((local, resolver));
        self
    }

    /// The local address of the mDNS socket, if names are resolved.
    pub fn mdns_socket(&self) -> Option<SocketAddr> {
        self.mdns.as_ref().map(|(local, _)| *local)
    }

    /// Hands the querier's outcomes to the agent.
    fn apply_mdns(&mut self, now: Instant) {
        let Some((_, resolver)) = &mut self.mdns else {
            return;
        };
        while let Some(outcome) = resolver.poll_outcome() {
            let result = match &outcome {
                MdnsOutcome::Resolved { name, ip } => {
                    tracing::debug!(%name, %ip, "mDNS name resolved");
                    self.agent.resolved_mdns(now, name, *ip)
                }
                MdnsOutcome::Failed { name } => {
                    tracing::debug!(%name, "mDNS name not resolved: its candidates dropped");
                    self.agent.mdns_failed(now, name)
                }
            };
            if let Err(e) = result {
                tracing::debug!(?outcome, error = %e, "mDNS outcome not applied");
            }
        }
    }

    /// The agent, for getters.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The agent, for commands this type does not wrap.
    pub fn agent_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }

    /// The stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The selected pair, `(local, remote)`.
    pub fn selected_pair(&self) -> Option<(Candidate, Candidate)> {
        self.agent.selected_pair(self.stream, COMPONENT)
    }

    /// Sets the peer's ufrag and password.
    pub fn set_remote_credentials(
        &mut self,
        now: Instant,
        ufrag: &str,
        pwd: &str,
    ) -> Result<(), IceError> {
        Ok(self.agent.set_remote_credentials(now, ufrag, pwd)?)
    }

    /// The Ta the peer proposed (`a=ice-pacing`), or `None` when its description had none:
    /// the agent paces at the higher of the two (RFC 8445 §14.2; see
    /// `ice_core::Agent::set_remote_pacing`).
    pub fn set_remote_pacing(&mut self, proposed: Option<Duration>) {
        self.agent.set_remote_pacing(proposed);
    }

    /// Adds a remote candidate from its SDP line (`a=candidate:...` or `candidate:...`).
    pub fn add_remote_candidate(&mut self, now: Instant, line: &str) -> Result<(), IceError> {
        self.now = Some(now);
        let line = line.trim();
        Ok(self
            .agent
            .add_remote_candidate_str(now, self.stream, line)?)
    }

    /// The peer sent end-of-candidates.
    pub fn end_of_remote_candidates(&mut self, now: Instant) -> Result<(), IceError> {
        Ok(self
            .agent
            .end_of_remote_candidates(now, self.stream, None)?)
    }

    /// Wraps `data` for the selected (or best valid) pair: send the returned transmit.
    pub fn send(&mut self, now: Instant, data: &[u8]) -> Result<Transmit, IceError> {
        Ok(self.agent.send(now, self.stream, COMPONENT, data)?)
    }

    /// Closes the agent: it releases its TURN allocations, and [`IceOutput::Released`]
    /// follows once that is done.
    pub fn close(&mut self, now: Instant) {
        self.agent.close(now);
        self.closing = true;
    }

    /// True after [`close`](Self::close).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    fn allowed(&self, peer: SocketAddr) -> bool {
        self.servers.as_ref().is_none_or(|s| s.contains(&peer))
    }

    /// An agent event as an output; `None` for what the driver keeps to itself.
    fn output(&mut self, event: Event) -> Option<IceOutput> {
        match event {
            Event::LocalCandidate {
                candidate, ufrag, ..
            } => {
                let relay_only = self.servers.is_some();
                (!relay_only || candidate.kind == CandidateType::Relayed)
                    .then_some(IceOutput::Candidate(LocalCandidate { candidate, ufrag }))
            }
            Event::LocalEndOfCandidates { .. } => Some(IceOutput::EndOfCandidates),
            Event::ResolveMdns { name } => {
                match (&mut self.mdns, self.now) {
                    (Some((_, resolver)), Some(now)) => {
                        resolver.resolve(now, &name);
                        self.apply_mdns(now);
                    }
                    _ => {
                        // No resolver: the candidates waiting on the name are dropped at
                        // once rather than held forever.
                        tracing::debug!(%name, "mDNS candidate dropped: no resolver");
                        if let Some(now) = self.now {
                            let _ = self.agent.mdns_failed(now, &name);
                        }
                    }
                }
                None
            }
            other => Some(IceOutput::Event(other)),
        }
    }
}

impl Machine for AgentMachine {
    type Event = IceOutput;

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = Some(now);
        if let Some((local, resolver)) = &mut self.mdns {
            if input.destination == *local {
                if resolver.handle_input(input.source, input.data) {
                    self.apply_mdns(now);
                }
                return;
            }
        }
        if !self.allowed(input.source) {
            return;
        }
        if let Received::Data { from, data, .. } = self.agent.handle_input(now, input) {
            self.out.push_back(IceOutput::Data {
                from,
                data: data.to_vec(),
            });
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        self.agent.handle_timeout(now);
        if let Some((_, resolver)) = &mut self.mdns {
            resolver.handle_timeout(now);
            self.apply_mdns(now);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some((local, resolver)) = &mut self.mdns {
            if let Some((destination, payload)) = resolver.poll_transmit() {
                return Some(Transmit {
                    transport: TransportProtocol::Udp,
                    source: *local,
                    destination,
                    payload,
                });
            }
        }
        loop {
            let t = self.agent.poll_transmit()?;
            if self.allowed(t.destination) {
                return Some(t);
            }
            tracing::trace!(to = %t.destination, "relay-only: datagram to a peer not sent");
        }
    }

    fn poll_event(&mut self) -> Option<IceOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        while let Some(event) = self.agent.poll_event() {
            if let Some(o) = self.output(event) {
                return Some(o);
            }
        }
        if self.closing && !self.released && self.agent.poll_timeout().is_none() {
            self.released = true;
            return Some(IceOutput::Released);
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mdns = self.mdns.as_ref().and_then(|(_, r)| r.poll_timeout());
        match (self.agent.poll_timeout(), mdns) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        }
    }
}
