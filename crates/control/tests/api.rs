//! The control plane over real HTTP: a server on a loopback port, an engine on a thread of its
//! own answering through the narrow interface, and a config file on disk. Checks what users
//! rely on: authentication, live changes that are saved, and bad input refused with a clear
//! 4xx while nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BEARER, PASSWORD, Rig, http, rig};

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn the_api_needs_a_token_but_metrics_and_the_description_do_not() {
    let r = rig("auth");
    assert_eq!(http(r.addr, "GET", "/api/v1/status", &[], "").status, 401);
    assert_eq!(http(r.addr, "GET", "/api/v1/status", &[("Authorization", "Bearer wrong")], "").status, 401);
    let s = http(r.addr, "GET", "/api/v1/status", &[BEARER], "");
    assert_eq!(s.status, 200);
    let v = s.json();
    assert_eq!(v["sessions"]["udp"], 6);
    assert_eq!(v["passthrough"]["pptp"], true);
    assert_eq!(v["timeouts"]["udp"], 300);
    let m = http(r.addr, "GET", "/metrics", &[], "");
    assert_eq!(m.status, 200);
    assert!(m.body.contains("natpass_sessions{protocol=\"udp\"} 6"), "{}", m.body);
    assert!(m.body.contains("natpass_passthrough_enabled{protocol=\"pptp\"} 1"), "{}", m.body);
    assert!(m.body.contains("natpass_ports_used{protocol=\"udp\"} 6"), "{}", m.body);
    let o = http(r.addr, "GET", "/api/v1/openapi.yaml", &[], "");
    assert!(o.status == 200 && o.body.starts_with("openapi: 3"), "{}", o.status);
    assert_eq!(s.header("X-Frame-Options").as_deref(), Some("DENY"));
    assert!(s.header("Content-Security-Policy").unwrap().contains("frame-ancestors 'none'"));
}

#[test]
fn sessions_filter_and_paginate() {
    let r = rig("sessions");
    let v = http(r.addr, "GET", "/api/v1/sessions?addr=192.168.1.10&per_page=2&page=2", &[BEARER], "").json();
    assert_eq!(v["total"], 5);
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(v["sessions"][0]["lan"], "192.168.1.10:40002");
    let v = http(r.addr, "GET", "/api/v1/sessions?port=123", &[BEARER], "").json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["sessions"][0]["remote"], "198.51.100.8:123");
    assert_eq!(http(r.addr, "GET", "/api/v1/sessions?proto=tcp", &[BEARER], "").json()["total"], 0);
    for bad in ["proto=gre", "addr=300.1.1.1", "port=70000", "per_page=0", "page=x"] {
        let resp = http(r.addr, "GET", &format!("/api/v1/sessions?{bad}"), &[BEARER], "");
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
        assert!(resp.json()["error"].as_str().unwrap().contains(bad.split('=').next().unwrap()), "{}", resp.body);
    }
}

