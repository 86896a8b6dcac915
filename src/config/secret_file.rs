//! Secrets read from a file of their own, as systemd's `LoadCredential=` hands them
//! over (`$CREDENTIALS_DIRECTORY/<name>`), so the config file itself holds no secret.
//! A secret file must be its owner's alone: one that its group or anyone else may read
//! or write is refused, naming the file and its mode, before anything starts (R12).
//! Reading the file is this module's only I/O.

use std::path::Path;

/// The secret in `path`, surrounding whitespace (the newline an editor or `echo` adds)
/// removed; or why it cannot be used, naming the file.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    check_private(path, &metadata)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(secret.to_owned())
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}: a secret file must not be readable or writable by its \
             group or others; run chmod 600 {0} (systemd's LoadCredential= does this for you)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn secret(mode: u32, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api-token");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn an_owner_only_file_gives_its_trimmed_secret() {
        for mode in [0o600, 0o400] {
            let (_dir, path) = secret(mode, "a-token-from-a-credential-file\n");
            assert_eq!(
                read_secret_file(&path).as_deref(),
                Ok("a-token-from-a-credential-file")
            );
        }
    }

    #[test]
    fn a_file_others_may_read_or_write_is_refused_with_file_and_mode_r12() {
        for mode in [0o640, 0o604, 0o644, 0o620, 0o660] {
            let (_dir, path) = secret(mode, "a-token-from-a-credential-file\n");
            let err = read_secret_file(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn missing_empty_and_directory_are_refused_with_the_file() {
        let (dir, path) = secret(0o600, " \n");
        assert!(read_secret_file(&path).unwrap_err().contains("is empty"));
        let missing = dir.path().join("nope");
        let err = read_secret_file(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(
            read_secret_file(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
    }
}
