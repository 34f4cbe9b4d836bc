//! `natpass hash-password` and `natpass token`: credentials to put in the config file.

use std::io::BufRead;

use anyhow::{anyhow, bail};
use natpass_control::auth;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// The argon2id hash, for `[[admin.users]] password_hash`, of the password on the first line
/// of `input`.
pub fn password_hash(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.len() < MIN_PASSWORD_LEN {
        bail!("use a password of at least {MIN_PASSWORD_LEN} characters");
    }
    auth::hash_password(pw).map_err(|e| anyhow!(e))
}

/// A new API token and the SHA-256 that goes into `[admin] api_tokens_sha256`, as printed.
pub fn new_token() -> anyhow::Result<String> {
    let t = auth::random_hex(32)?;
    Ok(format!("token:  {t}\nsha256: {}  (add to [admin] api_tokens_sha256)", auth::token_digest(&t)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn short_passwords_are_refused_and_long_ones_hashed() {
        let e = password_hash(&mut &b"short\n"[..]).unwrap_err().to_string();
        assert_eq!(e, "use a password of at least 8 characters");
        assert!(password_hash(&mut &b"correct horse\r\n"[..]).unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn a_token_comes_with_its_digest() {
        let text = new_token().unwrap();
        let token = text.lines().next().unwrap().trim_start_matches("token:").trim();
        assert!(text.contains(&auth::token_digest(token)), "{text}");
    }
}
