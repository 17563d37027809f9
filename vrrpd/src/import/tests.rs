//! Converter tests: the four keepalived vectors round-trip into the driver
//! configuration keepalived runs; every construct; warnings with file and
//! line; includes; garbage input.

use std::path::{Path, PathBuf};

use vrrp_core::{Auth, Centisecs, InitialState, Priority, Version, VirtualAddress, Vrid};
use vrrp_net::driver::DriverConfig;

use super::*;
use crate::config::{self, Config};

fn import(text: &str) -> Imported {
    match import_str(text, Path::new("keepalived.conf")) {
        Ok(i) => i,
        Err(e) => panic!("import failed: {e}"),
    }
}

/// Imports, then loads the TOML like `vrrpd check` does.
fn import_check(text: &str) -> (Config, Vec<Warning>) {
    let imported = import(text);
    match config::parse(&imported.toml, Path::new("out.toml")) {
        Ok(c) => (c, imported.warnings),
        Err(e) => panic!("converted TOML fails check:\n{e}\n---\n{}", imported.toml),
    }
}

fn driver(text: &str) -> DriverConfig {
    import_check(text).0.driver_config().0
}

fn vip(s: &str, len: u8) -> VirtualAddress {
    VirtualAddress {
        addr: s.parse().expect("address"),
        prefix_len: len,
    }
}

/// What every vector shares: VRID 42, priority 150, 1 s, backup start.
fn assert_vector_common(d: &DriverConfig, version: Version) {
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
    let d = c.driver_config().0;
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
        assert_eq!(imported.driver_config(), written.driver_config());
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
fn every_vrrp_construct_is_carried() {
    let (c, warnings) = import_check(FULL);
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_DEVEL"));
    assert_eq!(c.global.script_user.as_deref(), Some("root"));
    let s = &c.script["chk_nginx"];
    assert_eq!(s.command.command, ["pidof", "nginx"]);
    assert_eq!(
        (s.weight, s.reverse, s.rise, s.fall, s.init_fail),
        (-20, true, 2, 3, true)
    );
    assert_eq!(s.timeout, Some(config::Dur::secs(1)));

    let (d, tracking) = c.driver_config();
    let v1 = d.instances.iter().find(|i| i.name == "VI_1").expect("VI_1");
    let ic = &v1.config;
    assert_eq!(ic.version, Version::V3);
    assert_eq!(ic.advert_interval, Centisecs::new(50));
    assert_eq!(ic.initial_state, InitialState::Master);
    assert!(!ic.preempt);
    assert_eq!(ic.preempt_delay, std::time::Duration::from_secs(30));
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
    assert_eq!(v1.track_interfaces[0].0, "eth1");
    assert_eq!(v1.track_interfaces[0].1.weight, -10);
    let script_id = tracking.scripts["chk_nginx"];
    let t = v1
        .tracks
        .iter()
        .find(|t| t.0 == script_id)
        .expect("script tracked");
    assert_eq!(t.1.weight, 5);
    assert!(tracking.files.contains_key("/run/keepalived/down"));

    let v2 = d.instances.iter().find(|i| i.name == "VI_2").expect("VI_2");
    assert_eq!(v2.config.version, Version::V2);
    // keepalived sends the first 8 bytes of a longer password.
    assert_eq!(v2.config.auth, Auth::password(b"longpass").expect("8"));
    assert_eq!(
        d.sync_groups,
        vec![vec!["VI_1".to_owned(), "VI_2".to_owned()]]
    );
    let plan = c.plan().expect("plan");
    assert!(plan.groups[0].notify.backup.is_some());
    let generic = plan
        .notify
        .iter()
        .find(|(n, _)| n == "VI_1")
        .and_then(|(_, n)| n.generic.clone());
    assert_eq!(
        generic.map(|c| c.argv),
        Some(vec![
            "/usr/bin/logger".into(),
            "-t".into(),
            "keepalived".into()
        ])
    );

    let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    let expect = [
        ("keepalived.conf:9:", "notification_email"),
        ("keepalived.conf:12:", "smtp_server"),
        ("keepalived.conf:69:", "auth_pass is longer than 8 bytes"),
    ];
    for (pos, word) in expect {
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with(pos) && m.contains(word)),
            "no warning {pos} {word} in {messages:#?}"
        );
    }
    assert_eq!(messages.len(), expect.len(), "{messages:#?}");
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
    let vs = c.virtual_servers();
    assert_eq!(vs.len(), 2);
    let v = &vs[0];
    assert_eq!(v.service.scheduler, lvs::Scheduler::WRR);
    assert_eq!(v.service.persistence.and_then(|p| p.prefix_len), Some(24));
    assert_eq!((v.quorum, v.hysteresis, v.alpha), (2, 1, true));
    assert_eq!(
        v.sorry_server.map(|d| d.addr),
        Some("198.51.100.99:3306".parse().expect("addr"))
    );
    assert!(v.real_servers[0].inhibit_on_failure);
    assert_eq!(v.real_servers[0].destination.weight, 3);
    assert_eq!(
        vs[1].service.key,
        lvs::ServiceKey::fwmark(lvs::AddressFamily::Ipv4, 7)
    );
    assert_eq!(
        vs[1].real_servers[0].destination.forward,
        lvs::ForwardMethod::Tunnel
    );

    let checks = c.real_server_checks();
    let kinds: Vec<&str> = checks
        .iter()
        .map(|c| match &c.spec.probe {
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
    let rs = &c.virtual_server[0].real_server[0];
    assert_eq!(rs.tcp_check[0].retry, 3);
    assert!(rs.notify_down.is_some());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].to_string().starts_with("keepalived.conf:62:"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].message.contains("virtual_server_group"));
}

