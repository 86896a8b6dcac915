//! Call recordings (R22): one stereo 8 kHz 16-bit WAV per call, left = caller,
//! right = what the hotline sent. Files stay playable after a crash.

/// Samples per channel in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms slice of a call: what the caller said (left) and what the hotline sent (right).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StereoFrame {
    pub left: [i16; FRAME_SAMPLES],
    pub right: [i16; FRAME_SAMPLES],
}

impl StereoFrame {
    pub const SILENCE: StereoFrame = StereoFrame {
        left: [0; FRAME_SAMPLES],
        right: [0; FRAME_SAMPLES],
    };
}
