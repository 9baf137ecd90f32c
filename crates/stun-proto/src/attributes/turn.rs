//! TURN attributes (RFC 8656 §18) and CONNECTION-ID (RFC 6062 §6.2.1).

use super::{
    Attribute, AttributeError, AttributeType, EncodeAttribute, be16, expect_len, flag_attribute,
    int_attribute,
};
use crate::header::TransactionId;

/// An IP address family as TURN encodes it (0x01 IPv4, 0x02 IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl AddressFamily {
    pub(crate) fn from_wire(attr: AttributeType, b: u8) -> Result<Self, AttributeError> {
        match b {
            0x01 => Ok(AddressFamily::Ipv4),
            0x02 => Ok(AddressFamily::Ipv6),
            family => Err(AttributeError::BadFamily { attr, family }),
        }
    }

    pub(crate) fn to_wire(self) -> u8 {
        match self {
            AddressFamily::Ipv4 => 0x01,
            AddressFamily::Ipv6 => 0x02,
        }
    }

    /// The family of an IP address.
    pub fn of(ip: &core::net::IpAddr) -> AddressFamily {
        if ip.is_ipv4() {
            AddressFamily::Ipv4
        } else {
            AddressFamily::Ipv6
        }
    }
}

/// CHANNEL-NUMBER (RFC 8656 §18.1): a channel number followed by two reserved bytes.
/// Valid channel numbers are 0x4000–0x4FFF (§12); the range is checked by the TURN layer,
/// which must answer 400 to others rather than fail to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelNumber(pub u16);

impl<'a> Attribute<'a> for ChannelNumber {
    const TYPE: AttributeType = AttributeType::CHANNEL_NUMBER;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 4)?;
        Ok(ChannelNumber(be16(value, 0)))
    }
}

impl EncodeAttribute for ChannelNumber {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::CHANNEL_NUMBER
    }

    fn value_len(&self) -> usize {
        4
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..].fill(0);
    }
}

int_attribute! {
    /// LIFETIME (RFC 8656 §18.2): seconds the allocation should live.
    Lifetime(u32) = LIFETIME, 4
}

int_attribute! {
    /// CONNECTION-ID (RFC 6062 §6.2.1): identifies a peer TCP data connection.
    ConnectionId(u32) = CONNECTION_ID, 4
}

/// DATA (RFC 8656 §18.4): application data in Send and Data indications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Data<'a>(pub &'a [u8]);

impl<'a> Attribute<'a> for Data<'a> {
    const TYPE: AttributeType = AttributeType::DATA;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        Ok(Data(value))
    }
}

impl EncodeAttribute for Data<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::DATA
    }

    fn value_len(&self) -> usize {
        self.0.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}

macro_rules! family_attribute {
    ($(#[$doc:meta])* $name:ident = $attr:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub AddressFamily);

        impl<'a> Attribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;

            fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
                expect_len(Self::TYPE, value, 4)?;
                AddressFamily::from_wire(Self::TYPE, value[0]).map($name)
            }
        }

        impl EncodeAttribute for $name {
            fn attribute_type(&self) -> AttributeType {
                AttributeType::$attr
            }

            fn value_len(&self) -> usize {
                4
            }

            fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
                out[0] = self.0.to_wire();
                out[1..].fill(0);
            }
        }
    };
}

family_attribute! {
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): the family of the relayed address wanted.
    RequestedAddressFamily = REQUESTED_ADDRESS_FAMILY
}
family_attribute! {
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): ask for an IPv6 relayed address besides
    /// the IPv4 one. Only IPv6 is meaningful; the TURN server answers 400 to others.
    AdditionalAddressFamily = ADDITIONAL_ADDRESS_FAMILY
}

/// EVEN-PORT (RFC 8656 §18.7): ask for an even relay port, and with `reserve` also for the
/// next-higher port to be held back (a RESERVATION-TOKEN comes back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EvenPort {
    /// The R bit.
    pub reserve: bool,
}

impl<'a> Attribute<'a> for EvenPort {
    const TYPE: AttributeType = AttributeType::EVEN_PORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        // One byte; tolerate senders that pad it into the value (length 4).
        if value.is_empty() || value.len() > 4 {
            return Err(AttributeError::BadLength {
                attr: Self::TYPE,
                len: value.len(),
            });
        }
        Ok(EvenPort {
            reserve: value[0] & 0x80 != 0,
        })
    }
}

impl EncodeAttribute for EvenPort {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::EVEN_PORT
    }

    fn value_len(&self) -> usize {
        1
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = if self.reserve { 0x80 } else { 0 };
    }
}

/// REQUESTED-TRANSPORT (RFC 8656 §18.8): an IANA protocol number (17 = UDP, 6 = TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestedTransport(pub u8);

impl RequestedTransport {
    /// UDP (17).
    pub const UDP: RequestedTransport = RequestedTransport(17);
    /// TCP (6), for RFC 6062 allocations.
    pub const TCP: RequestedTransport = RequestedTransport(6);
}

impl<'a> Attribute<'a> for RequestedTransport {
    const TYPE: AttributeType = AttributeType::REQUESTED_TRANSPORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 4)?;
        Ok(RequestedTransport(value[0]))
    }
}

impl EncodeAttribute for RequestedTransport {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::REQUESTED_TRANSPORT
    }

    fn value_len(&self) -> usize {
        4
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = self.0;
        out[1..].fill(0);
    }
}

flag_attribute! {
    /// DONT-FRAGMENT (RFC 8656 §18.9): set DF on the relayed datagrams.
    DontFragment = DONT_FRAGMENT
}

/// RESERVATION-TOKEN (RFC 8656 §18.10): names a relay port held back by EVEN-PORT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservationToken(pub [u8; 8]);

impl<'a> Attribute<'a> for ReservationToken {
    const TYPE: AttributeType = AttributeType::RESERVATION_TOKEN;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 8)?;
        let mut token = [0u8; 8];
        token.copy_from_slice(value);
        Ok(ReservationToken(token))
    }
}

impl EncodeAttribute for ReservationToken {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::RESERVATION_TOKEN
    }

    fn value_len(&self) -> usize {
        8
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&self.0);
    }
}

/// ICMP (RFC 8656 §18.13): an ICMP error the relay received from a peer, passed on in a
/// Data indication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Icmp {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Error data (for example the MTU of "fragmentation needed").
    pub error_data: u32,
}

impl<'a> Attribute<'a> for Icmp {
    const TYPE: AttributeType = AttributeType::ICMP;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 8)?;
        Ok(Icmp {
            icmp_type: value[2],
            code: value[3],
            error_data: super::be32(value, 4),
        })
    }
}

impl EncodeAttribute for Icmp {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::ICMP
    }

    fn value_len(&self) -> usize {
        8
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].fill(0);
        out[2] = self.icmp_type;
        out[3] = self.code;
        out[4..8].copy_from_slice(&self.error_data.to_be_bytes());
    }
}
