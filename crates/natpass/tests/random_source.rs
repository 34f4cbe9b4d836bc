//! natpass draws every secret (session IDs, CSRF tokens, salts, API tokens, the first
//! password, the port randomisation seed) from the operating system. When that source fails,
//! natpass must stop at start, before it opens an interface or writes anything, rather than
//! run with predictable secrets. The source is injected here; the OS is left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use natpass_control::auth::RandomError;

fn missing(_: &mut [u8]) -> Result<(), RandomError> {
    Err(RandomError("getrandom: ENOSYS (simulated)".into()))
}

fn config(name: &str) -> (PathBuf, PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("natpass-random-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("natpass.toml");
    // No user yet: a working start would make one with a random password.
    let text = format!(
        "[interfaces.lan]\nname = \"np-no-such-lan\"\naddress = \"192.168.1.1/24\"\n\n\
         [interfaces.wan]\nname = \"np-no-such-wan\"\naddress = \"203.0.113.1/24\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}/api.token\"\n",
        dir.display()
    );
    std::fs::write(&path, &text).unwrap();
    (dir, path, text)
}

#[test]
fn a_missing_random_source_stops_natpass_at_start() {
    let (dir, path, text) = config("run");
    let e = natpass::daemon::run_with(&path, missing).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("refusing to start") && msg.contains("predictable"), "{msg}");
    assert!(!msg.contains("np-no-such"), "stopped before opening the interfaces: {msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "no user or password hash written");
    assert!(!dir.join("api.token").exists(), "no token written");
    // With the OS's source, start-up gets past that check (and stops at the interfaces,
    // which do not exist).
    let e = format!("{:#}", natpass::daemon::run_with(&path, natpass_control::auth::os_random).unwrap_err());
    assert!(!e.contains("refusing to start"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_control_plane_makes_no_secret_without_a_random_source() {
    let (dir, path, text) = config("control");
    let c = natpass_config::parse_config(&text).unwrap();
    let e = natpass::control_plane::prepare(&path, text.clone(), &c.admin, missing).err().expect("refused");
    assert!(format!("{e:#}").contains("predictable"), "{e:#}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(!dir.join("api.token").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
