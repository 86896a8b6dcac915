//! Voice activity on the caller's decoded audio: an energy detector that tells the IVR
//! when the caller starts speaking and when they have gone quiet (R27's no-answer
//! script). Pure: fed 8 kHz PCM frames, it returns transitions.
//!
//! Energy alone, with two thresholds (hysteresis) and two times: speech must stay above
//! `voice_threshold_dbfs` for `onset_ms` to count (a click or a cough is shorter), and
//! below `silence_threshold_dbfs` for `hangover_ms` to end (the pauses between words
//! are shorter). A trunk's comfort noise sits far below the thresholds.

/// The detector's settings; the dialplan's `[voice]` section sets them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadSettings {
    /// A frame this loud (RMS, dB relative to a full-scale square wave) or louder is
    /// speech-like. Default -40: quiet speech on a phone line is around -30.
    pub voice_threshold_dbfs: f32,
    /// Speech ends only below this (at most `voice_threshold_dbfs`). Default -45.
    pub silence_threshold_dbfs: f32,
    /// How long loud frames must last before the caller counts as speaking. Default 100 ms.
    pub onset_ms: u32,
    /// How long quiet frames must last before the caller counts as silent. Default 500 ms.
    pub hangover_ms: u32,
}

impl Default for VadSettings {
    fn default() -> VadSettings {
        VadSettings {
            voice_threshold_dbfs: -40.0,
            silence_threshold_dbfs: -45.0,
            onset_ms: 100,
            hangover_ms: 500,
        }
    }
}

/// A change in what the caller is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    VoiceStarted,
    VoiceEnded,
}

const SAMPLES_PER_MS: u32 = 8;

/// The detector for one caller. Starts in silence.
#[derive(Clone, Debug)]
pub struct VoiceActivityDetector {
    settings: VadSettings,
    speaking: bool,
    /// Samples in a row on the other side of the threshold that would change `speaking`.
    run_samples: u32,
}

impl VoiceActivityDetector {
    pub fn new(settings: VadSettings) -> VoiceActivityDetector {
        VoiceActivityDetector {
            settings,
            speaking: false,
            run_samples: 0,
        }
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds one frame (usually 20 ms); returns the transition it completes, if any.
    pub fn push_frame(&mut self, samples: &[i16]) -> Option<VadEvent> {
        if samples.is_empty() {
            return None;
        }
        let level = level_dbfs(samples);
        let (against, needed_ms) = if self.speaking {
            (
                level < self.settings.silence_threshold_dbfs,
                self.settings.hangover_ms,
            )
        } else {
            (
                level >= self.settings.voice_threshold_dbfs,
                self.settings.onset_ms,
            )
        };
        if !against {
            self.run_samples = 0;
            return None;
        }
        self.run_samples = self.run_samples.saturating_add(samples.len() as u32);
        if self.run_samples < needed_ms * SAMPLES_PER_MS {
            return None;
        }
        self.run_samples = 0;
        self.speaking = !self.speaking;
        Some(if self.speaking {
            VadEvent::VoiceStarted
        } else {
            VadEvent::VoiceEnded
        })
    }
}

/// RMS level of a frame in dBFS; digital silence is -inf (below any threshold).
pub fn level_dbfs(samples: &[i16]) -> f32 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len().max(1) as f64).sqrt();
    (20.0 * (rms / 32768.0).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    /// A frame of a 300 Hz tone at `dbfs` RMS (a vowel's fundamental, roughly).
    fn tone_frame(dbfs: f32, phase: &mut f64) -> Vec<i16> {
        let amplitude = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * 2f64.sqrt();
        (0..FRAME)
            .map(|_| {
                *phase += 2.0 * std::f64::consts::PI * 300.0 / 8000.0;
                (amplitude * phase.sin()) as i16
            })
            .collect()
    }

    fn noise_frame(dbfs: f32, seed: &mut u32) -> Vec<i16> {
        let amplitude = 32768.0 * 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
        (0..FRAME)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let uniform = (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                (amplitude * uniform) as i16
            })
            .collect()
    }

    #[test]
    fn level_of_a_known_tone() {
        let mut phase = 0.0;
        let frame = tone_frame(-20.0, &mut phase);
        assert!(
            (level_dbfs(&frame) + 20.0).abs() < 0.5,
            "{}",
            level_dbfs(&frame)
        );
        assert_eq!(level_dbfs(&[0; FRAME]), f32::NEG_INFINITY);
    }

    #[test]
    fn speech_after_onset_then_silence_after_hangover_r27() {
        let mut vad = VoiceActivityDetector::new(VadSettings::default());
        let mut phase = 0.0;
        let mut events = Vec::new();
        // 100 ms onset = 5 frames of 20 ms: the 5th loud frame starts speech.
        for i in 0..10 {
            if let Some(e) = vad.push_frame(&tone_frame(-25.0, &mut phase)) {
                events.push((i, e));
            }
        }
        // 500 ms hangover = 25 quiet frames.
        for i in 10..40 {
            if let Some(e) = vad.push_frame(&[0; FRAME]) {
                events.push((i, e));
            }
        }
        assert_eq!(
            events,
            vec![(4, VadEvent::VoiceStarted), (34, VadEvent::VoiceEnded)]
        );
    }

    #[test]
    fn a_click_or_line_noise_is_not_speech() {
        let mut vad = VoiceActivityDetector::new(VadSettings::default());
        let mut phase = 0.0;
        let mut seed = 7;
        for _ in 0..3 {
            // 60 ms loud, shorter than the onset, then quiet: three times over.
            for _ in 0..3 {
                assert_eq!(vad.push_frame(&tone_frame(-15.0, &mut phase)), None);
            }
            assert_eq!(vad.push_frame(&[0; FRAME]), None);
        }
        // Ten seconds of line noise at -60 dBFS.
        for _ in 0..500 {
            assert_eq!(vad.push_frame(&noise_frame(-60.0, &mut seed)), None);
        }
        assert!(!vad.is_speaking());
    }

    #[test]
    fn pauses_between_words_do_not_end_speech_and_hysteresis_holds() {
        let settings = VadSettings {
            voice_threshold_dbfs: -30.0,
            silence_threshold_dbfs: -40.0,
            onset_ms: 40,
            hangover_ms: 300,
        };
        let mut vad = VoiceActivityDetector::new(settings);
        let mut phase = 0.0;
        let mut events = Vec::new();
        for _ in 0..3 {
            events.extend(vad.push_frame(&tone_frame(-20.0, &mut phase)));
        }
        // A 200 ms pause (shorter than the hangover), then quieter speech at -35 dBFS,
        // between the two thresholds: still speaking.
        for _ in 0..10 {
            events.extend(vad.push_frame(&[0; FRAME]));
        }
        for _ in 0..50 {
            events.extend(vad.push_frame(&tone_frame(-35.0, &mut phase)));
        }
        assert_eq!(events, vec![VadEvent::VoiceStarted]);
        assert!(vad.is_speaking());
        // -35 dBFS from silence is below the voice threshold: no new start.
        let mut fresh = VoiceActivityDetector::new(settings);
        for _ in 0..50 {
            assert_eq!(fresh.push_frame(&tone_frame(-35.0, &mut phase)), None);
        }
    }
}
