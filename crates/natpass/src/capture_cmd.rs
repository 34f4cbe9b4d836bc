//! `natpass capture`: a pcapng file of what the running router receives and sends on its
//! LAN and WAN sides, taken inside the data plane over the API ([`natpass_control::capture`]).
//! The file has one interface per side (named as on the router) and marks each frame
//! inbound (natpass received it) or outbound (natpass sent it), so Wireshark shows a VPN
//! client's packets before and after translation side by side.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use natpass_control::capture::{
    self, CaptureProto, CaptureRequest, CaptureStarted, CaptureStopped, DROPPED_HEADER, PACKETS_HEADER, Sides,
};

use crate::admin_commands::ApiTarget;

/// What to capture and when to stop.
#[derive(Clone, Debug)]
pub struct Options {
    /// LAN, WAN or both.
    pub side: Sides,
    /// Only this protocol.
    pub proto: Option<CaptureProto>,
    /// Only packets from or to this address.
    pub host: Option<Ipv4Addr>,
    /// Bytes kept per frame.
    pub snaplen: Option<u32>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop before the file grows past this many bytes.
    pub max_size: u64,
}

/// How often the router's buffer is read.
const POLL: Duration = Duration::from_millis(200);

/// The Enhanced Packet Blocks in `blocks` that fit `room` frames and `bytes` bytes: their
/// length in bytes and their number.
fn fitting(blocks: &[u8], room: u64, bytes: u64) -> (usize, u64) {
    let (mut at, mut n) = (0usize, 0u64);
    while n < room && at + 8 <= blocks.len() {
        let len = u32::from_le_bytes([blocks[at + 4], blocks[at + 5], blocks[at + 6], blocks[at + 7]]) as usize;
        if len < 12 || at + len > blocks.len() || (at + len) as u64 > bytes {
            break;
        }
        at += len;
        n += 1;
    }
    (at, n)
}

/// Runs a capture into `out` (a file, or stdout for `-`) until `count`, `duration`, the size
/// bound, or SIGINT/SIGTERM; returns a summary for people.
pub fn run(t: &ApiTarget, o: &Options, out: &Path) -> anyhow::Result<String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let client = crate::api_client::ApiClient::new(&t.api, &t.token_file, t.cert.as_deref())?;
    let mut file: Box<dyn Write> = if out == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Captures hold other people's traffic: readable by their owner alone.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        Box::new(std::io::BufWriter::new(f))
    };
    let req = CaptureRequest { side: o.side, proto: o.proto, host: o.host, snaplen: o.snaplen };
    let started: CaptureStarted = client.post(capture::PATH, &req)?;
    let id = [("id", started.id.to_string())];
    let names: Vec<&str> = started.interfaces.iter().map(String::as_str).collect();
    let header = capture::pcapng_header(&names, started.snaplen);
    let mut size = header.len() as u64;
    file.write_all(&header)?;
    let (begin, mut written, mut dropped) = (Instant::now(), 0u64, 0u64);
    let progress = out != Path::new("-") && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = (|| -> anyhow::Result<()> {
        loop {
            let last = stop.load(Ordering::Relaxed)
                || o.duration.is_some_and(|d| begin.elapsed() >= d)
                || o.count.is_some_and(|c| written >= c)
                || size >= o.max_size;
            let (blocks, h) = client.get_bytes(capture::PATH, &id, &[PACKETS_HEADER, DROPPED_HEADER])?;
            dropped = h.get(1).cloned().flatten().and_then(|v| v.parse().ok()).unwrap_or(dropped);
            let room = o.count.map_or(u64::MAX, |c| c.saturating_sub(written));
            let (len, n) = fitting(&blocks, room, o.max_size.saturating_sub(size));
            file.write_all(&blocks[..len])?;
            file.flush()?;
            written += n;
            size += len as u64;
            if progress {
                eprint!("\r{written} packets captured");
            }
            if last || len < blocks.len() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    })();
    if progress {
        eprintln!();
    }
    // Stop it on the router whatever happened here; it would stop by itself when idle.
    let stopped: Option<CaptureStopped> = client.delete(capture::PATH, &id).ok();
    result?;
    let dropped = stopped.map_or(dropped, |s| s.dropped);
    let mut summary = format!("{written} packets written to {}", out.display());
    if dropped > 0 {
        summary.push_str(&format!(
            "; {dropped} not kept by the router's bounds ({} packets/s, {} MiB between reads)",
            started.max_pps,
            started.max_buffer >> 20
        ));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use natpass_control::capture::{CaptureSpec, Direction, Tap};
    use natpass_engine::Side;

    use super::*;

    #[test]
    fn only_whole_blocks_within_the_bounds_are_written() {
        let spec = CaptureSpec { sides: [true, true], proto: None, host: None, snaplen: 65535 };
        let mut t = Tap::new(1, spec, 0);
        for i in 0..3 {
            t.record(Side::Lan, Direction::In, &[0u8; 60], i, i);
        }
        let b = t.drain(10).blocks;
        assert_eq!(fitting(&b, u64::MAX, u64::MAX), (b.len(), 3));
        let one = b.len() / 3;
        assert_eq!(fitting(&b, 2, u64::MAX), (2 * one, 2));
        assert_eq!(fitting(&b, u64::MAX, one as u64 + 1), (one, 1));
        assert_eq!(fitting(&b[..one + 3], u64::MAX, u64::MAX), (one, 1), "a cut block is not written");
    }
}
