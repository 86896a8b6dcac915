//! Start-up repair of recordings left by a crash (I/O): walks the recordings tree
//! and rewrites stale WAV headers so they describe the audio on disk. It only ever
//! rewrites the two size fields and cuts a trailing partial sample frame; it never
//! deletes audio, and files it does not understand are reported and left alone.
//!
//! Run it before any recording starts: a file being written looks stale too.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::RecordingError;
use super::wav::{self, RepairPlan, Unrepairable};

/// What [`repair_directory`] found and did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// `.wav` files looked at.
    pub files_checked: u64,
    /// Files whose header was rewritten.
    pub repaired: Vec<RepairedFile>,
    /// Files (or directories) that could not be checked or repaired, with why.
    /// Nothing was changed in them.
    pub unrepaired: Vec<RecordingError>,
}

impl RepairReport {
    pub fn files_repaired(&self) -> u64 {
        self.repaired.len() as u64
    }
}

/// One file whose header now matches its audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedFile {
    pub path: PathBuf,
    /// Audio bytes the header now describes.
    pub data_bytes: u64,
    /// Bytes of a trailing partial sample frame cut off (less than one frame).
    pub truncated_bytes: u64,
}

/// Repairs every `.wav` file under `root` (recursively, not following symlinks).
/// A missing `root` is an empty report: a fresh install has no recordings yet.
/// Fails only when `root` exists but cannot be read; problems with single files or
/// subdirectories go into the report.
pub fn repair_directory(root: &Path) -> Result<RepairReport, RecordingError> {
    let mut report = RepairReport::default();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(RecordingError::ReadDirectory {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut pending = vec![(root.to_path_buf(), entries)];
    while let Some((directory, entries)) = pending.pop() {
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(source) => {
                    report.unrepaired.push(RecordingError::ReadDirectory {
                        path: directory.clone(),
                        source,
                    });
                    continue;
                }
            };
            let path = entry.path();
            // DirEntry::file_type does not follow symlinks: a link out of the
            // recordings tree is never written through.
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(source) => {
                    report
                        .unrepaired
                        .push(RecordingError::Inspect { path, source });
                    continue;
                }
            };
            if file_type.is_dir() {
                match fs::read_dir(&path) {
                    Ok(entries) => pending.push((path, entries)),
                    Err(source) => report
                        .unrepaired
                        .push(RecordingError::ReadDirectory { path, source }),
                }
            } else if file_type.is_file() && has_wav_extension(&path) {
                report.files_checked += 1;
                match repair_file(&path) {
                    Ok(Some(repaired)) => {
                        tracing::info!(
                            path = %repaired.path.display(),
                            data_bytes = repaired.data_bytes,
                            truncated_bytes = repaired.truncated_bytes,
                            "repaired recording header"
                        );
                        report.repaired.push(repaired);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "recording left unrepaired");
                        report.unrepaired.push(error);
                    }
                }
            }
        }
    }
    Ok(report)
}

fn has_wav_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("wav"))
}

/// Repairs one file; `None` when its header was already right.
fn repair_file(path: &Path) -> Result<Option<RepairedFile>, RecordingError> {
    let inspect_error = |source| RecordingError::Inspect {
        path: path.to_path_buf(),
        source,
    };
    // Opened for reading first so a file that is not ours is never opened writable.
    let mut file = fs::File::open(path).map_err(inspect_error)?;
    let file_len = file.metadata().map_err(inspect_error)?.len();
    let plan = wav::plan_repair(&mut file, file_len).map_err(|error| match error {
        Unrepairable::NotWav(reason) => RecordingError::NotWav {
            path: path.to_path_buf(),
            reason,
        },
        Unrepairable::TooLarge { data_bytes } => RecordingError::TooLargeToRepair {
            path: path.to_path_buf(),
            data_bytes,
        },
        Unrepairable::Io(source) => inspect_error(source),
    })?;
    let RepairPlan::Rewrite {
        riff_size,
        data_size_offset,
        data_size,
        file_len: repaired_len,
        truncate_bytes,
    } = plan
    else {
        return Ok(None);
    };
    drop(file);

    let repair_error = |source| RecordingError::Repair {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(repair_error)?;
    file.write_all_at(&riff_size.to_le_bytes(), wav::RIFF_SIZE_OFFSET)
        .and_then(|()| file.write_all_at(&data_size.to_le_bytes(), data_size_offset))
        .and_then(|()| {
            if truncate_bytes > 0 {
                file.set_len(repaired_len)
            } else {
                Ok(())
            }
        })
        .and_then(|()| file.sync_data())
        .map_err(repair_error)?;
    Ok(Some(RepairedFile {
        path: path.to_path_buf(),
        data_bytes: u64::from(data_size),
        truncated_bytes: truncate_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::StereoFrame;
    use crate::recording::wav::{FRAME_BYTES, interleave, wav_header};

    fn write_recording(path: &Path, frames: usize, declared_frames: usize) -> Vec<u8> {
        let mut bytes = wav_header((declared_frames * FRAME_BYTES) as u32).to_vec();
        for _ in 0..frames {
            let mut frame = StereoFrame::SILENCE;
            frame.left.fill(1000);
            interleave(&frame, &mut bytes);
        }
        fs::write(path, &bytes).unwrap();
        bytes
    }

    #[test]
    fn missing_root_is_an_empty_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = repair_directory(&dir.path().join("nope")).unwrap();
        assert_eq!(report.files_checked, 0);
        assert!(report.unrepaired.is_empty());
    }

    #[test]
    fn repairs_nested_stale_files_and_leaves_good_ones_alone_r22() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("2025-01-02");
        fs::create_dir(&day).unwrap();
        let good = write_recording(&day.join("good.wav"), 3, 3);
        write_recording(&day.join("stale.WAV"), 5, 2);
        fs::write(day.join("notes.txt"), b"not a recording").unwrap();

        let report = repair_directory(dir.path()).unwrap();

        assert_eq!(report.files_checked, 2);
        assert_eq!(report.files_repaired(), 1);
        assert_eq!(report.repaired[0].path, day.join("stale.WAV"));
        assert_eq!(report.repaired[0].data_bytes, 5 * FRAME_BYTES as u64);
        assert_eq!(fs::read(day.join("good.wav")).unwrap(), good);
        let stale = fs::read(day.join("stale.WAV")).unwrap();
        assert_eq!(stale[..44], wav_header(5 * FRAME_BYTES as u32));
    }

    #[test]
    fn second_pass_finds_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        write_recording(&dir.path().join("a.wav"), 4, 0);
        assert_eq!(repair_directory(dir.path()).unwrap().files_repaired(), 1);
        let again = repair_directory(dir.path()).unwrap();
        assert_eq!((again.files_checked, again.files_repaired()), (1, 0));
    }

    #[test]
    fn symlinked_wav_is_not_written_through() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("elsewhere.wav");
        let original = write_recording(&target, 2, 0);
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link.wav")).unwrap();

        let report = repair_directory(dir.path()).unwrap();

        assert_eq!(report.files_checked, 0);
        assert_eq!(fs::read(&target).unwrap(), original);
    }
}
