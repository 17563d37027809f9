//! Converter tests: the four keepalived vectors import to what keepalived
//! runs; every construct; keepalived's rules (strict mode, IPv6 and
//! VRRPv3, authentication, sync-group and owner weights, state MASTER,
//! prefixes, conditional lines and definitions, script users); warnings
//! and the report with file and line; includes; garbage input.

use std::path::{Path, PathBuf};

use vrrp_core::{Auth, Centisecs, InitialState, Priority, Version, VirtualAddress, Vrid};

use super::*;
use crate::config::{self, Effective, Target};

fn options() -> Options {
    Options {
        config_id: "node1".to_owned(),
    }
}

fn import(text: &str) -> Imported {
    match import_str(text, Path::new("keepalived.conf"), &options()) {
        Ok(i) => i,
        Err(e) => panic!("import failed: {e}"),
    }
}

/// Imports, then reads the TOML like `vrrpd check` does (scripts on this
/// host not required).
fn import_check(text: &str) -> (Effective, Vec<Warning>) {
    let imported = import(text);
    let toml = imported.toml();
    let (outcome, errors) = config::read(&toml, Path::new("out.toml"), Target::OtherHost);
    assert!(
        errors.is_empty(),
        "converted TOML fails check:\n{errors:#?}\n---\n{toml}"
    );
    (outcome.effective, imported.warnings)
}

fn messages(w: &[Warning]) -> Vec<String> {
    w.iter().map(ToString::to_string).collect()
}

fn has(w: &[Warning], line: usize, needle: &str) -> bool {
    w.iter()
        .any(|w| w.line == line && w.message.contains(needle))
}

fn driver(text: &str) -> vrrp_net::driver::DriverConfig {
    crate::plan::plan(&import_check(text).0).driver
}

fn vip(s: &str, len: u8) -> VirtualAddress {
    VirtualAddress {
        addr: s.parse().expect("address"),
        prefix_len: len,
    }
}

/// What every vector shares: VRID 42, priority 150, 1 s, backup start.
fn assert_vector_common(d: &vrrp_net::driver::DriverConfig, version: Version) {
    assert_eq!(d.instances.len(), 1);
    let i = &d.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.interface, "eth0");
    let c = &i.config;
    assert_eq!(c.vrid, Vrid::new(42).expect("vrid"));
    assert_eq!(c.priority, Priority::new(150));
    assert_eq!(c.advert_interval, Centisecs::ONE_SECOND);
    assert_eq!(c.version, version);
    assert_eq!(c.initial_state, InitialState::Backup);
    assert!(c.preempt);
    assert_eq!(c.garp.master_repeat, 5);
    assert!(c.validate().is_ok(), "{:?}", c.validate());
}

#[test]
fn vector_v2_noauth() {
    let (c, warnings) = import_check(include_str!("../../tests/data/keepalived_v2_noauth.conf"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.global.router_id.as_deref(), Some("r1"));
    let d = crate::plan::plan(&c).driver;
    assert_vector_common(&d, Version::V2);
    assert_eq!(d.instances[0].config.auth, Auth::None);
    assert_eq!(
        d.instances[0].config.virtual_addresses,
        [vip("192.0.2.100", 24)]
    );
}

#[test]
fn vector_v2_pass_uses_the_password_keepalived_sends() {
    let d = driver(include_str!("../../tests/data/keepalived_v2_pass.conf"));
    assert_vector_common(&d, Version::V2);
    // `auth_pass s3cr3t!x`: keepalived strips the `!x` comment.
    assert_eq!(
        d.instances[0].config.auth,
        Auth::password(b"s3cr3t").expect("pass")
    );
    assert_eq!(
        d.instances[0].config.virtual_addresses,
        [
            vip("192.0.2.100", 24),
            vip("192.0.2.101", 24),
            vip("192.0.2.102", 24)
        ]
    );
}

#[test]
fn vector_v3_v4() {
    let d = driver(include_str!("../../tests/data/keepalived_v3_v4.conf"));
    assert_vector_common(&d, Version::V3);
    assert_eq!(
        d.instances[0].config.virtual_addresses,
        [vip("192.0.2.100", 24), vip("192.0.2.101", 24)]
    );
}

#[test]
fn vector_v3_v6() {
    let d = driver(include_str!("../../tests/data/keepalived_v3_v6.conf"));
    assert_vector_common(&d, Version::V3);
    let c = &d.instances[0].config;
    assert!(c.primary_address.is_ipv6() && c.primary_address.is_unspecified());
    assert_eq!(
        c.virtual_addresses,
        [vip("2001:db8::100", 64), vip("2001:db8::101", 64)]
    );
}

#[test]
fn vectors_import_to_the_hand_written_examples() {
    for (conf, example) in [
        (
            include_str!("../../tests/data/keepalived_v2_noauth.conf"),
            include_str!("../../../examples/keepalived_v2_noauth.toml"),
        ),
        (
            include_str!("../../tests/data/keepalived_v2_pass.conf"),
            include_str!("../../../examples/keepalived_v2_pass.toml"),
        ),
        (
            include_str!("../../tests/data/keepalived_v3_v4.conf"),
            include_str!("../../../examples/keepalived_v3_v4.toml"),
        ),
        (
            include_str!("../../tests/data/keepalived_v3_v6.conf"),
            include_str!("../../../examples/keepalived_v3_v6.toml"),
        ),
    ] {
        let (imported, _) = import_check(conf);
        let written = config::parse(example, Path::new("example.toml")).expect("example valid");
        assert_eq!(
            crate::plan::plan(&imported).driver,
            crate::plan::plan(&written).driver
        );
    }
}

const FULL: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id LVS_DEVEL   # trailing comment
   vrrp_version 3
   script_user root
   enable_script_security
   vrrp_garp_master_repeat 3
   notification_email {
     admin@example.com
   }
   smtp_server 192.0.2.25
}

vrrp_script chk_nginx {
    script "pidof nginx"
    interval 2
    timeout 1
    weight -20 reverse
    rise 2
    fall 3
    init_fail
}

vrrp_track_file down_file {
    file /run/keepalived/down
    weight 0
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 101
    advert_int 0.5
    nopreempt
    preempt_delay 30
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
        192.0.2.3
    }
    virtual_ipaddress {
        192.0.2.10/24 dev eth0 label eth0:vip
        192.0.2.11
    }
    track_interface {
        eth1 weight -10
        eth2
    }
    track_script {
        chk_nginx weight 5
    }
    track_file {
        down_file
    }
    garp_master_delay 1
    garp_master_refresh 60
    notify_master "/usr/bin/logger master"
    notify /usr/bin/logger -t keepalived
}

vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 52
    version 2
    authentication {
        auth_type PASS
        auth_pass longpassword
    }
    virtual_ipaddress {
        198.51.100.10/24
    }
}

vrrp_sync_group VG_1 {
    group {
        VI_1
        VI_2
    }
    notify_backup "/usr/bin/logger backup"
}
"#;

#[test]
fn every_vrrp_construct_is_carried_with_keepalived_s_rules() {
    let (c, warnings) = import_check(FULL);
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_DEVEL"));
    assert_eq!(
        c.global.script_user.as_ref().map(|u| u.spec.as_str()),
        Some("root")
    );
    let s = &c.scripts["chk_nginx"];
    assert_eq!(s.command.argv, ["pidof", "nginx"]);
    assert_eq!(
        (s.weight.get(), s.reverse, s.rise, s.fall, s.init_fail),
        (-20, true, 2, 3, true)
    );
    assert_eq!(s.timeout, std::time::Duration::from_secs(1));
    let p = crate::plan::plan(&c);
    let d = &p.driver;
    let v1 = d.instances.iter().find(|i| i.name == "VI_1").expect("VI_1");
    let ic = &v1.config;
    assert_eq!(ic.version, Version::V3);
    assert_eq!(ic.advert_interval, Centisecs::new(50));
    // keepalived 2.2.7: state MASTER below 255 starts as backup, and it
    // clears nopreempt and preempt_delay.
    assert_eq!(ic.initial_state, InitialState::Backup);
    assert!(ic.preempt);
    assert_eq!(ic.preempt_delay, std::time::Duration::ZERO);
    assert_eq!(
        ic.primary_address,
        "192.0.2.1".parse::<std::net::IpAddr>().expect("ip")
    );
    assert_eq!(ic.unicast_peers.len(), 2);
    assert_eq!(ic.garp.master_repeat, 3, "global vrrp_garp_master_repeat");
    assert_eq!(ic.garp.master_delay, std::time::Duration::from_secs(1));
    assert_eq!(
        ic.garp.master_refresh,
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(v1.vips[0].label.as_deref(), Some("eth0:vip"));
    assert_eq!(v1.vips[0].device.as_deref(), Some("eth0"));
    assert_eq!(v1.vips[1].address, vip("192.0.2.11", 32));
    // A sync-group member: keepalived zeroes interface weights and drops
    // weighted scripts.
    assert_eq!(v1.track_interfaces[0].0, "eth1");
    assert_eq!(v1.track_interfaces[0].1.weight, 0);
    let script_id = p.scripts[0].id;
    assert!(
        v1.tracks.iter().all(|t| t.0 != script_id),
        "weighted script dropped"
    );
    assert_eq!(p.files.len(), 1, "the weight-0 track file stays");
    let v2 = d.instances.iter().find(|i| i.name == "VI_2").expect("VI_2");
    assert_eq!(v2.config.version, Version::V2);
    // keepalived sends the first 8 bytes of a longer password.
    assert_eq!(v2.config.auth, Auth::password(b"longpass").expect("8"));
    assert_eq!(
        d.sync_groups,
        vec![vec!["VI_1".to_owned(), "VI_2".to_owned()]]
    );
    assert!(p.groups[0].notify.backup.is_some());
    let generic = p
        .notify
        .iter()
        .find(|(n, _)| n == "VI_1")
        .and_then(|(_, n)| n.generic.clone());
    // `notify /usr/bin/logger -t keepalived`: keepalived runs the first
    // word as the script, `-t` as its user and `keepalived` as its group.
    assert_eq!(
        generic.map(|c| c.argv),
        Some(vec!["/usr/bin/logger".to_owned()])
    );
    let n = &c.instances["VI_1"].notify.generic;
    assert_eq!(
        n.as_ref()
            .and_then(|n| n.user.as_ref())
            .map(|u| u.spec.as_str()),
        Some("-t:keepalived")
    );

    // keepalived's mail settings are carried.
    let mail = c.global.smtp.as_ref().expect("mail");
    assert!(!mail.to.is_empty());
    for (line, word) in [
        (36, "nopreempt with state MASTER"),
        (37, "preempt_delay with state MASTER"),
        (48, "track_interface eth1 weight"),
        (52, "track_script chk_nginx with weight 5"),
        (69, "auth_pass is longer than 8 bytes"),
    ] {
        assert!(
            has(&warnings, line, word),
            "no warning {line} {word} in {:#?}",
            messages(&warnings)
        );
    }
    assert_eq!(warnings.len(), 5, "{:#?}", messages(&warnings));
}

#[test]
fn strict_mode_drops_authentication_refuses_unicast_and_forces_lower_prio_no_advert() {
    let text = "global_defs {\n  vrrp_strict\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 101\n  preempt_delay 5\n  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\n";
    let (c, warnings) = import_check(text);
    let i = &c.instances["VI_1"];
    assert!(i.strict);
    assert_eq!(
        i.auth_pass, None,
        "keepalived sends no authentication in strict mode"
    );
    assert!(i.lower_prio_no_advert);
    assert!(
        !i.accept,
        "strict mode: no accept mode (no_accept firewall)"
    );
    assert!(
        !warnings.iter().any(|w| w.line == 2),
        "vrrp_strict is carried whole: {:#?}",
        messages(&warnings)
    );
    assert!(has(&warnings, 10, "authentication in strict mode"));
    assert!(has(&warnings, 9, "preempt_delay in strict mode"));
    let e = import_str(
        "global_defs {\n  vrrp_strict\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  unicast_peer {\n    192.0.2.2\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\n",
        Path::new("k.conf"),
        &options(),
    )
    .expect_err("strict unicast");
    assert!(
        e.to_string()
            .starts_with("k.conf:7: (VI_1) unicast peers in strict mode"),
        "{e}"
    );
}

#[test]
fn ipv6_means_v3_and_v3_ignores_authentication() {
    let (c, warnings) = import_check(
        "vrrp_instance VI6 {\n  interface eth0\n  virtual_router_id 6\n  advert_int 0.5\n  authentication {\n    auth_type PASS\n    auth_pass x\n  }\n  virtual_ipaddress {\n    2001:db8::6/64\n  }\n}\n",
    );
    let i = &c.instances["VI6"];
    assert_eq!(i.version, Version::V3);
    assert_eq!(i.advert_int, Centisecs::new(50));
    assert_eq!(i.auth_pass, None);
    assert!(has(&warnings, 5, "authentication with VRRPv3"));
    let e = import_str(
        "vrrp_instance VI6 {\n  interface eth0\n  version 2\n  virtual_router_id 6\n  virtual_ipaddress {\n    2001:db8::6\n  }\n}\n",
        Path::new("k.conf"),
        &options(),
    )
    .expect_err("v2 over IPv6");
    assert!(e.to_string().starts_with("k.conf:3:"), "{e}");
}

#[test]
fn ah_authentication_is_refused_with_its_reason() {
    let ah = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  authentication {\n    auth_type AH\n    auth_pass 1111\n  }\n  virtual_ipaddress {\n    192.0.2.16\n  }\n}\n";
    let e = import_str(ah, Path::new("k.conf"), &options()).expect_err("AH refused");
    let shown = e.to_string();
    assert!(shown.starts_with("k.conf:4:"), "{shown}");
    assert!(shown.contains("RFC 3768 removed IPsec AH"), "{shown}");
    // Where keepalived ignores authentication anyway (VRRPv3, strict
    // mode), AH does not matter.
    let (c, warnings) =
        import_check(&ah.replace("  interface eth0\n", "  interface eth0\n  version 3\n"));
    assert_eq!(c.instances["VI_1"].auth_pass, None);
    assert!(has(&warnings, 5, "authentication with VRRPv3"));
    // `vrrpd check` refuses it in a TOML file too.
    let e = crate::config::parse(
        "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\nauthentication = { auth_type = \"AH\", auth_pass = \"1111\" }\n",
        Path::new("v.toml"),
    )
    .expect_err("AH refused");
    assert!(e.to_string().contains("RFC 3768 removed AH"), "{e}");
}

