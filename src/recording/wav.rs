//! The WAV format as the recordings use it (pure, no file I/O): the canonical
//! 44-byte PCM header, the stereo interleave of a [`StereoFrame`], and the
//! decision of how to repair a header left stale by a crash.
//!
//! The header is written here rather than through `hound::WavWriter`: hound's
//! `flush()` does rewrite the sizes, but its writer does blocking I/O per sample
//! call and again in `Drop`, which must not happen on a tokio worker, and its size
//! bookkeeping after a failed write is unspecified. The header is 44 fixed bytes,
//! and the repair needs a parser anyway. `hound` stays in the tests as the
//! independent reader that proves the files are playable.

use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;

use super::{FRAME_SAMPLES, StereoFrame};

/// Samples per second per channel.
pub const SAMPLE_RATE_HZ: u32 = 8_000;
/// Left = caller, right = what the hotline sent.
pub const CHANNELS: u16 = 2;
/// Signed 16-bit little-endian PCM.
pub const BITS_PER_SAMPLE: u16 = 16;
/// Bytes of one stereo sample frame (one sample per channel).
pub const BLOCK_ALIGN: u16 = CHANNELS * BITS_PER_SAMPLE / 8;
/// Bytes of audio per second.
pub const BYTE_RATE: u32 = SAMPLE_RATE_HZ * BLOCK_ALIGN as u32;
/// Length of the canonical PCM header; audio data starts right after it.
pub const WAV_HEADER_LEN: usize = 44;
/// Bytes one [`StereoFrame`] takes in the data chunk.
pub const FRAME_BYTES: usize = FRAME_SAMPLES * BLOCK_ALIGN as usize;
/// Wall-clock length of one [`StereoFrame`].
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// The largest data chunk whose RIFF size (data + 36) still fits the 32-bit field,
/// rounded down to whole frames so a full file never ends in a partial frame.
pub const MAX_DATA_BYTES: u32 = {
    let room = u32::MAX - (WAV_HEADER_LEN as u32 - 8);
    room - room % FRAME_BYTES as u32
};

/// Offset of the RIFF chunk size (file length − 8).
pub const RIFF_SIZE_OFFSET: u64 = 4;
/// How many chunks may follow the data chunk before a file is judged not to be a
/// well-formed chunk list; real files carry one or two (LIST, id3).
const MAX_TRAILING_CHUNKS: usize = 64;
/// How many chunks may precede the data chunk.
const MAX_LEADING_CHUNKS: usize = 64;

