//! The configuration file as the control plane changes it: edits keep the file's comments and
//! layout (`toml_edit`), are validated by the config crate before anything is applied, and are
//! saved atomically (write a temporary file, fsync it, rename it over, fsync the directory).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use natpass_config::Config;
use toml_edit::{DocumentMut, Item, Value, value};

/// A change refused; the file and the running config are as they were.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change would make the file invalid.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be written.
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

/// The config file natpass runs from.
pub struct ConfigStore {
    path: Option<PathBuf>,
    text: String,
}

impl ConfigStore {
    /// A store for the file at `path` whose current text is `text`; `None` keeps changes in
    /// memory only (tests, replays).
    pub fn new(path: Option<PathBuf>, text: String) -> Self {
        Self { path, text }
    }

    /// The current text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Validates the edits as one change; on success saves the file and returns the new
    /// configuration and a diff line per changed key. On error nothing is written.
    pub fn apply(&mut self, edits: &[Edit]) -> Result<(Config, Vec<String>), StoreError> {
        let p = self.prepare(edits)?;
        self.commit(p.text)?;
        Ok((p.config, p.diff))
    }

    /// Saves a prepared change's text as the file.
    pub fn commit(&mut self, text: String) -> Result<(), StoreError> {
        if let Some(path) = &self.path {
            save_atomically(path, &text)?;
        }
        self.text = text;
        Ok(())
    }

    /// Validates the edits without saving: the new text, configuration and diff.
    pub fn prepare(&self, edits: &[Edit]) -> Result<Prepared, StoreError> {
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
        if let Some(path) = &self.path {
            save_atomically(path, &text)?;
        }
        self.text = text;
        Ok(config)
    }
}

/// Writes `text` to `path` so that a crash leaves either the old or the new file.
pub fn save_atomically(path: &Path, text: &str) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.display().to_string(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