#[test]
fn v2_intervals_are_rounded_like_keepalived() {
    let (c, warnings) = import_check(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  advert_int 0.3\n  virtual_ipaddress {\n    192.0.2.1\n  }\n}\n",
    );
    assert_eq!(c.instances["VI_1"].advert_int, Centisecs::ONE_SECOND);
    assert!(has(&warnings, 4, "keepalived uses 1s"));
}

#[test]
fn state_master_without_priority_is_the_owner_and_ignores_weights() {
    let (c, warnings) = import_check(
        "vrrp_script chk {\n  script /bin/true\n  weight -10\n}\ntrack_file maint {\n  file /run/maint\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 1\n  track_script {\n    chk\n  }\n  track_file {\n    maint\n  }\n  virtual_ipaddress {\n    192.0.2.1\n  }\n}\n",
    );
    let i = &c.instances["VI_1"];
    assert_eq!(i.priority, Priority::OWNER);
    assert!(i.track_script.is_empty());
    assert_eq!(
        i.track_file[0].weight.get(),
        0,
        "read with weight 0 (keepalived)"
    );
    assert!(has(&warnings, 13, "address owner"));
    assert!(has(&warnings, 16, "weight 0"));
}

#[test]
fn script_security_and_script_user_are_carried_as_keepalived_reads_them() {
    let body = "vrrp_script chk {\n  script \"/bin/true\"\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.10\n  }\n  track_script {\n    chk\n  }\n  notify_master /bin/true\n}\n";
    let default_user = nix::unistd::User::from_name("keepalived_script")
        .expect("passwd")
        .map(|u| (u.uid.as_raw(), Some(u.gid.as_raw())));
    // Without enable_script_security keepalived checks nothing and runs
    // scripts as keepalived_script when it exists, else as root: the
    // converted file says so rather than take vrrpd's stricter default.
    let imported = import(body);
    assert_eq!(imported.config.global.enable_script_security, Some(false));
    let toml = imported.toml();
    assert!(toml.contains("enable_script_security = false"), "{toml}");
    let c = config::parse(&toml, Path::new("out.toml")).expect("runs as keepalived would");
    assert!(!c.global.enable_script_security);
    let user = c.scripts["chk"].command.user.as_ref().map(|u| u.ids);
    assert_eq!(user, default_user.map(Some));
    // With it, and no script_user: keepalived refuses to run scripts as
    // root by default (it drops them with a configuration error); vrrpd
    // refuses the file unless keepalived_script exists.
    let secure = format!("global_defs {{\n  enable_script_security\n}}\n{body}");
    let toml = import(&secure).toml();
    let (outcome, errors) = config::read(&toml, Path::new("out.toml"), Target::ThisHost);
    if default_user.is_none() {
        assert!(
            errors
                .iter()
                .any(|e| e.kind == config::ErrorKind::NoScriptUser && e.line > 0),
            "{errors:#?}"
        );
    } else {
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(outcome.effective.global.enable_script_security);
    }
    // script_user USER GROUP is carried, and scripts run as it.
    let (c, _) = import_check(&format!(
        "global_defs {{\n  enable_script_security\n  script_user nobody nogroup\n}}\n{body}"
    ));
    assert!(c.global.enable_script_security);
    assert_eq!(
        c.scripts["chk"]
            .command
            .user
            .as_ref()
            .map(|u| u.spec.as_str()),
        Some("nobody:nogroup")
    );
}

#[test]
fn prefixes_sorry_servers_single_quotes_and_script_users() {
    let (c, warnings) = import_check(
        "vrrp_script chk {\n  script '/usr/bin/killall -0 nginx'\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  unicast_src_ip 192.0.2.1/24\n  unicast_peer {\n    192.0.2.2/24\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n  track_script {\n    chk\n  }\n  notify_master \"/etc/keepalived/master.sh a b\" root root\n}\nvirtual_server 192.0.2.10 80 {\n  sorry_server 192.0.2.99\n  real_server 192.0.2.20 80 {\n    TCP_CHECK {\n      bindto 192.0.2.1\n    }\n  }\n}\n",
    );
    assert_eq!(
        c.scripts["chk"].command.argv,
        ["/usr/bin/killall", "-0", "nginx"]
    );
    let i = &c.instances["VI_1"];
    assert_eq!(i.unicast_src_ip, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!(
        i.unicast_peer,
        ["192.0.2.2".parse::<std::net::IpAddr>().expect("ip")]
    );
    let m = i.notify.master.as_ref().expect("notify_master");
    assert_eq!(m.argv, ["/etc/keepalived/master.sh", "a", "b"]);
    assert_eq!(m.user.as_ref().map(|u| u.spec.as_str()), Some("root:root"));
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.sorry_server,
        Some("192.0.2.99:80".parse().expect("addr"))
    );
    let config::CheckKind::Tcp { source, .. } = &vs.real_servers[0].checks[0].kind else {
        panic!("tcp")
    };
    assert_eq!(source.address, Some("192.0.2.1".parse().expect("ip")));
    assert!(has(&warnings, 7, "prefix is ignored"));
}

