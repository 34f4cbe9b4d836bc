//! The configuration file as the control plane changes it: edits keep the file's comments and
//! layout (`toml_edit`), are validated by the config crate before anything is applied, and are
//! saved atomically (write a new temporary file, fsync it, rename it over, fsync the
//! directory), readable by its owner alone (0600: it holds the password hashes).
//!
//! The store re-reads the file before every change. When something else changed the file
//! since natpass last read or wrote it, the change is refused ([`StoreError::Changed`]) and
//! nothing is written over the other edit; the store takes the new text as its own, so the
//! next try applies on top of it. [`ConfigStore::reload_if_changed`] tells the server when
//! the file changed, so that users and tokens removed from it stop working at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use natpass_config::Config;
use toml_edit::{DocumentMut, Item, Value, value};

/// A change refused; the file and the running config are as they were.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change would make the file invalid.
    #[error("{0}")]
    Invalid(String),
    /// The file changed on disk since natpass last read it; nothing was written.
    #[error("{0}")]
    Changed(String),
    /// The file could not be read or written.
    #[error("saving {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One setting to change: `table.key = value` (dotted table names for sub-tables).
#[derive(Clone, Debug)]
pub struct Edit {
    /// Table, e.g. `passthrough` or `timeouts`.
    pub table: &'static str,
    /// Key.
    pub key: &'static str,
    /// New value.
    pub value: Value,
}

/// A validated change, not yet saved.
pub struct Prepared {
    /// The file's new text.
    pub text: String,
    /// The configuration it gives.
    pub config: Config,
    /// One line per changed key.
    pub diff: Vec<String>,
}

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { dev: m.dev(), ino: m.ino(), len: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() })
}

/// The config file natpass runs from.
pub struct ConfigStore {
    path: Option<PathBuf>,
    text: String,
    /// The file's stamp when [`ConfigStore::reload_if_changed`] last looked, and its text.
    seen: Option<Stamp>,
    seen_text: Option<String>,
}

impl ConfigStore {
    /// A store for the file at `path` whose current text is `text`; `None` keeps changes in
    /// memory only (tests, replays).
    pub fn new(path: Option<PathBuf>, text: String) -> Self {
        let seen = path.as_deref().and_then(stamp);
        Self { path, seen_text: Some(text.clone()), text, seen }
    }

