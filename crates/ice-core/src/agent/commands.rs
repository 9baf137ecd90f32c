//! Commands: what the application asks of the agent. Each returns its own error enum.

use super::{Agent, Generation, LocalCreds, RemoteCreds, random_credentials};
use crate::candidate::{ACTIVE_TCP_PORT, Candidate, CandidateType, Foundation, TcpType};
use crate::config::{Credentials, CredentialsError, Role};
use crate::error::{
    AddCandidateError, AddStreamError, EndOfCandidatesError, MdnsError, RemoteCandidateError,
    RestartError, SendError,
};
use crate::events::{ConnectionState, Event, GatheringState, StreamId};
use crate::gathering::GatherJob;
use crate::priority::{
    candidate_priority, local_preference, tcp_candidate_priority, tcp_local_preference,
};
use crate::sdp::{CandidateLine, ConnectionAddress};
use crate::stream::{LocalCandidate, RemoteCandidate, Stream, Via};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use std::time::Instant;
use stun_proto::{IntegrityKey, Transmit, TransportProtocol};

impl Agent {
    /// Adds a data stream with `components` components (1 for RTP/RTCP-mux or data, 2 for
    /// RTP and RTCP; RFC 8445 §5.1.1.1).
    pub fn add_stream(&mut self, components: u16) -> Result<StreamId, AddStreamError> {
        if self.closed {
            return Err(AddStreamError::Closed);
        }
        if !(1..=256).contains(&components) {
            return Err(AddStreamError::InvalidComponents);
        }
        if self.streams.len() >= usize::from(u16::MAX) {
            return Err(AddStreamError::TooManyStreams);
        }
        self.streams.push(Stream::new(components));
        Ok(Agent::stream_id(self.streams.len() - 1))
    }

    /// Adds a host candidate: a local socket the driver has bound (RFC 8445 §5.1.1.1). It
    /// comes back at once as [`Event::LocalCandidate`], is paired with the remote candidates
    /// known so far, and (for full agents) starts server-reflexive and relayed gathering from
    /// it. Add the preferred interface first: RFC 8421 preferences follow that order.
    ///
    /// `transport` must be UDP here; TCP candidates need a TCP type and are added with
    /// [`add_tcp_host_candidate`](Self::add_tcp_host_candidate).
    pub fn add_host_candidate(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        address: SocketAddr,
        transport: TransportProtocol,
    ) -> Result<Candidate, AddCandidateError> {
        match transport {
            TransportProtocol::Udp => self.add_host(now, stream, component, address, None),
            TransportProtocol::Tcp => Err(AddCandidateError::MissingTcpType),
            _ => Err(AddCandidateError::UnsupportedTransport),
        }
    }

    /// Adds a TCP host candidate (RFC 6544 §4.1, §5.1):
    ///
    /// * [`TcpType::Passive`]: `address` is a socket the driver listens on; connections it
    ///   accepts there are reported with [`tcp_accepted`](Self::tcp_accepted).
    /// * [`TcpType::Active`]: the agent opens connections from this IP address
    ///   ([`Event::TcpConnect`]). It is signalled with port 9 (RFC 6544 §4.5); `address`
    ///   names the connections it opens (the `local` of their events and calls) and must be
    ///   unique among the agent's TCP candidates. The driver need not bind it.
    /// * [`TcpType::SimultaneousOpen`]: `address` is a port the driver has bound and connects
    ///   from when asked, while the peer connects towards it.
    ///
    /// No server-reflexive or relayed candidates are gathered from TCP candidates.
    pub fn add_tcp_host_candidate(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        address: SocketAddr,
        tcp_type: TcpType,
    ) -> Result<Candidate, AddCandidateError> {
        self.add_host(now, stream, component, address, Some(tcp_type))
    }