#[test]
fn unknown_keywords_warn_with_file_and_line_and_are_listed() {
    let text = "global_defs {\n  vrrp_strict\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  use_vmac\n  virtual_ipaddress {\n    192.0.2.1/24 brd 192.0.2.255\n  }\n  virtual_ipaddress_excluded {\n    192.0.2.2\n  }\n}\nstatic_ipaddress {\n  192.0.2.9/24 dev eth0\n}\nmystery_block {\n}\n";
    let (_, warnings) = import_check(text);
    let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 6, "{shown:#?}");
    assert!(shown[0].starts_with("keepalived.conf:2:") && shown[0].contains("vrrp_strict"));
    assert!(shown[1].starts_with("keepalived.conf:7:") && shown[1].contains("use_vmac"));
    assert!(shown[2].starts_with("keepalived.conf:9:") && shown[2].contains("brd"));
    assert!(
        shown[3].starts_with("keepalived.conf:11:")
            && shown[3].contains("virtual_ipaddress_excluded")
    );
    assert!(shown[4].starts_with("keepalived.conf:15:") && shown[4].contains("out of scope"));
    assert!(shown[5].starts_with("keepalived.conf:18:") && shown[5].contains("mystery_block"));
    let imported = import(text);
    assert!(
        imported
            .toml
            .contains("6 keyword(s) could not be carried over")
    );
}

#[test]
fn extra_arguments_are_not_dropped_silently() {
    let imported =
        import("vrrp_instance VI_1 {\n  interface eth0 eth1\n  virtual_router_id 1\n}\n");
    assert_eq!(imported.warnings.len(), 1);
    assert!(
        imported.warnings[0]
            .message
            .contains("`eth1` after it is ignored")
    );
}

#[test]
fn comments_quotes_and_bad_values_reach_check() {
    let (c, _) = import_check(
        "vrrp_instance VI_1 { # comment\n  interface eth0 ! another\n  virtual_router_id 9\n  notify_master \"/usr/bin/logger a#b!c\"\n}\n",
    );
    let n = c.instance["VI_1"].notify_master.as_ref().expect("notify");
    assert_eq!(n.command, ["/usr/bin/logger", "a#b!c"]);
    // A bad value is carried as written, so `vrrpd check` names it.
    let imported = import("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 300\n}\n");
    let e = config::parse(&imported.toml, Path::new("out.toml")).expect_err("vrid 300");
    assert!(
        e.to_string()
            .contains("key `instance.VI_1.virtual_router_id`"),
        "{e}"
    );
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
fn includes_with_globs_relative_to_the_file() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("keepalived.conf"),
        "global_defs {\n  router_id main\n}\ninclude conf.d/*.conf\ninclude missing/*.conf\n",
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
    std::fs::write(dir.join("conf.d/b.conf.bak"), "garbage {").expect("write");
    let imported = import_file(&dir.join("keepalived.conf")).expect("import");
    let c = config::parse(&imported.toml, Path::new("out.toml")).expect("check");
    assert_eq!(c.instance.keys().collect::<Vec<_>>(), ["VI_A", "VI_B"]);
    let shown: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
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
}

#[test]
fn include_loops_and_unreadable_files_are_errors() {
    let dir = temp_dir();
    std::fs::write(dir.join("loop.conf"), "include loop.conf\n").expect("write");
    let e = import_file(&dir.join("loop.conf")).expect_err("loop");
    assert!(e.to_string().contains("nested deeper"), "{e}");
    let e = import_file(&dir.join("absent.conf")).expect_err("absent");
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
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
        let _ = import_str(
            &String::from_utf8_lossy(&bytes),
            Path::new("/nonexistent/k.conf"),
        );
    }
    let alphabet = b"{}\"!#\n \tab_12.:/virtual_server real_server vrrp_instance include *";
    for _ in 0..2000 {
        let len = (next() % 120) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()] as char)
            .collect();
        if let Ok(imported) = import_str(&text, Path::new("/nonexistent/k.conf")) {
            let _ = config::parse(&imported.toml, Path::new("out.toml"));
        }
    }
    for cut in 0..FULL.len() {
        if let Ok(imported) = import_str(&FULL[..cut], Path::new("k.conf")) {
            let _ = config::parse(&imported.toml, Path::new("out.toml"));
        }
    }
}