    /// The current text.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io { path: self.path.as_deref().unwrap_or(Path::new("")).display().to_string(), source }
    }

    /// Refuses when the file on disk is not the text natpass last read or wrote, and takes
    /// the file's text as the store's own for the next try.
    fn check_disk(&mut self) -> Result<(), StoreError> {
        let Some(path) = self.path.clone() else { return Ok(()) };
        let on_disk = natpass_config::read_file(&path).map_err(|e| self.io(e))?;
        if on_disk == self.text {
            return Ok(());
        }
        self.text = on_disk;
        Err(StoreError::Changed(format!(
            "the config file {} was changed by something other than natpass since natpass read it; \
             nothing was saved, so that edit is kept. natpass has read the file again: check it and try again",
            path.display()
        )))
    }

    /// Validates the edits as one change; on success saves the file and returns the new
    /// configuration and a diff line per changed key. On error nothing is written.
    pub fn apply(&mut self, edits: &[Edit]) -> Result<(Config, Vec<String>), StoreError> {
        let p = self.prepare(edits)?;
        self.commit(p.text)?;
        Ok((p.config, p.diff))
    }

    /// Saves a prepared change's text as the file, unless the file changed since
    /// [`ConfigStore::prepare`] read it.
    pub fn commit(&mut self, text: String) -> Result<(), StoreError> {
        self.check_disk()?;
        if let Some(path) = &self.path {
            save_atomically(path, &text)?;
            self.seen = stamp(path);
            self.seen_text = Some(text.clone());
        }
        self.text = text;
        Ok(())
    }

    /// Takes `text`, read from the file and validated by a reload, as the file's current text.
    pub fn adopt(&mut self, text: String) {
        if let Some(path) = &self.path {
            self.seen = stamp(path);
        }
        self.seen_text = Some(text.clone());
        self.text = text;
    }

    /// Re-reads the file, then validates the edits without saving: the new text,
    /// configuration and diff. [`StoreError::Changed`] when the file changed behind
    /// natpass's back.
    pub fn prepare(&mut self, edits: &[Edit]) -> Result<Prepared, StoreError> {
        self.check_disk()?;
        let mut doc: DocumentMut =
            self.text.parse().map_err(|e| StoreError::Invalid(format!("the config file no longer parses: {e}")))?;
        let mut diff = Vec::new();
        for e in edits {
            let table = table_mut(&mut doc, e.table);
            let old = table.get(e.key).and_then(Item::as_value).map(|v| v.to_string().trim().to_string());
            let new = e.value.to_string().trim().to_string();
            if old.as_deref() != Some(new.as_str()) {
                diff.push(format!("{}.{}: {} → {new}", e.table, e.key, old.unwrap_or_else(|| "(default)".into())));
            }
            table[e.key] = value(e.value.clone());
        }
        let text = doc.to_string();
        let config = natpass_config::parse_config(&text).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(Prepared { text, config, diff })
    }

    /// When the file changed on disk since the last look (a stat, no read otherwise): its
    /// configuration, or why it no longer parses. `None` when it did not change.
    pub fn reload_if_changed(&mut self) -> Option<Result<Config, String>> {
        let path = self.path.as_deref()?;
        let now = stamp(path);
        if now.is_some() && now == self.seen {
            return None;
        }
        // A file written within the clock's granularity of the last look may have changed
        // again with the same stamp ("racy" stamps): look again next time, by content.
        let recent = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().map_or(true, |age| age < Duration::from_secs(2)));
        self.seen = if recent { None } else { now };
        let text = match natpass_config::read_file(path) {
            Ok(t) => t,
            Err(e) => return Some(Err(format!("reading {}: {e}", path.display()))),
        };
        if self.seen_text.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.seen_text = Some(text.clone());
        Some(natpass_config::parse_config(&text).map_err(|e| format!("{}: {e}", path.display())))
    }
}

fn table_mut<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut toml_edit::Table {
    let root = doc.as_table_mut();
    if !root.get(name).is_some_and(Item::is_table) {
        root.insert(name, Item::Table(toml_edit::Table::new()));
    }
    match root.get_mut(name).and_then(Item::as_table_mut) {
        Some(t) => t,
        None => unreachable_table(),
    }
}

#[allow(clippy::panic)]
fn unreachable_table() -> ! {
    panic!("a table just inserted is a table")
}