#[test]
fn conditional_lines_and_definitions_follow_the_config_id() {
    let text = "$IFACE=eth0\n$PEER=192.0.2.2\nvrrp_instance VI_1 {\n  interface $IFACE\n  virtual_router_id 1\n@node1  priority 150\n@node2  priority 100\n@^node1 nopreempt\n  unicast_peer {\n    ${PEER}\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\n";
    let (c, _) = import_check(text);
    let i = &c.instances["VI_1"];
    assert_eq!(i.interface, "eth0");
    assert_eq!(i.priority, Priority::new(150));
    assert!(!i.nopreempt);
    assert_eq!(
        i.unicast_peer,
        ["192.0.2.2".parse::<std::net::IpAddr>().expect("ip")]
    );
    let other = import_str(
        text,
        Path::new("k.conf"),
        &Options {
            config_id: "node2".into(),
        },
    )
    .expect("import");
    let i = &other.config.instance["VI_1"];
    assert_eq!(i.priority, Some(Priority::new(100)));
    assert_eq!(i.nopreempt, Some(true));
}

#[test]
fn track_file_blocks_carry_their_weight_and_init_file() {
    let (c, warnings) = import_check(
        "track_file maint {\n  file /run/maint\n  weight -10 reverse\n  init_file 0 overwrite\n}\nvrrp_track_file old {\n  file /run/old\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  track_file {\n    maint\n    old weight 5\n  }\n  virtual_ipaddress {\n    192.0.2.1\n  }\n}\n",
    );
    assert!(warnings.is_empty(), "{:#?}", messages(&warnings));
    let t = &c.track_files["maint"];
    assert_eq!(
        (t.weight.get(), t.reverse, t.init),
        (-10, true, Some((0, true)))
    );
    let i = &c.instances["VI_1"];
    assert_eq!(i.track_file[0].weight.get(), -10);
    assert_eq!(i.track_file[1].weight.get(), 5);
}

#[test]
fn checker_keywords_and_udp_hex_payloads() {
    let (c, warnings) = import_check(
        "virtual_server 192.0.2.5 53 {\n  protocol UDP\n  delay_loop 5\n  real_server 192.0.2.6 53 {\n    UDP_CHECK {\n      payload 0a0b0c\n      require_reply 0a\n    }\n    DNS_CHECK {\n    }\n  }\n}\n",
    );
    let checks = &c.virtual_servers[0].real_servers[0].checks;
    let config::CheckKind::Udp(u) = &checks[1].kind else {
        panic!("udp")
    };
    assert_eq!(u.payload, [0x0a, 0x0b, 0x0c]);
    assert!(u.require_reply);
    assert_eq!(u.reply.as_deref(), Some(&[0x0a][..]));
    assert_eq!(checks[0].timing.retry, 3, "keepalived's DNS retry");
    assert!(has(&warnings, 7, "must start with these bytes"));
}

#[test]
fn virtual_servers_with_checks() {
    let text = r#"
virtual_server 192.0.2.50 3306 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server 198.51.100.99 3306
    quorum 2
    hysteresis 1
    alpha
    quorum_up "/usr/bin/logger up"
    real_server 198.51.100.11 3306 {
        weight 3
        inhibit_on_failure
        notify_down "/usr/bin/logger down"
        TCP_CHECK {
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
        MISC_CHECK {
            misc_path "mysqladmin ping"
            misc_timeout 5
            misc_dynamic
        }
    }
    real_server 198.51.100.12 3306 {
        HTTP_GET {
            url {
                path /health
                digest 9b3a0c85a887a256d6939da88aabd8cd
                status_code 200
            }
            url {
                path /ready
            }
            connect_timeout 2
        }
        SSL_GET {
            connect_port 443
        }
        DNS_CHECK {
            type A
            name example.com
        }
        SMTP_CHECK {
            helo_name mx.example.com
        }
        PING_CHECK {
        }
    }
}
virtual_server fwmark 7 {
    lvs_sched rr
    lvs_method TUN
    real_server 198.51.100.21 80 {
        weight 1
    }
}
virtual_server group web {
    real_server 198.51.100.31 80 {
    }
}
"#;
    let (c, warnings) = import_check(text);
    let p = crate::plan::plan(&c);
    assert_eq!(p.virtual_servers.len(), 2);
    let v = &p.virtual_servers[0].server;
    assert_eq!(v.service.scheduler, lvs::Scheduler::WRR);
    assert_eq!(v.service.persistence.and_then(|p| p.prefix_len), Some(24));
    assert_eq!((v.quorum, v.hysteresis, v.alpha), (2, 1, true));
    assert_eq!(
        v.sorry_server.map(|d| d.addr),
        Some("198.51.100.99:3306".parse().expect("addr"))
    );
    assert!(v.real_servers[0].inhibit_on_failure);
    assert_eq!(v.real_servers[0].destination.weight, 3);
    let f = &p.virtual_servers[1].server;
    assert_eq!(
        f.service.key,
        lvs::ServiceKey::fwmark(lvs::AddressFamily::Ipv4, 7)
    );
    assert_eq!(
        f.real_servers[0].destination.forward,
        lvs::ForwardMethod::Tunnel
    );
    let kinds: Vec<&str> = p.virtual_servers[0]
        .real_servers
        .iter()
        .flat_map(|r| r.checks.iter())
        .map(|c| match &c.probe {
            healthcheck::Probe::Tcp(_) => "tcp",
            healthcheck::Probe::Script(s) if s.dynamic_weight => "misc-dynamic",
            healthcheck::Probe::Http(h) if h.tls.is_some() => "https",
            healthcheck::Probe::Http(h) if h.digest.is_some() => "http-digest",
            healthcheck::Probe::Http(_) => "http",
            healthcheck::Probe::Dns(_) => "dns",
            healthcheck::Probe::Smtp(_) => "smtp",
            healthcheck::Probe::Icmp(_) => "ping",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "tcp",
            "misc-dynamic",
            "http-digest",
            "http",
            "https",
            "dns",
            "smtp",
            "ping"
        ]
    );
    let rs = &c.virtual_servers[0].real_servers[0];
    assert_eq!(rs.checks[0].timing.retry, 3);
    assert!(rs.notify.is_some());
    // HTTP's keepalived default: 3 s before a retry.
    assert_eq!(
        c.virtual_servers[0].real_servers[1].checks[0]
            .timing
            .delay_before_retry,
        std::time::Duration::from_secs(3)
    );
    assert_eq!(warnings.len(), 1, "{:#?}", messages(&warnings));
    assert!(has(&warnings, 62, "virtual_server_group"));
}

