//! ChannelData messages (RFC 8656 §12.4): a 4-byte header (channel number, length) before
//! the application data, instead of a 36+ byte Send or Data indication.
//!
//! The header is designed to be written in place: a driver that receives peer datagrams 4
//! bytes into its buffer lets [`write_header`] turn them into ChannelData without copying
//! the payload.

use core::fmt;
use core::ops::RangeInclusive;

/// Channel numbers a client may bind (RFC 8656 §12).
pub const CHANNEL_RANGE: RangeInclusive<u16> = 0x4000..=0x4FFF;

/// Length of the ChannelData header.
pub const HEADER_LEN: usize = 4;

/// True if `n` is a channel number a client may bind.
pub const fn is_valid_channel(n: u16) -> bool {
    n >= *CHANNEL_RANGE.start() && n <= *CHANNEL_RANGE.end()
}

/// Why bytes are not a valid ChannelData message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelDataError {
    /// Shorter than the 4-byte header.
    TooShort,
    /// The channel number is outside 0x4000–0x4FFF.
    BadChannel(u16),
    /// The length field claims more bytes than there are.
    Truncated {
        /// Declared length.
        declared: usize,
        /// Bytes available after the header.
        available: usize,
    },
}

impl fmt::Display for ChannelDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelDataError::TooShort => f.write_str("ChannelData shorter than its header"),
            ChannelDataError::BadChannel(n) => write!(f, "channel number {n:#06x} out of range"),
            ChannelDataError::Truncated {
                declared,
                available,
            } => {
                write!(
                    f,
                    "ChannelData declares {declared} bytes, {available} present"
                )
            }
        }
    }
}

impl std::error::Error for ChannelDataError {}

/// A parsed ChannelData message borrowing its data from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel number.
    pub channel: u16,
    /// The application data (without header and without any stream padding).
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses a ChannelData message. Bytes after the declared length are ignored: over UDP
    /// RFC 8656 §12.5 allows padding, and over streams the framer has already removed it.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ChannelDataError> {
        if buf.len() < HEADER_LEN {
            return Err(ChannelDataError::TooShort);
        }
        let channel = u16::from_be_bytes([buf[0], buf[1]]);
        if !is_valid_channel(channel) {
            return Err(ChannelDataError::BadChannel(channel));
        }
        let declared = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let available = buf.len() - HEADER_LEN;
        if declared > available {
            return Err(ChannelDataError::Truncated {
                declared,
                available,
            });
        }
        Ok(ChannelData {
            channel,
            data: &buf[HEADER_LEN..HEADER_LEN + declared],
        })
    }
}

/// Writes the 4-byte header for `data_len` bytes of data on `channel` into `header`.
/// Returns `None` if `data_len` does not fit in 16 bits.
pub fn write_header(header: &mut [u8; HEADER_LEN], channel: u16, data_len: usize) -> Option<()> {
    let len = u16::try_from(data_len).ok()?;
    header[..2].copy_from_slice(&channel.to_be_bytes());
    header[2..].copy_from_slice(&len.to_be_bytes());
    Some(())
}

/// Encodes a ChannelData message into a new buffer; with `pad` the result is padded with
/// zeros to a multiple of 4 bytes, as stream transports require (RFC 8656 §12.5).
pub fn encode(channel: u16, data: &[u8], pad: bool) -> Option<Vec<u8>> {
    let total = HEADER_LEN + data.len();
    let mut out = Vec::with_capacity(if pad {
        total.next_multiple_of(4)
    } else {
        total
    });
    let mut header = [0u8; HEADER_LEN];
    write_header(&mut header, channel, data.len())?;
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    if pad {
        out.resize(total.next_multiple_of(4), 0);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let m = encode(0x4001, b"hello", true).unwrap();
        assert_eq!(m.len(), 12);
        assert_eq!(&m[..4], &[0x40, 0x01, 0, 5]);
        let c = ChannelData::parse(&m).unwrap();
        assert_eq!((c.channel, c.data), (0x4001, &b"hello"[..]));
        assert_eq!(encode(0x4FFF, b"", false).unwrap(), [0x4f, 0xff, 0, 0]);
        assert!(encode(0x4000, &vec![0; 70_000], false).is_none());
    }

    #[test]
    fn errors() {
        assert_eq!(
            ChannelData::parse(&[0x40, 0]),
            Err(ChannelDataError::TooShort)
        );
        assert_eq!(
            ChannelData::parse(&[0x50, 0, 0, 0]),
            Err(ChannelDataError::BadChannel(0x5000))
        );
        assert_eq!(
            ChannelData::parse(&[0x3f, 0xff, 0, 0]),
            Err(ChannelDataError::BadChannel(0x3fff))
        );
        assert_eq!(
            ChannelData::parse(&[0x40, 0, 0, 9, 1, 2]),
            Err(ChannelDataError::Truncated {
                declared: 9,
                available: 2
            })
        );
    }

    #[test]
    fn header_in_place() {
        // A peer datagram received 4 bytes into the buffer becomes ChannelData in place.
        let mut buf = [0u8; 4 + 3];
        buf[4..].copy_from_slice(b"abc");
        let (header, _) = buf.split_first_chunk_mut::<HEADER_LEN>().unwrap();
        write_header(header, 0x4abc, 3).unwrap();
        assert_eq!(ChannelData::parse(&buf).unwrap().data, b"abc");
    }
}