#[test]
fn ipv6_flows_are_listed_and_filtered_beside_the_nat_sessions() {
    let r = rig("sessions6");
    let v = http(r.addr, "GET", "/api/v1/sessions?addr=2001:db8:1::10", &[BEARER], "").json();
    assert_eq!(v["total"], 2, "{v}");
    let rows = v["sessions"].as_array().unwrap();
    let udp = rows.iter().find(|s| s["proto"] == "udp").unwrap();
    assert_eq!(udp["family"], "ipv6");
    assert_eq!(udp["lan"], "[2001:db8:1::10]:5353");
    assert_eq!(udp["remote"], "[2001:db8:ff::1]:53");
    assert_eq!(udp["public"], "", "routed, not translated");
    assert_eq!(udp["state"], "opening/closing", "no answer yet");
    let esp = rows.iter().find(|s| s["proto"] == "esp").unwrap();
    assert_eq!((&esp["state"], &esp["bytes_out"], &esp["bytes_in"]), (&"established".into(), &56.into(), &56.into()));
    // Filters: the server's address, a port, a protocol; IPv4 rows say their family.
    let v = http(r.addr, "GET", "/api/v1/sessions?addr=2001:db8:ff::1&proto=udp", &[BEARER], "").json();
    assert_eq!(v["total"], 1);
    assert_eq!(http(r.addr, "GET", "/api/v1/sessions?port=5353", &[BEARER], "").json()["total"], 1);
    let all = http(r.addr, "GET", "/api/v1/sessions", &[BEARER], "").json();
    assert_eq!(all["total"], 6 + 2, "six IPv4 sessions and two IPv6 flows");
    assert_eq!(all["sessions"][0]["family"], "ipv4");
    assert_eq!(all["sessions"][7]["family"], "ipv6");
    let resp = http(r.addr, "GET", "/api/v1/sessions?addr=2001:db8::zz", &[BEARER], "");
    assert_eq!(resp.status, 400);
    assert!(resp.json()["error"].as_str().unwrap().contains("IPv4 or IPv6"), "{}", resp.body);
    // The ESP SA pair is a tunnel, with both SPIs and no public address.
    let t = http(r.addr, "GET", "/api/v1/tunnels", &[BEARER], "").json();
    let rows = t["tunnels"].as_array().unwrap();
    let esp = rows.iter().find(|t| t["client"] == "2001:db8:1::10").unwrap_or_else(|| panic!("{t}"));
    assert_eq!(esp["protocol"], "IPsec");
    assert_eq!(esp["kind"], "ESP SA pair (IPv6)");
    assert_eq!(esp["server"], "2001:db8:ff::1");
    assert_eq!(esp["public"], "");
    assert_eq!(esp["ids"], "SPI out 0x0000c001, in 0x0000d00d");
    assert_eq!(esp["state"], "up");
    // Counted in the status and in /metrics.
    let s = http(r.addr, "GET", "/api/v1/status", &[BEARER], "").json();
    let mut flows: Vec<String> = s["ipv6_flows"].as_array().unwrap().iter().map(ToString::to_string).collect();
    flows.sort();
    assert_eq!(flows, ["[\"esp\",1]", "[\"udp\",1]"]);
    assert_eq!(s["tunnels"]["ipsec"], 1);
    let m = http(r.addr, "GET", "/metrics", &[], "").body;
    assert!(m.contains("natpass_ipv6_flows{protocol=\"esp\"} 1\n"), "{m}");
    assert!(m.contains("natpass_ipv6_flows{protocol=\"udp\"} 1\n"), "{m}");
    assert!(m.contains("natpass_ipv6_flows{protocol=\"icmpv6\"} 0\n"), "{m}");
}

