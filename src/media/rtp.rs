//! RTP packets (RFC 3550) for the per-call media stream, and the media layer's error type.
//! Pure: parsing and building datagrams; the socket lives in [`super::session`].
//!
//! The wire format itself is `rtc-rtp`'s; this module narrows it to what a G.711 call
//! needs and turns every malformed datagram into a [`MediaError`], never a panic.

use std::path::PathBuf;

use bytes::Bytes;
use rtc_rtp::{Header, Packet};
use rtc_shared::marshal::{Marshal, Unmarshal};

/// Everything that can go wrong in the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A datagram shorter than the fixed 12-byte RTP header.
    #[error("RTP datagram too short: {len} bytes, the fixed header alone is 12")]
    RtpTooShort { len: usize },
    /// The version bits are not 2 (RTP version 1, or not RTP at all, e.g. STUN).
    #[error("RTP version {0} is not supported, only version 2")]
    RtpVersion(u8),
    /// The header announces CSRCs, an extension or padding the datagram does not hold.
    #[error("malformed RTP packet: {0}")]
    RtpMalformed(String),
    /// An RFC 4733 telephone-event payload shorter than its 4 bytes.
    #[error("telephone-event payload too short: {len} bytes, need 4")]
    TelephoneEventTooShort { len: usize },
    /// A prompt file could not be opened or decoded as WAV.
    #[error("prompt {path}: {source}")]
    PromptUnreadable {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    /// A prompt file is a WAV, but not 8 kHz mono 16-bit PCM.
    #[error("prompt {path}: {problem}; prompts must be 8000 Hz mono 16-bit PCM")]
    PromptFormat { path: PathBuf, problem: String },
}

/// The RTP version every packet on the wire must carry.
const RTP_VERSION: u8 = 2;
/// Size of the fixed RTP header without CSRCs or extension.
const FIXED_HEADER_LEN: usize = 12;

/// One received RTP packet, reduced to the fields the media task uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    /// The payload with any padding removed; CSRCs and header extensions are skipped.
    pub payload: Bytes,
}

/// Parses one UDP datagram as RTP.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket, MediaError> {
    if datagram.len() < FIXED_HEADER_LEN {
        return Err(MediaError::RtpTooShort {
            len: datagram.len(),
        });
    }
    // rtc-rtp does not check the version; STUN keepalives and RTCP-on-the-wrong-port must
    // not be mistaken for audio.
    let version = datagram[0] >> 6;
    if version != RTP_VERSION {
        return Err(MediaError::RtpVersion(version));
    }
    let mut buf = datagram;
    let packet =
        Packet::unmarshal(&mut buf).map_err(|e| MediaError::RtpMalformed(e.to_string()))?;
    Ok(RtpPacket {
        payload_type: packet.header.payload_type,
        sequence: packet.header.sequence_number,
        timestamp: packet.header.timestamp,
        ssrc: packet.header.ssrc,
        marker: packet.header.marker,
        payload: packet.payload,
    })
}

/// Builds the outgoing packets of one RTP stream: one SSRC, one payload type, sequence
/// numbers and timestamps advancing with every packet.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    next_timestamp: u32,
}

impl RtpSender {
    /// RFC 3550 §5.1 wants random initial sequence numbers and timestamps; the caller
    /// chooses them so tests can be deterministic.
    pub fn new(ssrc: u32, payload_type: u8, initial_seq: u16, initial_ts: u32) -> RtpSender {
        RtpSender {
            ssrc,
            payload_type,
            next_sequence: initial_seq,
            next_timestamp: initial_ts,
        }
    }

