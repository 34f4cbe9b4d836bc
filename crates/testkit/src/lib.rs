//! What natpass's tests share (a dev-dependency only).
//!
//! - Prerequisites: some tests need root, Debian packages or a browser. [`ready`] (or the
//!   [`require!`] macro) decides what a test does when they are missing. By default it prints
//!   `SKIPPED: <test>: <why>` and the test returns (and counts as passed). With
//!   `NATPASS_TEST_REQUIRE=all` (CI sets it) the test fails with the reason instead, so a
//!   machine that cannot run a test cannot pass it silently. The `SKIPPED` line goes straight
//!   to stderr, past the test harness's output capture, so `scripts/test.sh` can count it.
//! - Captures: [`captures`] is the repository's `captures/` directory of real VPN captures
//!   (see its INDEX.md).

#![forbid(unsafe_code)]

use std::fmt::Display;
use std::io::Write as _;
use std::path::PathBuf;

/// The environment variable that turns missing prerequisites into failures (`all`).
pub const REQUIRE_VAR: &str = "NATPASS_TEST_REQUIRE";

/// What a test does when its prerequisites are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Print SKIPPED and why, and return (the default).
    Skip,
    /// Fail with the reason (`NATPASS_TEST_REQUIRE=all`).
    Fail,
}

/// The policy [`REQUIRE_VAR`] sets. Panics on a value it does not know, so that a typo cannot
/// turn CI's failures back into skips.
pub fn missing_policy() -> Missing {
    match std::env::var(REQUIRE_VAR) {
        Ok(v) if v == "all" => Missing::Fail,
        Ok(v) if v.is_empty() => Missing::Skip,
        Err(std::env::VarError::NotPresent) => Missing::Skip,
        Ok(v) => panic!("{REQUIRE_VAR}={v:?}: use `all` (missing prerequisites fail tests) or leave it unset"),
        Err(e) => panic!("{REQUIRE_VAR}: {e}"),
    }
}

/// Whether a test may go on, given what its prerequisites check found (`Err(why)` when some
/// are missing). When they are missing it fails the test under `NATPASS_TEST_REQUIRE=all`;
/// otherwise it prints `SKIPPED` and why, and returns false.
#[track_caller]
pub fn ready<E: Display>(prerequisites: Result<(), E>) -> bool {
    let Err(why) = prerequisites else { return true };
    let test = test_name();
    match missing_policy() {
        Missing::Fail => panic!("{test}: prerequisites missing ({REQUIRE_VAR}=all): {why}"),
        Missing::Skip => {
            // Past the harness's capture of print!/eprint!, so the line shows in every run.
            let _ =
                writeln!(std::io::stderr(), "SKIPPED: {test}: {why} (set {REQUIRE_VAR}=all to make this a failure)");
            false
        }
    }
}

/// Returns from the calling test when its prerequisites are missing (see [`ready`]):
/// `natpass_testkit::require!(natpass_lab::preflight());`
#[macro_export]
macro_rules! require {
    ($prerequisites:expr) => {
        if !$crate::ready($prerequisites) {
            return;
        }
    };
}

/// The running test's name: libtest names each test's thread after it; else the caller's
/// file and line.
#[track_caller]
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::panic::Location::caller().to_string(),
    }
}

/// The repository's `captures/` directory: real VPN captures, each described with its origin
/// in `captures/INDEX.md`. Panics with the path when it is absent (a broken checkout).
pub fn captures() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../captures"));
    assert!(dir.join("INDEX.md").is_file(), "{} is not the repository's captures directory", dir.display());
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captures_are_in_the_repository() {
        let dir = captures();
        let n = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().contains(".pcap")).count())
            .unwrap_or(0);
        assert_eq!(n, 18, "{}", dir.display());
    }

    #[test]
    fn prerequisites_met_go_on() {
        assert!(ready::<String>(Ok(())));
    }
}
