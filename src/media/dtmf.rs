//! DTMF keys (R24 survey and menus), pure: RFC 4733 telephone-events (payload parsing,
//! and the redundant packet stream of one key press turned into one digit), and in-band
//! tones found in the decoded audio with the Goertzel algorithm (ITU-T Q.23/Q.24), for
//! trunks that send the tones as sound.

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

// ----- in-band DTMF (Goertzel) ---------------------------------------------------------

/// The keypad's row (low group) and column (high group) frequencies, Hz (ITU-T Q.23).
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

const SAMPLE_RATE: f64 = 8000.0;
/// Decisions are taken every 10 ms.
const HOP: usize = 80;
/// Q.24's frequency tolerance: a tone within 1.5 % of its nominal frequency must be
/// accepted, one 3.5 % off must not. Each frequency's filter looks at a window whose
/// first spectral null lies 3.5 % away from it (N = fs / (0.035 f)), so the longest
/// window, 697 Hz's, is 328 samples (41 ms).
const REJECT_OFFSET: f64 = 0.035;

/// Limits of the in-band detector; the defaults follow ITU-T Q.24.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InbandDtmfSettings {
    /// Each tone must be at least this loud (dBm0). Q.24: -25 dBm0 must be accepted.
    pub min_tone_level_dbm0: f64,
    /// How much weaker the high-group tone may be than the low-group one (dB).
    pub max_normal_twist_db: f64,
    /// How much weaker the low-group tone may be than the high-group one (dB).
    pub max_reverse_twist_db: f64,
    /// The two tones must hold this share of the signal's power: speech and music
    /// spread their power over many frequencies.
    pub min_tone_power_share: f64,
    /// Consecutive 10 ms decisions before a key counts. A tone's first 10 ms seldom
    /// decide, so 3 accepts the 40 ms tones Q.24 requires and refuses 20 ms blips.
    pub min_hops: u32,
    /// Consecutive 10 ms decisions without the key before it counts as released, so a
    /// held key is one digit and a short drop-out does not make two.
    pub release_hops: u32,
}

impl Default for InbandDtmfSettings {
    fn default() -> InbandDtmfSettings {
        InbandDtmfSettings {
            min_tone_level_dbm0: -30.0,
            max_normal_twist_db: 8.0,
            max_reverse_twist_db: 4.0,
            min_tone_power_share: 0.4,
            min_hops: 3,
            release_hops: 4,
        }
    }
}

/// Peak amplitude of a 0 dBm0 sine in 16-bit linear PCM: G.711's full-scale sine is
/// +3.17 dBm0 at a peak of 32 635 (µ-law's largest value scaled to 16 bits).
const ZERO_DBM0_PEAK: f64 = 32_635.0 / 1.440;

/// One Goertzel filter: its frequency and window length.
#[derive(Clone, Copy, Debug)]
struct Filter {
    coefficient: f64,
    window: usize,
}

impl Filter {
    fn new(frequency: f64) -> Filter {
        Filter {
            coefficient: 2.0 * (2.0 * std::f64::consts::PI * frequency / SAMPLE_RATE).cos(),
            window: (SAMPLE_RATE / (REJECT_OFFSET * frequency)).round() as usize,
        }
    }

    /// |X(f)|² over `samples` (the last `window` samples of the history).
    fn power(&self, samples: &[f64]) -> f64 {
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s0 = x + self.coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - self.coefficient * s1 * s2
    }
}

/// What one filter saw over its window.
#[derive(Clone, Copy, Debug)]
struct ToneMeasure {
    /// Share of the window's power at this frequency (1.0: a pure tone right on it).
    share: f64,
    /// Estimated amplitude of a sine at this frequency.
    amplitude: f64,
}

/// Finds DTMF keys in 8 kHz PCM (in-band tones), one digit per key press.
///
/// Every 10 ms each of the eight Goertzel filters measures its own window; a key is
/// *present* in that hop when the strongest row and the strongest column are each the
/// only strong one in their group (6 dB above the others), loud enough, within twist,
/// together hold most of the power, and the newest 10 ms still carry the tone (so a
/// tone's duration is measured, not its window's). A key counts after `min_hops`
/// present hops in a row and is not counted again until `release_hops` absent hops.
#[derive(Clone, Debug)]
pub struct InbandDtmfDetector {
    settings: InbandDtmfSettings,
    rows: [Filter; 4],
    columns: [Filter; 4],
    /// Recent samples, oldest first; at least the newest `longest`.
    history: Vec<f64>,
    longest: usize,
    /// Samples since the last decision.
    since_hop: usize,
    candidate: Option<char>,
    streak: u32,
    /// The key being held, already reported.
    held: Option<char>,
    absent: u32,
}

