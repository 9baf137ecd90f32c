//! NAT behaviour discovery attributes (RFC 5780 §7).

use super::{Attribute, AttributeError, AttributeType, EncodeAttribute, be16, expect_len};
use crate::header::TransactionId;

/// CHANGE-REQUEST (RFC 5780 §7.2): ask the server to answer from its other IP and/or port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// The A flag: send the response from the other IP address.
    pub change_ip: bool,
    /// The B flag: send the response from the other port.
    pub change_port: bool,
}

impl<'a> Attribute<'a> for ChangeRequest {
    const TYPE: AttributeType = AttributeType::CHANGE_REQUEST;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 4)?;
        Ok(ChangeRequest {
            change_ip: value[3] & 0x04 != 0,
            change_port: value[3] & 0x02 != 0,
        })
    }
}

impl EncodeAttribute for ChangeRequest {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::CHANGE_REQUEST
    }

    fn value_len(&self) -> usize {
        4
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[..3].fill(0);
        out[3] = (u8::from(self.change_ip) << 2) | (u8::from(self.change_port) << 1);
    }
}

/// RESPONSE-PORT (RFC 5780 §7.5): the port the response should be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl<'a> Attribute<'a> for ResponsePort {
    const TYPE: AttributeType = AttributeType::RESPONSE_PORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        expect_len(Self::TYPE, value, 4)?;
        Ok(ResponsePort(be16(value, 0)))
    }
}

impl EncodeAttribute for ResponsePort {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::RESPONSE_PORT
    }

    fn value_len(&self) -> usize {
        4
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..].fill(0);
    }
}

/// PADDING (RFC 5780 §7.6): filler used to probe for fragmentation. Encoded as zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Padding<'a>(pub &'a [u8]);

impl<'a> Attribute<'a> for Padding<'a> {
    const TYPE: AttributeType = AttributeType::PADDING;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        Ok(Padding(value))
    }
}

impl EncodeAttribute for Padding<'_> {
    fn attribute_type(&self) -> AttributeType {
        AttributeType::PADDING
    }

    fn value_len(&self) -> usize {
        self.0.len()
    }

    fn encode_value(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}
