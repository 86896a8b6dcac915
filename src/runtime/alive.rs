//! The engine's last sign of life (issue 9, row 8): a small file in the recordings
//! directory rewritten every second with the wall-clock time. After a crash, the work
//! orders the crash left open are ended at that time, the last moment the engine knew
//! their calls were up (the recordings' headers are rewritten on the same beat), not at
//! the restart, which may be hours later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// How often the mark is rewritten: the recordings' header interval is at most this.
const BEAT: Duration = Duration::from_secs(1);

/// The file, beside the date directories (the recordings repair reads only `*.wav`).
pub fn mark_path(recordings_root: &Path) -> PathBuf {
    recordings_root.join(".engine-alive")
}

/// The time in the mark, if there is a readable one.
pub fn last_sign_of_life(path: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(path).ok()?;
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When the calls a crash cut short ended, as far as anyone can tell: the last mark,
/// unless there is none or it lies in the future (a clock set back), then `now`.
pub fn crash_end_time(mark: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    mark.filter(|at| *at <= now).unwrap_or(now)
}

/// Writes the mark now, atomically (a crash mid-write leaves the previous one).
pub fn write_mark(path: &Path, now: DateTime<Utc>) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&temporary)?
        .write_all(now.to_rfc3339().as_bytes())?;
    std::fs::rename(&temporary, path)
}

/// Rewrites the mark every second until `stop` turns true, then once more: a clean
/// shutdown's mark is its last moment too.
pub async fn keep_marking(path: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut beat = tokio::time::interval(BEAT);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let write = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || write_mark(&path, Utc::now()))
        };
        if let Ok(Err(e)) = write.await {
            tracing::debug!(error = %e, "could not write the engine's alive mark");
        }
    }
    let _ = write_mark(&path, Utc::now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_mark_is_read_back_and_a_future_or_missing_one_falls_back_to_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(dir.path());
        assert_eq!(last_sign_of_life(&path), None);
        let then = Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap();
        write_mark(&path, then).unwrap();
        assert_eq!(last_sign_of_life(&path), Some(then));
        let now = then + chrono::Duration::hours(3);
        assert_eq!(crash_end_time(Some(then), now), then);
        assert_eq!(
            crash_end_time(Some(now), then),
            then,
            "a mark from the future"
        );
        assert_eq!(crash_end_time(None, now), now);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(last_sign_of_life(&path), None);
    }
}
