//! The web admin's pages, rendered on the server: forms work without JavaScript (there is
//! none), every form carries the session's CSRF token, and the layout fits a phone.

use std::fmt::Write as _;

use natpass_engine::Protocol;

use crate::api::{
    FindingRow, Findings, PROTOCOLS, SessionPage, Status, Switches, Tunnels, finding_status, protocol_label,
};
use crate::auth::Session;
use crate::interface::SessionQuery;

/// The style sheet, served at `/static/style.css`.
pub const STYLE: &str = r#"
:root { --bg:#f4f6fa; --card:#fff; --ink:#1c2330; --muted:#667085; --line:#e3e7ee; --accent:#1f6feb; --ok:#1a7f37; --bad:#c93c37; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { background:#101828; color:#fff; padding:0 20px; display:flex; flex-wrap:wrap; align-items:center; gap:8px 24px; }
header .brand { font-weight:700; font-size:18px; padding:14px 0; letter-spacing:.3px; }
header .brand span { color:#7cb4ff; }
nav { display:flex; flex-wrap:wrap; gap:4px; flex:1; }
nav a { color:#d0d5dd; text-decoration:none; padding:8px 12px; border-radius:6px; }
nav a:hover { background:#1d2939; color:#fff; }
nav a.active { background:var(--accent); color:#fff; }
header form { margin:0; }
header button { background:transparent; color:#d0d5dd; border:1px solid #475467; border-radius:6px; padding:6px 12px; cursor:pointer; }
main { max-width:1240px; margin:0 auto; padding:20px; }
h1 { font-size:22px; margin:8px 0 16px; }
h2 { font-size:16px; margin:0 0 12px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(240px, 1fr)); gap:16px; margin-bottom:16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px; margin-bottom:16px; overflow-x:auto; }
.big { font-size:26px; font-weight:650; }
.muted { color:var(--muted); }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--muted); font-weight:600; font-size:13px; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.wrap { white-space:normal; min-width:160px; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:13px; font-weight:600; }
.on { background:#dafbe1; color:var(--ok); }
.off { background:#ffebe9; color:var(--bad); }
.notice { border-radius:8px; padding:10px 14px; margin-bottom:16px; }
.notice.ok { background:#dafbe1; border:1px solid #aceebb; }
.notice.err { background:#ffebe9; border:1px solid #ffcecb; }
fieldset { border:1px solid var(--line); border-radius:8px; padding:12px 16px; margin:0 0 12px; display:flex; flex-wrap:wrap; align-items:center; gap:8px 20px; }
legend { font-weight:600; padding:0 6px; }
fieldset .help { flex-basis:100%; color:var(--muted); font-size:13px; margin:0; }
label { cursor:pointer; }
input[type=text], input[type=password], input[type=number], select { font:inherit; padding:7px 10px; border:1px solid #d0d5dd; border-radius:6px; background:#fff; }
.row { display:flex; flex-wrap:wrap; gap:12px; align-items:end; margin-bottom:12px; }
.row label { display:flex; flex-direction:column; gap:4px; font-size:13px; color:var(--muted); }
button.primary { background:var(--accent); color:#fff; border:0; border-radius:6px; padding:9px 22px; font:inherit; font-weight:600; cursor:pointer; }
.login { max-width:360px; margin:10vh auto; }
.login label { display:block; margin:12px 0 4px; font-weight:600; }
.login input { width:100%; }
.login button { width:100%; margin-top:18px; }
.pager { display:flex; gap:12px; margin-top:12px; }
nav a { white-space:nowrap; }
@media (max-width: 700px) {
  main { padding:12px; } header { padding:0 12px; justify-content:space-between; }
  nav { order:3; flex-basis:100%; flex-wrap:nowrap; overflow-x:auto; padding-bottom:8px; }
  nav a { padding:6px 10px; } .big { font-size:22px; }
}
"#;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

fn layout(title: &str, active: &str, session: &Session, body: &str) -> String {
    let mut nav = String::new();
    for (href, name) in [
        ("/status", "Status"),
        ("/vpn/passthrough", "VPN Passthrough"),
        ("/vpn/tunnels", "VPN Tunnels"),
        ("/sessions", "NAT Sessions"),
        ("/settings", "Settings"),
    ] {
        let class = if href == active { " class=\"active\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · natpass</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>\
         <header><div class=\"brand\">nat<span>pass</span></div><nav>{nav}</nav>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Log out {user}</button></form></header><main>{body}</main></body></html>\n",
        title = esc(title),
        csrf = esc(&session.csrf),
        user = esc(&session.user),
    )
}

/// The login page; `token` is the form's CSRF token (also set as a cookie).
pub fn login_page(error: Option<&str>, token: &str) -> String {
    let err = error.map_or(String::new(), |e| format!("<div class=\"notice err\">{}</div>", esc(e)));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · natpass</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>\
         <header><div class=\"brand\">nat<span>pass</span></div></header><main><div class=\"card login\"><h1>Log in</h1>{err}\
         <form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><label for=\"user\">User name</label><input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button class=\"primary\" type=\"submit\">Log in</button></form></div></main></body></html>\n",
        esc(token)
    )
}

/// A page with one message.
pub fn message_page(title: &str, text: &str, session: &Session) -> String {
    layout(title, "", session, &format!("<h1>{}</h1><div class=\"card\">{}</div>", esc(title), esc(text)))
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} d {h} h {m} min")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min {s} s")
    }
}

fn onoff(on: bool) -> &'static str {
    if on { "<span class=\"badge on\">Enabled</span>" } else { "<span class=\"badge off\">Disabled</span>" }
}

/// Status: interfaces, addresses, counters, uptime.
pub fn status_page(s: &Status, session: &Session) -> String {
    let mut b = String::from("<h1>Status</h1><div class=\"grid\">");
    let _ = write!(
        b,
        "<div class=\"card\"><h2>Uptime</h2><div class=\"big\">{}</div><div class=\"muted\">natpass {}</div></div>",
        uptime(s.uptime_secs),
        esc(&s.version)
    );
    let _ = write!(
        b,
        "<div class=\"card\"><h2>Sessions</h2><div class=\"big\">{}</div><div class=\"muted\">TCP {} · UDP {} · ICMP {} · IPv6 flows {}</div></div>",
        s.sessions.tcp + s.sessions.udp + s.sessions.icmp,
        s.sessions.tcp,
        s.sessions.udp,
        s.sessions.icmp,
        s.ipv6_flows.iter().map(|f| f.1).sum::<u64>()
    );
    let per_tunnel = PROTOCOLS.map(|p| format!("{} {}", protocol_label(p), s.tunnels.get(p))).join(" · ");
    let _ = write!(
        b,
        "<div class=\"card\"><h2>VPN tunnels</h2><div class=\"big\">{}</div><div class=\"muted\">{per_tunnel}</div></div>",
        PROTOCOLS.map(|p| s.tunnels.get(p)).iter().sum::<u64>(),
    );
    b.push_str("<div class=\"card\"><h2>VPN passthrough</h2>");
    for p in PROTOCOLS {
        let _ = write!(b, "<div>{} {}</div>", protocol_label(p), onoff(s.passthrough.get(p)));
    }
    b.push_str("</div></div>");
    b.push_str("<div class=\"card\"><h2>Interfaces</h2><table><tr><th>Role</th><th>Name</th><th>Address</th><th>MAC</th><th class=\"num\">Frames in</th><th class=\"num\">Frames out</th></tr>");
    for i in &s.interfaces {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            i.role.to_uppercase(),
            esc(&i.name),
            esc(&i.address),
            esc(&i.mac),
            i.rx_frames,
            i.tx_frames
        );
    }
    if s.interfaces.is_empty() {
        b.push_str("<tr><td colspan=\"6\" class=\"muted\">No interfaces (not running on a data plane)</td></tr>");
    }
    let _ = write!(
        b,
        "</table><p class=\"muted\">Public addresses: {} · LAN: {} · Filtering: {}</p></div>",
        esc(&s.public_addrs.join(", ")),
        esc(&s.lan_networks.join(", ")),
        esc(&s.filtering)
    );
    let _ = write!(
        b,
        "<div class=\"card\"><h2>Traffic</h2><table><tr><th></th><th class=\"num\">Received</th><th class=\"num\">Forwarded out</th><th class=\"num\">Bytes out</th></tr>\
         <tr><td>LAN</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
         <tr><td>WAN</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>\
         <p class=\"muted\">Public ports in use: TCP {} · UDP {} · ICMP {} (of {} per address) · sessions opened {}, expired {}, evicted {}</p></div>",
        s.packets_received.lan,
        s.packets_forwarded.lan,
        s.bytes_forwarded.lan,
        s.packets_received.wan,
        s.packets_forwarded.wan,
        s.bytes_forwarded.wan,
        s.ports_used.tcp,
        s.ports_used.udp,
        s.ports_used.icmp,
        s.ports_per_address,
        s.sessions_created,
        s.sessions_expired,
        s.sessions_evicted
    );
    b.push_str("<div class=\"grid\"><div class=\"card\"><h2>Drops by reason</h2><table><tr><th>Reason</th><th class=\"num\">Packets</th></tr>");
    for (r, n) in &s.drops {
        let _ = write!(b, "<tr><td>{}</td><td class=\"num\">{n}</td></tr>", esc(&r.replace('_', " ")));
    }
    if s.drops.is_empty() {
        b.push_str("<tr><td colspan=\"2\" class=\"muted\">No drops.</td></tr>");
    }
    b.push_str("</table></div><div class=\"card\"><h2>Link layer</h2><table><tr><th>Counter</th><th class=\"num\">Count</th></tr>");
    for (r, n) in &s.link {
        let _ = write!(b, "<tr><td>{}</td><td class=\"num\">{n}</td></tr>", esc(&r.replace('_', " ")));
    }
    b.push_str("</table></div></div>");
    layout("Status", "/status", session, &b)
}

/// VPN > VPN Passthrough: three Enable/Disable radio groups and Save.
pub fn passthrough_page(p: &Switches, saved: Option<&str>, error: Option<&str>, session: &Session) -> String {
    let mut b = String::from("<h1>VPN Passthrough</h1>");
    if let Some(s) = saved {
        let _ = write!(b, "<div class=\"notice ok\" role=\"status\">Settings saved and applied: {}</div>", esc(s));
    }
    if let Some(e) = error {
        let _ = write!(b, "<div class=\"notice err\" role=\"alert\">Not saved: {}</div>", esc(e));
    }
    let _ = write!(
        b,
        "<div class=\"card\"><p class=\"muted\">VPN passthrough lets VPN clients on the LAN connect to VPN servers on the Internet. \
         Each protocol is enabled by default; disabling one blocks it and closes its open tunnels.</p>\
         <form method=\"post\" action=\"/vpn/passthrough\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    );
    for proto in PROTOCOLS {
        let (key, name) = (proto.name(), protocol_label(proto));
        let help = match proto {
            Protocol::Ipsec => "IKE (UDP 500), NAT-T (UDP 4500) and ESP; several clients may use one server.",
            Protocol::Pptp => {
                "Control on TCP 1723 and GRE; Call IDs are translated so several clients may use one server."
            }
            Protocol::L2tp => "UDP 1701; the server may answer from another port.",
        };
        let (e, d) = if p.get(proto) { (" checked", "") } else { ("", " checked") };
        let _ = write!(
            b,
            "<fieldset><legend>{name} Passthrough</legend>\
             <label><input type=\"radio\" name=\"{key}\" value=\"enable\" id=\"{key}-enable\"{e}> Enable</label>\
             <label><input type=\"radio\" name=\"{key}\" value=\"disable\" id=\"{key}-disable\"{d}> Disable</label>\
             <p class=\"help\">{help}</p></fieldset>"
        );
    }
    b.push_str("<button class=\"primary\" type=\"submit\">Save</button></form></div>");
    layout("VPN Passthrough", "/vpn/passthrough", session, &b)
}

/// One finding: what, for whom, what showed it, what to do.
fn finding_card(b: &mut String, f: &FindingRow) {
    let status = match f.status.as_str() {
        finding_status::FOUND => String::new(),
        s => format!(" <span class=\"muted\">({})</span>", esc(s)),
    };
    let _ = write!(
        b,
        "<li><b>{}</b>{status}: <a href=\"/vpn/tunnels?client={}\">{}</a> → {} ({}, {} ago)<br>{}",
        esc(&f.title),
        esc(&f.client),
        esc(&f.client),
        esc(&f.server),
        esc(&f.protocol),
        secs_text(f.last_secs_ago),
        esc(&f.evidence)
    );
    if !f.fix.is_empty() {
        let _ = write!(b, "<br><b>Fix:</b> {}", esc(&f.fix));
    }
    b.push_str("</li>");
}

fn secs_text(s: u64) -> String {
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// VPN Tunnels: live tunnels with their problems, what the diagnosis found, one client's view
/// when asked for (`?client=IP`), and recent refusals (the page refreshes itself every 5 s).
pub fn tunnels_page(t: &Tunnels, view: Option<&Findings>, session: &Session) -> String {
    let mut b = String::from("<h1>VPN Tunnels</h1>");
    if let Some(v) = view {
        let who = v.client.as_deref().unwrap_or("");
        let _ = write!(b, "<div class=\"card\"><h2>What happened to {}'s VPN</h2>", esc(who));
        if v.findings.is_empty() {
            b.push_str("<p class=\"muted\">natpass saw no problem with this client's tunnels.</p>");
        } else {
            b.push_str("<ul>");
            for f in &v.findings {
                finding_card(&mut b, f);
            }
            b.push_str("</ul>");
        }
        b.push_str("<p><a href=\"/vpn/tunnels\">All tunnels</a></p></div>");
    }
    b.push_str(
        "<div class=\"card\"><h2>Live tunnels</h2><table><tr><th>Protocol</th><th>What</th><th>Client</th><th>Server</th><th>Public</th><th>IDs</th><th class=\"num\">Bytes out</th><th class=\"num\">Bytes in</th><th class=\"num\">Age s</th><th class=\"num\">Idle s</th><th>State</th><th>Problems</th></tr>",
    );
    for r in &t.tunnels {
        let problems: Vec<String> = t
            .findings
            .iter()
            .filter(|f| f.status == finding_status::FOUND)
            .filter(|f| (&f.protocol, &f.client, &f.server) == (&r.protocol, &r.client, &r.server))
            .map(|f| esc(&f.title))
            .collect();
        let problems = if problems.is_empty() {
            String::new()
        } else {
            format!("<a href=\"/vpn/tunnels?client={}\">{}</a>", esc(&r.client), problems.join(", "))
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"wrap\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"wrap\">{problems}</td></tr>",
            esc(&r.protocol),
            esc(&r.kind),
            esc(&r.client),
            esc(&r.server),
            routed_if_empty(&r.public),
            esc(&r.ids),
            r.bytes_out,
            r.bytes_in,
            r.age_secs.map_or("-".to_string(), |a| a.to_string()),
            r.idle_secs,
            esc(&r.state)
        );
    }
    if t.tunnels.is_empty() {
        b.push_str("<tr><td colspan=\"12\" class=\"muted\">No tunnels right now.</td></tr>");
    }
    b.push_str("</table></div><div class=\"card\"><h2>Problems natpass found</h2>");
    if t.findings.is_empty() {
        b.push_str("<p class=\"muted\">None: natpass saw no VPN tunnel fail.</p>");
    } else {
        b.push_str("<ul>");
        for f in &t.findings {
            finding_card(&mut b, f);
        }
        b.push_str("</ul>");
    }
    b.push_str("</div><div class=\"card\"><h2>Recent refusals and tunnel events</h2><table><tr><th class=\"num\">At (s)</th><th>Event</th><th>Protocol</th><th>Client</th><th>Server</th><th>Reason or IDs</th></tr>");
    for e in &t.events {
        let _ = write!(
            b,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at_secs,
            esc(&e.what),
            esc(&e.protocol),
            esc(&e.client),
            esc(&e.server),
            esc(&e.detail)
        );
    }
    if t.events.is_empty() {
        b.push_str("<tr><td colspan=\"6\" class=\"muted\">Nothing yet.</td></tr>");
    }
    b.push_str("</table></div>");
    layout("VPN Tunnels", "/vpn/tunnels", session, &b).replacen(
        "<meta charset=\"utf-8\">",
        "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">",
        1,
    )
}

/// NAT Sessions: filter, table, pages.
pub fn sessions_page(p: &SessionPage, q: &SessionQuery, session: &Session) -> String {
    let sel = |v: &str| if sel_value(q) == v { " selected" } else { "" };
    let addr = q.addr.map(|a| a.to_string()).unwrap_or_default();
    let port = q.port.map(|p| p.to_string()).unwrap_or_default();
    let mut b = format!(
        "<h1>NAT Sessions</h1><div class=\"card\"><form method=\"get\" action=\"/sessions\" class=\"row\">\
         <label>Protocol<select name=\"proto\"><option value=\"\"{}>any</option>{}</select></label>\
         <label>Address<input type=\"text\" name=\"addr\" value=\"{}\" placeholder=\"any, IPv4 or IPv6\" size=\"39\"></label>\
         <label>Port<input type=\"number\" name=\"port\" value=\"{}\" min=\"0\" max=\"65535\" placeholder=\"any\"></label>\
         <button class=\"primary\" type=\"submit\">Filter</button></form>\
         <p class=\"muted\">{} sessions match. IPv6 flows are routed, not translated: they have no public address.</p><table><tr><th>Proto</th><th>LAN</th><th>Public</th><th>Remote</th><th>State</th><th class=\"num\">Idle s</th><th class=\"num\">Bytes out</th><th class=\"num\">Bytes in</th></tr>",
        sel(""),
        natpass_engine::Proto::ALL
            .map(|p| format!("<option value=\"{}\"{}>{}</option>", p.name(), sel(p.name()), p.name().to_uppercase()))
            .concat(),
        esc(&addr),
        esc(&port),
        p.total
    );
    for s in &p.sessions {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&s.proto),
            esc(&s.lan),
            routed_if_empty(&s.public),
            esc(&s.remote),
            esc(&s.state),
            s.idle_secs,
            s.bytes_out,
            s.bytes_in
        );
    }
    b.push_str("</table><div class=\"pager\">");
    let base = format!(
        "/sessions?proto={}&addr={}&port={}&per_page={}",
        sel_value(q),
        url_encode(&addr),
        url_encode(&port),
        p.per_page
    );
    if p.page > 1 {
        let _ = write!(b, "<a href=\"{}&page={}\">← Previous</a>", esc(&base), p.page - 1);
    }
    if (p.page as usize) * (p.per_page as usize) < p.total {
        let _ = write!(b, "<a href=\"{}&page={}\">Next →</a>", esc(&base), p.page + 1);
    }
    b.push_str("</div></div>");
    layout("NAT Sessions", "/sessions", session, &b)
}

/// A public address or endpoint, or for IPv6 (none: not translated) "routed (IPv6)".
fn routed_if_empty(public: &str) -> String {
    if public.is_empty() { "<span class=\"muted\">routed (IPv6)</span>".into() } else { esc(public) }
}

fn sel_value(q: &SessionQuery) -> &'static str {
    q.proto.map_or("", natpass_engine::Proto::name)
}

/// Settings: timers and filtering.
pub fn settings_page(s: &Status, saved: Option<&str>, error: Option<&str>, session: &Session) -> String {
    let mut b = String::from("<h1>Settings</h1>");
    if let Some(m) = saved {
        let _ = write!(b, "<div class=\"notice ok\" role=\"status\">Settings saved and applied: {}</div>", esc(m));
    }
    if let Some(e) = error {
        let _ = write!(b, "<div class=\"notice err\" role=\"alert\">Not saved: {}</div>", esc(e));
    }
    let t = &s.timeouts;
    let _ = write!(
        b,
        "<div class=\"card\"><form method=\"post\" action=\"/settings\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><h2>Timers (seconds)</h2><div class=\"row\">",
        esc(&session.csrf)
    );
    for (key, label, v, min) in [
        ("udp", "UDP mapping (≥ 120)", t.udp, 120),
        ("tcp_established", "TCP established (≥ 7440)", t.tcp_established, 7440),
        ("tcp_transitory", "TCP transitory (≥ 240)", t.tcp_transitory, 240),
        ("icmp", "ICMP query (≥ 60)", t.icmp, 60),
        ("port_reuse_delay", "Port reuse delay (≥ 120)", t.port_reuse_delay, 120),
        ("fragment", "Fragment hold", t.fragment, 1),
    ] {
        let _ = write!(b, "<label>{label}<input type=\"number\" name=\"{key}\" value=\"{v}\" min=\"{min}\"></label>");
    }
    b.push_str(
        "</div><h2>Inbound filtering (RFC 4787)</h2><div class=\"row\"><label>Filtering<select name=\"filtering\">",
    );
    for f in natpass_config::FILTERING_MODES.map(natpass_config::filtering_name) {
        let sel = if s.filtering == f { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{f}\"{sel}>{f}</option>");
    }
    b.push_str("</select></label></div><button class=\"primary\" type=\"submit\">Save</button></form></div>");
    layout("Settings", "/settings", session, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TunnelRow, Tunnels};

    #[test]
    fn the_tunnel_table_has_a_header_for_every_cell() {
        let session = crate::auth::Session::for_tests("admin");
        let t = Tunnels {
            tunnels: vec![TunnelRow {
                protocol: "PPTP".into(),
                kind: "PPTP call (GRE)".into(),
                client: "192.168.1.10".into(),
                server: "203.0.113.10".into(),
                public: "203.0.113.1".into(),
                ids: "Call ID client 1, public 1, server 2".into(),
                bytes_out: 1,
                bytes_in: 2,
                idle_secs: 3,
                age_secs: Some(4),
                state: "up".into(),
            }],
            events: Vec::new(),
            findings: vec![FindingRow {
                kind: "gre_one_way".into(),
                title: "PPTP GRE one way".into(),
                status: "found".into(),
                protocol: "PPTP".into(),
                client: "192.168.1.10".into(),
                server: "203.0.113.10".into(),
                public: None,
                ids: None,
                packets_out: 5,
                packets_in: 0,
                last_secs_ago: 1,
                since_secs_ago: 1,
                evidence: "<5 GRE packets>".into(),
                fix: "Allow GRE".into(),
            }],
        };
        let page = tunnels_page(&t, None, &session);
        let table = page.split("<table>").nth(1).unwrap().split("</table>").next().unwrap();
        let (head, row) = table.split_once("</tr>").unwrap();
        assert_eq!(head.matches("<th").count(), row.matches("<td").count(), "{table}");
        assert!(head.contains("Age s") && row.contains(">4</td>"), "{table}");
        // The tunnel's problem in its row, and the finding below, escaped.
        assert!(head.contains("Problems") && row.contains("PPTP GRE one way"), "{table}");
        assert!(page.contains("&lt;5 GRE packets&gt;") && page.contains("Allow GRE"), "{page}");
        // One client's view.
        let view = Findings { client: Some("192.168.1.10".into()), findings: t.findings.clone() };
        let page = tunnels_page(&t, Some(&view), &session);
        assert!(page.contains("What happened to 192.168.1.10's VPN"), "{page}");
    }
}
