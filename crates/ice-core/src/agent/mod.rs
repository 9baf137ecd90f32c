//! The ICE agent.

mod checks;
mod commands;
mod incoming;
mod pairing;
mod paths;
mod state;
mod tcp;
mod turn;
mod turn_tcp;

use crate::candidate::{Candidate, CandidateType, Foundation};
use crate::checklist::CheckListState;
use crate::config::{AgentConfig, Credentials, Role};
use crate::events::{ConnectionState, Event, GatheringState, StreamId};
use crate::gathering::{GatherJob, Gathering};
use crate::pacer::Pacer;
use crate::pair::{PairId, PairState};
use crate::priority::LocalPreferences;
use crate::relay::Relays;
use crate::sdp::CandidateLine;
use crate::stats::Stats;
use crate::stream::{Stream, Via};
use crate::tcp::TcpConnections;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_proto::transaction::{ClientTransactions, TransactionConfig};
use stun_proto::{IntegrityKey, Transmit, TransportProtocol};

/// A Sans-IO ICE agent (RFC 8445) with trickle (RFC 8838), ICE-lite, consent freshness
/// (RFC 7675), restarts, TCP candidates (RFC 6544) and TURN over UDP, TCP and TLS.
///
/// # The Sans-IO contract
///
/// The agent owns no socket, reads no clock and draws no randomness of its own. It is
/// constructed with a configuration, a seed for its `ChaCha20Rng` (credentials, tie-breaker,
/// transaction IDs, consent jitter, seeds for its TURN clients) and the current time; from
/// then on every call that can change its state takes `now`. The same seed and the same
/// calls produce byte-identical datagrams. Datagrams from the network go in through
/// [`handle_input`](Self::handle_input), which never panics and never fails: what is not
/// acceptable is answered with a STUN error or dropped, and counted in
/// [`stats`](Self::stats).
///
/// After any `handle_*` call or command, drain [`poll_transmit`](Self::poll_transmit), then
/// [`poll_event`](Self::poll_event), then read [`poll_timeout`](Self::poll_timeout) and call
/// [`handle_timeout`](Self::handle_timeout) when it is due (calling it early or twice is
/// harmless). `poll_timeout` is valid right after [`new`](Self::new).
///
/// Each [`Transmit`] names the local socket it leaves from (`source`): the base of a host
/// candidate. Traffic of relayed candidates is wrapped by the agent's own TURN clients and
/// leaves from the socket those use towards the TURN server (or over the connection to it,
/// for TURN over TCP and TLS).
///
/// # ICE-TCP (RFC 6544)
///
/// TCP host candidates are added with [`add_tcp_host_candidate`](Self::add_tcp_host_candidate)
/// (passive: a listening socket; active: connections from an IP address, signalled with
/// port 9; simultaneous-open: a bound port). They pair by TCP type (active with passive,
/// passive with active, so with so; never with UDP) and rank below UDP candidates. The agent
/// decides which connections exist; the driver opens, accepts and closes them. A connection
/// is named by `(local, remote)`: `local` is the base of the local candidate (the address an
/// active candidate was added with, whatever ephemeral port its socket got; the listening
/// address for accepted connections), `remote` the peer's address as the connection sees it.
///
/// 1. **Connect.** To check a pair from an active or simultaneous-open candidate the agent
///    emits [`Event::TcpConnect`]`{ local, remote, tcp_type }` (RFC 6544 §7.1). The driver
///    connects (active: from an ephemeral port of `local`'s IP; so: from `local` itself,
///    while the peer connects towards it) and reports [`tcp_connected`](Self::tcp_connected)
///    or [`tcp_connect_failed`](Self::tcp_connect_failed). The check goes out once the
///    connection is open; a failure fails the pair. Without either report within
///    [`AgentConfig::tcp_connect_timeout`] the agent gives up and emits [`Event::TcpClose`].
/// 2. **Accept.** A connection accepted on a passive candidate's listener is reported with
///    [`tcp_accepted`](Self::tcp_accepted) before any of its bytes; on `false` the driver
///    closes it. The peer's checks arrive over it; the agent answers, and sends its own
///    triggered check, over the same connection.
/// 3. **Frames in.** The driver cuts each connection's byte stream with
///    `stun_proto::framing::StreamFramer` (`Framing::Rfc4571`) and hands every frame, without
///    its 2-byte length, to [`handle_input`](Self::handle_input) as an [`Input`](stun_proto::Input) with
///    `transport: Tcp`, `source: remote`, `destination: local`. A framing error means the
///    stream is broken: close the connection and report it as closed.
/// 4. **Bytes out.** A [`Transmit`] with `transport: Tcp` holds bytes to write as they are
///    on the connection `(source, destination)`: the agent has put the RFC 4571 length in
///    front. [`send`](Self::send) on a selected TCP pair returns such a transmit too.
/// 5. **Close.** The driver reports a connection that closed or broke with
///    [`tcp_closed`](Self::tcp_closed): checks on it fail and a selected pair on it loses
///    consent ([`Event::ConsentLost`]). The agent asks for connections it no longer needs to
///    be closed with [`Event::TcpClose`] (after completion, for connections no selected pair
///    uses; on [`close`](Self::close), all of them); the driver closes them without reporting
///    back.
///
/// # TURN over TCP and TLS
///
/// A [`TurnServer`](crate::TurnServer) with transport TCP or TLS (RFC 8656 §3.1: where UDP
/// is blocked, TURN over TLS on port 443 is often the only way out) is reached over a
/// connection the driver opens for the agent; the relayed candidate is still UDP (the relay
/// talks UDP to peers), only its traffic to the server travels over the connection. One such
/// connection per UDP host candidate and server of the same address family:
///
/// 1. **Connect.** After [`add_host_candidate`](Self::add_host_candidate) the agent emits
///    [`Event::TurnConnect`]`{ id, local, server, transport, server_name }`. The driver
///    connects from an ephemeral port of `local`'s IP address (`local` is the UDP host
///    candidate's base) to `server`; for TLS it makes the handshake, sending `server_name`
///    as SNI and verifying the certificate against it. It reports
///    [`turn_connected`](Self::turn_connected)`(now, id, local)` with the local address the
///    OS chose, or [`turn_connect_failed`](Self::turn_connect_failed)`(now, id)`. Without
///    either within [`AgentConfig::tcp_connect_timeout`] the agent gives up and emits
///    [`Event::TurnClose`]. Gathering is complete only once every connection has opened and
///    allocated, or failed.
/// 2. **Frames in.** The driver cuts the connection's byte stream with
///    `stun_proto::framing::StreamFramer` (`Framing::StunAndChannelData`, which strips
///    ChannelData padding) and hands every message to [`handle_input`](Self::handle_input)
///    as an [`Input`](stun_proto::Input) with the connection's `transport` (TCP or TLS;
///    plaintext), `source: server`, `destination:` the local address it reported. A framing
///    error means the stream is broken: close the connection and report it closed.
/// 3. **Bytes out.** A [`Transmit`] with transport TCP or TLS holds bytes to write as they
///    are on the connection `(source, destination)` = (its local address, the server):
///    Allocate, Refresh, CreatePermission and ChannelBind requests, Send indications and
///    padded ChannelData carrying checks, responses and [`send`](Self::send)'s data.
/// 4. **Close.** The driver reports a connection that closed or broke with
///    [`turn_closed`](Self::turn_closed)`(now, id)`: the allocation ended with it, its relayed
///    candidate is retired (its pairs fail) and the agent asks for a new connection for a
///    new allocation (a bounded number of times; a new candidate is announced after the
///    next restart, RFC 8838 §13). The agent asks for connections to be closed with
///    [`Event::TurnClose`]`{ id }` when it no longer needs them (the allocation failed or
///    ended, or [`close`](Self::close): over TCP closing the connection releases the
///    allocation); the driver closes them without reporting back.
///
/// Relayed candidates obtained over TCP rank below those obtained over UDP, and over TLS
/// below TCP ([`priority::relay_local_preference`](crate::priority::relay_local_preference)),
/// so a UDP relay is used when it works; their foundations differ (RFC 8445 §5.1.1.3). No
/// server-reflexive candidate is made of the mapped address such a server reports (a TCP
/// mapping says nothing about UDP).
///
/// # Methods
///
/// * Construction: [`new`](Self::new).
/// * Getters: [`role`](Self::role), [`is_lite`](Self::is_lite), [`config`](Self::config),
///   [`local_credentials`](Self::local_credentials),
///   [`remote_credentials`](Self::remote_credentials),
///   [`connection_state`](Self::connection_state),
///   [`gathering_state`](Self::gathering_state), [`checklist_state`](Self::checklist_state),
///   [`streams`](Self::streams), [`local_candidates`](Self::local_candidates),
///   [`remote_candidates`](Self::remote_candidates), [`pairs`](Self::pairs),
///   [`selected_pair`](Self::selected_pair),
///   [`default_candidate`](Self::default_candidate), [`route`](Self::route),
///   [`stats`](Self::stats).
/// * Input: [`handle_input`](Self::handle_input), [`handle_timeout`](Self::handle_timeout),
///   [`handle_timeout_paced`](Self::handle_timeout_paced); TCP connections:
///   [`tcp_connected`](Self::tcp_connected), [`tcp_connect_failed`](Self::tcp_connect_failed),
///   [`tcp_accepted`](Self::tcp_accepted), [`tcp_closed`](Self::tcp_closed); TURN
///   connections: [`turn_connected`](Self::turn_connected),
///   [`turn_connect_failed`](Self::turn_connect_failed), [`turn_closed`](Self::turn_closed).
/// * Commands: [`add_stream`](Self::add_stream),
///   [`add_host_candidate`](Self::add_host_candidate),
///   [`add_tcp_host_candidate`](Self::add_tcp_host_candidate),
///   [`finish_host_candidates`](Self::finish_host_candidates),
///   [`set_remote_credentials`](Self::set_remote_credentials),
///   [`set_remote_lite`](Self::set_remote_lite),
///   [`add_remote_candidate`](Self::add_remote_candidate),
///   [`add_remote_candidate_str`](Self::add_remote_candidate_str),
///   [`end_of_remote_candidates`](Self::end_of_remote_candidates),
///   [`resolved_mdns`](Self::resolved_mdns), [`mdns_failed`](Self::mdns_failed),
///   [`send`](Self::send), [`restart`](Self::restart), [`close`](Self::close).
/// * Output: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
///
/// # Run loop
///
/// ```no_run
/// use ice_core::{Agent, AgentConfig, Input, Received, TransportProtocol};
/// use std::net::UdpSocket;
/// use std::time::Instant;
///
/// # #[allow(clippy::disallowed_methods)]
/// # fn main() -> std::io::Result<()> {
/// let socket = UdpSocket::bind("192.0.2.10:0")?;
/// let local = socket.local_addr()?;
/// let mut agent = Agent::new(AgentConfig::default(), 42, Instant::now());
/// let stream = agent.add_stream(1).expect("one component");
/// agent.add_host_candidate(Instant::now(), stream, 1, local, TransportProtocol::Udp).expect("host");
/// agent.finish_host_candidates(Instant::now());
/// // ... exchange credentials and candidates with the peer through your signalling ...
/// let mut buf = [0u8; 2048];
/// loop {
///     while let Some(t) = agent.poll_transmit() {
///         socket.send_to(&t.payload, t.destination)?;
///     }
///     while let Some(event) = agent.poll_event() {
///         println!("{event:?}"); // forward candidates to the peer, watch states
///     }
///     let now = Instant::now();
///     let wait = agent.poll_timeout().map(|t| t.saturating_duration_since(now));
///     socket.set_read_timeout(wait.filter(|w| !w.is_zero()))?;
///     match socket.recv_from(&mut buf) {
///         Ok((n, from)) => {
///             let input = Input { transport: TransportProtocol::Udp, source: from, destination: local, data: &buf[..n] };
///             if let Received::Data { data, .. } = agent.handle_input(Instant::now(), input) {
///                 println!("{} bytes of application data", data.len());
///             }
///         }
///         Err(_) => agent.handle_timeout(Instant::now()),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    rng: ChaCha20Rng,
    role: Role,
    tie_breaker: u64,
    remote_lite: bool,
    current: Generation,
    /// The generation whose selected paths still carry data during a restart.
    previous: Option<Box<Generation>>,
    streams: Vec<Stream>,
    /// Foundation keys in the order they were numbered (RFC 8445 §5.1.1.3).
    foundations: Vec<FoundationKey>,
    /// RFC 8421 ranks per local IP address.
    ranks: Vec<(IpAddr, u8)>,
    preferences: LocalPreferences,
    transactions: ClientTransactions<TxContext>,
    gathering: Gathering,
    relays: Relays,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    state: ConnectionState,
    /// No new paced transaction before this (Ta, RFC 8445 §14.2).
    next_paced: Instant,
    /// Ta in use: `config.ta` until the peer's proposal is known, then the higher of the two
    /// (RFC 8445 §14.2); see [`Agent::set_remote_pacing`].
    ta: Duration,
    /// When a shared [`Pacer`] refused a slot: its next slot.
    pacer_wait: Option<Instant>,
    /// RFC 8445 §6.1.4.2: the checklist to look at first on the next Ta tick.
    next_checklist: usize,
    /// Alternates Ta ticks between gathering and checks, so neither blocks the other.
    gather_turn: bool,
    pending_mdns: Vec<(StreamId, CandidateLine)>,
    /// Checks cancelled by a triggered check whose responses still count.
    cancelled: VecDeque<(stun_proto::TransactionId, CheckContext)>,
    remote_prflx_foundations: u32,
    /// The last (socket, peer, relay) that data was accepted from, and its stream/component.
    data_route: Option<DataRoute>,
    /// TCP connections opened and accepted (RFC 6544 §7).
    tcp: TcpConnections,
    stats: Stats,
    closed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DataRoute {
    socket: SocketAddr,
    from: SocketAddr,
    via: Via,
    stream: u16,
    component: u16,
}

