//! The data path: ChannelData and Send indications from clients (RFC 8656 §12.6, §11.2),
//! datagrams from peers as ChannelData or Data indications (§11.3, §12.7).
//!
//! Nothing here allocates. Client to peer: one hash lookup (the 5-tuple), then a scan of
//! the allocation's few channels and permissions; the payload is returned where it lies in
//! the input. Peer to client: the relay port indexes a flat array (no hashing); with a
//! channel and 4 bytes of headroom the ChannelData header is written in place, otherwise
//! the message is built in the reusable scratch buffer (one copy).

use super::allocation::FiveTuple;
use super::io::{Datagram, ServerOutput};
use super::{Millis, Server};
use crate::channel_data::{self, ChannelData};
use std::net::SocketAddr;
use std::time::Instant;
use stun_proto::attributes::{AttributeType, Data, Icmp, XorPeerAddress};
use stun_proto::{
    Class, Message, MessageBuilder, MessageType, Method, TransactionId, TransportProtocol,
};

/// Largest payload that fits a ChannelData message (16-bit length).
const MAX_CHANNEL_DATA: usize = u16::MAX as usize;
/// A Data indication's header, XOR-PEER-ADDRESS (IPv6) and DATA header.
const DATA_INDICATION_OVERHEAD: usize = 20 + 24 + 4;