    fn add_host(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        address: SocketAddr,
        tcp_type: Option<TcpType>,
    ) -> Result<Candidate, AddCandidateError> {
        let transport = match tcp_type {
            Some(_) => TransportProtocol::Tcp,
            None => TransportProtocol::Udp,
        };
        self.check_host(stream, component, address, transport)?;
        let rank = self.rank_for(address.ip());
        let priority = match tcp_type {
            None => candidate_priority(CandidateType::Host, local_preference(rank, 0), component),
            Some(t) => {
                // RFC 6544 §4.2: other-pref unique among candidates of one direction.
                let index = self
                    .streams
                    .iter()
                    .flat_map(|s| &s.local)
                    .filter(|l| {
                        l.cand.kind == CandidateType::Host
                            && l.cand.tcp_type == Some(t)
                            && l.cand.component == component
                            && l.cand.base.ip() == address.ip()
                    })
                    .count();
                let index = u8::try_from(index).unwrap_or(u8::MAX);
                let lp = tcp_local_preference(CandidateType::Host, t, rank, index);
                tcp_candidate_priority(CandidateType::Host, lp, component)
            }
        };
        let foundation = self.foundation_for(CandidateType::Host, address.ip(), None, transport);
        // RFC 6544 §4.5: an active candidate has no listening port; it is signalled as 9.
        let signalled = match tcp_type {
            Some(TcpType::Active) => SocketAddr::new(address.ip(), ACTIVE_TCP_PORT),
            _ => address,
        };
        let cand = Candidate {
            kind: CandidateType::Host,
            transport,
            tcp_type,
            component,
            address: signalled,
            base: address,
            related: None,
            priority,
            foundation,
        };
        let index = self.push_local(
            stream.index(),
            LocalCandidate {
                cand,
                relay: None,
                rank,
                retired: false,
            },
        );
        // STUN and TURN gathering run over UDP only.
        if !self.config.lite && transport == TransportProtocol::Udp {
            self.queue_gathering(now, stream.index(), index, address);
        }
        if self.gathering.state == GatheringState::New {
            self.set_gathering_state(GatheringState::Gathering);
        }
        self.update_states(now);
        Ok(cand)
    }

    fn check_host(
        &self,
        stream: StreamId,
        component: u16,
        address: SocketAddr,
        transport: TransportProtocol,
    ) -> Result<(), AddCandidateError> {
        if self.closed {
            return Err(AddCandidateError::Closed);
        }
        let s = self
            .streams
            .get(stream.index())
            .ok_or(AddCandidateError::UnknownStream)?;
        s.component(component)
            .ok_or(AddCandidateError::UnknownComponent)?;
        // RFC 8445 §5.1.1.1: no loopback (unless the configuration allows it); unspecified
        // and multicast addresses cannot be reached either. An IPv4-mapped IPv6 address is
        // judged as the IPv4 address it carries.
        let ip = address.ip().to_canonical();
        let loopback = ip.is_loopback() && !self.config.allow_loopback;
        if loopback || ip.is_unspecified() || ip.is_multicast() || address.port() == 0 {
            return Err(AddCandidateError::UnusableAddress);
        }
        if s.local_eoc {
            return Err(AddCandidateError::AfterEndOfCandidates);
        }
        // A UDP socket and a TCP socket may share an address; two candidates of one
        // transport may not.
        let in_use =
            self.streams.iter().flat_map(|s| &s.local).any(|l| {
                l.relay.is_none() && l.cand.base == address && l.cand.transport == transport
            });
        if in_use {
            return Err(AddCandidateError::AddressInUse);
        }
        Ok(())
    }

    /// Appends a local candidate, announces it (RFC 8838 §9) and pairs it (§10).
    pub(super) fn push_local(&mut self, stream: usize, local: LocalCandidate) -> u16 {
        let cand = local.cand;
        let Some(s) = self.streams.get_mut(stream) else {
            return 0;
        };
        s.local.reserve_exact(1);
        s.local.push(local);
        let index = (s.local.len() - 1) as u16;
        // RFC 8838 §13: nothing new is signalled after end-of-candidates in a generation; a
        // candidate found later (a relay re-allocated) is announced after the next restart.
        if cand.kind != CandidateType::PeerReflexive && !s.local_eoc {
            self.emit(Event::LocalCandidate {
                stream: Agent::stream_id(stream),
                candidate: cand,
                ufrag: self.current.local.creds.ufrag.clone(),
            });
        }
        self.pair_new_local(stream, index);
        index
    }

    /// RFC 8445 §5.1.1.2: one Binding request per host candidate and STUN server of the same
    /// address family; and one TURN allocation per host candidate and TURN server.
    fn queue_gathering(&mut self, now: Instant, stream: usize, local: u16, address: SocketAddr) {
        for (i, server) in self.config.stun_servers.iter().enumerate().take(256) {
            if server.is_ipv4() == address.is_ipv4() {
                self.gathering.queue.push_back(GatherJob {
                    stream: stream as u16,
                    local,
                    server: i as u8,
                });
                self.gathering.expected += 1;
            }
        }
        self.start_relays(now, stream, local, address);
    }

