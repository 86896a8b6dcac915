//! G.711 µ-law and A-law (ITU-T G.711), the two codecs the hotline negotiates (R29).
//! Pure: sample conversion only.
//!
//! Written here rather than taken from a crate: the maintained audio crates either pull in
//! a whole DSP stack or are unmaintained single-purpose crates, and G.711 is two small
//! table-free formulas that are easy to check against the standard's reference values.
//!
//! Samples are 16-bit linear PCM. G.711 itself works on 14-bit (µ-law) and 13-bit (A-law)
//! linear values; the scaling to 16 bits follows the common convention (decoded µ-law peaks
//! at ±32124, A-law at ±32256).

/// A G.711 variant, identified on the wire by its static RTP payload type (RFC 3551).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The SDP `a=rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub fn from_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The code a silent (zero) sample encodes to.
    pub fn silence_code(self) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(0),
            Codec::Pcma => alaw_encode(0),
        }
    }
}

/// Encodes `samples`, appending one byte per sample to `out`.
pub fn encode(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    match codec {
        Codec::Pcmu => out.extend(samples.iter().map(|&s| ulaw_encode(s))),
        Codec::Pcma => out.extend(samples.iter().map(|&s| alaw_encode(s))),
    }
}

/// Decodes `payload`, appending one sample per byte to `out`.
pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.reserve(payload.len());
    match codec {
        Codec::Pcmu => out.extend(payload.iter().map(|&b| ulaw_decode(b))),
        Codec::Pcma => out.extend(payload.iter().map(|&b| alaw_decode(b))),
    }
}

/// µ-law adds this bias so every segment boundary falls on a power of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once the bias is added (0x7FFF - bias, rounded to
/// the top segment's grid).
const ULAW_CLIP: i32 = 32635;

/// Encodes one sample as µ-law: sign, 3-bit segment, 4-bit step, all bits inverted.
pub fn ulaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample);
    let (sign, magnitude) = if value < 0 {
        (0x80, -value)
    } else {
        (0x00, value)
    };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // `biased` lies in 0x84..=0x7FFF, so its top set bit is bit 7..=14: segment 0..=7.
    let top_bit = 31 - biased.leading_zeros() as i32;
    let segment = top_bit - 7;
    let step = (biased >> (segment + 3)) & 0x0F;
    !((sign | (segment << 4) | step) as u8)
}

/// Decodes one µ-law byte to the midpoint of its quantisation interval.
pub fn ulaw_decode(code: u8) -> i16 {
    let code = !code;
    let segment = i32::from((code >> 4) & 0x07);
    let step = i32::from(code & 0x0F);
    let magnitude = (((step << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    // magnitude ≤ 32124, so the conversion cannot overflow.
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law inverts every even bit so idle lines carry frequent transitions.
const ALAW_EVEN_BIT_INVERSION: u8 = 0x55;

/// Encodes one sample as A-law: sign, 3-bit segment, 4-bit step, even bits inverted.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law quantises 13-bit values; negative values are mirrored with one's complement so
    // that -1 and 0 land in the same smallest step, as in the standard.
    let linear13 = i32::from(sample) >> 3;
    let (sign, magnitude) = if linear13 >= 0 {
        (0x80u8, linear13)
    } else {
        (0x00u8, -linear13 - 1)
    };
    // Segment 0 and 1 share step size 2; from segment 2 on each segment doubles it.
    let segment = if magnitude < 32 {
        0
    } else {
        // magnitude ≤ 4095 (12 bits): top bit 5..=11 → segment 1..=7.
        (31 - magnitude.leading_zeros() as i32) - 4
    };
    let shift = if segment < 2 { 1 } else { segment };
    let step = (magnitude >> shift) & 0x0F;
    (sign | ((segment as u8) << 4) | step as u8) ^ ALAW_EVEN_BIT_INVERSION
}

/// Decodes one A-law byte to the midpoint of its quantisation interval.
pub fn alaw_decode(code: u8) -> i16 {
    let code = code ^ ALAW_EVEN_BIT_INVERSION;
    let segment = i32::from((code >> 4) & 0x07);
    let step = i32::from(code & 0x0F);
    // In 16-bit scale: segment 0 starts at 0, segment s ≥ 1 at 256 << (s - 1); the step
    // size is 16 << max(s - 1, 0); +half a step puts us at the midpoint.
    let magnitude = match segment {
        0 => (step << 4) + 8,
        s => ((step << 4) + 0x108) << (s - 1),
    };
    // magnitude ≤ 32256, so the conversion cannot overflow.
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values_from_g711() {
        // Zero and the extremes of the µ-law table (G.711 table 2, scaled ×4 to 16 bits).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0, "negative zero");
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // Segment 0 steps are 2 in 14-bit (8 in 16-bit); 1000 lies in segment 3, step 1,
        // whose midpoint is 247 in 14-bit, 988 in 16-bit.
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_decode(0xCE), 988);
    }

    #[test]
    fn alaw_reference_values_from_g711() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_decode(0xFA), 1008);
    }

    #[test]
    fn silence_codes() {
        assert_eq!(Codec::Pcmu.silence_code(), 0xFF);
        assert_eq!(Codec::Pcma.silence_code(), 0xD5);
        let mut out = Vec::new();
        encode(Codec::Pcma, &[0; 160], &mut out);
        assert!(out.iter().all(|&b| b == 0xD5));
    }

    #[test]
    fn payload_types_round_trip() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!(Codec::Pcmu.encoding_name(), "PCMU");
        assert_eq!(Codec::Pcma.encoding_name(), "PCMA");
    }

    /// Error bound: half a quantisation step, which is at most 1/32 of the magnitude in
    /// the logarithmic segments, plus the small linear floor of each law.
    fn check_round_trip(encode_one: fn(i16) -> u8, decode_one: fn(u8) -> i16, floor: i32) {
        let mut previous = i32::MIN;
        for sample in i16::MIN..=i16::MAX {
            let decoded = i32::from(decode_one(encode_one(sample)));
            let error = (decoded - i32::from(sample)).abs();
            let bound = (i32::from(sample).abs() + floor) / 32 + floor / 16;
            assert!(
                error <= bound,
                "sample {sample} decoded {decoded}, error {error} > {bound}"
            );
            assert!(decoded >= previous, "not monotonic at {sample}");
            previous = decoded;
        }
    }

    #[test]
    fn ulaw_round_trip_error_is_bounded_over_the_full_range() {
        check_round_trip(ulaw_encode, ulaw_decode, ULAW_BIAS);
    }

    #[test]
    fn alaw_round_trip_error_is_bounded_over_the_full_range() {
        check_round_trip(alaw_encode, alaw_decode, 256);
    }

    #[test]
    fn every_code_is_a_fixed_point_of_decode_then_encode() {
        for code in 0..=u8::MAX {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            // µ-law has two zeros (0x7F, 0xFF); both decode to 0, which encodes to 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
        }
    }

    #[test]
    fn buffer_encode_and_decode_append() {
        let samples = [0i16, 1000, -1000, 32000, -32000];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut encoded = vec![0xAB];
            encode(codec, &samples, &mut encoded);
            assert_eq!(encoded.len(), 6);
            let mut decoded = vec![7];
            decode(codec, &encoded[1..], &mut decoded);
            assert_eq!(decoded.len(), 6);
            assert_eq!(decoded[0], 7);
        }
    }
}