/// keepalived 2.2.7 has no SMTP_CHECK `host` blocks (Debian's
/// keepalived.conf.SMTP_CHECK sample still writes them): the check goes to
/// the real server itself, and the warning says so.
#[test]
fn smtp_check_host_blocks_are_ignored_as_keepalived_does() {
    let text = "virtual_server 192.0.2.10 25 {\n  real_server 192.0.2.11 25 {\n    SMTP_CHECK {\n      helo_name mx.example.com\n      host {\n        connect_ip 192.0.2.99\n      }\n    }\n  }\n}\n";
    let (c, warnings) = import_check(text);
    assert!(
        has(&warnings, 5, "ignored by keepalived 2.2.7"),
        "{warnings:#?}"
    );
    let p = crate::plan::plan(&c);
    let checks = &p.virtual_servers[0].real_servers[0].checks;
    assert_eq!(checks.len(), 1, "{checks:#?}");
    let debug = format!("{:?}", checks[0]);
    assert!(debug.contains("192.0.2.11:25"), "{debug}");
    assert!(!debug.contains("192.0.2.99"), "{debug}");
}

#[test]
fn unknown_keywords_warn_with_file_and_line_and_are_counted() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  use_ipvlan\n  virtual_ipaddress {\n    192.0.2.1/24 brd 192.0.2.255 no_track dev eth1\n  }\n  virtual_ipaddress_excluded {\n    192.0.2.2\n  }\n}\nstatic_ipaddress {\n  192.0.2.9/24 dev eth0\n}\nmystery_block {\n}\n";
    let imported = import(text);
    let w = &imported.warnings;
    // brd, no_track and static_ipaddress are carried now.
    assert_eq!(w.len(), 2, "{:#?}", messages(w));
    assert!(has(w, 4, "use_ipvlan"));
    assert!(has(w, 15, "mystery_block"));
    // `no_track` takes no value: `dev eth1` after it is kept.
    let vip = &imported.config.instance["VI_1"].virtual_ipaddress[0];
    assert_eq!(vip.dev.as_deref(), Some("eth1"));
    assert_eq!(vip.brd.as_deref(), Some("192.0.2.255"));
    assert!(vip.no_track);
    assert_eq!(imported.config.static_ipaddress.len(), 1);
    assert_eq!(
        imported.config.static_ipaddress[0].to_string(),
        "192.0.2.9/24 dev eth0"
    );
    let table = imported.report.table();
    assert!(table.contains("vrrp_instance use_ipvlan"), "{table}");
    // The excluded address (line 9) is an entry too; both carried.
    let row = &imported.report.rows["virtual_ipaddress entry"];
    assert_eq!(*row, [2, 0, 0]);
    assert_eq!(
        imported.config.instance["VI_1"].virtual_ipaddress_excluded[0].address,
        "192.0.2.2"
    );
    assert!(
        imported
            .toml()
            .contains("2 keyword(s) were not carried as written")
    );
}

#[test]
fn comments_and_quotes() {
    let (c, _) = import_check(
        "vrrp_instance VI_1 { # comment\n  interface eth0 ! another\n  virtual_router_id 9\n  notify_master \"/usr/bin/logger a#b!c\"\n}\n",
    );
    let n = c.instances["VI_1"].notify.master.as_ref().expect("notify");
    assert_eq!(n.argv, ["/usr/bin/logger", "a#b!c"]);
}

#[test]
fn harmful_files_are_refused_with_their_line() {
    for (text, line, needle) in [
        (
            "vrrp_instance VI_1 {\n  interface eth0\n  virtual_ipaddress {\n    192.0.2.1\n\nvrrp_instance VI_2 {\n}\n",
            3,
            "never closed",
        ),
        (
            "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 300\n}\n",
            3,
            "not 1..=255",
        ),
        (
            "vrrp_instance VI_1 {\n  virtual_router_id 3\n}\n",
            1,
            "interface",
        ),
        ("~SEQ(i, 1, 3) x\n", 1, "~SEQ"),
    ] {
        let e = import_str(text, Path::new("k.conf"), &options()).expect_err(text);
        assert!(
            e.to_string().starts_with(&format!("k.conf:{line}:")) && e.to_string().contains(needle),
            "{e}"
        );
    }
}

fn temp_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("vrrpd-import-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    dir
}

#[test]
fn includes_with_globs_and_braces_relative_to_the_file() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("keepalived.conf"),
        "global_defs {\n  router_id main\n}\ninclude conf.d/*.conf\ninclude missing/*.conf\nincluder conf.d/{c,d}.inc\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("conf.d/a.conf"),
        "vrrp_instance VI_A {\n  interface eth0\n  virtual_router_id 1\n  bogus_keyword\n}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "vrrp_instance VI_B {\n  interface eth0\n  virtual_router_id 2\n}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("conf.d/c.inc"),
        "vrrp_instance VI_C {\n  interface eth0\n  virtual_router_id 3\n}\n",
    )
    .expect("write");
    std::fs::write(dir.join("conf.d/b.conf.bak"), "garbage {").expect("write");
    let imported = import_file(&dir.join("keepalived.conf"), &options()).expect("import");
    let keys: Vec<&String> = imported.config.instance.keys().collect();
    assert_eq!(keys, ["VI_A", "VI_B", "VI_C"]);
    let shown = messages(&imported.warnings);
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown
            .iter()
            .any(|w| w.contains("keepalived.conf:5:") && w.contains("matches no file"))
    );
    assert!(
        shown
            .iter()
            .any(|w| w.contains("conf.d/a.conf:4:") && w.contains("bogus_keyword"))
    );
    // Problems found after the conversion point at the included file.
    let key = crate::config::KeyPath::root("instance")
        .key("VI_B")
        .key("virtual_router_id");
    let (file, line) = imported.locate(&key);
    assert!(
        file.ends_with("conf.d/b.conf") && line == 3,
        "{} {line}",
        file.display()
    );
}

#[test]
fn include_loops_and_unreadable_files_are_errors() {
    let dir = temp_dir();
    std::fs::write(dir.join("loop.conf"), "include loop.conf\n").expect("write");
    let e = import_file(&dir.join("loop.conf"), &options()).expect_err("loop");
    assert!(e.to_string().contains("includes itself"), "{e}");
    let e = import_file(&dir.join("absent.conf"), &options()).expect_err("absent");
    assert!(e.to_string().contains("absent.conf: cannot read"), "{e}");
}

#[test]
fn garbage_and_truncated_input_is_an_error_not_a_panic() {
    let mut state: u64 = 11;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let check = |text: &str| {
        if let Ok(imported) = import_str(text, Path::new("/nonexistent/k.conf"), &options()) {
            let _ = config::read(&imported.toml(), Path::new("out.toml"), Target::OtherHost);
        }
    };
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
    }
    let alphabet =
        b"{}\"'!#@$=\n \tab_12.:/virtual_server real_server vrrp_instance include * track_file";
    for _ in 0..2000 {
        let len = (next() % 120) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()] as char)
            .collect();
        check(&text);
    }
    for cut in 0..FULL.len() {
        if FULL.is_char_boundary(cut) {
            check(&FULL[..cut]);
        }
    }
}

