//! Plain NAT through the router: ping (and its RTT), curl, traceroute (ICMP errors back
//! through the NAT, RFC 5508), iperf3 TCP; and RFC 5780 NAT behaviour discovery with the
//! lab's STUN peer (the mapping must be endpoint-independent, RFC 4787 REQ-1).

use super::topology::{ROUTER_LAN, SERVER, SERVER_ALT};
use super::{ClientResult, Lab, Outcome};

impl Lab<'_> {
    pub(super) fn plain(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let mut rtts = Vec::new();
        for c in self.t.clients.clone() {
            let out = self.t.try_sh(&c, &format!("ping -c 5 -i 0.2 -W 2 {SERVER}"))?;
            let ping = out.status.success();
            // "rtt min/avg/max/mdev = 0.051/0.062/0.080/0.010 ms"
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(avg) = text
                .lines()
                .find_map(|l| l.split(" = ").nth(1))
                .and_then(|v| v.split('/').nth(1))
                .and_then(|v| v.parse::<f64>().ok())
            {
                rtts.push(PingRtt { avg, echoes: echo_times(&text) });
            }
            let size = self
                .t
                .try_sh(&c, &format!("curl -s -m 10 -o /dev/null -w '%{{size_download}}' http://{SERVER}:8080/4mb.bin"))
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let curl = size == (4u32 << 20).to_string();
            let trace = self
                .t
                .try_sh(&c, &format!("traceroute -n -q 1 -w 2 -m 4 {SERVER}"))
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let hops: Vec<&str> = trace.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
            let traced = hops.first() == Some(&ROUTER_LAN) && hops.last() == Some(&SERVER);
            o.clients.push(ClientResult {
                client: c.clone(),
                connected: ping,
                data: curl && traced,
                detail: format!(
                    "ping {}, curl {} bytes, traceroute hops {}",
                    if ping { "ok" } else { "lost" },
                    if size.is_empty() { "0" } else { &size },
                    hops.join(" > ")
                ),
            });
        }
        let first = self.t.clients[0].clone();
        o.throughput_bps = self.iperf(&first, SERVER);
        let list = |f: fn(&PingRtt) -> Option<f64>| {
            rtts.iter().map(|r| f(r).map_or("-".to_string(), |v| format!("{v:.3}"))).collect::<Vec<_>>().join(", ")
        };
        // A flow's first packet may wait for the router to wake up and resolve the next hop;
        // the rest show the path as it stays.
        o.note = format!(
            "iperf3 TCP, first client; ping average RTT per client {} ms (first echo {}, the rest {})",
            list(|r| Some(r.avg)),
            list(|r| r.echoes.first().copied()),
            list(PingRtt::rest_mean),
        );
        Ok(())
    }

    pub(super) fn stun(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let peer = self.t.dir.join("stun_peer.py");
        self.start_peer("stun@wan", &wan, &format!("stun_peer.py server {SERVER} {SERVER_ALT}"))?;
        let mut filtering = Vec::new();
        for c in self.t.clients.clone() {
            let out = self
                .t
                .try_sh(&c, &format!("timeout 30 /usr/bin/python3 -u {} client {SERVER}", peer.display()))
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
            let mapping = v["mapping"].as_str().unwrap_or("");
            if let Some(f) = v["filtering"].as_str() {
                filtering.push(f.to_string());
            }
            o.clients.push(ClientResult {
                client: c,
                connected: v["mapped"].is_string(),
                data: mapping == "endpoint-independent",
                detail: if v["mapped"].is_string() {
                    format!(
                        "mapped {}, {mapping} mapping, {} filtering",
                        v["mapped"].as_str().unwrap_or(""),
                        v["filtering"].as_str().unwrap_or("?")
                    )
                } else {
                    format!("no STUN answer: {}", out.trim())
                },
            });
        }
        filtering.dedup();
        o.note = format!("mapping must be endpoint-independent; filtering seen: {}", filtering.join(", "));
        Ok(())
    }
}

/// One client's ping: ping's own average and each echo's time, in order (ms).
struct PingRtt {
    avg: f64,
    echoes: Vec<f64>,
}

impl PingRtt {
    /// The mean of the echoes after the first, if there are any.
    fn rest_mean(&self) -> Option<f64> {
        let rest = self.echoes.get(1..).filter(|r| !r.is_empty())?;
        Some(rest.iter().sum::<f64>() / rest.len() as f64)
    }
}

/// The round-trip times of ping's echo replies in the order they came ("... time=0.087 ms").
fn echo_times(ping_output: &str) -> Vec<f64> {
    ping_output
        .lines()
        .filter_map(|l| l.split(" time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::echo_times;

    #[test]
    fn echo_times_are_read_in_order_and_the_summary_is_not_one() {
        let out = "PING 203.0.113.10 (203.0.113.10) 56(84) bytes of data.\n\
            64 bytes from 203.0.113.10: icmp_seq=1 ttl=63 time=0.515 ms\n\
            64 bytes from 203.0.113.10: icmp_seq=2 ttl=63 time=0.108 ms\n\
            64 bytes from 203.0.113.10: icmp_seq=3 ttl=63 time=1.02 ms\n\
            \n--- 203.0.113.10 ping statistics ---\n\
            3 packets transmitted, 3 received, 0% packet loss, time 405ms\n\
            rtt min/avg/max/mdev = 0.108/0.547/1.020/0.373 ms\n";
        assert_eq!(echo_times(out), vec![0.515, 0.108, 1.02]);
        assert!(echo_times("").is_empty());
        let rtt = super::PingRtt { avg: 0.547, echoes: echo_times(out) };
        assert_eq!(rtt.rest_mean(), Some((0.108 + 1.02) / 2.0));
        assert_eq!(super::PingRtt { avg: 0.5, echoes: vec![0.5] }.rest_mean(), None);
    }
}