    /// Says that no more host candidates will be added. Once the STUN and TURN transactions
    /// have finished too, gathering is complete and [`Event::LocalEndOfCandidates`] follows
    /// for every stream (RFC 8838 §13).
    pub fn finish_host_candidates(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.gathering.hosts_done = true;
        self.update_states(now);
    }

    /// Sets the peer's username fragment and password. Checks wait for them; incoming checks
    /// are answered before (RFC 8445 §7.3). New credentials that differ from earlier ones
    /// mean the peer restarted ICE (§9): checking starts over while the selected pairs keep
    /// carrying data.
    pub fn set_remote_credentials(
        &mut self,
        now: Instant,
        ufrag: &str,
        pwd: &str,
    ) -> Result<(), CredentialsError> {
        if self.closed {
            return Err(CredentialsError::Closed);
        }
        let creds = Credentials::new(ufrag, pwd)?;
        match &self.current.remote {
            Some(r) if r.creds == creds => return Ok(()),
            Some(_) => self.new_generation(now, None),
            None => {}
        }
        self.current.remote = Some(RemoteCreds {
            key: IntegrityKey::short_term(&creds.pwd),
            username: format!("{}:{}", creds.ufrag, self.current.local.creds.ufrag),
            creds,
        });
        // Peer-reflexive candidates learnt from checks of another generation cannot be used.
        self.update_states(now);
        Ok(())
    }

    /// Tells the agent the Ta the peer proposed (`a=ice-pacing`, RFC 8839 §5.6), or `None`
    /// when the peer's session description has no such attribute. RFC 8445 §14.2: both agents
    /// use the higher of the two proposals, and an agent that proposes nothing counts as
    /// proposing the default, 50 ms. So with `None` an agent configured below 50 ms paces at
    /// 50 ms, and a proposal above the configured Ta slows this agent down to it.
    ///
    /// Until this is called the agent paces at its configured Ta. Calling it again (a new
    /// offer, an ICE restart) replaces the earlier proposal; the new Ta applies from the next
    /// paced transaction. The application decides what it accepts from the peer: the RFC sets
    /// no upper bound, so a proposal of minutes would stall the checks.
    pub fn set_remote_pacing(&mut self, proposed: Option<Duration>) {
        let remote = proposed.unwrap_or(crate::config::DEFAULT_TA);
        self.ta = self.config.ta.max(remote);
    }

    /// Ta in use: the configured value, or after [`set_remote_pacing`](Self::set_remote_pacing)
    /// the higher of it and the peer's proposal (RFC 8445 §14.2).
    pub fn ta(&self) -> Duration {
        self.ta
    }

    /// Tells the agent whether the peer is an ICE-lite agent (`a=ice-lite`). RFC 8445 §6.1.1:
    /// a full agent facing a lite one takes the controlling role.
    pub fn set_remote_lite(&mut self, lite: bool) {
        self.remote_lite = lite;
        if lite && !self.config.lite && self.role != Role::Controlling {
            self.set_role(Role::Controlling);
        }
    }

    /// Adds a remote candidate from signalling (trickled any time, RFC 8838 §11), given as
    /// its SDP line. A candidate with an mDNS `.local` address is held until
    /// [`resolved_mdns`](Self::resolved_mdns) and announced by [`Event::ResolveMdns`].
    pub fn add_remote_candidate(
        &mut self,
        now: Instant,
        stream: StreamId,
        line: &CandidateLine,
    ) -> Result<(), RemoteCandidateError> {
        self.check_remote(stream, line)?;
        match &line.address {
            ConnectionAddress::Ip(ip) => {
                self.add_remote_ip(now, stream, line, *ip)?;
            }
            name if name.is_mdns() => self.defer_mdns(stream, line)?,
            ConnectionAddress::Name(_) => return Err(RemoteCandidateError::UnresolvedName),
        }
        Ok(())
    }