/// The canonical 44-byte header of a recording holding `data_bytes` of audio.
pub fn wav_header(data_bytes: u32) -> [u8; WAV_HEADER_LEN] {
    let riff_size = data_bytes.saturating_add(WAV_HEADER_LEN as u32 - 8);
    let mut header = [0u8; WAV_HEADER_LEN];
    header[0..4].copy_from_slice(b"RIFF");
    header[4..8].copy_from_slice(&riff_size.to_le_bytes());
    header[8..12].copy_from_slice(b"WAVE");
    header[12..16].copy_from_slice(b"fmt ");
    header[16..20].copy_from_slice(&16u32.to_le_bytes());
    header[20..22].copy_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    header[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    header[24..28].copy_from_slice(&SAMPLE_RATE_HZ.to_le_bytes());
    header[28..32].copy_from_slice(&BYTE_RATE.to_le_bytes());
    header[32..34].copy_from_slice(&BLOCK_ALIGN.to_le_bytes());
    header[34..36].copy_from_slice(&BITS_PER_SAMPLE.to_le_bytes());
    header[36..40].copy_from_slice(b"data");
    header[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    header
}

/// Appends `frame` to `out` as WAV data: for each instant the left (caller)
/// sample first, then the right (hotline) sample, both little-endian.
pub fn interleave(frame: &StereoFrame, out: &mut Vec<u8>) {
    // Sized once, then written in place: pushing sample by sample checks the capacity
    // at every step, which keeps the compiler from vectorising the loop (this runs
    // for every call, 50 times a second).
    let start = out.len();
    out.resize(start + FRAME_BYTES, 0);
    let samples = out[start..]
        .chunks_exact_mut(usize::from(BLOCK_ALIGN))
        .zip(frame.left.iter().zip(frame.right.iter()));
    for (instant, (left, right)) in samples {
        instant[..2].copy_from_slice(&left.to_le_bytes());
        instant[2..].copy_from_slice(&right.to_le_bytes());
    }
}

/// Audio length of `frames` whole frames.
pub fn frames_duration(frames: u64) -> Duration {
    // 20 ms per frame: exact in milliseconds, no floating point.
    Duration::from_millis(frames.saturating_mul(FRAME_DURATION.as_millis() as u64))
}

/// Why a file cannot be repaired as a WAV file.
#[derive(Debug)]
pub enum Unrepairable {
    /// The bytes are not a RIFF/WAVE file the repair understands.
    NotWav(&'static str),
    /// The audio on disk is too long to describe in a 32-bit WAV header; repairing
    /// would mean cutting audio, which the repair never does.
    TooLarge { data_bytes: u64 },
    /// Reading the file failed.
    Io(io::Error),
}

impl From<io::Error> for Unrepairable {
    fn from(error: io::Error) -> Self {
        Unrepairable::Io(error)
    }
}

/// What the repair has to do to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairPlan {
    /// The header already describes the file.
    Consistent,
    /// Rewrite the RIFF and data sizes; drop the last `truncate_bytes` (less than
    /// one sample frame, which no player can use) by cutting the file to `file_len`.
    Rewrite {
        riff_size: u32,
        data_size_offset: u64,
        data_size: u32,
        file_len: u64,
        truncate_bytes: u64,
    },
}

/// Decides how to make the header of a WAV file of `file_len` bytes match the data
/// actually present. Reads only; the caller applies the plan.
///
/// The data chunk is taken to run to the end of the file (which is where a crashed
/// writer leaves it) unless its declared size is non-zero and is followed by a
/// well-formed chain of chunks ending exactly at the end of the file, as in a WAV
/// file with trailing metadata: that file is left alone.
pub fn plan_repair<R: Read + Seek>(
    reader: &mut R,
    file_len: u64,
) -> Result<RepairPlan, Unrepairable> {
    reader.seek(SeekFrom::Start(0))?;
    let mut riff = [0u8; 12];
    if file_len < riff.len() as u64 {
        return Err(Unrepairable::NotWav("shorter than a RIFF header"));
    }
    reader.read_exact(&mut riff)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(Unrepairable::NotWav("no RIFF/WAVE signature"));
    }
    let declared_riff_size = u32_at(&riff, 4);

    let mut block_align: Option<u64> = None;
    let mut offset: u64 = 12;
    let (data_size_offset, declared_data) = 'walk: {
        for _ in 0..MAX_LEADING_CHUNKS {
            let Some((id, size)) = read_chunk_header(reader, offset, file_len)? else {
                return Err(Unrepairable::NotWav("no data chunk"));
            };
            match &id {
                b"fmt " => block_align = Some(read_block_align(reader, offset, size)?),
                b"data" => break 'walk (offset + 4, size),
                _ => {}
            }
            offset = next_chunk_offset(offset, size);
        }
        return Err(Unrepairable::NotWav(
            "too many chunks before the data chunk",
        ));
    };
    let Some(block_align) = block_align else {
        return Err(Unrepairable::NotWav("no fmt chunk before the data chunk"));
    };
    let data_start = data_size_offset + 4;
    let available = file_len - data_start;

    let declared_fits = declared_data != 0 && u64::from(declared_data) <= available;
    if declared_fits && trailing_chunks_end_at_eof(reader, data_start, declared_data, file_len)? {
        let riff_size = file_len - 8;
        if u64::from(declared_riff_size) == riff_size {
            return Ok(RepairPlan::Consistent);
        }
        let riff_size = u32::try_from(riff_size).map_err(|_| Unrepairable::TooLarge {
            data_bytes: available,
        })?;
        return Ok(RepairPlan::Rewrite {
            riff_size,
            data_size_offset,
            data_size: declared_data,
            file_len,
            truncate_bytes: 0,
        });
    }

    let truncate_bytes = available % block_align;
    let data_bytes = available - truncate_bytes;
    let too_large = || Unrepairable::TooLarge {
        data_bytes: available,
    };
    let data_size = u32::try_from(data_bytes).map_err(|_| too_large())?;
    let riff_size = u32::try_from(data_start + data_bytes - 8).map_err(|_| too_large())?;
    if data_size == declared_data && riff_size == declared_riff_size && truncate_bytes == 0 {
        return Ok(RepairPlan::Consistent);
    }
    Ok(RepairPlan::Rewrite {
        riff_size,
        data_size_offset,
        data_size,
        file_len: data_start + data_bytes,
        truncate_bytes,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Chunks are padded to an even length.
fn next_chunk_offset(offset: u64, size: u32) -> u64 {
    offset + 8 + u64::from(size) + u64::from(size & 1)
}

/// The id and size of the chunk at `offset`, or `None` when the file ends first.
fn read_chunk_header<R: Read + Seek>(
    reader: &mut R,
    offset: u64,
    file_len: u64,
) -> io::Result<Option<([u8; 4], u32)>> {
    if offset.saturating_add(8) > file_len {
        return Ok(None);
    }
    let mut header = [0u8; 8];
    reader.seek(SeekFrom::Start(offset))?;
    reader.read_exact(&mut header)?;
    let id = [header[0], header[1], header[2], header[3]];
    Ok(Some((id, u32_at(&header, 4))))
}

fn read_block_align<R: Read + Seek>(
    reader: &mut R,
    chunk_offset: u64,
    size: u32,
) -> Result<u64, Unrepairable> {
    if size < 16 {
        return Err(Unrepairable::NotWav("fmt chunk too short"));
    }
    let mut fmt = [0u8; 16];
    reader.seek(SeekFrom::Start(chunk_offset + 8))?;
    reader
        .read_exact(&mut fmt)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => Unrepairable::NotWav("fmt chunk cut short"),
            _ => Unrepairable::Io(error),
        })?;
    let block_align = u16::from_le_bytes([fmt[12], fmt[13]]);
    if block_align == 0 {
        return Err(Unrepairable::NotWav("fmt chunk has a zero block alignment"));
    }
    Ok(u64::from(block_align))
}

/// Whether the bytes after a data chunk of `declared` bytes are a chain of
/// plausible chunks (printable ids) ending exactly at the end of the file.
fn trailing_chunks_end_at_eof<R: Read + Seek>(
    reader: &mut R,
    data_start: u64,
    declared: u32,
    file_len: u64,
) -> io::Result<bool> {
    let data_end = data_start + u64::from(declared);
    // A writer may omit the pad byte of an odd-sized last chunk.
    if data_end == file_len {
        return Ok(true);
    }
    let mut offset = next_chunk_offset(data_start - 8, declared);
    for _ in 0..MAX_TRAILING_CHUNKS {
        if offset == file_len {
            return Ok(true);
        }
        match read_chunk_header(reader, offset, file_len)? {
            Some((id, size)) if id.iter().all(|b| b.is_ascii_graphic() || *b == b' ') => {
                offset = next_chunk_offset(offset, size);
                if offset > file_len {
                    return Ok(false);
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn frame_with(left: i16, right: i16) -> StereoFrame {
        StereoFrame {
            left: [left; FRAME_SAMPLES],
            right: [right; FRAME_SAMPLES],
        }
    }

    fn recording_bytes(frames: usize, declared_frames: usize) -> Vec<u8> {
        let mut bytes = wav_header((declared_frames * FRAME_BYTES) as u32).to_vec();
        for i in 0..frames {
            interleave(&frame_with(i as i16, -(i as i16)), &mut bytes);
        }
        bytes
    }

    fn plan(bytes: &[u8]) -> Result<RepairPlan, Unrepairable> {
        plan_repair(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn header_for_empty_recording_is_canonical_pcm_8khz_stereo_16bit() {
        let expected: [u8; 44] = [
            b'R', b'I', b'F', b'F', 36, 0, 0, 0, b'W', b'A', b'V', b'E', //
            b'f', b'm', b't', b' ', 16, 0, 0, 0, //
            1, 0, 2, 0, // PCM, two channels
            0x40, 0x1F, 0, 0, // 8000 Hz
            0x00, 0x7D, 0, 0, // 32000 bytes/s
            4, 0, 16, 0, // block align 4, 16 bits
            b'd', b'a', b't', b'a', 0, 0, 0, 0,
        ];
        assert_eq!(wav_header(0), expected);
    }

    #[test]
    fn header_sizes_follow_the_data_length() {
        let data = 250 * FRAME_BYTES as u32; // 5 s
        let header = wav_header(data);
        assert_eq!(u32_at(&header, 4), data + 36);
        assert_eq!(u32_at(&header, 40), data);
        assert_eq!(header[..4], *b"RIFF");
        assert_eq!(header[36..40], *b"data");
    }

    #[test]
    fn header_at_size_limit_does_not_overflow() {
        let header = wav_header(MAX_DATA_BYTES);
        assert!(u32_at(&header, 4) >= MAX_DATA_BYTES);
        assert_eq!(MAX_DATA_BYTES as usize % FRAME_BYTES, 0);
    }

    #[test]
    fn interleave_puts_left_caller_sample_first_little_endian() {
        let mut frame = StereoFrame::SILENCE;
        frame.left[0] = 0x0102;
        frame.right[0] = -2; // 0xFFFE
        frame.left[1] = 0x0304;
        frame.right[1] = 0x0506;
        let mut out = Vec::new();
        interleave(&frame, &mut out);
        assert_eq!(out.len(), FRAME_BYTES);
        assert_eq!(&out[..8], &[0x02, 0x01, 0xFE, 0xFF, 0x04, 0x03, 0x06, 0x05]);
        assert!(out[8..].iter().all(|b| *b == 0));
    }

    #[test]
    fn interleave_appends_without_touching_earlier_bytes() {
        let mut out = vec![9u8; 3];
        interleave(&frame_with(1, 2), &mut out);
        assert_eq!(&out[..3], &[9, 9, 9]);
        assert_eq!(&out[3..7], &[1, 0, 2, 0]);
    }

    #[test]
    fn duration_is_twenty_ms_per_frame() {
        assert_eq!(frames_duration(250), Duration::from_secs(5));
        assert_eq!(frames_duration(1), FRAME_DURATION);
    }

    #[test]
    fn finished_recording_needs_no_repair() {
        assert_eq!(
            plan(&recording_bytes(5, 5)).unwrap(),
            RepairPlan::Consistent
        );
        assert_eq!(
            plan(&recording_bytes(0, 0)).unwrap(),
            RepairPlan::Consistent
        );
    }

    #[test]
    fn stale_header_after_crash_is_extended_to_all_data_r22() {
        let plan = plan(&recording_bytes(7, 3)).unwrap();
        let data = 7 * FRAME_BYTES as u32;
        assert_eq!(
            plan,
            RepairPlan::Rewrite {
                riff_size: data + 36,
                data_size_offset: 40,
                data_size: data,
                file_len: 44 + u64::from(data),
                truncate_bytes: 0,
            }
        );
    }

    #[test]
    fn header_saying_zero_bytes_is_repaired_r22() {
        let RepairPlan::Rewrite { data_size, .. } = plan(&recording_bytes(4, 0)).unwrap() else {
            panic!("a zero-size header over audio must be rewritten");
        };
        assert_eq!(data_size, 4 * FRAME_BYTES as u32);
    }

    #[test]
    fn trailing_partial_sample_frame_is_truncated() {
        let mut bytes = recording_bytes(2, 1);
        bytes.extend_from_slice(&[1, 2, 3]);
        let RepairPlan::Rewrite {
            data_size,
            file_len,
            truncate_bytes,
            ..
        } = plan(&bytes).unwrap()
        else {
            panic!("stale header must be rewritten");
        };
        assert_eq!(data_size, 2 * FRAME_BYTES as u32);
        assert_eq!(truncate_bytes, 3);
        assert_eq!(file_len, bytes.len() as u64 - 3);
    }

    #[test]
    fn header_claiming_more_than_present_is_shrunk_to_the_data() {
        let RepairPlan::Rewrite { data_size, .. } = plan(&recording_bytes(2, 9)).unwrap() else {
            panic!("over-long header must be rewritten");
        };
        assert_eq!(data_size, 2 * FRAME_BYTES as u32);
    }

    #[test]
    fn trailing_metadata_chunk_is_not_taken_for_audio() {
        let mut bytes = recording_bytes(2, 2);
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"abc\0"); // odd size + pad byte
        let riff_size = (bytes.len() - 8) as u32;
        bytes[4..8].copy_from_slice(&riff_size.to_le_bytes());
        assert_eq!(plan(&bytes).unwrap(), RepairPlan::Consistent);
    }

    #[test]
    fn non_wav_bytes_are_refused() {
        for bytes in [
            &b"hello, this is not audio at all"[..],
            b"RIFF",
            b"RIFF\0\0\0\0AVI LIST",
        ] {
            assert!(matches!(plan(bytes), Err(Unrepairable::NotWav(_))));
        }
    }

    #[test]
    fn wav_without_data_chunk_is_refused() {
        let bytes = &recording_bytes(0, 0)[..36];
        assert!(matches!(plan(bytes), Err(Unrepairable::NotWav(_))));
    }

    #[test]
    fn fmt_chunk_with_zero_block_align_is_refused() {
        let mut bytes = recording_bytes(1, 0);
        bytes[32] = 0;
        bytes[33] = 0;
        assert!(matches!(plan(&bytes), Err(Unrepairable::NotWav(_))));
    }
}