#[test]
fn udp_check_sends_the_hex_payload_and_wants_the_hex_reply() {
    // A UDP server on loopback answers what it is sent with `answer`.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let (imported, _) = import_check(&format!(
        "virtual_server 127.0.0.1 {port} {{\n  protocol UDP\n  real_server 127.0.0.1 {port} {{\n    UDP_CHECK {{\n      payload 0a0b0c\n      require_reply 0d0e\n      connect_timeout 2\n    }}\n  }}\n}}\n"
    ));
    let plan = crate::plan::plan(&imported);
    let spec = &plan.virtual_servers[0].real_servers[0].checks[0];
    let prober = spec.probe.prepare().expect("probe");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (answer, up) in [(&[0x0d, 0x0e, 0x0f][..], true), (&[0x41, 0x42][..], false)] {
        let thread = {
            let server = server.try_clone().expect("clone");
            let answer = answer.to_vec();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let (n, from) = server.recv_from(&mut buf).expect("recv");
                server.send_to(&answer, from).expect("send");
                buf[..n].to_vec()
            })
        };
        let report = runtime.block_on(prober.run(0, std::time::Duration::from_secs(2)));
        let received = thread.join().expect("server");
        // keepalived's `payload 0a0b0c` is three bytes, not six letters.
        assert_eq!(received, [0x0a, 0x0b, 0x0c]);
        assert_eq!(report.result.is_ok(), up, "{:?}", report.result);
    }
}

#[test]
fn sync_group_tracks_reach_every_member_with_their_weights() {
    // Members' own weights are ignored (no sync_group_tracking_weight),
    // the group's apply to every member (keepalived's
    // sync_group_tracking_init); an interface both track keeps the
    // member's weight 0.
    let text = "vrrp_script chk {\n  script /bin/true\n  weight -20\n}\nvrrp_script own {\n  script /bin/true\n  weight 5\n}\nvrrp_instance A {\n  interface eth0\n  virtual_router_id 1\n  priority 100\n  track_script {\n    own\n  }\n  track_interface {\n    eth2 weight -7\n  }\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\nvrrp_instance B {\n  interface eth1\n  virtual_router_id 2\n  priority 100\n  virtual_ipaddress {\n    192.0.2.11\n  }\n}\nvrrp_sync_group G {\n  group {\n    A\n    B\n  }\n  track_script {\n    chk\n  }\n  track_interface {\n    eth2 weight -30\n    eth1 weight -40\n  }\n}\n";
    let (c, warnings) = import_check(text);
    let tracked = |inst: &str| {
        let i = &c.instances[inst];
        (
            i.track_script
                .iter()
                .map(|t| (t.name.clone(), t.weight.get()))
                .collect::<Vec<_>>(),
            i.track_interface
                .iter()
                .map(|t| (t.name.clone(), t.weight.get()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        tracked("A"),
        (
            vec![("chk".to_owned(), -20)],
            vec![("eth2".to_owned(), 0), ("eth1".to_owned(), -40)]
        )
    );
    assert_eq!(
        tracked("B"),
        (
            vec![("chk".to_owned(), -20)],
            vec![("eth2".to_owned(), -30)]
        ),
        "B's own interface stays tracked with weight 0, not the group's"
    );
    assert!(c.sync_groups["G"].tracking_weight);
    assert!(has(
        &warnings,
        14,
        "weighted scripts of a member of sync group G"
    ));
    assert!(has(&warnings, 40, "also tracked by the instance"));
    assert!(has(&warnings, 41, "own interface"));
    assert!(has(&warnings, 37, "sync_group_tracking_weight = true"));

    // A member owning its addresses clears the group's weights.
    let owner = text.replace(
        "priority 100\n  virtual_ipaddress {\n    192.0.2.11",
        "priority 255\n  virtual_ipaddress {\n    192.0.2.11",
    );
    let (c, warnings) = import_check(&owner);
    assert_eq!(c.instances["A"].track_script[0].weight.get(), 0);
    assert!(!c.sync_groups["G"].tracking_weight);
    assert!(has(&warnings, 37, "member B owns its addresses"));
}

#[test]
fn virtual_server_groups_are_carried_and_linked_after_the_whole_file() {
    let text = r#"virtual_server group WEB {
    lb_kind DR
    protocol TCP
    real_server 198.51.100.1 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
virtual_server_group WEB {
    192.0.2.10-12 80
    192.0.2.20 443
    192.0.2.30-29 80
    fwmark 5
}
virtual_server_group ALLPORTS {
    192.0.2.40
}
virtual_server group ALLPORTS {
    lb_kind DR
    real_server 198.51.100.2 {
        TCP_CHECK {
            connect_port 22
        }
    }
}
virtual_server group MISSING {
    real_server 198.51.100.3 80 {
    }
}
virtual_server 192.0.2.99 80 {
    protocol TCP
    real_server 198.51.100.4 80 {
        bogus_keyword
    }
}
"#;
    let imported = import(text);
    assert_eq!(
        imported.config.virtual_server_group["WEB"],
        ["192.0.2.10-12 80", "192.0.2.20 443", "fwmark 5"]
    );
    let (c, warnings) = import_check(text);
    let m = messages(&warnings);
    // The bad range line, the port-less group made persistent, the missing
    // group's server dropped, the unknown keyword: each at its line.
    assert!(has(&warnings, 13, "keepalived skips the entry"), "{m:#?}");
    assert!(has(&warnings, 19, "persistence_timeout 360"), "{m:#?}");
    // ... and UDP, keepalived 2.2.7's default protocol.
    assert!(has(&warnings, 19, "defaulting to UDP"), "{m:#?}");
    assert!(has(&warnings, 27, "no such virtual_server_group"), "{m:#?}");
    assert!(has(&warnings, 34, "bogus_keyword"), "{m:#?}");
    assert_eq!(warnings.len(), 5, "{m:#?}");
    assert_eq!(c.virtual_servers.len(), 3);
    let keys: Vec<String> = crate::plan::plan(&c)
        .virtual_servers
        .iter()
        .map(|v| v.server.service.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "tcp/192.0.2.10:80",
            "tcp/192.0.2.11:80",
            "tcp/192.0.2.12:80",
            "tcp/192.0.2.20:443",
            "fwmark/5",
            "udp/192.0.2.40:0",
            "tcp/192.0.2.99:80"
        ]
    );
    assert_eq!(
        c.virtual_servers[1].persistence.map(|p| p.0),
        Some(std::time::Duration::from_secs(360))
    );
    // A problem found later still points at the keepalived.conf line of
    // the server after the dropped one.
    let (file, line) = imported.locate(&crate::config::KeyPath::root("virtual_server").index(2));
    assert_eq!(
        (file.display().to_string(), line),
        ("keepalived.conf".to_owned(), 31)
    );
}

#[test]
fn check_options_keepalived_2_2_7_has_are_carried() {
    let text = r#"virtual_server 192.0.2.5 443 {
    protocol TCP
    virtualhost www.example.com
    real_server 192.0.2.6 443 {
        SSL_GET {
            bindto 192.0.2.1
            bind_port 4000
            bind_if eth1
            url {
                path /health
                regex "ready( now)?"
                regex_no_match
                regex_options caseless auto_callout
                regex_min_offset 2
                regex_max_offset 50
                regex_stack 32 64
            }
        }
        SSL_GET {
            enable_sni
        }
        TCP_CHECK {
            bind_port 4001
        }
    }
}
"#;
    let (c, warnings) = import_check(text);
    let m = messages(&warnings);
    assert!(has(&warnings, 13, "auto_callout"), "{m:#?}");
    assert!(has(&warnings, 16, "regex_stack"), "{m:#?}");
    assert!(has(&warnings, 23, "without `bindto`"), "{m:#?}");
    assert_eq!(warnings.len(), 3, "{m:#?}");
    let checks = &c.virtual_servers[0].real_servers[0].checks;
    // The runner's order: TCP checks first, then HTTP(S).
    let config::CheckKind::Http(h) = &checks[1].kind else {
        panic!("http")
    };
    assert_eq!(h.source.address, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!(
        (h.source.port, h.source.interface.as_deref()),
        (Some(4000), Some("eth1"))
    );
    // keepalived sends no SNI without enable_sni, even with a virtualhost.
    assert_eq!(h.enable_sni, Some(false));
    let r = h.urls[0].regex.as_ref().expect("regex");
    assert_eq!(r.pattern, "ready( now)?");
    assert!(r.no_match && r.options.caseless);
    assert_eq!((r.min_offset, r.max_offset), (2, Some(50)));
    let config::CheckKind::Http(h) = &checks[2].kind else {
        panic!("http")
    };
    assert_eq!(h.enable_sni, Some(true));
    let config::CheckKind::Tcp { source, .. } = &checks[0].kind else {
        panic!("tcp")
    };
    assert_eq!(
        source.port, None,
        "bind_port without bindto: keepalived does not bind"
    );
}

#[test]
fn vrrp_track_process_is_carried_to_instances_and_sync_groups() {
    let text = r#"vrrp_track_process nginx {
    process nginx
    quorum 2
    quorum_max 4
    weight -20 reverse
    delay 1.5
}
vrrp_track_process api {
    process /usr/bin/python3 -m api
    param_match initial
    fork_delay 2
}
vrrp_track_process broken {
    quorum 2
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        192.0.2.1
    }
    track_process {
        nginx weight -30
        broken
        nginx
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.2
    }
}
vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
    track_process {
        api weight 5
    }
}
"#;
    let (c, warnings) = import_check(text);
    let m = messages(&warnings);
    assert!(has(&warnings, 13, "has no `process`"), "{m:#?}");
    assert!(has(&warnings, 25, "no usable vrrp_track_process"), "{m:#?}");
    assert!(has(&warnings, 26, "duplicate track_process"), "{m:#?}");
    let nginx = &c.track_processes["nginx"];
    assert_eq!((nginx.spec.quorum, nginx.spec.quorum_max), (2, 4));
    assert_eq!(
        nginx.spec.terminate_delay,
        std::time::Duration::from_millis(1500)
    );
    assert!(nginx.reverse);
    let api = &c.track_processes["api"].spec;
    assert_eq!(api.params, ["-m", "api"]);
    assert_eq!(api.param_match, healthcheck::process::ParamMatch::Initial);
    assert!(api.full_command);
    let names = |i: &str| -> Vec<(String, i32)> {
        c.instances[i]
            .track_process
            .iter()
            .map(|t| (t.name.clone(), t.weight.get()))
            .collect()
    };
    // The sync group's process reaches every member with its weight.
    assert_eq!(names("VI_1"), [("nginx".into(), -30), ("api".into(), 5)]);
    assert_eq!(names("VI_2"), [("api".into(), 5)]);
}