impl Default for InbandDtmfDetector {
    fn default() -> InbandDtmfDetector {
        InbandDtmfDetector::new(InbandDtmfSettings::default())
    }
}

impl InbandDtmfDetector {
    pub fn new(settings: InbandDtmfSettings) -> InbandDtmfDetector {
        let rows = ROWS.map(Filter::new);
        let columns = COLUMNS.map(Filter::new);
        let longest = rows
            .iter()
            .chain(&columns)
            .map(|f| f.window)
            .max()
            .unwrap_or(HOP);
        InbandDtmfDetector {
            settings,
            rows,
            columns,
            history: vec![0.0; longest],
            longest,
            since_hop: 0,
            candidate: None,
            streak: 0,
            held: None,
            absent: 0,
        }
    }

    /// Feeds decoded samples (any length; usually a 20 ms frame); returns the keys whose
    /// press completed in them.
    pub fn push_samples(&mut self, samples: &[i16]) -> Vec<char> {
        let mut keys = Vec::new();
        for &sample in samples {
            // Appended, and trimmed now and then: amortised O(1) per sample.
            if self.history.len() >= 4 * self.longest {
                self.history.drain(..self.history.len() - self.longest);
            }
            self.history.push(f64::from(sample));
            self.since_hop += 1;
            if self.since_hop == HOP {
                self.since_hop = 0;
                let present = self.key_present();
                keys.extend(self.decide(present));
            }
        }
        keys
    }

    fn decide(&mut self, present: Option<char>) -> Option<char> {
        if present.is_some() && present == self.candidate {
            self.streak += 1;
        } else {
            self.candidate = present;
            self.streak = u32::from(present.is_some());
        }
        if present.is_some() && present == self.held {
            self.absent = 0;
            return None;
        }
        self.absent += 1;
        if self.absent >= self.settings.release_hops {
            self.held = None;
        }
        if self.held.is_none() && present.is_some() && self.streak >= self.settings.min_hops {
            self.held = present;
            self.absent = 0;
            return present;
        }
        None
    }

    /// The newest `n` samples.
    fn newest(&self, n: usize) -> &[f64] {
        &self.history[self.history.len() - n..]
    }

    fn measure(&self, filter: &Filter) -> ToneMeasure {
        let samples = self.newest(filter.window);
        let energy: f64 = samples.iter().map(|x| x * x).sum();
        let power = filter.power(samples);
        let n = filter.window as f64;
        ToneMeasure {
            share: if energy > 0.0 {
                power / (n * energy / 2.0)
            } else {
                0.0
            },
            amplitude: 2.0 * power.sqrt() / n,
        }
    }

    /// The key whose two tones are in the audio now, if any.
    fn key_present(&self) -> Option<char> {
        let s = &self.settings;
        let min_amplitude = ZERO_DBM0_PEAK * 10f64.powf(s.min_tone_level_dbm0 / 20.0);
        // Quieter than two tones at the minimum level: no key, and no filter to run
        // (the common case: a caller listening in silence).
        let newest = self.newest(HOP);
        let newest_power = newest.iter().map(|x| x * x).sum::<f64>() / HOP as f64;
        if newest_power < min_amplitude * min_amplitude {
            return None;
        }
        let rows = self.rows.map(|f| self.measure(&f));
        let columns = self.columns.map(|f| self.measure(&f));
        let (row, row_tone) = strongest_alone(&rows)?;
        let (column, column_tone) = strongest_alone(&columns)?;
        if row_tone.amplitude < min_amplitude || column_tone.amplitude < min_amplitude {
            return None;
        }
        let twist_db = 20.0 * (row_tone.amplitude / column_tone.amplitude).log10();
        if twist_db > s.max_normal_twist_db || -twist_db > s.max_reverse_twist_db {
            return None;
        }
        if row_tone.share + column_tone.share < s.min_tone_power_share {
            return None;
        }
        // The tone must still be there in the newest 10 ms, not only earlier in the
        // window: a quarter of the window's mean power at least.
        let window = self.newest(self.rows[row].window);
        let mean_power = window.iter().map(|x| x * x).sum::<f64>() / window.len() as f64;
        if newest_power < mean_power / 4.0 {
            return None;
        }
        Some(KEYPAD[row][column])
    }
}

