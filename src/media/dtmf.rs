//! RFC 4733 telephone-events (DTMF keys, R24 survey and menus). Pure: payload parsing and
//! turning the redundant packet stream of one key press into one digit.

use super::rtp::MediaError;

/// One `telephone-event` payload (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash.
    pub event: u8,
    /// The E bit: this is one of the (usually three) final packets of the event.
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

/// Parses a telephone-event payload. Extra bytes (redundant events stacked per RFC 4733
/// §2.5.1.5) are ignored: the first event is the current one.
pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, MediaError> {
    let [event, flags, duration_hi, duration_lo, ..] = *payload else {
        return Err(MediaError::TelephoneEventTooShort { len: payload.len() });
    };
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3F,
        duration: u16::from_be_bytes([duration_hi, duration_lo]),
    })
}

impl TelephoneEvent {
    /// The keypad key for DTMF events, `None` for flash and other events.
    pub fn digit(&self) -> Option<char> {
        match self.event {
            0..=9 => char::from_digit(u32::from(self.event), 10),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + (self.event - 12))),
            _ => None,
        }
    }
}

/// How many recent events are remembered to recognise late retransmissions.
const REMEMBERED_EVENTS: usize = 8;

#[derive(Clone, Copy, Debug)]
struct SeenEvent {
    timestamp: u32,
    event: u8,
    ended: bool,
    duration: u16,
}

/// Turns the packets of RFC 4733 events into one digit per key press.
///
/// A sender repeats each event every 50 ms or so while the key is held and sends the end
/// packet three times, all with the same RTP timestamp (the event's start). So the first
/// packet seen for a new timestamp yields the digit, and every later packet with that
/// timestamp is a duplicate. A press longer than the 16-bit duration field allows is split
/// into segments with new timestamps (RFC 4733 §2.5.1.3); those continue the same press.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// Most recent first.
    recent: Vec<SeenEvent>,
}

impl DtmfDetector {
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// Feeds one packet (its RTP timestamp and payload); returns the key when this packet
    /// starts a new press.
    pub fn on_event(&mut self, rtp_timestamp: u32, event: &TelephoneEvent) -> Option<char> {
        if let Some(seen) = self
            .recent
            .iter_mut()
            .find(|seen| seen.timestamp == rtp_timestamp)
        {
            seen.ended |= event.end;
            seen.duration = seen.duration.max(event.duration);
            return None;
        }
        let continues_long_press = self.recent.first().is_some_and(|last| {
            !last.ended
                && last.event == event.event
                && last.timestamp.wrapping_add(u32::from(last.duration)) == rtp_timestamp
        });
        self.recent.insert(
            0,
            SeenEvent {
                timestamp: rtp_timestamp,
                event: event.event,
                ended: event.end,
                duration: event.duration,
            },
        );
        self.recent.truncate(REMEMBERED_EVENTS);
        if continues_long_press {
            None
        } else {
            event.digit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let [hi, lo] = duration.to_be_bytes();
        [event, (u8::from(end) << 7) | volume, hi, lo]
    }

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn parses_rfc4733_payload() {
        let parsed = parse(&payload(11, true, 10, 1600)).expect("4 bytes");
        assert_eq!(
            parsed,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 1600
            }
        );
        // The R bit (0x40) is reserved and must not leak into the volume.
        let parsed = parse(&[5, 0x40 | 0x07, 0, 160]).expect("4 bytes");
        assert_eq!(parsed.volume, 7);
        assert!(!parsed.end);
    }

    #[test]
    fn rejects_short_payload() {
        assert!(matches!(
            parse(&[1, 2, 3]),
            Err(MediaError::TelephoneEventTooShort { len: 3 })
        ));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn digits_cover_the_keypad() {
        let keys: String = (0..16).filter_map(|e| ev(e, false, 0).digit()).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(ev(16, false, 0).digit(), None, "flash is not a key");
        assert_eq!(ev(200, false, 0).digit(), None);
    }

    #[test]
    fn one_digit_per_press_despite_repeats_and_triple_end_r29() {
        let mut detector = DtmfDetector::new();
        let mut keys = String::new();
        // Press "1" at ts 1000: 4 updates, then the end packet three times.
        for duration in [160, 320, 480, 640] {
            keys.extend(detector.on_event(1000, &ev(1, false, duration)));
        }
        for _ in 0..3 {
            keys.extend(detector.on_event(1000, &ev(1, true, 800)));
        }
        // Press "1" again: same key, new timestamp, is a second press.
        for duration in [160, 320] {
            keys.extend(detector.on_event(3000, &ev(1, false, duration)));
        }
        for _ in 0..3 {
            keys.extend(detector.on_event(3000, &ev(1, true, 480)));
        }
        // "#" where only the end packets survived the network.
        for _ in 0..3 {
            keys.extend(detector.on_event(5000, &ev(11, true, 480)));
        }
        // A late duplicate of the first press's end packet.
        keys.extend(detector.on_event(1000, &ev(1, true, 800)));
        assert_eq!(keys, "11#");
    }

    #[test]
    fn long_press_split_into_segments_is_one_digit() {
        let mut detector = DtmfDetector::new();
        let mut keys = String::new();
        keys.extend(detector.on_event(0, &ev(5, false, 0xFFFF)));
        keys.extend(detector.on_event(0xFFFF, &ev(5, false, 800)));
        keys.extend(detector.on_event(0xFFFF, &ev(5, true, 1600)));
        assert_eq!(keys, "5");
    }

    #[test]
    fn non_digit_events_are_deduplicated_but_yield_nothing() {
        let mut detector = DtmfDetector::new();
        assert_eq!(detector.on_event(10, &ev(16, false, 160)), None);
        assert_eq!(detector.on_event(10, &ev(16, true, 320)), None);
        assert_eq!(detector.on_event(900, &ev(2, false, 160)), Some('2'));
    }
}