/// RFC 8445 §5.1.1.3: what makes two local candidates share a foundation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FoundationKey {
    kind: CandidateType,
    base: IpAddr,
    server: Option<IpAddr>,
    /// The transport the candidate was obtained with: its own, or for a relayed candidate
    /// the one to its TURN server (UDP, TCP or TLS).
    transport: TransportProtocol,
}

/// Local credentials with their prepared key.
#[derive(Debug)]
struct LocalCreds {
    creds: Credentials,
    key: IntegrityKey,
}

/// The peer's credentials with the prepared key and the check USERNAME.
#[derive(Debug)]
struct RemoteCreds {
    creds: Credentials,
    key: IntegrityKey,
    /// `remote-ufrag:local-ufrag` (RFC 8445 §7.2.2).
    username: String,
}

/// One ICE session's credentials: a restart starts a new generation.
#[derive(Debug)]
struct Generation {
    id: u32,
    local: LocalCreds,
    remote: Option<RemoteCreds>,
}

/// What a STUN transaction of the agent is for.
#[derive(Clone, Copy, Debug)]
enum TxContext {
    Check(CheckContext),
    Gather(GatherJob),
}

/// What a connectivity check was sent with; its response is judged against this.
#[derive(Clone, Copy, Debug)]
struct CheckContext {
    stream: u16,
    pair: PairId,
    generation: u32,
    role: Role,
    use_candidate: bool,
    nominate_on_success: bool,
    priority: u32,
    socket: SocketAddr,
    remote: SocketAddr,
    via: Via,
}