impl ConfigStore {
    /// Adds an administrator (`[[admin.users]]`) and saves, as one validated change.
    pub fn add_user(&mut self, name: &str, password_hash: &str) -> Result<Config, StoreError> {
        self.check_disk()?;
        let mut doc: DocumentMut =
            self.text.parse().map_err(|e| StoreError::Invalid(format!("the config file no longer parses: {e}")))?;
        let admin = table_mut(&mut doc, "admin");
        if !admin.get("users").is_some_and(Item::is_array_of_tables) {
            admin.insert("users", Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
        }
        let mut user = toml_edit::Table::new();
        user["name"] = value(name);
        user["password_hash"] = value(password_hash);
        if let Some(users) = admin.get_mut("users").and_then(Item::as_array_of_tables_mut) {
            users.push(user);
        }
        if admin.iter().all(|(k, _)| k == "users") {
            // No `[admin]` header of its own when it only holds `[[admin.users]]`.
            admin.set_implicit(true);
        }
        let text = doc.to_string();
        let config = natpass_config::parse_config(&text).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.commit(text)?;
        Ok(config)
    }
}

/// Writes `text` to `path` so that a crash leaves either the old or the new file, readable and
/// writable by its owner alone (0600). The temporary file beside it has a random name and is
/// created new (`O_CREAT|O_EXCL|O_NOFOLLOW`), so nothing planted at that name, a symbolic link
/// or a file another user can read, is followed or reused.
pub fn save_atomically(path: &Path, text: &str) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.display().to_string(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut suffix = [0u8; 8];
    crate::auth::fill_random(&mut suffix).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::auth::hex(&suffix)));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io)?;
    let written = (|| {
        // The mode given at creation is narrowed by the umask, never widened; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    drop(f);
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

/// The file's mode when group or others may read or write it (a warning at start).
pub fn loose_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FILE: &str = "# my router\n[nat]\nlan_networks = [\"192.168.1.0/24\"]  # the LAN\n\n[timeouts]\nudp = 300\n";

    #[test]
    fn edits_keep_comments_and_report_a_diff() {
        let mut s = ConfigStore::new(None, FILE.into());
        let (c, diff) = s
            .apply(&[
                Edit { table: "passthrough", key: "pptp", value: false.into() },
                Edit { table: "timeouts", key: "udp", value: 600i64.into() },
            ])
            .unwrap();
        assert!(!c.engine.passthrough.pptp);
        assert_eq!(c.engine.timeouts.udp.as_secs(), 600);
        assert!(s.text().contains("# my router") && s.text().contains("# the LAN"), "{}", s.text());
        assert_eq!(diff, vec!["passthrough.pptp: (default) → false", "timeouts.udp: 300 → 600"]);
    }

    #[test]
    fn an_invalid_change_leaves_everything_as_it_was() {
        let mut s = ConfigStore::new(None, FILE.into());
        let e = s.apply(&[Edit { table: "timeouts", key: "udp", value: 30i64.into() }]).unwrap_err();
        assert!(e.to_string().contains("120"), "{e}");
        assert_eq!(s.text(), FILE);
    }

    #[test]
    fn saves_atomically_to_disk() {
        let dir = std::env::temp_dir().join(format!("natpass-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("natpass.toml");
        std::fs::write(&path, FILE).unwrap();
        let mut s = ConfigStore::new(Some(path.clone()), FILE.into());
        s.apply(&[Edit { table: "passthrough", key: "l2tp", value: false.into() }]).unwrap();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(on_disk.contains("l2tp = false") && on_disk.contains("# my router"), "{on_disk}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_file(name: &str, mode: u32) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("natpass-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("natpass.toml");
        std::fs::write(&path, FILE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_file_an_editor_left_readable_by_all_is_saved_for_its_owner_alone() {
        let (dir, path) = temp_file("mode", 0o644);
        assert_eq!(loose_mode(&path), Some(0o644));
        let mut s = ConfigStore::new(Some(path.clone()), FILE.into());
        s.apply(&[Edit { table: "passthrough", key: "pptp", value: false.into() }]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(loose_mode(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_changed_behind_natpass_back_is_not_overwritten() {
        let (dir, path) = temp_file("changed", 0o600);
        let mut s = ConfigStore::new(Some(path.clone()), FILE.into());
        let edited = format!("{FILE}\n[admin]\nsession_minutes = 10\n");
        std::fs::write(&path, &edited).unwrap();
        let e = s.apply(&[Edit { table: "passthrough", key: "pptp", value: false.into() }]).unwrap_err();
        assert!(matches!(e, StoreError::Changed(_)), "{e}");
        assert!(e.to_string().contains("changed by something other than natpass"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited, "the other edit is kept");
        // The next try applies on top of the file as it now is.
        s.apply(&[Edit { table: "passthrough", key: "pptp", value: false.into() }]).unwrap();
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.contains("session_minutes = 10") && now.contains("pptp = false"), "{now}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_says_when_the_file_changed() {
        let (dir, path) = temp_file("reload", 0o600);
        let mut s = ConfigStore::new(Some(path.clone()), FILE.into());
        assert!(s.reload_if_changed().is_none());
        std::fs::write(&path, format!("{FILE}\n[admin]\nsession_minutes = 10\n")).unwrap();
        let c = s.reload_if_changed().unwrap().unwrap();
        assert_eq!(c.admin.session_minutes, 10);
        assert!(s.reload_if_changed().is_none());
        std::fs::write(&path, "[nat\n").unwrap();
        assert!(s.reload_if_changed().unwrap().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_link_at_a_temporary_name_is_not_followed() {
        // The temporary name is random, and O_EXCL|O_NOFOLLOW refuses any existing name.
        let (dir, path) = temp_file("link", 0o600);
        let target = dir.join("target");
        for i in 0..16 {
            let _ = std::os::unix::fs::symlink(&target, dir.join(format!(".natpass.toml.{i:016x}.tmp")));
        }
        save_atomically(&path, "x = 1\n").unwrap();
        assert!(!target.exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
