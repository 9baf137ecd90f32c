//! The data path (RFC 8656 §11–§12): Send indications and ChannelData out, Data indications
//! and ChannelData in, handed over without copying.

use super::Client;
use super::events::{ClientEvent, ClientState, Received, SendError};
use crate::channel_data::{self, ChannelData};
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::attributes::{Data, DontFragment, Icmp, XorPeerAddress};
use stun_proto::{
    Class, HEADER_LEN, Message, MessageBuilder, MessageType, Method, TransactionId, Transmit,
    TransportProtocol,
};

/// The largest STUN message body (the 16-bit length field).
const MAX_STUN_BODY: usize = 0xFFFF;

impl Client {
    /// Wraps `data` for `peer`: a ChannelData message once a channel to the peer is
    /// confirmed (padded to 4 bytes on TCP/TLS, RFC 8656 §12.5), a Send indication otherwise
    /// (§11.1, with DONT-FRAGMENT when configured and accepted). The transmit goes to the
    /// server from the local address; send it like any other.
    ///
    /// Refused without a permission for the peer's IP (§11.1: "the client MUST ensure that
    /// there is a permission installed").
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Result<Transmit, SendError> {
        if self.state != ClientState::Allocated {
            return Err(SendError::NotAllocated);
        }
        if self.config.relay_transport != TransportProtocol::Udp {
            return Err(SendError::RelayTransportMismatch);
        }
        if !self.has_relay_for(peer.ip()) {
            return Err(SendError::PeerFamilyMismatch(peer.ip()));
        }
        if !self.permissions.is_permitted(peer.ip()) {
            return Err(SendError::NoPermission(peer.ip()));
        }
        let payload = match self.channels.confirmed(peer, now) {
            Some(channel) => self.channel_data(channel, data)?,
            None => self.send_indication(peer, data)?,
        };
        self.sent_to_server(now);
        Ok(self.transmit(payload))
    }

    fn channel_data(&mut self, channel: u16, data: &[u8]) -> Result<Vec<u8>, SendError> {
        let pad = self.config.transport.is_reliable();
        let payload = channel_data::encode(channel, data, pad).ok_or(SendError::TooLarge {
            len: data.len(),
            max: usize::from(u16::MAX),
        })?;
        self.stats.channel_data_sent += 1;
        Ok(payload)
    }

    fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Result<Vec<u8>, SendError> {
        let dont_fragment = self.config.dont_fragment && self.dont_fragment;
        let peer_attr = 4 + if peer.is_ipv4() { 8 } else { 20 };
        let fixed = peer_attr + 4 + if dont_fragment { 4 } else { 0 };
        let max = (MAX_STUN_BODY - fixed) & !3;
        if data.len() > max {
            return Err(SendError::TooLarge {
                len: data.len(),
                max,
            });
        }
        let mut buf = vec![0u8; HEADER_LEN + fixed + data.len().next_multiple_of(4)];
        // Indications get a transaction ID too (RFC 8489 §6.1), from the seeded generator.
        let tid = TransactionId::random(&mut self.rng);
        let mtype = MessageType::new(Method::SEND, Class::Indication);
        let len = build_send(&mut buf, mtype, tid, peer, data, dont_fragment).map_err(|_| {
            SendError::TooLarge {
                len: data.len(),
                max,
            }
        })?;
        buf.truncate(len);
        self.stats.send_indications_sent += 1;
        Ok(buf)
    }

    /// RFC 8656 §11.4, §11.6: a Data indication needs XOR-PEER-ADDRESS and a permission for
    /// the peer; then either ICMP (reported as an event) or DATA (handed over in place).
    pub(super) fn on_data_indication<'a>(&mut self, msg: &Message<'a>) -> Received<'a> {
        if !matches!(self.state, ClientState::Allocated | ClientState::Deleting) {
            self.stats.dropped_no_permission += 1;
            return Received::Consumed;
        }
        let Ok(Some(XorPeerAddress(peer))) = msg.get::<XorPeerAddress>() else {
            tracing::debug!("Data indication without a valid XOR-PEER-ADDRESS dropped");
            self.stats.dropped_malformed += 1;
            return Received::Consumed;
        };
        if !self.permissions.is_permitted(peer.ip()) {
            tracing::debug!(%peer, "Data indication from a peer without permission dropped");
            self.stats.dropped_no_permission += 1;
            return Received::Consumed;
        }
        if let Ok(Some(icmp)) = msg.get::<Icmp>() {
            self.events.push_back(ClientEvent::Icmp {
                peer,
                icmp_type: icmp.icmp_type,
                code: icmp.code,
                error_data: icmp.error_data,
            });
            return Received::Consumed;
        }
        match msg.get::<Data<'a>>() {
            Ok(Some(Data(data))) => {
                self.stats.peer_data_received += 1;
                Received::PeerData { peer, data }
            }
            _ => {
                tracing::debug!(%peer, "Data indication without DATA dropped");
                self.stats.dropped_malformed += 1;
                Received::Consumed
            }
        }
    }

    /// RFC 8656 §12.6: ChannelData on an unbound channel, or from a peer without a
    /// permission, is dropped; otherwise its data is handed over in place.
    pub(super) fn on_channel_data<'a>(&mut self, bytes: &'a [u8]) -> Received<'a> {
        let msg = match ChannelData::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "malformed ChannelData dropped");
                self.stats.dropped_malformed += 1;
                return Received::Consumed;
            }
        };
        let Some(peer) = self.channels.peer_of(msg.channel) else {
            tracing::debug!(
                channel = msg.channel,
                "ChannelData on an unbound channel dropped"
            );
            self.stats.dropped_unknown_channel += 1;
            return Received::Consumed;
        };
        if !self.permissions.is_permitted(peer.ip()) {
            self.stats.dropped_no_permission += 1;
            return Received::Consumed;
        }
        self.stats.peer_data_received += 1;
        Received::PeerData {
            peer,
            data: msg.data,
        }
    }
}

fn build_send(
    buf: &mut [u8],
    mtype: MessageType,
    tid: TransactionId,
    peer: SocketAddr,
    data: &[u8],
    dont_fragment: bool,
) -> Result<usize, stun_proto::BuildError> {
    let mut b = MessageBuilder::new(buf, mtype, tid)?;
    b.add(&XorPeerAddress(peer))?;
    if dont_fragment {
        b.add(&DontFragment)?;
    }
    b.add(&Data(data))?;
    Ok(b.len())
}