/// A read-only view of a candidate pair, for diagnostics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairInfo {
    /// The local candidate.
    pub local: Candidate,
    /// The remote candidate.
    pub remote: Candidate,
    /// The state.
    pub state: PairState,
    /// The pair priority (RFC 8445 §6.1.2.3).
    pub priority: u64,
    /// In the valid list.
    pub valid: bool,
    /// Nominated.
    pub nominated: bool,
}

/// Characters of RFC 8839's ice-char: 64 of them, so one draw of 6 bits each.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_ice_string(rng: &mut ChaCha20Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ICE_CHARS[(rng.next_u32() & 63) as usize]))
        .collect()
}

/// RFC 8445 §5.3: at least 24 random bits in the ufrag (we use 48) and 128 in the password
/// (we use 144).
fn random_credentials(rng: &mut ChaCha20Rng) -> Credentials {
    Credentials {
        ufrag: random_ice_string(rng, 8),
        pwd: random_ice_string(rng, 24),
    }
}

impl LocalCreds {
    fn new(creds: Credentials) -> Self {
        LocalCreds {
            key: IntegrityKey::short_term(&creds.pwd),
            creds,
        }
    }
}

impl Agent {
    /// A new agent. `seed` feeds every random choice the agent makes.
    pub fn new(config: AgentConfig, seed: u64, now: Instant) -> Agent {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let creds = match config.local_credentials.clone() {
            Some(c) if Credentials::new(&c.ufrag, &c.pwd).is_ok() => c,
            _ => random_credentials(&mut rng),
        };
        let tie_breaker = rng.next_u64();
        // RFC 8445 §6.1.1: a lite agent is always controlled.
        let role = if config.lite {
            Role::Controlled
        } else {
            config.role
        };
        let transactions = ClientTransactions::new(TransactionConfig {
            initial_rto: config.min_rto,
            max_requests: config.check_max_requests.max(1),
            // ICE checks the symmetry itself and fails the pair (RFC 8445 §7.2.5.2.1).
            check_source: false,
            max_pending: 512,
            ..TransactionConfig::default()
        });
        Agent {
            rng,
            role,
            tie_breaker,
            remote_lite: false,
            current: Generation {
                id: 0,
                local: LocalCreds::new(creds),
                remote: None,
            },
            previous: None,
            streams: Vec::new(),
            foundations: Vec::new(),
            ranks: Vec::new(),
            preferences: LocalPreferences::default(),
            transactions,
            gathering: Gathering::default(),
            relays: Relays::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            state: ConnectionState::New,
            next_paced: now,
            ta: config.ta,
            pacer_wait: None,
            next_checklist: 0,
            gather_turn: false,
            pending_mdns: Vec::new(),
            cancelled: VecDeque::new(),
            remote_prflx_foundations: 0,
            data_route: None,
            tcp: TcpConnections::default(),
            stats: Stats::default(),
            closed: false,
            config,
        }
    }