    /// [`add_remote_candidate`](Self::add_remote_candidate) from the text of the line
    /// (`a=candidate:...` or `candidate:...`).
    pub fn add_remote_candidate_str(
        &mut self,
        now: Instant,
        stream: StreamId,
        line: &str,
    ) -> Result<(), RemoteCandidateError> {
        let line: CandidateLine = line.parse()?;
        self.add_remote_candidate(now, stream, &line)
    }

    fn check_remote(
        &mut self,
        stream: StreamId,
        line: &CandidateLine,
    ) -> Result<(), RemoteCandidateError> {
        if self.closed {
            return Err(RemoteCandidateError::Closed);
        }
        let s = self
            .streams
            .get(stream.index())
            .ok_or(RemoteCandidateError::UnknownStream)?;
        if s.component(line.component).is_none() {
            return Err(RemoteCandidateError::UnknownComponent);
        }
        match (line.transport.protocol(), line.tcp_type) {
            (Some(TransportProtocol::Udp), _) | (Some(TransportProtocol::Tcp), Some(_)) => {}
            // RFC 6544 §4.5: a TCP candidate carries its tcptype.
            (Some(TransportProtocol::Tcp), None) => {
                return Err(RemoteCandidateError::MissingTcpType);
            }
            _ => return Err(RemoteCandidateError::UnsupportedTransport),
        }
        let result = match (line.ufrag(), &self.current.remote) {
            // RFC 8838 §9: a candidate names its generation by ufrag.
            (Some(u), Some(r)) if u != r.creds.ufrag => Err(RemoteCandidateError::StaleGeneration),
            // RFC 8838 §14: candidates after end-of-candidates are ignored.
            _ if s.remote_eoc => Err(RemoteCandidateError::AfterEndOfCandidates),
            _ => Ok(()),
        };
        if result.is_err() {
            self.stats.remote_candidates_ignored += 1;
        }
        result
    }

    fn add_remote_ip(
        &mut self,
        now: Instant,
        stream: StreamId,
        line: &CandidateLine,
        ip: IpAddr,
    ) -> Result<(), RemoteCandidateError> {
        let address = SocketAddr::new(ip, line.port);
        let related = line
            .related
            .as_ref()
            .and_then(|(a, p)| Some(SocketAddr::new(a.ip()?, *p)));
        let transport = line.transport.protocol().unwrap_or(TransportProtocol::Udp);
        let cand = Candidate {
            kind: line.kind,
            transport,
            tcp_type: line
                .tcp_type
                .filter(|_| transport == TransportProtocol::Tcp),
            component: line.component,
            address,
            base: address,
            related,
            priority: line.priority,
            foundation: line.foundation,
        };
        self.add_remote(now, stream.index(), cand)
    }

    /// Adds a signalled remote candidate; upgrades a peer-reflexive one at the same address
    /// (RFC 8838 §11.4.A: the signalled type and priority replace the learnt ones).
    fn add_remote(
        &mut self,
        now: Instant,
        stream: usize,
        cand: Candidate,
    ) -> Result<(), RemoteCandidateError> {
        let max = self.config.max_remote_candidates;
        let s = self
            .streams
            .get_mut(stream)
            .ok_or(RemoteCandidateError::UnknownStream)?;
        s.max_remote_component = s.max_remote_component.max(cand.component);
        if let Some(i) = s.remote_index(cand.component, cand.transport, cand.address) {
            let existing = &mut s.remote[usize::from(i)];
            if existing.learnt {
                existing.cand = cand;
                existing.learnt = false;
                self.reprioritize(stream);
            }
            self.update_states(now);
            return Ok(());
        }
        if s.remote.len() >= max {
            self.stats.remote_candidates_ignored += 1;
            return Err(RemoteCandidateError::TooManyCandidates);
        }
        s.remote.push(RemoteCandidate {
            cand,
            learnt: false,
        });
        let index = (s.remote.len() - 1) as u16;
        self.pair_new_remote(stream, index);
        self.update_states(now);
        Ok(())
    }

    fn defer_mdns(
        &mut self,
        stream: StreamId,
        line: &CandidateLine,
    ) -> Result<(), RemoteCandidateError> {
        if self.pending_mdns.len() >= self.config.max_pending_mdns {
            self.stats.remote_candidates_ignored += 1;
            return Err(RemoteCandidateError::TooManyPendingNames);
        }
        let name = line.address.to_string();
        let known = self
            .pending_mdns
            .iter()
            .any(|(_, l)| l.address.to_string().eq_ignore_ascii_case(&name));
        self.pending_mdns.push((stream, line.clone()));
        if !known {
            self.emit(Event::ResolveMdns { name });
        }
        Ok(())
    }

