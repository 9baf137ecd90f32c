//! `channel_data`: `turn_proto::channel_data` on arbitrary bytes.
//!
//! Invariants:
//! * No panic.
//! * `parse` succeeds exactly when the buffer has a header, a channel number in
//!   0x4000–0x4FFF and at least the declared length; the data is then the declared bytes
//!   after the header (trailing padding ignored), and the right error is given otherwise.
//! * `encode` (padded or not) then `parse` gives back the channel and the data; the padded
//!   form is a multiple of 4 bytes; `write_header` in place gives the same bytes.

use turn_proto::channel_data::{
    self, CHANNEL_RANGE, ChannelData, ChannelDataError, HEADER_LEN, is_valid_channel,
};

/// The body of the target.
pub fn run(data: &[u8]) {
    match ChannelData::parse(data) {
        Ok(cd) => {
            assert!(data.len() >= HEADER_LEN);
            let channel = u16::from_be_bytes([data[0], data[1]]);
            let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
            assert_eq!(cd.channel, channel);
            assert!(CHANNEL_RANGE.contains(&channel) && is_valid_channel(channel));
            assert_eq!(cd.data, &data[HEADER_LEN..HEADER_LEN + declared]);
            for pad in [false, true] {
                let encoded = channel_data::encode(cd.channel, cd.data, pad).expect("fits");
                if pad {
                    assert_eq!(encoded.len() % 4, 0);
                } else {
                    assert_eq!(encoded.len(), HEADER_LEN + declared);
                    assert_eq!(encoded, data[..HEADER_LEN + declared]);
                }
                let back = ChannelData::parse(&encoded).expect("encoded ChannelData parses");
                assert_eq!(back, cd);
            }
            let mut in_place = data[..HEADER_LEN + declared].to_vec();
            in_place[..HEADER_LEN].fill(0);
            let (header, _) = in_place
                .split_first_chunk_mut::<HEADER_LEN>()
                .expect("header room");
            channel_data::write_header(header, channel, declared).expect("fits");
            assert_eq!(in_place, data[..HEADER_LEN + declared]);
        }
        Err(ChannelDataError::TooShort) => assert!(data.len() < HEADER_LEN),
        Err(ChannelDataError::BadChannel(n)) => {
            assert!(data.len() >= HEADER_LEN);
            assert_eq!(n, u16::from_be_bytes([data[0], data[1]]));
            assert!(!is_valid_channel(n));
        }
        Err(ChannelDataError::Truncated {
            declared,
            available,
        }) => {
            assert_eq!(available, data.len() - HEADER_LEN);
            assert!(declared > available);
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}