/// The strongest filter of a group, if it stands 6 dB (power ×4) above the others.
fn strongest_alone(group: &[ToneMeasure; 4]) -> Option<(usize, ToneMeasure)> {
    let (best, tone) = group
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.amplitude.total_cmp(&b.1.amplitude))?;
    let alone = group
        .iter()
        .enumerate()
        .all(|(i, other)| i == best || other.amplitude * 2.0 <= tone.amplitude);
    alone.then_some((best, *tone))
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
    // ----- in-band -----------------------------------------------------------------------

    /// Two sines at `level_dbm0` each (the high one `twist_db` weaker), `ms` long.
    fn dual_tone(low: f64, high: f64, level_dbm0: f64, twist_db: f64, ms: usize) -> Vec<i16> {
        let a_low = ZERO_DBM0_PEAK * 10f64.powf(level_dbm0 / 20.0);
        let a_high = a_low * 10f64.powf(-twist_db / 20.0);
        (0..ms * 8)
            .map(|n| {
                let t = n as f64 / SAMPLE_RATE;
                let x = a_low * (2.0 * std::f64::consts::PI * low * t).sin()
                    + a_high * (2.0 * std::f64::consts::PI * high * t + 0.7).sin();
                x.round() as i16
            })
            .collect()
    }

    fn key_tone(key: char, level_dbm0: f64, ms: usize) -> Vec<i16> {
        let (row, column) = key_position(key);
        dual_tone(ROWS[row], COLUMNS[column], level_dbm0, 0.0, ms)
    }

    fn key_position(key: char) -> (usize, usize) {
        for (r, row) in KEYPAD.iter().enumerate() {
            if let Some(c) = row.iter().position(|&k| k == key) {
                return (r, c);
            }
        }
        panic!("{key} is not a key")
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    /// Runs a signal through a fresh detector in 20 ms frames.
    fn detect(signal: &[i16]) -> String {
        let mut detector = InbandDtmfDetector::default();
        signal
            .chunks(160)
            .flat_map(|frame| detector.push_samples(frame))
            .collect()
    }

    struct Lcg(u32);
    impl Lcg {
        /// Uniform in [-1, 1).
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f64::from(self.0 >> 8) / f64::from(1u32 << 23) - 1.0
        }
    }

    #[test]
    fn every_key_of_the_keypad_in_band() {
        let mut signal = silence(30);
        for key in "123A456B789C*0#D".chars() {
            signal.extend(key_tone(key, -10.0, 60));
            signal.extend(silence(60));
        }
        assert_eq!(detect(&signal), "123A456B789C*0#D");
    }

    #[test]
    fn frequency_tolerance_q24_accept_1_5_percent_reject_3_5_percent() {
        for (r, c) in [(0, 0), (3, 3), (1, 2), (2, 1)] {
            let key = KEYPAD[r][c].to_string();
            for deviation in [-0.015, 0.015] {
                let d = 1.0 + deviation;
                let tone = dual_tone(ROWS[r] * d, COLUMNS[c] * d, -10.0, 0.0, 80);
                assert_eq!(detect(&tone), key, "{key} at {deviation:+}");
            }
            for deviation in [-0.035, 0.035] {
                let d = 1.0 + deviation;
                let both = dual_tone(ROWS[r] * d, COLUMNS[c] * d, -10.0, 0.0, 200);
                assert_eq!(detect(&both), "", "{key} with both tones {deviation:+}");
                let low_only = dual_tone(ROWS[r] * d, COLUMNS[c], -10.0, 0.0, 200);
                assert_eq!(detect(&low_only), "", "{key} low tone {deviation:+}");
                let high_only = dual_tone(ROWS[r], COLUMNS[c] * d, -10.0, 0.0, 200);
                assert_eq!(detect(&high_only), "", "{key} high tone {deviation:+}");
            }
        }
    }

    #[test]
    fn twist_within_limits_is_accepted_beyond_is_refused() {
        let five = |twist| detect(&dual_tone(ROWS[1], COLUMNS[1], -10.0, twist, 80));
        assert_eq!(five(6.0), "5", "high tone 6 dB weaker (normal twist)");
        assert_eq!(five(-3.0), "5", "low tone 3 dB weaker (reverse twist)");
        assert_eq!(five(12.0), "", "normal twist beyond 8 dB");
        assert_eq!(five(-7.0), "", "reverse twist beyond 4 dB");
    }

    #[test]
    fn level_limits() {
        assert_eq!(
            detect(&key_tone('8', -25.0, 80)),
            "8",
            "Q.24: -25 dBm0 accepted"
        );
        assert_eq!(detect(&key_tone('8', -40.0, 80)), "", "too faint");
    }

    #[test]
    fn minimum_duration_40_ms_accepted_20_ms_refused_at_any_alignment() {
        for offset in (0..80).step_by(10) {
            let mut signal = silence(20);
            signal.extend(vec![0; offset]);
            signal.extend(key_tone('0', -10.0, 40));
            signal.extend(silence(60));
            assert_eq!(detect(&signal), "0", "40 ms at offset {offset}");

            let mut blip = silence(20);
            blip.extend(vec![0; offset]);
            blip.extend(key_tone('0', -10.0, 20));
            blip.extend(silence(60));
            assert_eq!(detect(&blip), "", "20 ms at offset {offset}");
        }
    }

    #[test]
    fn a_held_key_is_one_digit_and_two_presses_are_two() {
        for offset in (0..80).step_by(20) {
            // Q.24: a 40 ms pause between presses must be recognised.
            let mut signal = vec![0; offset];
            signal.extend(key_tone('9', -10.0, 700));
            signal.extend(silence(40));
            signal.extend(key_tone('9', -10.0, 50));
            signal.extend(silence(40));
            assert_eq!(detect(&signal), "99", "offset {offset}");
            // A 10 ms drop-out inside one press does not make two digits.
            let mut press = vec![0; offset];
            press.extend(key_tone('3', -10.0, 100));
            press.extend(silence(10));
            press.extend(key_tone('3', -10.0, 100));
            assert_eq!(detect(&press), "3", "offset {offset}");
        }
    }

    #[test]
    fn a_key_is_found_in_noise_at_15_db_snr() {
        let mut noise = Lcg(42);
        let tone = key_tone('#', -15.0, 100);
        // Tone power: two sines at -15 dBm0; noise 15 dB below that.
        let tone_rms = ZERO_DBM0_PEAK * 10f64.powf(-15.0 / 20.0);
        let noise_peak = tone_rms * 10f64.powf(-15.0 / 20.0) * 3f64.sqrt();
        let signal: Vec<i16> = tone
            .iter()
            .chain(&silence(60))
            .map(|&x| (f64::from(x) + noise_peak * noise.next()) as i16)
            .collect();
        assert_eq!(detect(&signal), "#");
    }

    #[test]
    fn noise_speech_like_sounds_and_single_tones_do_not_trigger() {
        // Ten seconds of loud white noise.
        let mut noise = Lcg(7);
        let white: Vec<i16> = (0..80_000)
            .map(|_| (8000.0 * noise.next()) as i16)
            .collect();
        assert_eq!(detect(&white), "");

        // Ten seconds of a voiced, speech-like sound: a fundamental gliding between 100
        // and 260 Hz with twenty harmonics under two moving formants, syllables of
        // 200 ms.
        let mut phase = 0.0f64;
        let speech: Vec<i16> = (0..80_000)
            .map(|n| {
                let t = n as f64 / SAMPLE_RATE;
                let f0 = 180.0 + 80.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
                phase += 2.0 * std::f64::consts::PI * f0 / SAMPLE_RATE;
                let f1 = 500.0 + 300.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
                let f2 = 1500.0 + 500.0 * (2.0 * std::f64::consts::PI * 0.9 * t).cos();
                let envelope = (std::f64::consts::PI * (t * 5.0).fract()).sin();
                let x: f64 = (1..=20)
                    .map(|h| {
                        let f = f0 * f64::from(h);
                        let formant = |centre: f64| 1.0 / (1.0 + ((f - centre) / 150.0).powi(2));
                        (formant(f1) + 0.6 * formant(f2)) * (f64::from(h) * phase).sin()
                    })
                    .sum();
                (6000.0 * envelope * x) as i16
            })
            .collect();
        assert_eq!(detect(&speech), "");

        // One DTMF frequency alone, a dial tone (450 Hz), and a 1 kHz test tone.
        for f in [ROWS[0], COLUMNS[2], 450.0, 1000.0] {
            assert_eq!(detect(&dual_tone(f, f, -10.0, 0.0, 500)), "", "{f} Hz");
        }
        // Two row frequencies together are not a key.
        assert_eq!(detect(&dual_tone(ROWS[0], ROWS[2], -10.0, 0.0, 500)), "");
    }

    #[test]
    fn frames_of_any_size_give_the_same_digits() {
        let mut signal = silence(20);
        for key in "8890".chars() {
            signal.extend(key_tone(key, -12.0, 70));
            signal.extend(silence(70));
        }
        for size in [1, 33, 160, 1000] {
            let mut detector = InbandDtmfDetector::default();
            let keys: String = signal
                .chunks(size)
                .flat_map(|chunk| detector.push_samples(chunk))
                .collect();
            assert_eq!(keys, "8890", "chunks of {size}");
        }
    }
}
