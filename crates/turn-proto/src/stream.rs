//! TURN over TCP and TLS: the conventions the client, the server and their drivers share,
//! and a helper for RFC 6062 data connections.
//!
//! * An [`Input`](crate::Input) (or [`ServerInput`](crate::server::ServerInput)) with
//!   transport TCP or TLS carries exactly one message: the driver cuts the byte stream with
//!   `stun_proto::framing::StreamFramer` (framing `StunAndChannelData`), which also strips
//!   the padding of ChannelData (RFC 8656 §12.5). Its `source` and `destination` are the
//!   connection's remote and local addresses. A framing error means the stream cannot be
//!   resynchronised: close the connection and report it (`Client::connection_lost`,
//!   `Server::connection_closed`).
//! * A [`Transmit`](crate::Transmit) (or a relayed
//!   [`Datagram`](crate::server::Datagram)) with transport TCP or TLS holds bytes to write as
//!   they are on the connection identified by (`source`, `destination`). ChannelData is
//!   already padded to a multiple of 4 bytes (RFC 8656 §12.5). Requests are sent once:
//!   reliable transports are not retransmitted on (RFC 8489 §6.2.2; the transaction times
//!   out after Ti = 39.5 s).
//! * Connections are opened and closed on the core's word (events) and reported back by
//!   methods: see the "Stream transports" sections of [`Client`](crate::client::Client) and
//!   [`Server`](crate::server::Server).
//!
//! An RFC 6062 data connection starts as a TURN stream (one ConnectionBind request and its
//! response) and then carries raw application bytes. The server may write the first peer
//! bytes right behind the ConnectionBind response, so a client-side driver must not push
//! a data connection's reads into a `StreamFramer` (whose buffer it could not take back):
//! it keeps them in a buffer of its own and cuts the response off with
//! [`first_message_len`]; what follows belongs to the application.

use stun_proto::HEADER_LEN;
use stun_proto::framing::FramingError;

/// The length of the STUN message at the start of `buf` once all of it is there
/// (`Ok(None)`: read more), or an error if `buf` does not start with a STUN header (then
/// close the connection).
///
/// ```
/// use turn_proto::stream::first_message_len;
/// let mut bytes = vec![0x01, 0x0b, 0, 0, 0x21, 0x12, 0xa4, 0x42];  // ConnectionBind success
/// bytes.extend_from_slice(&[7; 12]);                               // transaction ID
/// assert_eq!(first_message_len(&bytes[..10]), Ok(None));
/// bytes.extend_from_slice(b"raw peer bytes");
/// assert_eq!(first_message_len(&bytes), Ok(Some(20)));
/// assert!(first_message_len(b"GET / HTTP/1.1\r\n\r\n").is_err());
/// ```
pub fn first_message_len(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    match buf.first() {
        None => return Ok(None),
        Some(0..=3) => {}
        Some(&other) => return Err(FramingError::InvalidFirstByte(other)),
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let (_, len) = stun_proto::peek_header(buf).ok_or(FramingError::BadStunHeader)?;
    Ok((buf.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_the_whole_message_and_refuses_other_bytes() {
        let mut m = vec![0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[1; 12]);
        m.extend_from_slice(&[0x80, 0x22, 0, 0]);
        for cut in 0..m.len() {
            assert_eq!(first_message_len(&m[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(first_message_len(&m), Ok(Some(24)));
        let mut bad = m.clone();
        bad[4] = 0;
        assert_eq!(first_message_len(&bad), Err(FramingError::BadStunHeader));
        bad = m.clone();
        bad[3] = 3; // unaligned length
        assert_eq!(first_message_len(&bad), Err(FramingError::BadStunHeader));
        assert_eq!(
            first_message_len(&[0x40, 0, 0, 0]),
            Err(FramingError::InvalidFirstByte(0x40))
        );
    }
}