/// Found by fuzz/keepalived_import: a quoted address with spaces was kept,
/// refused by the import's own check but read back from the TOML it wrote
/// as another address (`192.0.2.53/24` on eth1).
#[test]
fn a_quoted_virtual_address_with_spaces_is_dropped_not_reread() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    \"  192.0.2.53/24 dev eth1\"\n    192.0.2.10\n    192.0.2.11 dev \"\reth0\"\n  }\n}\n";
    let (_, warnings) = import_check(text);
    assert!(
        has(&warnings, 5, "is not an address") && has(&warnings, 7, "is not an address"),
        "{:?}",
        messages(&warnings)
    );
    assert_eq!(
        driver(text).instances[0].config.virtual_addresses,
        [vip("192.0.2.10", 32)]
    );
}

#[test]
fn an_empty_tracked_name_is_dropped_not_written() {
    // Found by fuzz/keepalived_import: `""` in track_interface was carried,
    // and `vrrpd check` then refused the TOML import-keepalived wrote.
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  track_interface {\n    \"\"\n    eth1 weight -20\n  }\n  track_script {\n    \"a b\"\n  }\n}\n";
    let (c, warnings) = import_check(text);
    let m = messages(&warnings);
    assert!(has(&warnings, 5, "not a name"), "{m:#?}");
    assert!(has(&warnings, 9, "not a name"), "{m:#?}");
    let i = &c.instances["VI_1"];
    assert_eq!(
        (i.track_interface.len(), i.track_script.len()),
        (1, 0),
        "{m:#?}"
    );
}

#[test]
fn address_options_are_read_as_keepalived_reads_them() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  promote_secondaries\n  virtual_ipaddress {\n    192.0.2.10/24 brd + scope link label eth0:a\n    192.0.2.11/24 broadcast - dev eth1 no_track\n    192.0.2.12/24 peer 192.0.2.200\n    192.0.2.13/32 brd +\n    192.0.2.14/24 brd 2001:db8::1\n    192.0.2.15/24 scope bogus\n    192.0.2.16/24 scope 0x10 home\n  }\n  virtual_ipaddress_excluded {\n    2001:db8::10\n    2001:db8::11/64\n    2001:db8::12 preferred_lft forever\n    2001:db8::13/64 preferred_lft 30 scope link\n    2001:db8::14 brd +\n  }\n}\nstatic_ipaddress {\n  192.0.2.50/24 scope host\n  192.0.2.51/24 dev eth1 brd +\n}\n";
    let (c, w) = import_check(text);
    let m = messages(&w);
    // Left out as keepalived ignores them, or dropped as it skips them.
    assert!(has(&w, 8, "the peer's"), "{m:#?}");
    assert!(has(&w, 9, "brd +"), "{m:#?}");
    assert!(has(&w, 10, "dropped"), "{m:#?}");
    assert!(has(&w, 11, "bogus"), "{m:#?}");
    assert!(has(&w, 12, "home"), "{m:#?}");
    assert!(has(&w, 18, "scope link"), "{m:#?}");
    assert!(has(&w, 19, "dropped"), "{m:#?}");
    assert!(has(&w, 23, "eth0"), "{m:#?}");
    assert_eq!(w.len(), 8, "{m:#?}");
    let i = &c.instances["VI_1"];
    assert!(i.promote_secondaries);
    let v4: Vec<String> = i
        .vips
        .iter()
        .map(|v| format!("{} {:?} {} {:?}", v.address, v.attrs, v.no_track, v.dev))
        .collect();
    let b = |s: &str| Some(s.parse::<std::net::Ipv4Addr>().expect("v4"));
    let a = |scope, broadcast, peer: Option<&str>| vrrp_net::addr::AddrAttrs {
        scope,
        broadcast,
        peer: peer.map(|p| p.parse().expect("ip")),
        preferred_lft: None,
    };
    assert_eq!(i.vips.len(), 6, "{v4:#?}");
    assert_eq!(i.vips[0].attrs, a(Some(253), b("192.0.2.255"), None));
    assert_eq!(i.vips[0].label.as_deref(), Some("eth0:a"));
    assert_eq!(i.vips[1].attrs, a(None, b("192.0.2.0"), None));
    assert!(i.vips[1].no_track && !i.vips[0].no_track);
    // keepalived: a point-to-point address is a /32 to its peer.
    assert_eq!(i.vips[2].attrs, a(None, None, Some("192.0.2.200")));
    assert_eq!(i.vips[2].address.prefix_len, 32);
    assert_eq!(i.vips[3].attrs, a(None, None, None));
    assert_eq!(i.vips[4].address.to_string(), "192.0.2.15/24");
    assert_eq!(i.vips[4].attrs, a(None, None, None));
    assert_eq!(i.vips[5].attrs, a(Some(16), None, None));
    // IPv6: a /128 is deprecated unless told, as keepalived makes it.
    let lft: Vec<Option<u32>> = i.excluded.iter().map(|v| v.attrs.preferred_lft).collect();
    assert_eq!(lft, [Some(0), None, None, Some(30)]);
    let statics: Vec<String> = c
        .static_addresses
        .iter()
        .map(|v| {
            format!(
                "{} {:?} {:?} {:?}",
                v.address, v.dev, v.attrs.scope, v.attrs.broadcast
            )
        })
        .collect();
    assert_eq!(
        statics,
        [
            "192.0.2.50/24 Some(\"eth0\") Some(254) None",
            "192.0.2.51/24 Some(\"eth1\") None Some(192.0.2.255)",
        ]
    );
    // What reaches the driver.
    let d = driver(text);
    assert_eq!(d.static_addresses.len(), 2);
    assert!(d.instances[0].promote_secondaries);
    assert!(d.instances[0].vips.iter().any(|v| v.no_track));
}