#[test]
fn switches_change_live_and_are_saved() {
    let r = rig("switch");
    let resp = http(r.addr, "PUT", "/api/v1/passthrough", &[BEARER, JSON], r#"{"pptp": false}"#);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["passthrough"]["pptp"], false);
    assert_eq!(resp.json()["changed"][0], "passthrough.pptp: (default) → false");
    assert_eq!(http(r.addr, "GET", "/api/v1/passthrough", &[BEARER], "").json()["pptp"], false);
    let file = std::fs::read_to_string(&r.path).unwrap();
    assert!(file.contains("pptp = false") && file.starts_with("# test router"), "{file}");
    let resp = http(
        r.addr,
        "PATCH",
        "/api/v1/settings",
        &[BEARER, JSON],
        r#"{"timeouts": {"udp": 600}, "filtering": "endpoint-independent"}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v = http(r.addr, "GET", "/api/v1/status", &[BEARER], "").json();
    assert_eq!(v["timeouts"]["udp"], 600);
    assert_eq!(v["filtering"], "endpoint-independent");
    assert!(std::fs::read_to_string(&r.path).unwrap().contains("udp = 600"));
}

#[test]
fn bad_input_is_refused_and_nothing_changes() {
    let r = rig("bad");
    let before = std::fs::read_to_string(&r.path).unwrap();
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("PUT", "/api/v1/passthrough", r#"{"pptp": "no"}"#, 400, "invalid type"),
        ("PUT", "/api/v1/passthrough", r#"{"ppt": false}"#, 400, "unknown field"),
        ("PUT", "/api/v1/passthrough", r#"{}"#, 400, "at least one"),
        ("PUT", "/api/v1/passthrough", r#"{"pptp": false"#, 400, "bad JSON"),
        ("PATCH", "/api/v1/settings", r#"{"timeouts": {"udp": 30}}"#, 422, "120"),
        ("PATCH", "/api/v1/settings", r#"{"timeouts": {"tcp_established": 60}}"#, 422, "7440"),
        ("PATCH", "/api/v1/settings", r#"{"timeouts": {"udp": -5}}"#, 400, "invalid value"),
        ("PATCH", "/api/v1/settings", r#"{"filtering": "full-cone"}"#, 422, "endpoint-independent"),
        ("PATCH", "/api/v1/settings", r#"{"timeout": {}}"#, 400, "unknown field"),
        ("DELETE", "/api/v1/passthrough", "", 405, "PUT"),
        ("POST", "/api/v1/status", "", 405, "GET"),
        ("GET", "/api/v1/nothing", "", 404, "no such"),
    ];
    for (m, path, body, want, text) in cases {
        let resp = http(r.addr, m, path, &[BEARER, JSON], body);
        assert_eq!(resp.status, *want, "{m} {path} {body}: {}", resp.body);
        assert!(resp.json()["error"].as_str().unwrap_or("").contains(text), "{m} {path} {body}: {}", resp.body);
    }
    let resp = http(r.addr, "PUT", "/api/v1/passthrough", &[BEARER], r#"{"pptp": false}"#);
    assert_eq!(resp.status, 415, "{}", resp.body);
    let big = format!("{{\"pptp\": false, \"x\": \"{}\"}}", "a".repeat(70 * 1024));
    assert_eq!(http(r.addr, "PUT", "/api/v1/passthrough", &[BEARER, JSON], &big).status, 413);
    assert_eq!(http(r.addr, "PUT", "/api/v1/passthrough", &[JSON], r#"{"pptp": false}"#).status, 401);
    // Nothing changed: not the file, not the running switches or timers.
    assert_eq!(std::fs::read_to_string(&r.path).unwrap(), before);
    let v = http(r.addr, "GET", "/api/v1/status", &[BEARER], "").json();
    assert_eq!(v["passthrough"], serde_json::json!({"ipsec": true, "pptp": true, "l2tp": true}));
    assert_eq!(v["timeouts"]["udp"], 300);
    assert_eq!(v["filtering"], "address-dependent");
}

/// The login form's token and the cookie that carries it.
fn login_form(r: &Rig) -> (String, String) {
    let page = http(r.addr, "GET", "/login", &[], "");
    assert_eq!(page.status, 200);
    let cookie = page.header("Set-Cookie").unwrap();
    assert!(cookie.starts_with("natpass_login=") && cookie.contains("HttpOnly"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let token = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    (cookie, token)
}

fn login(r: &Rig) -> (String, String) {
    let (login_cookie, token) = login_form(r);
    let resp = http(
        r.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &login_cookie)],
        &format!("csrf={token}&user=admin&password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(resp.status, 303, "{}", resp.body);
    let cookie = resp.header("Set-Cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = http(r.addr, "GET", "/vpn/passthrough", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    (cookie, csrf)
}

#[test]
fn the_web_admin_logs_in_and_saves_the_passthrough_page_with_a_csrf_token() {
    let r = rig("web");
    assert_eq!(http(r.addr, "GET", "/status", &[], "").header("Location").as_deref(), Some("/login"));
    let (cookie, csrf) = login(&r);
    let form = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    // Without the token, or with a wrong one: refused, nothing changed.
    assert_eq!(http(r.addr, "POST", "/vpn/passthrough", &form, "ipsec=enable&pptp=disable&l2tp=enable").status, 403);
    assert_eq!(
        http(r.addr, "POST", "/vpn/passthrough", &form, "csrf=00&ipsec=enable&pptp=disable&l2tp=enable").status,
        403
    );
    assert_eq!(http(r.addr, "GET", "/api/v1/passthrough", &[BEARER], "").json()["pptp"], true);
    // A cookie-authenticated API change needs the token in a header.
    assert_eq!(
        http(r.addr, "PUT", "/api/v1/passthrough", &[("Cookie", &cookie), JSON], r#"{"pptp": false}"#).status,
        403
    );
    let ok =
        http(r.addr, "POST", "/vpn/passthrough", &form, &format!("csrf={csrf}&ipsec=enable&pptp=disable&l2tp=enable"));
    assert_eq!(ok.status, 303);
    let page = http(r.addr, "GET", &ok.header("Location").unwrap(), &[("Cookie", &cookie)], "");
    assert!(
        page.body.contains("Settings saved and applied") && page.body.contains("passthrough.pptp"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"pptp-disable\" checked"), "{}", page.body);
    assert_eq!(http(r.addr, "GET", "/api/v1/passthrough", &[BEARER], "").json()["pptp"], false);
    // Settings below the RFC floor: the page says why; nothing changed.
    let bad = http(r.addr, "POST", "/settings", &form, &format!("csrf={csrf}&udp=30"));
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Not saved") && bad.body.contains("120"), "{}", bad.body);
    for page in ["/status", "/vpn/tunnels", "/sessions?proto=udp", "/settings"] {
        let p = http(r.addr, "GET", page, &[("Cookie", &cookie)], "");
        assert_eq!(p.status, 200, "{page}");
    }
    assert!(http(r.addr, "GET", "/sessions?proto=udp", &[("Cookie", &cookie)], "").body.contains("192.168.1.10:40000"));
    // IPv6 flows on the same pages: no public address, "routed".
    let page = http(r.addr, "GET", "/sessions?addr=2001:db8:1::10", &[("Cookie", &cookie)], "").body;
    assert!(page.contains("[2001:db8:1::10]:5353") && page.contains("routed (IPv6)"), "{page}");
    let page = http(r.addr, "GET", "/vpn/tunnels", &[("Cookie", &cookie)], "").body;
    assert!(page.contains("ESP SA pair (IPv6)") && page.contains("routed (IPv6)"), "{page}");
    // Logging out ends the session.
    assert_eq!(http(r.addr, "POST", "/logout", &form, &format!("csrf={csrf}")).status, 303);
    assert_eq!(
        http(r.addr, "GET", "/status", &[("Cookie", &cookie)], "").header("Location").as_deref(),
        Some("/login")
    );
}

#[test]
fn logins_are_rate_limited() {
    let r = rig("rate");
    let (cookie, token) = login_form(&r);
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str())];
    for _ in 0..5 {
        assert_eq!(
            http(r.addr, "POST", "/login", &form, &format!("csrf={token}&user=admin&password=guess")).status,
            401
        );
    }
    let right = format!("csrf={token}&user=admin&password={}", PASSWORD.replace(' ', "+"));
    let resp = http(r.addr, "POST", "/login", &form, &right);
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("Retry-After").as_deref(), Some("300"));
}

#[test]
fn the_login_form_needs_its_token() {
    let r = rig("login-csrf");
    let right = format!("user=admin&password={}", PASSWORD.replace(' ', "+"));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    // No token, or a token without its cookie: refused before the password is checked.
    assert_eq!(http(r.addr, "POST", "/login", &form, &right).status, 403);
    let (cookie, token) = login_form(&r);
    assert_eq!(http(r.addr, "POST", "/login", &form, &format!("csrf={token}&{right}")).status, 403);
    // A second login page (another tab, or the browser's /favicon.ico redirected here) keeps
    // the token the cookie holds, so the first page's form still works.
    let again = http(r.addr, "GET", "/login", &[("Cookie", &cookie)], "");
    assert!(again.header("Set-Cookie").is_none() && again.body.contains(&token), "{}", again.body);
    let with_cookie = [form[0], ("Cookie", cookie.as_str())];
    assert_eq!(http(r.addr, "POST", "/login", &with_cookie, &format!("csrf={token}&{right}")).status, 303);
}

#[test]
fn requests_for_another_host_or_from_another_origin_are_refused() {
    let r = rig("host");
    // DNS rebinding: the browser sends the attacker's name as Host.
    let resp = http(r.addr, "GET", "/api/v1/status", &[BEARER, ("Host", "rebind.example")], "");
    assert_eq!(resp.status, 421, "{}", resp.body);
    assert!(resp.json()["error"].as_str().unwrap().contains("server_names"), "{}", resp.body);
    assert_eq!(http(r.addr, "GET", "/metrics", &[("Host", "rebind.example:8080")], "").status, 421);
    assert_eq!(http(r.addr, "GET", "/metrics", &[("Host", "localhost:8080")], "").status, 200);
    let (cookie, csrf) = login(&r);
    let cross = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", "http://evil.example"),
    ];
    let resp = http(r.addr, "POST", "/vpn/passthrough", &cross, &format!("csrf={csrf}&pptp=disable"));
    assert_eq!(resp.status, 403);
    assert_eq!(http(r.addr, "GET", "/api/v1/passthrough", &[BEARER], "").json()["pptp"], true);
    // What Chromium sends for a same-origin form under `Referrer-Policy: no-referrer`.
    let null = [cross[0], cross[1], ("Origin", "null")];
    assert_eq!(http(r.addr, "POST", "/vpn/passthrough", &null, &format!("csrf={csrf}&pptp=enable")).status, 303);
    let own = format!("http://{}", r.addr);
    let same = [cross[0], cross[1], ("Origin", own.as_str())];
    assert_eq!(http(r.addr, "POST", "/vpn/passthrough", &same, &format!("csrf={csrf}&pptp=disable")).status, 303);
}

#[test]
fn a_config_file_changed_by_hand_is_not_overwritten_and_removed_users_are_logged_out() {
    let r = rig("hand-edit");
    let (cookie, _) = login(&r);
    let by_hand = format!("{}\n[passthrough]\nl2tp = false\n", std::fs::read_to_string(&r.path).unwrap());
    std::fs::write(&r.path, &by_hand).unwrap();
    let resp = http(r.addr, "PUT", "/api/v1/passthrough", &[BEARER, JSON], r#"{"pptp": false}"#);
    assert_eq!(resp.status, 409, "{}", resp.body);
    assert!(
        resp.json()["error"].as_str().unwrap().contains("changed by something other than natpass"),
        "{}",
        resp.body
    );
    assert_eq!(std::fs::read_to_string(&r.path).unwrap(), by_hand, "the hand edit is kept");
    // Tried again, the change goes on top of the hand edit.
    let resp = http(r.addr, "PUT", "/api/v1/passthrough", &[BEARER, JSON], r#"{"pptp": false}"#);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let now = std::fs::read_to_string(&r.path).unwrap();
    assert!(now.contains("l2tp = false") && now.contains("pptp = false"), "{now}");
    // The rig's user is not in the file: once natpass sees the file changed, the browser
    // session ends. The CLI token (not from the file) still works.
    assert_eq!(
        http(r.addr, "GET", "/status", &[("Cookie", &cookie)], "").header("Location").as_deref(),
        Some("/login")
    );
    assert_eq!(http(r.addr, "GET", "/api/v1/status", &[BEARER], "").status, 200);
}

/// One request over TLS to `addr`, trusting only `cert` (DER).
fn https(addr: std::net::SocketAddr, cert: &[u8], path: &str, headers: &[(&str, &str)], body: &str) -> common::Resp {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.to_vec())).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let method = if body.is_empty() { "GET" } else { "POST" };
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    std::io::Write::write_all(&mut tls, req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut tls, &mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    common::Resp {
        status: head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap(),
        headers: head.to_string(),
        body: body.into(),
    }
}

#[test]
fn over_https_cookies_are_secure_and_hsts_is_sent() {
    use natpass_control::http::Options;
    let (cert_pem, key_pem) = natpass_control::tls::self_signed(&["127.0.0.1".into()]).unwrap();
    let (config, fingerprint) = natpass_control::tls::server_config(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let der = {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap().to_vec()
    };
    assert_eq!(fingerprint, natpass_control::tls::fingerprint(&der));
    let r = common::rig_with("https", Options { tls: Some(config), ..Options::default() });
    let m = https(r.addr, &der, "/metrics", &[], "");
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.header("Strict-Transport-Security").as_deref(), Some("max-age=31536000"));
    let page = https(r.addr, &der, "/login", &[], "");
    let login_cookie = page.header("Set-Cookie").unwrap();
    assert!(login_cookie.ends_with("; Secure"), "{login_cookie}");
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let token = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let resp = https(
        r.addr,
        &der,
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &login_cookie)],
        &format!("csrf={token}&user=admin&password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(resp.status, 303, "{}", resp.body);
    let session = resp.header("Set-Cookie").unwrap();
    assert!(session.starts_with("natpass_session=") && session.contains("; Secure"), "{session}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut s = std::net::TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", r.addr).as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut raw);
    assert!(!raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
}
