//! L2TP through the router (RFC 2661): xl2tpd as LNS and as one LAC per client, with PPP
//! (the lab's user-space PPP where the kernel has none) carrying pings and iperf3.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::topology::{SERVER, Topology};
use super::{Lab, Outcome, ppp_mount};

impl Lab<'_> {
    pub(super) fn l2tp(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let dir = self.t.dir.clone();
        let ppp = dir.join("ppp.py");
        let xl2tpd = |t: &mut Topology, ns: &str, name: &str, conf: String| -> anyhow::Result<PathBuf> {
            let d = dir.join(format!("l2tp-{ns}"));
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("xl2tpd.conf"), conf)?;
            std::fs::write(d.join("options"), format!("noauth\nnodetach\nlogfile {}/ppp.log\n", d.display()))?;
            std::fs::write(d.join("secrets"), "")?;
            let control = d.join("control");
            let _ = std::fs::remove_file(&control);
            t.spawn(
                name,
                ns,
                &format!(
                    "{pre}exec xl2tpd -D -c {d}/xl2tpd.conf -s {d}/secrets -p {d}/xl2tpd.pid -C {c}",
                    pre = ppp_mount(&ppp),
                    d = d.display(),
                    c = control.display()
                ),
            )?;
            Ok(control)
        };
        let lns = format!(
            "[global]\nlisten-addr = {SERVER}\nport = 1701\naccess control = no\n[lns default]\nip range = 10.30.0.10-10.30.0.50\nlocal ip = 10.30.0.1\nrequire authentication = no\nname = natpass-lab-lns\npppoptfile = {}/l2tp-{wan}/options\nlength bit = yes\n",
            dir.display()
        );
        xl2tpd(&mut self.t, &wan, "xl2tpd@wan", lns)?;
        std::thread::sleep(Duration::from_millis(500));
        let mut controls = Vec::new();
        for c in self.t.clients.clone() {
            let lac = format!(
                "[global]\nport = 1701\naccess control = no\n[lac lab]\nlns = {SERVER}\nname = lac-{c}\nrequire authentication = no\npppoptfile = {}/l2tp-{c}/options\nlength bit = yes\nredial = no\n",
                dir.display()
            );
            let control = xl2tpd(&mut self.t, &c, &format!("{c}:xl2tpd"), lac)?;
            controls.push((c, control));
        }
        for (_, control) in &controls {
            if !Topology::wait_for(Duration::from_secs(5), || control.exists()) {
                bail!("xl2tpd did not create {}", control.display());
            }
            std::fs::write(control, "c lab\n").with_context(|| format!("writing {}", control.display()))?;
        }
        for (c, _) in &controls {
            self.ppp_result(o, c, "10.30.0.");
        }
        self.tunnel_throughput(o, "10.30.0.1");
        o.note = "user-space PPP over the L2TP session".to_string();
        Ok(())
    }
}