impl Server {
    /// RFC 8656 §12.6: relay a client's ChannelData to the channel's peer.
    #[inline]
    pub(super) fn relay_channel_data<'a>(
        &mut self,
        now: Millis,
        tuple: &FiveTuple,
        data: &'a [u8],
    ) -> ServerOutput<'a> {
        let Ok(message) = ChannelData::parse(data) else {
            self.stats.drops.bad_channel_data += 1;
            return ServerOutput::Handled;
        };
        let Some(alloc) = self
            .table
            .find(tuple)
            .and_then(|id| self.table.get(id))
            .filter(|a| a.active)
        else {
            self.stats.drops.no_allocation += 1;
            return ServerOutput::Handled;
        };
        let Some(channel) = alloc.channel_by_number(message.channel, now) else {
            self.stats.drops.no_channel += 1;
            return ServerOutput::Handled;
        };
        let peer = channel.peer;
        // A channel implies a permission when bound, but permissions must be refreshed
        // more often (RFC 8656 §12.1): without one nothing is relayed, either way.
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.drops.no_permission += 1;
            return ServerOutput::Handled;
        }
        let Some(relay) = alloc.relay_for(peer.ip(), now) else {
            self.stats.drops.no_allocation += 1;
            return ServerOutput::Handled;
        };
        let source = relay.addr;
        self.stats.to_peer.add(message.data.len());
        ServerOutput::Send(Datagram {
            transport: TransportProtocol::Udp,
            source,
            destination: peer,
            data: message.data,
            dont_fragment: false,
        })
    }

    /// RFC 8656 §11.2: relay the DATA of a Send indication. Indications are never
    /// answered: anything wrong drops it.
    pub(super) fn relay_send_indication<'a>(
        &mut self,
        now: Millis,
        tuple: &FiveTuple,
        msg: &Message<'a>,
    ) -> ServerOutput<'a> {
        let drops = &mut self.stats.drops;
        // A TCP allocation (RFC 6062) has no UDP relay to send from.
        let Some(alloc) = self
            .table
            .find(tuple)
            .and_then(|id| self.table.get(id))
            .filter(|a| a.active && a.relay_transport == TransportProtocol::Udp)
        else {
            drops.no_allocation += 1;
            return ServerOutput::Handled;
        };
        let (Ok(Some(XorPeerAddress(peer))), Ok(Some(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data<'a>>())
        else {
            drops.bad_send_indication += 1;
            return ServerOutput::Handled;
        };
        // DONT-FRAGMENT the driver cannot honour is an unknown comprehension-required
        // attribute, and an indication with one of those is discarded (RFC 8489 §6.3.2).
        let dont_fragment = msg.has(AttributeType::DONT_FRAGMENT);
        let unknown = msg.unknown_comprehension_required().next().is_some();
        if unknown || (dont_fragment && !self.config.dont_fragment) {
            drops.bad_send_indication += 1;
            return ServerOutput::Handled;
        }
        let Some(relay) = alloc.relay_for(peer.ip(), now) else {
            drops.family_mismatch += 1;
            return ServerOutput::Handled;
        };
        // (The listening set is read as a field: `drops` borrows the stats.)
        let own = self.listening.contains(&super::canonical(peer));
        if !self.config.peer_policy.allows(peer.ip()) || own {
            drops.denied_peer += 1;
            return ServerOutput::Handled;
        }
        if !alloc.has_permission(peer.ip(), now) {
            drops.no_permission += 1;
            return ServerOutput::Handled;
        }
        let source = relay.addr;
        self.stats.to_peer.add(data.len());
        ServerOutput::Send(Datagram {
            transport: TransportProtocol::Udp,
            source,
            destination: peer,
            data,
            dont_fragment,
        })
    }

    /// RFC 8656 §11.3, §12.7: a datagram from `peer` arrived on `relayed`.
    #[inline]
    pub(super) fn relay_from_peer<'a>(
        &'a mut self,
        now: Millis,
        peer: SocketAddr,
        relayed: SocketAddr,
        buf: &'a mut [u8],
        headroom: usize,
    ) -> ServerOutput<'a> {
        let Some(alloc) = self
            .ports
            .owner(relayed)
            .and_then(|id| self.table.get(id))
            .filter(|a| {
                a.active
                    && a.relay_transport == TransportProtocol::Udp
                    && a.relay_for(relayed.ip(), now).is_some()
            })
        else {
            self.stats.drops.no_allocation += 1;
            return ServerOutput::Handled;
        };
        // RFC 8656 §9: the peer's IP must have a permission; ports are not compared.
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.drops.no_permission += 1;
            return ServerOutput::Handled;
        }
        let tuple = alloc.five_tuple;
        let channel = alloc.channel_by_peer(peer, now).map(|c| c.number);
        let len = buf.len() - headroom;
        let limit = match channel {
            Some(_) => MAX_CHANNEL_DATA,
            None => MAX_CHANNEL_DATA - DATA_INDICATION_OVERHEAD,
        };
        if len > limit {
            self.stats.drops.too_large += 1;
            return ServerOutput::Handled;
        }
        self.stats.to_client.add(len);
        let data = match channel {
            Some(number) => self.channel_data_to_client(number, tuple.transport, buf, headroom),
            None => {
                self.stats.data_indications += 1;
                self.data_indication(peer, &buf[headroom..])
            }
        };
        ServerOutput::Send(Datagram {
            transport: tuple.transport,
            source: tuple.server,
            destination: tuple.client,
            data,
            dont_fragment: false,
        })
    }

    /// RFC 8656 §12.5: the ChannelData header in place when there is headroom and no
    /// stream padding is needed; else header, data and padding (over TCP and TLS) in the
    /// scratch buffer.
    fn channel_data_to_client<'a>(
        &'a mut self,
        number: u16,
        transport: TransportProtocol,
        buf: &'a mut [u8],
        headroom: usize,
    ) -> &'a [u8] {
        let len = buf.len() - headroom;
        let pad = transport.is_reliable();
        if headroom >= channel_data::HEADER_LEN && !pad {
            let start = headroom - channel_data::HEADER_LEN;
            if let Some(header) = buf[start..].first_chunk_mut() {
                let _ = channel_data::write_header(header, number, len);
            }
            let buf: &'a [u8] = buf;
            return &buf[start..];
        }
        let total = channel_data::HEADER_LEN + len;
        let padded = if pad {
            total.next_multiple_of(4)
        } else {
            total
        };
        self.grow_scratch(padded);
        let out = &mut self.scratch[..padded];
        if let Some(header) = out.first_chunk_mut() {
            let _ = channel_data::write_header(header, number, len);
        }
        out[channel_data::HEADER_LEN..total].copy_from_slice(&buf[headroom..]);
        out[total..].fill(0);
        out
    }

    /// RFC 8656 §11.3: a Data indication with XOR-PEER-ADDRESS and DATA, built in the
    /// scratch buffer. Its transaction ID comes from the seeded generator.
    fn data_indication(&mut self, peer: SocketAddr, payload: &[u8]) -> &[u8] {
        let tid = TransactionId::random(&mut self.rng);
        self.grow_scratch(DATA_INDICATION_OVERHEAD + payload.len() + 3);
        let mtype = MessageType::new(Method::DATA, Class::Indication);
        let built = MessageBuilder::new(&mut self.scratch, mtype, tid).and_then(|mut b| {
            b.add(&XorPeerAddress(peer))?;
            b.add(&Data(payload))?;
            Ok(b.finish().len())
        });
        // The buffer was sized for the message and the payload checked against the limit.
        let len = built.unwrap_or(0);
        &self.scratch[..len]
    }

    /// RFC 8656 §11.5: an ICMP error the driver received about a datagram sent from
    /// `relayed` to `peer` (for example from the socket's error queue) is passed to the
    /// client in a Data indication with XOR-PEER-ADDRESS and ICMP. Only ICMPv4 types 3 and
    /// 11 and ICMPv6 types 1, 2 and 3 qualify, and only towards a peer with a permission;
    /// anything else is dropped. Returns the indication to send, like
    /// [`handle_input`](Self::handle_input).
    pub fn handle_icmp(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        icmp: Icmp,
    ) -> ServerOutput<'_> {
        let now = self.millis(now);
        let valid_type = match relayed {
            SocketAddr::V4(_) => matches!(icmp.icmp_type, 3 | 11),
            SocketAddr::V6(_) => matches!(icmp.icmp_type, 1..=3),
        };
        if !valid_type {
            self.stats.drops.bad_icmp += 1;
            return ServerOutput::Handled;
        }
        let Some(alloc) = self
            .ports
            .owner(relayed)
            .and_then(|id| self.table.get(id))
            .filter(|a| a.active && a.relay_for(relayed.ip(), now).is_some())
        else {
            self.stats.drops.no_allocation += 1;
            return ServerOutput::Handled;
        };
        // The permission is checked against the destination of the packet in error.
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.drops.no_permission += 1;
            return ServerOutput::Handled;
        }
        let tuple = alloc.five_tuple;
        self.stats.icmp_relayed += 1;
        let tid = TransactionId::random(&mut self.rng);
        self.grow_scratch(DATA_INDICATION_OVERHEAD + 12);
        let mtype = MessageType::new(Method::DATA, Class::Indication);
        let built = MessageBuilder::new(&mut self.scratch, mtype, tid).and_then(|mut b| {
            b.add(&XorPeerAddress(peer))?;
            b.add(&icmp)?;
            Ok(b.finish().len())
        });
        let len = built.unwrap_or(0);
        ServerOutput::Send(Datagram {
            transport: tuple.transport,
            source: tuple.server,
            destination: tuple.client,
            data: &self.scratch[..len],
            dont_fragment: false,
        })
    }

    fn grow_scratch(&mut self, len: usize) {
        if self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
    }
}
