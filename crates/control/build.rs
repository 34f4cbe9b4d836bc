//! The commit natpass is built from, for `natpass_build_info{commit}`: `NATPASS_COMMIT` when
//! the builder sets it, else `git rev-parse --short=12 HEAD`, else "unknown" (a source tarball
//! without git).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=NATPASS_COMMIT");
    let commit = match std::env::var("NATPASS_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // Build again when HEAD moves: HEAD itself, the branch it names, packed refs.
            for p in ["HEAD", "packed-refs"] {
                if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(path) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={path}");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=NATPASS_COMMIT={commit}");
}