    // ----- getters -----

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True for an ICE-lite agent.
    pub fn is_lite(&self) -> bool {
        self.config.lite
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The local ufrag and password of the current generation, for signalling.
    pub fn local_credentials(&self) -> &Credentials {
        &self.current.local.creds
    }

    /// The peer's credentials, once set.
    pub fn remote_credentials(&self) -> Option<&Credentials> {
        self.current.remote.as_ref().map(|r| &r.creds)
    }

    /// The connection state.
    pub fn connection_state(&self) -> ConnectionState {
        self.state
    }

    /// The gathering state.
    pub fn gathering_state(&self) -> GatheringState {
        self.gathering.state
    }

    /// The state of a stream's checklist.
    pub fn checklist_state(&self, stream: StreamId) -> Option<CheckListState> {
        self.streams.get(stream.index()).map(|s| s.checklist.state)
    }

    /// The streams, in the order they were added.
    pub fn streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        (0..self.streams.len()).map(|i| StreamId(i as u16))
    }

    /// A stream's local candidates, peer-reflexive ones included.
    pub fn local_candidates(&self, stream: StreamId) -> Vec<Candidate> {
        self.streams
            .get(stream.index())
            .map(|s| s.local.iter().map(|l| l.cand).collect())
            .unwrap_or_default()
    }

