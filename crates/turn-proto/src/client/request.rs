//! The requests the client sends, and how they are encoded (RFC 8656 §7.1, §8.1, §10.1,
//! §12.1).

use super::auth::Auth;
use super::config::ClientConfig;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use stun_proto::attributes::AddressFamily;
use stun_proto::attributes::{
    AdditionalAddressFamily, ChannelNumber, ConnectionId, DontFragment, EvenPort, Lifetime,
    RequestedAddressFamily, RequestedTransport, ReservationToken, Software, XorPeerAddress,
};
use stun_proto::{
    BuildError, Class, MessageBuilder, MessageType, Method, TransactionId, TransportProtocol,
};

/// Room for everything but the credentials and the peers: the header, the Allocate
/// attributes, SOFTWARE (< 128 characters), PASSWORD-ALGORITHM and the integrity attribute.
const BASE_BUFFER: usize = 1024;
/// An XOR-PEER-ADDRESS with an IPv6 address.
const PEER_ATTRIBUTE: usize = 24;

/// Most XOR-PEER-ADDRESS attributes put in one CreatePermission; more peers are split over
/// several requests.
pub(super) const MAX_PEERS_PER_REQUEST: usize = 32;

/// A request the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// Allocate (RFC 8656 §7.1).
    Allocate,
    /// Refresh (§8.1); LIFETIME 0 deletes.
    Refresh { lifetime: u32 },
    /// CreatePermission (§10.1), one XOR-PEER-ADDRESS per peer.
    CreatePermission { peers: Vec<IpAddr> },
    /// ChannelBind (§12.1).
    ChannelBind { channel: u16, peer: SocketAddr },
    /// Connect (RFC 6062 §4.3), on the control connection.
    Connect { peer: SocketAddr },
    /// ConnectionBind (RFC 6062 §4.3), on the data connection from `local`.
    ConnectionBind {
        connection_id: u32,
        local: SocketAddr,
    },
}

impl Request {
    pub(super) fn method(&self) -> Method {
        match self {
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
            Request::Connect { .. } => Method::CONNECT,
            Request::ConnectionBind { .. } => Method::CONNECTION_BIND,
        }
    }

    /// The local address the request leaves from: a data connection's for ConnectionBind,
    /// the control connection's (`control`) for everything else.
    pub(super) fn source(&self, control: SocketAddr) -> SocketAddr {
        match self {
            Request::ConnectionBind { local, .. } => *local,
            _ => control,
        }
    }
}

/// A request in flight: what `ClientTransactions` carries as context.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub(super) request: Request,
    /// When this transaction started: the server's lifetimes run from no earlier than this,
    /// so refresh and expiry times computed from it are conservative.
    pub(super) sent_at: Instant,
    /// Whether it carried credentials (then its response must carry integrity).
    pub(super) authenticated: bool,
    /// 438 Stale Nonce retries so far in this chain of retries.
    pub(super) stale_retries: u8,
    /// 401 retries so far in this chain of retries.
    pub(super) auth_retries: u8,
}

impl Pending {
    pub(super) fn new(request: Request, now: Instant) -> Self {
        Pending {
            request,
            sent_at: now,
            authenticated: false,
            stale_retries: 0,
            auth_retries: 0,
        }
    }
}

/// What a request depends on besides its own fields.
pub(super) struct Encoder<'c> {
    pub(super) config: &'c ClientConfig,
    pub(super) auth: &'c Auth,
    /// DONT-FRAGMENT still wanted in the Allocate (not yet refused with 420).
    pub(super) dont_fragment: bool,
}

impl Encoder<'_> {
    /// Encodes `request` with credentials and integrity when they are known.
    pub(super) fn encode(
        &self,
        tid: TransactionId,
        request: &Request,
    ) -> Result<Vec<u8>, BuildError> {
        let peers = match request {
            Request::CreatePermission { peers } => peers.len(),
            _ => 1,
        };
        let mut buf = vec![0u8; BASE_BUFFER + self.auth.credentials_len() + peers * PEER_ATTRIBUTE];
        let mtype = MessageType::new(request.method(), Class::Request);
        let mut b = MessageBuilder::new(&mut buf, mtype, tid)?;
        match request {
            Request::Allocate => self.allocate_attributes(&mut b)?,
            Request::Refresh { lifetime } => {
                b.add(&Lifetime(*lifetime))?;
                self.add_software(&mut b)?;
            }
            Request::CreatePermission { peers } => {
                // The port is ignored by the server (RFC 8656 §10.2).
                for ip in peers {
                    b.add(&XorPeerAddress(SocketAddr::new(*ip, 0)))?;
                }
            }
            Request::ChannelBind { channel, peer } => {
                b.add(&ChannelNumber(*channel))?;
                b.add(&XorPeerAddress(*peer))?;
            }
            Request::Connect { peer } => {
                b.add(&XorPeerAddress(*peer))?;
            }
            Request::ConnectionBind { connection_id, .. } => {
                b.add(&ConnectionId(*connection_id))?;
            }
        }
        self.auth.add_credentials(&mut b)?;
        self.auth.add_integrity(&mut b)?;
        let len = b.len();
        buf.truncate(len);
        Ok(buf)
    }

    /// RFC 8656 §7.1: REQUESTED-TRANSPORT (UDP, or TCP for RFC 6062 §4.1), then the
    /// optional family, port, fragmentation and lifetime attributes.
    fn allocate_attributes(&self, b: &mut MessageBuilder<'_>) -> Result<(), BuildError> {
        let c = self.config;
        b.add(&match c.relay_transport {
            TransportProtocol::Tcp => RequestedTransport::TCP,
            _ => RequestedTransport::UDP,
        })?;
        if let Some(family) = c.requested_family {
            b.add(&RequestedAddressFamily(family))?;
        }
        if c.additional_family {
            b.add(&AdditionalAddressFamily(AddressFamily::Ipv6))?;
        }
        if let Some(reserve) = c.even_port {
            b.add(&EvenPort { reserve })?;
        }
        if let Some(token) = c.reservation_token {
            b.add(&ReservationToken(token))?;
        }
        if self.dont_fragment {
            b.add(&DontFragment)?;
        }
        b.add(&Lifetime(c.lifetime_secs()))?;
        self.add_software(b)
    }

    /// RFC 8656 §5: SOFTWARE in all Allocate and Refresh requests.
    fn add_software(&self, b: &mut MessageBuilder<'_>) -> Result<(), BuildError> {
        if let Some(s) = self.config.software.as_deref() {
            let software = Software::new(s).map_err(|_| BuildError::TooLong)?;
            b.add(&software)?;
        }
        Ok(())
    }
}
