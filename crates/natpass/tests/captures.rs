//! Golden replays of the real VPN captures in the repository's `captures/` (see its
//! INDEX.md). Every capture must replay without error; every packet the NAT hands to the LAN
//! must be exactly what the LAN host received in the capture (TTL aside); and every drop must
//! have a reason this test expects for that file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use natpass::replay::{self, Options, Summary};
use natpass_engine::diagnosis::{Detail, Status};
use natpass_engine::{DropReason, EngineConfig, FindingKind};
use natpass_testkit::captures;

fn replay(dir: &std::path::Path, name: &str) -> Summary {
    let opts = Options {
        input: dir.join(name),
        lan: Vec::new(),
        public: [203, 0, 113, 1].into(),
        out_dir: None,
        base: EngineConfig { max_sessions: 1 << 16, ..Default::default() },
        progress: false,
    };
    let s = replay::run(&opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    eprintln!("{}", replay::render(&opts, &s));
    s
}

/// Checks a replay: nothing reached the LAN changed, and every drop, IPv4 or IPv6, has one of
/// the reasons `allowed` for this file. The reasons a file may have are LAN multicast,
/// broadcast and link-local traffic, what VPN passthrough refuses by design (AH; GRE of a PPTP
/// call whose control connection is not in the capture), and traffic a NAT must refuse (no
/// mapping, filtered). No IPv6 packet is refused as not IPv4: replay routes IPv6.
fn check(name: &str, s: &Summary, allowed: &[DropReason]) {
    assert_eq!(s.ipv4.restored_differs, 0, "{name}: a packet reached the LAN different from the capture");
    assert_eq!(s.ipv6.restored_differs, 0, "{name}: an IPv6 packet reached the LAN different from the capture");
    for (r, n) in s.ipv4.drops.iter().chain(&s.ipv6.drops) {
        assert!(allowed.contains(r), "{name}: {n} unexpected drops: {}", r.name());
    }
}

#[test]
fn every_capture_replays() {
    let dir = captures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 18, "expected the 18 captures of captures/INDEX.md in {}", dir.display());
    for name in &names {
        let s = replay(&dir, name);
        assert!(s.frames > 0, "{name}: no frames");
        check(
            name,
            &s,
            &[
                DropReason::NoMapping,
                DropReason::Filtered,
                DropReason::IcmpErrorNoSession,
                // LAN multicast and broadcast (mDNS, SSDP, LLMNR, NetBIOS) stay on the LAN.
                DropReason::Martian,
                // AH cannot pass a NAT (RFC 3715 §2.1 a).
                DropReason::AhRefused,
                // GRE of a PPTP call whose control connection is not in the capture.
                DropReason::GreUnknownCallId,
            ],
        );
    }
}

#[test]
fn ike_over_udp_500_passes_both_ways() {
    let dir = captures();
    for name in ["ikev1_main_quick_labA.pcap", "ikev1_aggressive_quick_labA.pcap", "ikev1_main_certs.pcap"] {
        let s = replay(&dir, name);
        check(name, &s, &[]);
        // Replies reach the client unchanged, or split to fit the LAN MTU (the certificate
        // exchange was captured with 1974-byte datagrams, DF clear).
        assert_eq!(s.ipv4.fed[1], s.ipv4.restored + s.ipv4.consumed[1], "{name}: every reply reaches the client");
        assert!(s.ipv4.forwarded[1] >= s.ipv4.fed[0], "{name}: every request leaves (whole or in fragments)");
    }
}

#[test]
fn nat_t_with_several_gateways_passes_both_ways() {
    let dir = captures();
    let s = replay(&dir, "ikev2_natt_multi-gateway_esp-in-udp.pcap");
    check("multi-gateway", &s, &[]);
    assert!(s.ipv4.restored > 150, "gateway → client packets restored: {}", s.ipv4.restored);
    assert_eq!(s.ipv4.fed[1], s.ipv4.restored);
}

#[test]
fn l2tp_control_and_data_pass_both_ways() {
    let dir = captures();
    let s = replay(&dir, "l2tpv2_full_control_and_data.pcap");
    check("l2tp", &s, &[]);
    assert_eq!(s.ipv4.fed[1], s.ipv4.restored, "every LNS packet reaches the LAC unchanged");
    assert_eq!(s.ipv4.fed[0] + s.ipv4.fed[1], 168);
}

#[test]
fn pptp_control_connection_and_gre_pass() {
    let dir = captures();
    let s = replay(&dir, "pptp_control_sli_tcpdump.pcap");
    check("pptp", &s, &[]);
    assert_eq!(s.ipv4.fed[1], s.ipv4.restored);
    assert_eq!(s.ipv4.fed[0], s.ipv4.forwarded[1], "the control channel and the GRE packet leave");
    // The Windows client's full session: control, Set-Link-Info, GRE both ways.
    let s = replay(&dir, "pptp_full_windows-client_pptpd.pcapng");
    check("pptp full", &s, &[DropReason::Martian]);
    assert_eq!(s.ipv4.fed[1], s.ipv4.restored, "every server packet, GRE included, reaches the client unchanged");
    assert_eq!(s.ipv4.dropped(DropReason::Martian), 30, "LAN multicast/broadcast");
    // The client's 19 IPv6 packets are link-local (LLMNR, SSDP, mDNS, MLD): heard on the LAN,
    // never routed.
    assert_eq!(s.ipv6.fed, [19, 0]);
    assert_eq!(s.ipv6.dropped(DropReason::Martian), 19);
    assert_eq!(s.ipv6.dropped(DropReason::NotIpv4), 0);
}

