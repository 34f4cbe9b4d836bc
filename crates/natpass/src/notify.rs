//! The service manager's notification protocol (`sd_notify(3)`), for a `Type=notify` unit:
//! `READY=1` once natpass forwards, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`,
//! `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` while the data plane answers.
//!
//! The protocol is one datagram per message on the Unix socket named by `$NOTIFY_SOCKET` (a
//! path, or `@name` for an abstract socket). Without that variable every call does nothing.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the watchdog is ours only
    /// when the PID, if given, is this process).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            // Never blocks: a service manager that does not read must not stall the router's
            // threads (a full queue drops the message, as a lost ping would).
            let sock = UnixDatagram::unbound().ok()?;
            sock.set_nonblocking(true).ok()?;
            Some((sock, addr))
        });
        let ours = std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// Whether a service manager listens.
    pub fn active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog's timeout, when the unit has `WatchdogSec=`; ping at half of it.
    pub fn watchdog(&self) -> Option<Duration> {
        self.target.as_ref().and(self.watchdog)
    }

    /// Sends `state` (newline-separated `KEY=value` lines) without waiting. Errors are
    /// ignored: the service manager going away or not reading must not stop the router.
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, as systemd asks), then call [`Notifier::ready`].
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config file", monotonic_usec()));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// A `STATUS=` line alone.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }
}

/// CLOCK_MONOTONIC in microseconds, read from /proc/uptime's clock (no libc call): the
/// seconds since boot that `/proc/uptime` reports are CLOCK_BOOTTIME, which equals
/// CLOCK_MONOTONIC unless the machine was suspended; good enough for a reload stamp.
fn monotonic_usec() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| (s * 1e6) as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_arrive_as_datagrams_on_the_named_socket() {
        let dir = std::env::temp_dir().join(format!("natpass-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            target: Some((UnixDatagram::unbound().unwrap(), SocketAddr::from_pathname(&path).unwrap())),
            watchdog: Some(Duration::from_secs(10)),
        };
        n.ready("forwarding on lan0 and wan0");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=forwarding on lan0 and wan0");
        n.stopping();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=stopping");
        assert_eq!(n.watchdog(), Some(Duration::from_secs(10)));
        std::fs::remove_dir_all(&dir).unwrap();
        let off = Notifier { target: None, watchdog: Some(Duration::from_secs(1)) };
        assert!(!off.active() && off.watchdog().is_none());
        off.ready("nothing listens");
    }

    #[test]
    fn abstract_socket_names_start_with_at() {
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(b"natpass-test-notify").unwrap()).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_abstract_name(b"natpass-test-notify").unwrap(),
            )),
            watchdog: None,
        };
        n.send("WATCHDOG=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
