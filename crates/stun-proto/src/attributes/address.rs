//! Transport-address attributes, plain (RFC 8489 §14.1) and XOR-obfuscated (§14.2).

use super::{Attribute, AttributeError, AttributeType, EncodeAttribute, be16};
use crate::header::{MAGIC_COOKIE, TransactionId};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Encoded length of an address value for this socket address.
fn address_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// The XOR mask for the address bytes: the cookie, then (IPv6) the transaction ID.
fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(tid.as_bytes());
    mask
}

fn decode_address(
    attr: AttributeType,
    value: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr, AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::BadLength {
            attr,
            len: value.len(),
        });
    }
    // The first byte is reserved and ignored by receivers (RFC 8489 §14.1).
    let family = value[1];
    let mask = xor.map(xor_mask);
    let mut port = be16(value, 2);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let unmask = |bytes: &mut [u8]| {
        if let Some(mask) = &mask {
            bytes.iter_mut().zip(mask.iter()).for_each(|(b, m)| *b ^= m);
        }
    };
    match family {
        FAMILY_IPV4 => {
            if value.len() != 8 {
                return Err(AttributeError::BadLength {
                    attr,
                    len: value.len(),
                });
            }
            let mut ip = [0u8; 4];
            ip.copy_from_slice(&value[4..8]);
            unmask(&mut ip);
            Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        FAMILY_IPV6 => {
            if value.len() != 20 {
                return Err(AttributeError::BadLength {
                    attr,
                    len: value.len(),
                });
            }
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&value[4..20]);
            unmask(&mut ip);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        family => Err(AttributeError::BadFamily { attr, family }),
    }
}

fn encode_address(addr: &SocketAddr, out: &mut [u8], xor: Option<&TransactionId>) {
    let mask = xor.map(xor_mask);
    out[0] = 0;
    let mut port = addr.port();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    out[2..4].copy_from_slice(&port.to_be_bytes());
    let ip_out = match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_IPV4;
            out[4..8].copy_from_slice(&ip.octets());
            &mut out[4..8]
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_IPV6;
            out[4..20].copy_from_slice(&ip.octets());
            &mut out[4..20]
        }
    };
    if let Some(mask) = &mask {
        ip_out
            .iter_mut()
            .zip(mask.iter())
            .for_each(|(b, m)| *b ^= m);
    }
}

macro_rules! address_attribute {
    ($(#[$doc:meta])* $name:ident = $attr:ident, xor: $xor:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);

        impl<'a> Attribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;

            fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, AttributeError> {
                decode_address(Self::TYPE, value, if $xor { Some(tid) } else { None }).map($name)
            }
        }

        impl EncodeAttribute for $name {
            fn attribute_type(&self) -> AttributeType {
                AttributeType::$attr
            }

            fn value_len(&self) -> usize {
                address_len(&self.0)
            }

            fn encode_value(&self, out: &mut [u8], tid: &TransactionId) {
                encode_address(&self.0, out, if $xor { Some(tid) } else { None })
            }
        }
    };
}

address_attribute! {
    /// MAPPED-ADDRESS (RFC 8489 §14.1): the reflexive address, unobfuscated. Sent by servers
    /// only for RFC 3489 clients.
    MappedAddress = MAPPED_ADDRESS, xor: false
}
address_attribute! {
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the client's reflexive transport address.
    XorMappedAddress = XOR_MAPPED_ADDRESS, xor: true
}
address_attribute! {
    /// ALTERNATE-SERVER (RFC 8489 §14.15): the server to try instead (with 300).
    AlternateServer = ALTERNATE_SERVER, xor: false
}
address_attribute! {
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3): a peer's address as seen from the relay.
    XorPeerAddress = XOR_PEER_ADDRESS, xor: true
}
address_attribute! {
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5): the address the server allocated.
    XorRelayedAddress = XOR_RELAYED_ADDRESS, xor: true
}
address_attribute! {
    /// RESPONSE-ORIGIN (RFC 5780 §7.3): the address the response was sent from.
    ResponseOrigin = RESPONSE_ORIGIN, xor: false
}
address_attribute! {
    /// OTHER-ADDRESS (RFC 5780 §7.4): the server's alternate IP and port.
    OtherAddress = OTHER_ADDRESS, xor: false
}
address_attribute! {
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3): the classic name of OTHER-ADDRESS, still sent by
    /// some servers; NAT discovery falls back to it.
    ChangedAddress = CHANGED_ADDRESS, xor: false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_ipv4_matches_rfc5769() {
        // RFC 5769 §2.2: wire port 0xa147 and address e112a643 decode to 192.0.2.1:32853.
        let tid = TransactionId::new([0; 12]);
        let value = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let a = XorMappedAddress::decode(&value, &tid).unwrap();
        assert_eq!(a.0, "192.0.2.1:32853".parse().unwrap());
        let mut out = [0u8; 8];
        a.encode_value(&mut out, &tid);
        assert_eq!(out, value);
    }

    #[test]
    fn rejects_bad_family_and_lengths() {
        let tid = TransactionId::default();
        let e = MappedAddress::decode(&[0, 3, 0, 1, 1, 2, 3, 4], &tid).unwrap_err();
        assert_eq!(
            e,
            AttributeError::BadFamily {
                attr: AttributeType::MAPPED_ADDRESS,
                family: 3
            }
        );
        assert!(matches!(
            MappedAddress::decode(&[0, 1, 0, 1, 1, 2, 3], &tid),
            Err(AttributeError::BadLength { len: 7, .. })
        ));
        assert!(matches!(
            XorMappedAddress::decode(&[0, 2, 0, 1, 1, 2, 3, 4], &tid),
            Err(AttributeError::BadLength { len: 8, .. })
        ));
        assert!(matches!(
            MappedAddress::decode(&[0, 1], &tid),
            Err(AttributeError::BadLength { .. })
        ));
    }

    #[test]
    fn ipv6_round_trip_uses_transaction_id() {
        let tid = TransactionId::new([9; 12]);
        let addr: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let a = XorPeerAddress(addr);
        let mut out = [0u8; 20];
        a.encode_value(&mut out, &tid);
        assert_eq!(XorPeerAddress::decode(&out, &tid).unwrap(), a);
        // A different transaction ID gives a different address: the mask covers it.
        assert_ne!(
            XorPeerAddress::decode(&out, &TransactionId::new([1; 12])).unwrap(),
            a
        );
    }
}