#[test]
fn gre_without_its_control_connection_is_dropped() {
    let dir = captures();
    let s = replay(&dir, "pptp_gre_data_only_natted-client.pcap");
    check("gre only", &s, &[DropReason::GreUnknownCallId]);
    assert_eq!(s.ipv4.dropped(DropReason::GreUnknownCallId), 402);
}

#[test]
fn esp_and_ah_captures() {
    let dir = captures();
    let s = replay(&dir, "ikev2_esp_labC.pcapng");
    check("esp", &s, &[]);
    assert_eq!(s.ipv4.fed[1], s.ipv4.restored, "IKE and the server's ESP reach the client");
    let s = replay(&dir, "esp_raw_multi-sa_ipv4-ipv6_oneway.pcap");
    check("multi-sa", &s, &[]);
    assert_eq!(s.ipv4.forwarded[1], 120, "12 IPv4 SAs to 12 servers leave");
    assert_eq!(s.ipv6.forwarded[1], 120, "12 IPv6 SAs to 12 servers leave");
    assert_eq!(s.ipv6.fed, [120, 0]);
    let s = replay(&dir, "ikev2_ah_labC.pcapng");
    check("ah", &s, &[DropReason::AhRefused]);
    assert_eq!(s.ipv4.dropped(DropReason::AhRefused), 2);
}

/// IKE and ESP over IPv6: routed with simple security (RFC 6092 §3.2.4), every packet
/// forwarded both ways on the flows the LAN host opened: one UDP 500 flow, one ESP flow.
#[test]
fn ike_and_esp_over_ipv6_pass_both_ways() {
    let dir = captures();
    for (name, lan_side, wan_side) in [("ikev1_esp_ipv6.pcap", 154, 155), ("ikev2_esp_ipv6.pcap", 99, 98)] {
        let s = replay(&dir, name);
        check(name, &s, &[]);
        assert_eq!(s.lan_hosts, vec!["2003:51:6012::2".parse::<std::net::IpAddr>().unwrap()], "{name}: first speaker");
        let c = s.ipv6_config.as_ref().unwrap();
        assert!(c.lan_prefix.contains("2003:51:6012::2".parse().unwrap()), "{name}");
        assert!(!c.lan_prefix.contains("2003:51:6012::4".parse().unwrap()), "{name}: the peer is outside");
        assert_eq!(s.ipv6.fed, [lan_side, wan_side], "{name}: every packet fed (309 and 197 in all)");
        assert_eq!(s.ipv6.forwarded, [wan_side, lan_side], "{name}: every packet forwarded");
        assert_eq!(s.ipv6.restored, wan_side, "{name}: the peer's IKE and ESP reach the host unchanged");
        assert!(s.ipv6.drops.is_empty(), "{name}: {:?}", s.ipv6.drops);
        assert_eq!(s.peak_ipv6_flows, 2, "{name}: the IKE flow and the ESP flow");
        assert_eq!((s.ipv4.fed, s.unrelated), ([0, 0], 0), "{name}: IPv6 only");
    }
    // Named on the command line: the peer as the LAN host, the other way round. The other
    // host's first IKE_SA_INIT and its first ESP packet each come before the LAN host opened
    // that flow: unsolicited inbound, refused (RFC 6092 REC-11); the rest passes.
    let opts = Options {
        input: dir.join("ikev2_esp_ipv6.pcap"),
        lan: vec!["2003:51:6012::4".parse().unwrap()],
        public: [203, 0, 113, 1].into(),
        out_dir: None,
        base: EngineConfig::default(),
        progress: false,
    };
    let s = replay::run(&opts).unwrap();
    assert_eq!(s.ipv6.fed, [98, 99]);
    assert_eq!(s.ipv6.forwarded, [97, 98]);
    assert_eq!(s.ipv6.drops, vec![(DropReason::NoMapping, 2)]);
    let text = replay::render(&opts, &s);
    assert!(text.contains("IPv6 (routed, simple security): LAN prefix 2003:51:6012::4/126"), "{text}");
}

#[test]
fn the_diagnosis_of_each_capture() {
    let dir = captures();
    // GRE with no control connection: natpass says so, and what to do.
    let s = replay(&dir, "pptp_gre_data_only_natted-client.pcap");
    let found: Vec<_> = s.found().collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = found[0];
    assert_eq!(f.kind, FindingKind::GreWithoutControl);
    assert_eq!((f.subject.client, f.subject.server), ([172, 16, 30, 107].into(), [155, 138, 217, 96].into()));
    assert_eq!((f.evidence.packets_out, f.evidence.packets_in), (237, 165));
    assert!(matches!(f.evidence.detail, Detail::Orphan { call_id: 55936 }));
    let opts = Options {
        input: dir.join("pptp_gre_data_only_natted-client.pcap"),
        lan: Vec::new(),
        public: [203, 0, 113, 1].into(),
        out_dir: None,
        base: EngineConfig::default(),
        progress: false,
    };
    let text = replay::render(&opts, &s);
    assert!(text.contains("PPTP GRE without its control connection (172.16.30.107 → 155.138.217.96)"), "{text}");
    assert!(text.contains("connect again"), "{text}");
    // IKEv2 with an INVALID_KE_PAYLOAD answer and a retry: no failure, nothing open.
    let s = replay(&dir, "ikev2_natt_ephemeral-ports.pcap");
    assert!(s.findings.is_empty() && s.not_enough_evidence.is_empty(), "{:#?}", s.findings);
    // The other captures are working tunnels, or too short to show one failing (the one-way ESP
    // vectors last under 10 s): no finding.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .filter(|n| n != "pptp_gre_data_only_natted-client.pcap")
        .collect();
    names.sort();
    for name in &names {
        let s = replay(&dir, name);
        assert!(s.findings.iter().all(|f| f.status != Status::Found), "{name}: {:#?}", s.findings);
    }
}