    /// A stream's remote candidates, peer-reflexive ones included.
    pub fn remote_candidates(&self, stream: StreamId) -> Vec<Candidate> {
        self.streams
            .get(stream.index())
            .map(|s| s.remote.iter().map(|r| r.cand).collect())
            .unwrap_or_default()
    }

    /// A stream's candidate pairs (checklist and valid list), highest priority first.
    pub fn pairs(&self, stream: StreamId) -> Vec<PairInfo> {
        let Some(s) = self.streams.get(stream.index()) else {
            return Vec::new();
        };
        s.checklist
            .pairs
            .iter()
            .filter_map(|p| {
                Some(PairInfo {
                    local: s.local.get(usize::from(p.local))?.cand,
                    remote: s.remote.get(usize::from(p.remote))?.cand,
                    state: p.state,
                    priority: p.priority,
                    valid: p.valid,
                    nominated: p.nominated,
                })
            })
            .collect()
    }

    /// The selected pair of a component: `(local, remote)`. During a restart this is the
    /// previous generation's pair until the new one is selected.
    pub fn selected_pair(
        &self,
        stream: StreamId,
        component: u16,
    ) -> Option<(Candidate, Candidate)> {
        let c = self.streams.get(stream.index())?.component(component)?;
        c.selected
            .as_ref()
            .or(c.previous.as_ref())
            .map(|p| (p.local, p.remote))
    }

