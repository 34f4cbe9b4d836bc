//! natpass's log: `tracing` events on stderr, as text for people or JSON for machines
//! (`--log-format`), filtered by level and target (`--log-level`, `NATPASS_LOG`).
//!
//! Under systemd (stderr is the journal's stream, `JOURNAL_STREAM`) the text has no timestamp
//! of its own, since the journal stamps every line, and each line starts with its syslog
//! priority (`<3>` error … `<7>` debug), so `journalctl -p warning` works.
//!
//! Packets are never logged one line each: a refusal is a counter in the engine (see
//! `/metrics`) and, at most [`Sampler::PER_WINDOW`] times per [`Sampler::WINDOW_NS`], a line;
//! the rest are summed up in one line when the window ends.

use std::fmt;
use std::str::FromStr as _;

use anyhow::anyhow;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, target, message, fields (no time under journald).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// The default filter: natpass's own lines from `info` up.
pub const DEFAULT_LEVEL: &str = "info";

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` is `DEVICE:INODE` of the stream
/// systemd connected, and stderr must still be that stream (not redirected since).
pub fn under_journald() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Installs the global subscriber. `filter` is a level (`info`) or targets with levels
/// (`natpass::router=debug,info`); `None` is [`DEFAULT_LEVEL`].
pub fn init(format: LogFormat, filter: Option<&str>) -> anyhow::Result<()> {
    let filter = filter.unwrap_or(DEFAULT_LEVEL);
    let targets = Targets::from_str(filter)
        .map_err(|e| anyhow!("--log-level {filter:?}: {e}; use a level (error, warn, info, debug, trace) or targets like \"natpass::router=debug,info\""))?;
    let journald = under_journald();
    let ansi = !journald && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(targets);
    let result = match (format, journald) {
        (LogFormat::Json, false) => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .try_init(),
        (LogFormat::Json, true) => registry
            .with(
                tracing_subscriber::fmt::layer().json().flatten_event(true).without_time().with_writer(std::io::stderr),
            )
            .try_init(),
        (LogFormat::Text, false) => {
            registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).try_init()
        }
        (LogFormat::Text, true) => registry
            .with(tracing_subscriber::fmt::layer().event_format(Journald).with_ansi(false).with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|e| anyhow!("setting up the log: {e}"))
}

/// Text for the journal: `<PRIORITY>target: message fields`, no timestamp.
struct Journald;

/// The syslog priority of a level (RFC 5424: 3 error, 4 warning, 6 informational, 7 debug).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let m = event.metadata();
        write!(writer, "<{}>{}: ", priority(m.level()), m.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Decides which of many similar lines (refused packets) are written: the first
/// [`Sampler::PER_WINDOW`] of each window of [`Sampler::WINDOW_NS`], then one line with how
/// many were left out. The packets themselves are counted elsewhere (drop counters).
#[derive(Debug, Default)]
pub struct Sampler {
    window_start: u64,
    logged: u32,
    suppressed: u64,
}

impl Sampler {
    /// Lines written per window.
    pub const PER_WINDOW: u32 = 5;
    /// The window, in nanoseconds (10 s).
    pub const WINDOW_NS: u64 = 10_000_000_000;

    /// Whether the line for an occurrence at `now_ns` is written. When a new window starts,
    /// `Some(n)` comes back first in [`Sampler::flush`]; call that before this.
    pub fn admit(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.window_start) >= Self::WINDOW_NS {
            self.window_start = now_ns;
            self.logged = 0;
        }
        if self.logged < Self::PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// At the end of a window: how many lines were left out in it (then forgotten).
    pub fn flush(&mut self, now_ns: u64) -> Option<u64> {
        if self.suppressed == 0 || now_ns.saturating_sub(self.window_start) < Self::WINDOW_NS {
            return None;
        }
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_a_few_lines_and_a_sum() {
        let mut s = Sampler::default();
        let mut written = 0;
        for i in 0..10_000u64 {
            let now = i * 1_000_000; // one per millisecond: 10 s
            assert_eq!(s.flush(now), None, "no sum before the window ends");
            written += u32::from(s.admit(now));
        }
        assert_eq!(written, Sampler::PER_WINDOW);
        assert_eq!(s.flush(Sampler::WINDOW_NS), Some(10_000 - u64::from(Sampler::PER_WINDOW)));
        assert_eq!(s.flush(Sampler::WINDOW_NS + 1), None, "said once");
        assert!(s.admit(Sampler::WINDOW_NS + 1), "a new window writes again");
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!([Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG].map(|l| priority(&l)), [3, 4, 6, 7]);
    }

    #[test]
    fn filters_are_levels_or_targets() {
        assert!(Targets::from_str("debug").is_ok());
        assert!(Targets::from_str("natpass::router=debug,info").is_ok());
    }
}