#[test]
fn accept_no_accept_and_the_nftables_settings_are_carried() {
    let text = "global_defs {\n  nftables kt\n  nftables_priority -10\n  nftables_counters\n  nftables_ifindex\n}\nvrrp_instance A {\n  interface eth0\n  virtual_router_id 1\n  no_accept\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\nvrrp_instance B {\n  interface eth0\n  virtual_router_id 2\n  accept\n  strict_mode\n  version 3\n  virtual_ipaddress {\n    192.0.2.11\n  }\n}\nvrrp_instance C {\n  interface eth0\n  virtual_router_id 3\n  accept\n  strict_mode\n  virtual_ipaddress {\n    192.0.2.12\n  }\n}\n";
    let (c, warnings) = import_check(text);
    assert!(!c.instances["A"].accept);
    assert!(c.instances["B"].accept, "VRRPv3 strict mode may accept");
    assert!(!c.instances["C"].accept, "VRRPv2 strict mode may not");
    assert!(has(&warnings, 28, "accept with VRRPv2 in strict mode"));
    assert_eq!(warnings.len(), 1, "{:#?}", messages(&warnings));
    let fw = &c.global.nftables;
    assert_eq!(
        (fw.table.as_str(), fw.priority, fw.counters, fw.ifindex),
        ("kt", -10, true, true)
    );
    let d = driver(text);
    assert_eq!(d.firewall.table, "kt");
    let accept: Vec<bool> = d.instances.iter().map(|i| i.accept).collect();
    assert_eq!(accept, vec![false, true, false]);
    // keepalived's iptables keywords: nftables instead, said so.
    let (c, warnings) = import_check(
        "global_defs {\n  vrrp_iptables\n}\nvrrp_instance A {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.10\n  }\n}\n",
    );
    assert!(has(&warnings, 2, "uses nftables instead"));
    assert_eq!(c.global.nftables.table, "vrrpd");
    assert!(c.instances["A"].accept);
}

#[test]
fn garp_extra_if_and_its_old_names_are_carried() {
    let text = "global_defs {\n  vrrp_garp_extra_if all 100\n}\nvrrp_instance A {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.10\n    192.0.2.11 dev eth1\n  }\n}\nvrrp_instance B {\n  interface eth0\n  virtual_router_id 2\n  vmac_garp_intvl 30\n  virtual_ipaddress {\n    192.0.2.12\n  }\n}\nvrrp_instance C {\n  interface eth0\n  virtual_router_id 3\n  garp_extra_if 0\n  virtual_ipaddress {\n    192.0.2.13\n  }\n}\nvrrp_instance D {\n  interface eth0\n  virtual_router_id 4\n  garp_extra_if all\n  virtual_ipaddress {\n    192.0.2.14\n  }\n}\n";
    let (c, warnings) = import_check(text);
    let secs = |n: &str| {
        c.instances[n]
            .garp_extra_if
            .map(|(d, all)| (d.as_secs(), all))
    };
    assert_eq!(
        c.global.garp_extra_if.map(|(d, a)| (d.as_secs(), a)),
        Some((100, true))
    );
    assert_eq!(secs("A"), Some((100, true)), "the global one");
    assert_eq!(secs("B"), Some((30, false)), "its own, without all");
    assert_eq!(secs("C"), None, "0: off");
    assert_eq!(secs("D"), Some((100, true)), "no time: ignored");
    assert!(has(&warnings, 31, "without a time"));
    assert_eq!(warnings.len(), 1, "{:#?}", messages(&warnings));
    let d = driver(text);
    let a = d.instances[0].garp_extra_if.expect("A");
    assert_eq!((a.interval.as_secs(), a.all), (100, true));
}