    /// Supplies the address an mDNS name resolved to: the candidates waiting for it join as
    /// ordinary candidates. Returns how many did.
    pub fn resolved_mdns(
        &mut self,
        now: Instant,
        name: &str,
        ip: IpAddr,
    ) -> Result<usize, MdnsError> {
        if self.closed {
            return Err(MdnsError::Closed);
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_mdns)
            .into_iter()
            .partition(|(_, l)| l.address.to_string().eq_ignore_ascii_case(name));
        self.pending_mdns = waiting;
        if ready.is_empty() {
            return Err(MdnsError::UnknownName);
        }
        let mut added = 0;
        for (stream, line) in ready {
            if self.add_remote_ip(now, stream, &line, ip).is_ok() {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Gives up on an mDNS name that did not resolve: its candidates are dropped. Returns
    /// how many. A checklist does not fail while names of its stream are pending; after the
    /// last one is given up it can (once the peer's end-of-candidates has come and every
    /// pair is done).
    pub fn mdns_failed(&mut self, now: Instant, name: &str) -> Result<usize, MdnsError> {
        let before = self.pending_mdns.len();
        self.pending_mdns
            .retain(|(_, l)| !l.address.to_string().eq_ignore_ascii_case(name));
        match before - self.pending_mdns.len() {
            0 => Err(MdnsError::UnknownName),
            n => {
                self.update_states(now);
                Ok(n)
            }
        }
    }

    /// The peer will send no more candidates for this stream in this generation (RFC 8838
    /// §14). Only then can the checklist fail. RFC 8838 §13: the indication names its
    /// generation; pass the peer's ufrag it came with, so that a late indication of an
    /// earlier generation is refused (`None` applies it to the current one).
    pub fn end_of_remote_candidates(
        &mut self,
        now: Instant,
        stream: StreamId,
        ufrag: Option<&str>,
    ) -> Result<(), EndOfCandidatesError> {
        if self.closed {
            return Err(EndOfCandidatesError::Closed);
        }
        if let (Some(u), Some(r)) = (ufrag, &self.current.remote) {
            if u != r.creds.ufrag {
                return Err(EndOfCandidatesError::StaleGeneration);
            }
        }
        let s = self
            .streams
            .get_mut(stream.index())
            .ok_or(EndOfCandidatesError::UnknownStream)?;
        s.remote_eoc = true;
        self.update_states(now);
        Ok(())
    }

    /// Restarts ICE (RFC 8445 §9): new local credentials, checking starts over, and the
    /// selected pairs keep carrying data until new ones are selected. The local candidates
    /// come out again as events with the new ufrag. Signal the returned credentials and
    /// then give the peer's new ones to
    /// [`set_remote_credentials`](Self::set_remote_credentials).
    pub fn restart(&mut self, now: Instant) -> Result<Credentials, RestartError> {
        if self.closed {
            return Err(RestartError::Closed);
        }
        let creds = random_credentials(&mut self.rng);
        self.new_generation(now, Some(creds.clone()));
        self.update_states(now);
        Ok(creds)
    }

    /// Starts a new generation: keeps the selected paths as previous ones, forgets the
    /// remote candidates, pairs and learnt candidates (RFC 8445 §9: all state but the roles
    /// is flushed).
    pub(super) fn new_generation(&mut self, now: Instant, local: Option<Credentials>) {
        let mut moved = false;
        for s in &mut self.streams {
            for c in &mut s.components {
                if let Some(mut path) = c.selected.take() {
                    path.pair = None;
                    c.previous = Some(path);
                    moved = true;
                }
                c.nominating = None;
                c.first_valid = None;
            }
            for p in &s.checklist.pairs {
                if let Some(tid) = p.transaction {
                    self.transactions.cancel(&tid);
                }
            }
            s.checklist = crate::checklist::CheckList::new();
            s.remote.clear();
            // Local candidates stay, learnt ones included: gathering jobs and relays refer
            // to them by index, and a learnt mapping often still holds.
            s.remote_eoc = false;
            s.accept_deadline = None;
            s.prflx_learnt = 0;
            s.max_remote_component = 0;
            if local.is_some() {
                s.local_eoc = false;
            }
        }
        let next_id = self.current.id + 1;
        let local_creds = match local {
            Some(c) => LocalCreds::new(c),
            None => LocalCreds::new(self.current.local.creds.clone()),
        };
        let old = std::mem::replace(
            &mut self.current,
            Generation {
                id: next_id,
                local: local_creds,
                remote: None,
            },
        );
        if moved {
            self.previous = Some(Box::new(old));
        }
        self.data_route = None;
        self.announce_local_again();
        if self.state == ConnectionState::Completed || self.state == ConnectionState::Connected {
            // Data keeps flowing on the previous paths; the state follows them.
            self.update_states(now);
        }
    }

    /// After a local restart the peer needs our candidates again, with the new ufrag.
    fn announce_local_again(&mut self) {
        let ufrag = self.current.local.creds.ufrag.clone();
        for (i, s) in self.streams.iter().enumerate() {
            for l in s
                .local
                .iter()
                .filter(|l| l.cand.kind != CandidateType::PeerReflexive && !l.retired)
            {
                self.events.push_back(Event::LocalCandidate {
                    stream: Agent::stream_id(i),
                    candidate: l.cand,
                    ufrag: ufrag.clone(),
                });
            }
        }
    }

    /// Closes the agent: no more checks, consent or data; TURN allocations are released.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.close_turn_connections(now);
        self.close_all_tcp();
        for s in &self.streams {
            for p in &s.checklist.pairs {
                if let Some(tid) = p.transaction {
                    self.transactions.cancel(&tid);
                }
            }
        }
        self.set_state(ConnectionState::Closed);
    }

    /// Sends application data on a component's selected pair, or before selection on its
    /// best valid pair (RFC 8445 §12.1), or during a restart on the previous selected pair.
    /// Data of a relayed candidate is wrapped for the TURN server.
    pub fn send(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        data: &[u8],
    ) -> Result<Transmit, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let (socket, remote, via) = self.data_path(stream, component)?;
        if via == Via::Tcp {
            // RFC 4571: a 16-bit length per frame.
            if data.len() > usize::from(u16::MAX) {
                return Err(SendError::TooLarge);
            }
            if !self.tcp.is_connected(socket, remote) {
                return Err(SendError::NotConnected);
            }
        }
        if let Some(c) = self
            .streams
            .get_mut(stream.index())
            .and_then(|s| s.component_mut(component))
        {
            for p in [c.selected.as_mut(), c.previous.as_mut()]
                .into_iter()
                .flatten()
            {
                if p.socket() == socket && p.remote.address == remote {
                    p.consent.last_sent = now;
                }
            }
        }
        self.wrap(now, socket, remote, via, data.to_vec())
            .ok_or(SendError::Relay)
    }

    /// Switches the role: pair priorities depend on it (RFC 8445 §7.2.5.1, §7.3.1.1).
    pub(super) fn set_role(&mut self, role: Role) {
        if self.role == role {
            return;
        }
        self.role = role;
        // RFC 8445 §7.2.5.1: the agent MUST change the tie-breaker.
        self.tie_breaker = rand_core::Rng::next_u64(&mut self.rng);
        self.stats.role_switches += 1;
        if role == Role::Controlled {
            // Only the controlling agent nominates (RFC 8445 §7.1.2).
            for s in &mut self.streams {
                for p in &mut s.checklist.pairs {
                    p.use_candidate = false;
                }
                for c in &mut s.components {
                    c.nominating = None;
                }
            }
        }
        for i in 0..self.streams.len() {
            self.reprioritize(i);
        }
        self.emit(Event::RoleChanged(role));
    }

    pub(super) fn set_gathering_state(&mut self, state: GatheringState) {
        if self.gathering.state != state {
            self.gathering.state = state;
            self.emit(Event::GatheringStateChanged(state));
        }
    }

    /// A peer-reflexive remote candidate with a fresh foundation (RFC 8445 §7.3.1.3: it must
    /// differ from the foundations of all other remote candidates).
    pub(super) fn prflx_remote_foundation(&mut self) -> Foundation {
        self.remote_prflx_foundations += 1;
        let text = format!("prflx{}", self.remote_prflx_foundations);
        Foundation::new(&text).unwrap_or(Foundation::from_number(self.remote_prflx_foundations))
    }
}