    /// The next packet carrying `payload`, which holds `samples` samples of media time.
    /// Sequence number and timestamp wrap around as RFC 3550 intends.
    pub fn packet(&mut self, payload: &[u8], samples: u32, marker: bool) -> Bytes {
        let packet = Packet {
            header: Header {
                version: RTP_VERSION,
                marker,
                payload_type: self.payload_type,
                sequence_number: self.next_sequence,
                timestamp: self.next_timestamp,
                ssrc: self.ssrc,
                ..Header::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
        match packet.marshal() {
            Ok(bytes) => bytes.freeze(),
            // Unreachable: marshal() sizes its own buffer and only fails on header
            // extensions, which we never set. Build the fixed header by hand rather than
            // panic in the media path.
            Err(_) => fixed_header_packet(&packet),
        }
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }
}

fn fixed_header_packet(packet: &Packet) -> Bytes {
    let header = &packet.header;
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + packet.payload.len());
    out.push(RTP_VERSION << 6);
    out.push((u8::from(header.marker) << 7) | (header.payload_type & 0x7F));
    out.extend_from_slice(&header.sequence_number.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.ssrc.to_be_bytes());
    out.extend_from_slice(&packet.payload);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sender_output_parses_back() {
        let mut sender = RtpSender::new(0xDEAD_BEEF, 8, 65535, u32::MAX - 100);
        let first = parse(&sender.packet(&[0xD5; 160], 160, true)).expect("valid packet");
        assert_eq!(first.payload_type, 8);
        assert_eq!(first.sequence, 65535);
        assert_eq!(first.timestamp, u32::MAX - 100);
        assert_eq!(first.ssrc, 0xDEAD_BEEF);
        assert!(first.marker);
        assert_eq!(first.payload.len(), 160);

        let second = parse(&sender.packet(&[1, 2, 3], 160, false)).expect("valid packet");
        assert_eq!(second.sequence, 0, "sequence wraps");
        assert_eq!(second.timestamp, 59, "timestamp wraps");
        assert!(!second.marker);
        assert_eq!(&second.payload[..], &[1, 2, 3]);
        assert_eq!(sender.next_sequence(), 1);
    }

    #[test]
    fn built_packet_has_the_rfc3550_layout() {
        let mut sender = RtpSender::new(0x0102_0304, 0, 0x1234, 0x0A0B_0C0D);
        let bytes = sender.packet(&[0xFF], 160, true);
        assert_eq!(
            &bytes[..],
            &[
                0x80, 0x80, 0x12, 0x34, 0x0A, 0x0B, 0x0C, 0x0D, 1, 2, 3, 4, 0xFF
            ]
        );
        let packet = Packet {
            header: Header {
                version: 2,
                marker: true,
                payload_type: 0,
                sequence_number: 0x1234,
                timestamp: 0x0A0B_0C0D,
                ssrc: 0x0102_0304,
                ..Header::default()
            },
            payload: Bytes::from_static(&[0xFF]),
        };
        assert_eq!(fixed_header_packet(&packet), bytes);
    }

    #[test]
    fn rejects_short_datagrams() {
        assert!(matches!(
            parse(&[0x80, 0, 0]),
            Err(MediaError::RtpTooShort { len: 3 })
        ));
        assert!(matches!(
            parse(&[]),
            Err(MediaError::RtpTooShort { len: 0 })
        ));
    }

    #[test]
    fn rejects_other_versions() {
        let mut datagram = [0u8; 20];
        datagram[0] = 0x40; // version 1
        assert!(matches!(parse(&datagram), Err(MediaError::RtpVersion(1))));
        // A STUN binding request starts with two zero bits: version 0.
        datagram[0] = 0x00;
        assert!(matches!(parse(&datagram), Err(MediaError::RtpVersion(0))));
    }

    #[test]
    fn rejects_truncated_csrc_list_and_extension() {
        // CC = 15 CSRCs announced, none present.
        let mut datagram = [0u8; 16];
        datagram[0] = 0x8F;
        assert!(matches!(parse(&datagram), Err(MediaError::RtpMalformed(_))));
        // Extension bit set, extension header claims 10 words, none present.
        let datagram = [0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0, 10];
        assert!(matches!(parse(&datagram), Err(MediaError::RtpMalformed(_))));
    }

    #[test]
    fn rejects_padding_longer_than_payload_and_strips_valid_padding() {
        let mut datagram = vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA, 9];
        assert!(matches!(parse(&datagram), Err(MediaError::RtpMalformed(_))));
        datagram[13] = 1;
        let packet = parse(&datagram).expect("one byte of padding");
        assert_eq!(&packet.payload[..], &[0xAA]);
    }

    #[test]
    fn skips_csrcs_and_header_extension() {
        let datagram = [
            0x91, 0x08, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9, // V=2 X=1 CC=1, PT 8
            0, 0, 0, 42, // CSRC
            0x12, 0x34, 0, 1, 1, 2, 3, 4, // RFC 3550 extension, one word
            0xD5, 0xD5,
        ];
        let packet = parse(&datagram).expect("valid");
        assert_eq!(packet.payload_type, 8);
        assert_eq!(packet.sequence, 7);
        assert_eq!(&packet.payload[..], &[0xD5, 0xD5]);
    }

    proptest! {
        #[test]
        fn parse_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&datagram);
        }

        #[test]
        fn parse_never_panics_on_version_2(mut datagram in proptest::collection::vec(any::<u8>(), 12..64)) {
            datagram[0] = (datagram[0] & 0x3F) | 0x80;
            let _ = parse(&datagram);
        }
    }
}
