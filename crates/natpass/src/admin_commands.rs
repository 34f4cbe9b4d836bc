//! The commands against a running natpass: `natpass status`, `sessions`, `tunnels`,
//! `passthrough [PROTOCOL [enable|disable]]` and `settings`. Each asks the REST API
//! ([`ApiClient`]) and prints a table ([`crate::tables`]), or with `--json` the API's answer.

use std::path::PathBuf;

use anyhow::bail;
use natpass_control::api::{
    self, Findings, PROTOCOLS, PassthroughChanged, PassthroughPatch, SessionPage, SessionParams, Settings,
    SettingsChanged, SettingsPatch, Status, Switches, TimeoutsPatch, Tunnels, path,
};
use natpass_engine::Protocol;
use serde::Serialize;

use crate::api_client::ApiClient;
use crate::tables;

/// Which natpass to ask, and how to print its answer.
#[derive(Clone, Debug)]
pub struct ApiTarget {
    /// The admin address, `http://HOST:PORT` or `https://HOST:PORT`.
    pub api: String,
    /// The token file the daemon wrote.
    pub token_file: PathBuf,
    /// The admin's certificate, for HTTPS.
    pub cert: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    pub json: bool,
}

impl ApiTarget {
    fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(&self.api, &self.token_file, self.cert.as_deref())
    }

    /// Prints `value` as JSON, or `table` for people.
    fn print<T: Serialize>(&self, value: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", table(value));
        }
        Ok(())
    }
}

/// `natpass status`.
pub fn status(t: &ApiTarget) -> anyhow::Result<()> {
    let s: Status = t.client()?.get(path::STATUS, &[])?;
    t.print(&s, tables::status)
}

/// `natpass sessions`.
pub fn sessions(t: &ApiTarget, params: &SessionParams) -> anyhow::Result<()> {
    let p: SessionPage = t.client()?.get(path::SESSIONS, &params.pairs())?;
    t.print(&p, tables::sessions)
}

/// `natpass tunnels`.
pub fn tunnels(t: &ApiTarget) -> anyhow::Result<()> {
    let v: Tunnels = t.client()?.get(path::TUNNELS, &[])?;
    t.print(&v, tables::tunnels)
}

/// `natpass tunnels --why [--client IP]`: what the diagnosis found.
pub fn why(t: &ApiTarget, client: Option<std::net::Ipv4Addr>) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = client.map(|c| ("client", c.to_string())).into_iter().collect();
    let v: Findings = t.client()?.get(path::FINDINGS, &query)?;
    t.print(&v, tables::findings)
}

/// What `natpass passthrough [PROTOCOL [STATE]]` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughRequest {
    /// Show the three switches.
    ShowAll,
    /// Show one.
    Show(Protocol),
    /// Turn one on or off.
    Set(Protocol, bool),
}

impl PassthroughRequest {
    /// Reads the command's words, or says what to write instead.
    pub fn parse(protocol: Option<&str>, state: Option<&str>) -> anyhow::Result<Self> {
        let Some(name) = protocol else { return Ok(Self::ShowAll) };
        let Some(p) = api::protocol_named(name) else {
            let [a, b, c] = PROTOCOLS.map(Protocol::name);
            bail!("{name:?} is not a passthrough protocol: use {a}, {b} or {c}");
        };
        match state {
            None => Ok(Self::Show(p)),
            Some("enable") => Ok(Self::Set(p, true)),
            Some("disable") => Ok(Self::Set(p, false)),
            Some(s) => bail!("{s:?}: use `natpass passthrough {name} enable` or `... disable`"),
        }
    }
}

/// `natpass passthrough [PROTOCOL [enable|disable]]`.
pub fn passthrough(t: &ApiTarget, protocol: Option<&str>, state: Option<&str>) -> anyhow::Result<()> {
    let request = PassthroughRequest::parse(protocol, state)?;
    let c = t.client()?;
    match request {
        PassthroughRequest::ShowAll => t.print(&c.get::<Switches>(path::PASSTHROUGH, &[])?, tables::switches),
        PassthroughRequest::Show(p) => {
            let s: Switches = c.get(path::PASSTHROUGH, &[])?;
            t.print(&s.get(p), |&on| tables::switch(on))
        }
        PassthroughRequest::Set(p, on) => {
            let mut patch = PassthroughPatch::default();
            patch.set(p, Some(on));
            let answer: PassthroughChanged = c.put(path::PASSTHROUGH, &patch)?;
            t.print(&answer.passthrough, tables::switches)
        }
    }
}

/// The settings change the flags of `natpass settings` ask for, or `None` to only show them.
pub fn settings_patch(timeouts: TimeoutsPatch, filtering: Option<String>) -> Option<SettingsPatch> {
    let timeouts = (timeouts != TimeoutsPatch::default()).then_some(timeouts);
    (timeouts.is_some() || filtering.is_some()).then_some(SettingsPatch { timeouts, filtering })
}

/// `natpass settings [--udp N ...] [--filtering MODE]`: shows the timers and filtering, or
/// changes them and says what changed (on stderr).
pub fn settings(t: &ApiTarget, timeouts: TimeoutsPatch, filtering: Option<String>) -> anyhow::Result<()> {
    let c = t.client()?;
    match settings_patch(timeouts, filtering) {
        None => {
            let s: Settings = c.get(path::SETTINGS, &[])?;
            t.print(&s, |s| tables::settings(&s.timeouts, &s.filtering))
        }
        Some(patch) => {
            let s: SettingsChanged = c.patch(path::SETTINGS, &patch)?;
            for line in &s.changed {
                eprintln!("changed: {line}");
            }
            t.print(&s, |s| tables::settings(&s.timeouts, &s.filtering))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn passthrough_words_are_read_as_before() {
        use PassthroughRequest::*;
        assert_eq!(PassthroughRequest::parse(None, Some("enable")).unwrap(), ShowAll);
        assert_eq!(PassthroughRequest::parse(Some("pptp"), None).unwrap(), Show(Protocol::Pptp));
        assert_eq!(PassthroughRequest::parse(Some("l2tp"), Some("disable")).unwrap(), Set(Protocol::L2tp, false));
        assert_eq!(PassthroughRequest::parse(Some("ipsec"), Some("enable")).unwrap(), Set(Protocol::Ipsec, true));
        let e = PassthroughRequest::parse(Some("gre"), None).unwrap_err().to_string();
        assert_eq!(e, "\"gre\" is not a passthrough protocol: use ipsec, pptp or l2tp");
        let e = PassthroughRequest::parse(Some("pptp"), Some("off")).unwrap_err().to_string();
        assert_eq!(e, "\"off\": use `natpass passthrough pptp enable` or `... disable`");
    }

    #[test]
    fn settings_flags_become_a_patch_of_only_what_was_given() {
        assert_eq!(settings_patch(TimeoutsPatch::default(), None), None);
        let p = settings_patch(TimeoutsPatch { udp: Some(600), ..TimeoutsPatch::default() }, None).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!({"timeouts": {"udp": 600}}));
        let p = settings_patch(TimeoutsPatch::default(), Some("endpoint-independent".into())).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!({"filtering": "endpoint-independent"}));
    }
}