    /// The default candidate of a component (RFC 8445 §5.1.2, §5.2; RFC 8839 §4.2.1: the
    /// address put in `c=`/`m=` for peers that do not speak ICE): the one most likely to
    /// work, UDP before TCP (RFC 6544 §4.3; never an active TCP candidate, which has no
    /// port), relayed before server-reflexive before host, the highest priority within a
    /// type.
    pub fn default_candidate(&self, stream: StreamId, component: u16) -> Option<Candidate> {
        let rank = |k: CandidateType| match k {
            CandidateType::Relayed => 3,
            CandidateType::ServerReflexive => 2,
            CandidateType::Host => 1,
            CandidateType::PeerReflexive => 0,
        };
        self.streams
            .get(stream.index())?
            .local
            .iter()
            .map(|l| l.cand)
            .filter(|c| c.component == component && c.kind != CandidateType::PeerReflexive)
            .filter(|c| c.tcp_type != Some(crate::candidate::TcpType::Active))
            .max_by_key(|c| {
                (
                    c.transport == TransportProtocol::Udp,
                    rank(c.kind),
                    c.priority,
                )
            })
    }

    /// The stream and component that data from `from` arriving on local UDP socket `socket`
    /// belongs to, if the agent accepts data from there: a valid pair, or a pair over which
    /// an authenticated check arrived. A demultiplexer uses this to route application data.
    pub fn route(&self, socket: SocketAddr, from: SocketAddr) -> Option<(StreamId, u16)> {
        self.find_route(socket, from, Via::Udp)
            .map(|r| (StreamId(r.stream), r.component))
    }

    /// Counters of what the agent has seen and done.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- output -----

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        // TURN control traffic first: a CreatePermission must reach the server before the
        // check it permits.
        if let Some(t) = self.relays.poll_transmit() {
            return Some(t);
        }
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        self.transactions.poll_transmit()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            // Events are rare and large: do not keep their buffer between bursts.
            self.events = VecDeque::new();
        }
        event
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` when nothing is
    /// scheduled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return self.relays.poll_timeout();
        }
        [
            self.transactions.poll_timeout(),
            self.relays.poll_timeout(),
            self.paths_timeout(),
            self.nomination_timeout(),
            self.paced_timeout(),
            self.tcp_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Retransmits, times out, sends paced checks, consent checks and keepalives. Early or
    /// repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout_inner(now, None);
    }

    /// Like [`handle_timeout`](Self::handle_timeout), but every new STUN transaction also
    /// needs a slot from a [`Pacer`] shared with other agents: RFC 8445 §14.2 requires that
    /// all agents of one implementation together send no more than one new transaction per
    /// 5 ms.
    pub fn handle_timeout_paced(&mut self, now: Instant, pacer: &mut Pacer) {
        self.handle_timeout_inner(now, Some(pacer));
    }

    fn handle_timeout_inner(&mut self, now: Instant, pacer: Option<&mut Pacer>) {
        if self.closed {
            self.relays.handle_timeout(now);
            return;
        }
        self.transactions.handle_timeout(now);
        self.flush_relayed_checks(now);
        self.drain_transaction_events(now);
        self.tcp_timeouts(now);
        self.turn_connect_timeouts(now);
        self.relays_timeout(now);
        self.run_paths(now);
        self.run_nomination(now);
        self.run_paced(now, pacer);
        self.update_states(now);
    }

    // ----- helpers shared by the submodules -----

    fn stream_id(index: usize) -> StreamId {
        StreamId(index as u16)
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// A stable foundation for local candidates (RFC 8445 §5.1.1.3).
    fn foundation_for(
        &mut self,
        kind: CandidateType,
        base: IpAddr,
        server: Option<IpAddr>,
        transport: TransportProtocol,
    ) -> Foundation {
        let key = FoundationKey {
            kind,
            base,
            server,
            transport,
        };
        let index = match self.foundations.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.foundations.push(key);
                self.foundations.len() - 1
            }
        };
        Foundation::from_number(index as u32 + 1)
    }

    /// The RFC 8421 rank of a local IP address, assigned on first use.
    fn rank_for(&mut self, ip: IpAddr) -> u8 {
        if let Some(&(_, rank)) = self.ranks.iter().find(|(a, _)| *a == ip) {
            return rank;
        }
        let rank = self.preferences.next_rank(ip, self.config.prefer_ipv6);
        self.ranks.push((ip, rank));
        rank
    }

    fn random_transaction_id(&mut self) -> stun_proto::TransactionId {
        stun_proto::TransactionId::random(&mut self.rng)
    }

    fn pair_state_counts(&self) -> (usize, usize) {
        self.streams.iter().fold((0, 0), |(w, p), s| {
            (
                w + s.checklist.count(PairState::Waiting),
                p + s.checklist.count(PairState::InProgress),
            )
        })
    }
}
