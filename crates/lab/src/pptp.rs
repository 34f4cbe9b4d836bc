//! PPTP through the router (RFC 2637): pptpd and one pptp-linux client per namespace (each
//! with its own /var/run/pptp), GRE v1 carrying PPP (the lab's user-space PPP where the
//! kernel has none).

use std::time::Duration;

use anyhow::Context;

use super::topology::SERVER;
use super::{Lab, Outcome, ppp_mount, real_ppp};

/// Which PPTP server the clients call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PptpServer {
    /// pptpd, with PPP.
    Pptpd,
    /// The lab's `pptp_peer.py`, which ends every call after 2 s with a
    /// Call-Disconnect-Notify carrying this result code (RFC 2637 §2.13).
    EndsCalls(u8),
}

impl Lab<'_> {
    pub(super) fn pptp(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        self.pptp_to(o, PptpServer::Pptpd)
    }

    pub(super) fn pptp_to(&mut self, o: &mut Outcome, server: PptpServer) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let dir = self.t.dir.clone();
        let ppp = dir.join("ppp.py");
        if let PptpServer::EndsCalls(result) = server {
            self.start_peer("pptpd@wan", &wan, &format!("pptp_peer.py {SERVER} {result} 2"))?;
        }
        if server == PptpServer::Pptpd {
            self.pptpd(&ppp)?;
        }
        std::fs::create_dir_all("/var/run/pptp").context("creating /var/run/pptp (pptp's socket directory)")?;
        for c in self.t.clients.clone() {
            // pptp finds its call manager by a socket in /var/run/pptp: give each client its
            // own, or the second one would reuse the first one's control connection.
            let cd = dir.join(format!("pptp-{c}"));
            std::fs::create_dir_all(cd.join("run"))?;
            self.t.spawn(
                &format!("{c}:pptp"),
                &c,
                &format!(
                    "mount --bind {run} /var/run/pptp && {pre}exec pptp {SERVER} --nohostroute -- noauth nodefaultroute logfile {cd}/ppp.log",
                    run = cd.join("run").display(),
                    pre = ppp_mount(&ppp),
                    cd = cd.display()
                ),
            )?;
        }
        for c in self.t.clients.clone() {
            self.ppp_result(o, &c, "10.40.0.");
        }
        self.tunnel_throughput(o, "10.40.0.1");
        o.note = "GRE v1 + user-space PPP".to_string();
        Ok(())
    }

    /// Starts pptpd in the server's namespace, with `ppp` as its PPP where the kernel has none.
    fn pptpd(&mut self, ppp: &std::path::Path) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let d = self.t.dir.join("pptpd");
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("pptpd.conf"),
            format!("option {}/options\nlocalip 10.40.0.1\nremoteip 10.40.0.10-50\n", d.display()),
        )?;
        std::fs::write(d.join("options"), format!("noauth\nlogfile {}/ppp.log\n", d.display()))?;
        self.t.spawn(
            "pptpd@wan",
            &wan,
            &format!(
                "exec pptpd --conf {d}/pptpd.conf --fg --pidfile {d}/pptpd.pid --listen {SERVER}{}",
                if real_ppp() { String::new() } else { format!(" --ppp {}", ppp.display()) },
                d = d.display()
            ),
        )?;
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }
}
