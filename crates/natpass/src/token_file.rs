//! The CLI's token file: at start `natpass run` writes a fresh bearer token there (mode 0600,
//! so reading it needs root), the CLI commands read it, and a clean stop removes it.

use std::path::Path;

use anyhow::Context as _;

/// Writes `token` to `path` (creating its directory), readable by its owner alone (0600, also
/// when a file with another mode was there: it is replaced, atomically, never reused).
pub fn write(path: &Path, token: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    natpass_control::store::save_atomically(path, token)
        .with_context(|| format!("writing the CLI token {}", path.display()))
}

/// The token in `path`, for a CLI command.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the API token {} (is natpass running? the daemon writes it at start; reading it needs root)",
            path.display()
        )
    })?;
    Ok(text.trim().to_string())
}

/// Removes the token at a clean stop; a file already gone is fine.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_token_is_written_for_its_owner_alone_and_read_back() {
        let dir = std::env::temp_dir().join(format!("natpass-token-{}", std::process::id()));
        let path = dir.join("run/api.token");
        write(&path, "abc123").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A file left readable by everyone is replaced by one for its owner alone.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, "abc123").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&path).unwrap(), "abc123");
        remove(&path);
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("is natpass running?"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
