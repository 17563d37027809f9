//! Loader tests: defaults, every error class (with file, line and key),
//! the effective configuration round trip, conversions, and garbage input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp_core::{Auth, Centisecs, InitialState, Priority, TrackId, Version, Vrid};

use super::*;

const FILE: &str = "test.toml";

fn ok(text: &str) -> Config {
    match parse(text, Path::new(FILE)) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new(FILE)) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// Exactly one error; checks its line, key and message.
fn one_error(text: &str, line: usize, key: &str, needle: &str) -> ConfigError {
    let e = errs(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    let e = e.into_iter().next().expect("one");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{FILE}:{line}:")),
        "wrong file/line in `{shown}`"
    );
    assert!(
        shown.contains(&format!("key `{key}`")),
        "wrong key in `{shown}`"
    );
    assert!(shown.contains(needle), "`{needle}` not in `{shown}`");
    e
}

const MINIMAL: &str = "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 42\n";

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh directory (mode 0755, root-owned when tests run as root).
fn temp_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("vrrpd-config-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn script_file(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn keepalived_defaults_are_filled_in() {
    let c = ok(MINIMAL);
    let g = &c.global;
    assert_eq!(g.vrrp_version, 2);
    assert!(g.enable_script_security);
    assert_eq!(g.notify_timeout, Dur::secs(30));
    let i = &c.instance["VI_1"];
    assert_eq!(i.priority, Priority::DEFAULT);
    assert_eq!(i.advert_int, Dur::secs(1));
    assert_eq!(i.version, Some(2));
    assert_eq!(i.state, StartState::Backup);
    assert!(!i.nopreempt);
    assert_eq!(i.garp_master_delay, Some(Dur::secs(5)));
    assert_eq!(i.garp_master_repeat, Some(5));

    let (driver, tracking) = c.driver_config();
    assert!(tracking.scripts.is_empty());
    let spec = &driver.instances[0];
    assert_eq!(spec.name, "VI_1");
    assert_eq!(spec.interface, "eth0");
    let ic = &spec.config;
    assert_eq!(ic.vrid, Vrid::new(42).expect("vrid"));
    assert_eq!(ic.version, Version::V2);
    assert_eq!(ic.priority, Priority::DEFAULT);
    assert_eq!(ic.advert_interval, Centisecs::ONE_SECOND);
    assert!(ic.preempt);
    assert_eq!(ic.garp.master_repeat, 5);
    assert_eq!(ic.garp.master_delay, Duration::from_secs(5));
    assert_eq!(ic.garp.master_refresh, None);
    assert_eq!(ic.initial_state, InitialState::Backup);
    assert_eq!(ic.auth, Auth::None);
    assert!(ic.primary_address.is_unspecified());
    assert!(ic.validate().is_ok());
}

#[test]
fn global_defaults_flow_into_instances_and_instances_override() {
    let c = ok(&format!(
        "[global]\nvrrp_version = 3\nvrrp_garp_master_repeat = 2\nvrrp_lower_prio_no_advert = true\n\
         {MINIMAL}garp_master_repeat = 7\nadvert_int = \"150ms\"\n\
         [instance.V6]\ninterface = \"eth0\"\nvirtual_router_id = 42\nversion = 3\nvirtual_ipaddress = [\"2001:db8::1/64\"]\n"
    ));
    let (driver, _) = c.driver_config();
    let v1 = &driver
        .instances
        .iter()
        .find(|i| i.name == "VI_1")
        .expect("VI_1")
        .config;
    assert_eq!(v1.version, Version::V3);
    assert_eq!(v1.garp.master_repeat, 7);
    assert!(v1.lower_prio_no_advert);
    assert_eq!(v1.advert_interval, Centisecs::new(15));
    let v6 = &driver
        .instances
        .iter()
        .find(|i| i.name == "V6")
        .expect("V6")
        .config;
    assert_eq!(v6.garp.master_repeat, 2);
    assert!(v6.primary_address.is_ipv6());
    assert!(v6.validate().is_ok());
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = one_error(
        &format!("{MINIMAL}prioriti = 5\n"),
        4,
        "instance.VI_1.prioriti",
        "unknown field",
    );
    assert!(matches!(e.kind, ErrorKind::UnknownKey(_)));
    one_error(
        "[global]\nrouterid = \"x\"\n",
        2,
        "global.routerid",
        "unknown field",
    );
    one_error("[instances.X]\na = 1\n", 1, "instances", "unknown section");
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.1\"\nport = 80\n[[virtual_server.real_server]]\nip = \"192.0.2.2\"\nwieght = 3\n",
        6,
        "virtual_server[0].real_server[0].wieght",
        "unknown field",
    );
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = one_error(
        &format!("{MINIMAL}priority = \"high\"\n"),
        4,
        "instance.VI_1.priority",
        "invalid type",
    );
    assert!(matches!(e.kind, ErrorKind::Invalid(_)));
    one_error(
        &format!("{MINIMAL}nopreempt = 1\n"),
        4,
        "instance.VI_1.nopreempt",
        "invalid type",
    );
    one_error(
        &format!("{MINIMAL}advert_int = \"fast\"\n"),
        4,
        "instance.VI_1.advert_int",
        "invalid duration",
    );
    one_error(
        &format!("{MINIMAL}virtual_ipaddress = [\"192.0.2.1/33\"]\n"),
        4,
        "instance.VI_1.virtual_ipaddress[0]",
        "prefix length",
    );
}

#[test]
fn vrid_out_of_range() {
    for bad in ["0", "256", "-1"] {
        let text = format!("[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = {bad}\n");
        one_error(
            &text,
            3,
            "instance.VI_1.virtual_router_id",
            "out of 1..=255",
        );
    }
    ok("[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 255\n");
}

#[test]
fn priority_out_of_range() {
    for bad in ["0", "256"] {
        one_error(
            &format!("{MINIMAL}priority = {bad}\n"),
            4,
            "instance.VI_1.priority",
            "out of 1..=255",
        );
    }
    ok(&format!("{MINIMAL}priority = 255\n"));
}

#[test]
fn interval_the_version_cannot_carry() {
    let e = one_error(
        &format!("{MINIMAL}advert_int = \"1500ms\"\n"),
        4,
        "instance.VI_1.advert_int",
        "VRRPv2",
    );
    assert_eq!(
        e.kind,
        ErrorKind::Interval {
            interval: "1500ms".into(),
            version: 2
        }
    );
    one_error(
        &format!("{MINIMAL}advert_int = 256\n"),
        4,
        "instance.VI_1.advert_int",
        "whole seconds",
    );
    one_error(
        &format!("{MINIMAL}advert_int = \"0s\"\n"),
        4,
        "instance.VI_1.advert_int",
        "VRRPv2",
    );
    one_error(
        &format!("{MINIMAL}version = 3\nadvert_int = \"15ms\"\n"),
        5,
        "instance.VI_1.advert_int",
        "steps of 10ms",
    );
    one_error(
        &format!("{MINIMAL}version = 3\nadvert_int = \"41s\"\n"),
        5,
        "instance.VI_1.advert_int",
        "VRRPv3",
    );
    ok(&format!("{MINIMAL}version = 3\nadvert_int = \"40.95s\"\n"));
    ok(&format!("{MINIMAL}version = 3\nadvert_int = \"10ms\"\n"));
    ok(&format!("{MINIMAL}advert_int = 255\n"));
}

#[test]
fn duplicate_vrid_on_one_interface_and_family() {
    let text = "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
                [instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 7\n";
    let e = one_error(
        text,
        6,
        "instance.B.virtual_router_id",
        "also used by instance `A`",
    );
    assert!(matches!(e.kind, ErrorKind::DuplicateVrid { vrid: 7, .. }));
    // Another interface, or the other family, is another virtual router.
    ok(
        "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
        [instance.B]\ninterface = \"eth1\"\nvirtual_router_id = 7\n",
    );
    ok(
        "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
        [instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 7\nversion = 3\nvirtual_ipaddress = [\"2001:db8::7\"]\n",
    );
}

#[test]
fn mixed_families_and_v2_over_ipv6() {
    let e = one_error(
        &format!("{MINIMAL}virtual_ipaddress = [\"192.0.2.1/24\", \"2001:db8::1\"]\n"),
        4,
        "instance.VI_1.virtual_ipaddress[1]",
        "not IPv4",
    );
    assert!(matches!(e.kind, ErrorKind::MixedFamily { .. }));
    one_error(
        &format!(
            "{MINIMAL}virtual_ipaddress = [\"192.0.2.1/24\"]\nunicast_peer = [\"2001:db8::2\"]\n"
        ),
        5,
        "instance.VI_1.unicast_peer[0]",
        "not IPv4",
    );
    one_error(
        &format!("{MINIMAL}virtual_ipaddress = [\"2001:db8::1\"]\n"),
        4,
        "instance.VI_1.virtual_ipaddress",
        "VRRPv2 cannot carry IPv6",
    );
}

#[test]
fn passwords_longer_than_eight_bytes_are_refused() {
    let e = one_error(
        &format!(
            "{MINIMAL}authentication = {{ auth_type = \"PASS\", auth_pass = \"123456789\" }}\n"
        ),
        4,
        "instance.VI_1.authentication.auth_pass",
        "at most 8",
    );
    assert_eq!(e.kind, ErrorKind::PasswordTooLong(9));
    let c = ok(&format!(
        "{MINIMAL}authentication = {{ auth_pass = \"12345678\" }}\n"
    ));
    let (d, _) = c.driver_config();
    assert_eq!(
        d.instances[0].config.auth,
        Auth::password(b"12345678").expect("8 bytes")
    );
    one_error(
        &format!("{MINIMAL}authentication = {{ auth_type = \"AH\", auth_pass = \"x\" }}\n"),
        4,
        "instance.VI_1.authentication.auth_type",
        "only PASS",
    );
    one_error(
        &format!("{MINIMAL}version = 3\nauthentication = {{ auth_pass = \"x\" }}\n"),
        5,
        "instance.VI_1.authentication",
        "only in VRRPv2",
    );
}

#[test]
fn undefined_script_and_instance_references() {
    let e = one_error(
        &format!("{MINIMAL}track_script = [\"chk_missing\"]\n"),
        4,
        "instance.VI_1.track_script[0]",
        "script `chk_missing` is not defined",
    );
    assert_eq!(e.kind, ErrorKind::UndefinedScript("chk_missing".into()));
    let e = one_error(
        &format!("{MINIMAL}[sync_group.G]\ngroup = [\"VI_1\", \"VI_9\"]\n"),
        5,
        "sync_group.G.group[1]",
        "instance `VI_9` is not defined",
    );
    assert_eq!(e.kind, ErrorKind::UndefinedInstance("VI_9".into()));
    one_error(
        &format!(
            "{MINIMAL}[sync_group.G]\ngroup = [\"VI_1\"]\n[sync_group.H]\ngroup = [\"VI_1\"]\n"
        ),
        7,
        "sync_group.H.group[0]",
        "already a member of sync group `G`",
    );
}

#[test]
fn missing_and_non_executable_scripts() {
    let dir = temp_dir();
    let missing = dir.join("nope.sh");
    let e = one_error(
        &format!("[script.chk]\ncommand = \"{} --fast\"\n", missing.display()),
        2,
        "script.chk.command",
        "does not exist",
    );
    assert_eq!(e.kind, ErrorKind::ScriptMissing(missing));
    let plain = script_file(&dir, "plain.sh", 0o644);
    one_error(
        &format!("[script.chk]\ncommand = [\"{}\"]\n", plain.display()),
        2,
        "script.chk.command",
        "not an executable file",
    );
    one_error(
        &format!("{MINIMAL}notify_master = \"{}\"\n", dir.display()),
        4,
        "instance.VI_1.notify_master",
        "not an executable file",
    );
    let good = script_file(&dir, "good.sh", 0o755);
    ok(&format!(
        "[script.chk]\ncommand = \"{} arg\"\n",
        good.display()
    ));
    // A bare name is looked up in PATH when it runs.
    ok("[script.chk]\ncommand = \"pidof nginx\"\n");
}

#[test]
fn insecure_scripts_are_refused_unless_allowed() {
    let dir = temp_dir();
    let writable = script_file(&dir, "ww.sh", 0o757);
    let text = format!("[script.chk]\ncommand = \"{}\"\n", writable.display());
    let e = one_error(&text, 2, "script.chk.command", "writable by everyone");
    assert!(matches!(e.kind, ErrorKind::ScriptInsecure { .. }));
    ok(&format!("[global]\nallow_insecure_scripts = true\n{text}"));
    ok(&format!("[global]\nenable_script_security = false\n{text}"));

    let open_dir = dir.join("open");
    std::fs::create_dir(&open_dir).expect("mkdir");
    let inside = script_file(&open_dir, "in.sh", 0o755);
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    one_error(
        &format!("[script.chk]\ncommand = \"{}\"\n", inside.display()),
        2,
        "script.chk.command",
        "its directory",
    );
    if running_as_root() {
        let owned = script_file(&dir, "owned.sh", 0o755);
        std::os::unix::fs::chown(&owned, Some(65534), None).expect("chown");
        one_error(
            &format!("[script.chk]\ncommand = \"{}\"\n", owned.display()),
            2,
            "script.chk.command",
            "owned by uid 65534",
        );
    }
}

#[test]
fn unknown_users_are_reported() {
    one_error(
        "[global]\nscript_user = \"no-such-user-vrrpd\"\n",
        2,
        "global.script_user",
        "unknown user",
    );
    one_error(
        "[script.chk]\ncommand = { command = \"true\", user = \"no-such-user-vrrpd\" }\n",
        2,
        "script.chk.command.user",
        "unknown user",
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "[global]\nbogus = 1\n\
                [instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 300\n\
                [instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 5\ntrack_script = [\"x\"]\n\
                [instance.C]\ninterface = \"eth0\"\nvirtual_router_id = 5\n";
    let e = errs(text);
    let keys: Vec<String> = e.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "global.bogus",
            "instance.A.virtual_router_id",
            "instance.B.track_script[0]",
            "instance.C.virtual_router_id"
        ],
        "{e:#?}"
    );
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 5, 9, 12]);
}

#[test]
fn references_to_broken_sections_are_not_reported_twice() {
    let e = errs(
        "[script.chk]\ncommand = 5\n[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 1\ntrack_script = [\"chk\"]\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].key.to_string(), "script.chk.command");
}

#[test]
fn syntax_errors_name_line_and_key() {
    one_error(
        "[global]\nrouter_id = \n",
        2,
        "global.router_id",
        "TOML syntax",
    );
    one_error(
        "[instance.A\ninterface = \"x\"\n",
        1,
        "instance.A",
        "TOML syntax",
    );
}

#[test]
fn io_errors_name_the_file() {
    let e = load(Path::new("/nonexistent/vrrpd.toml")).expect_err("missing");
    assert!(
        e.to_string().starts_with("/nonexistent/vrrpd.toml:0:0:"),
        "{e}"
    );
}

#[test]
fn effective_configuration_loads_back_identical() {
    let text = include_str!("../../../examples/mysql_lvs.toml");
    let c = ok(text);
    let printed = c.to_toml();
    let again = ok(&printed);
    assert_eq!(c, again);
    assert_eq!(printed, again.to_toml());
    for text in [
        include_str!("../../../examples/haproxy_weight.toml"),
        include_str!("../../../examples/sync_group.toml"),
        include_str!("../../../examples/nginx_pair_a.toml"),
    ] {
        let c = ok(text);
        assert_eq!(c, ok(&c.to_toml()));
    }
}

/// Found by fuzz/fuzz_targets/toml_config.rs: a label with a space was
/// accepted in table form and printed as `ADDR dev eth0 label e }}:vip`,
/// which does not load back.
#[test]
fn virtual_address_names_are_kernel_names() {
    let vip = |v: &str| format!("{MINIMAL}virtual_ipaddress = [{v}]\n");
    let key = "instance.VI_1.virtual_ipaddress[0]";
    one_error(
        &vip(r#"{ address = "192.0.2.1/24", dev = "eth0", label = "e }}:vip" }"#),
        4,
        key,
        "label `e }}:vip` must be 1 to 15 bytes",
    );
    one_error(
        &vip(r#"{ address = "192.0.2.1/24", dev = "" }"#),
        4,
        key,
        "dev `` must be 1 to 15 bytes",
    );
    one_error(
        &vip(r#""192.0.2.1/24 dev eth0 label eth0:sixteen-bytes""#),
        4,
        key,
        "label `eth0:sixteen-bytes` must be 1 to 15 bytes",
    );
    let c = ok(&vip(
        r#"{ address = "192.0.2.1/24", dev = "eth0", label = "eth0:vip" }"#,
    ));
    assert_eq!(c, ok(&c.to_toml()));
}

#[test]
fn tracked_scripts_and_files_map_to_stable_ids() {
    let text = "[script.chk_a]\ncommand = \"true\"\nweight = -20\n\
                [script.chk_b]\ncommand = \"true\"\nweight = 5\ninit_fail = true\n\
                [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
                track_script = [\"chk_a\", { name = \"chk_b\", weight = 7, reverse = true }]\n\
                track_file = [{ path = \"/run/vrrp/down\", weight = -50 }]\n\
                track_interface = [\"eth1\", { name = \"eth2\", weight = -10 }]\n";
    let c = ok(text);
    let (driver, tracking) = c.driver_config();
    let spec = &driver.instances[0];
    let a = tracking.scripts["chk_a"];
    let b = tracking.scripts["chk_b"];
    let f = tracking.files["/run/vrrp/down"];
    assert_eq!(tracking.get(a), Some(Tracked::Script("chk_a".into())));
    assert_eq!(
        tracking.get(f),
        Some(Tracked::File("/run/vrrp/down".into()))
    );
    assert!(a.0 < vrrp_net::driver::INTERFACE_TRACK_BASE);
    assert_eq!(spec.tracks.len(), 3);
    let find = |id: TrackId| {
        spec.tracks
            .iter()
            .find(|t| t.0 == id)
            .copied()
            .expect("tracked")
    };
    assert_eq!(find(a).1.weight, -20);
    assert!(find(a).2, "scripts start up");
    assert_eq!(find(b).1.weight, 7);
    assert!(find(b).1.reverse);
    assert!(!find(b).2, "init_fail starts down");
    assert_eq!(find(f).1.weight, -50);
    assert_eq!(spec.track_interfaces.len(), 2);
    assert_eq!(spec.track_interfaces[1].1.weight, -10);

    // Adding a script keeps the others' ids, so unchanged instances stay equal.
    let more = ok(&format!("[script.aaa]\ncommand = \"true\"\n{text}"));
    let (driver2, tracking2) = more.driver_config();
    assert_eq!(tracking2.scripts["chk_a"], a);
    assert_eq!(driver2.instances[0], driver.instances[0]);
}

#[test]
fn sync_groups_reach_the_driver() {
    let c = ok(include_str!("../../../examples/sync_group.toml"));
    let (d, _) = c.driver_config();
    assert_eq!(
        d.sync_groups,
        vec![vec!["VI_OUTSIDE".to_owned(), "VI_INSIDE".to_owned()]]
    );
    let plan = c.plan().expect("plan");
    assert_eq!(plan.groups[0].name, "G_ROUTER");
    let generic = plan.groups[0].notify.generic.as_ref().expect("notify");
    assert_eq!(generic.argv, ["logger", "-t", "vrrpd-sync"]);
}

#[test]
fn mysql_example_maps_to_ipvs_and_checks() {
    let c = ok(include_str!("../../../examples/mysql_lvs.toml"));
    let vs = c.virtual_servers();
    assert_eq!(vs.len(), 1);
    let v = &vs[0];
    assert_eq!(
        v.service.key,
        lvs::ServiceKey::tcp("192.0.2.50:3306".parse().expect("addr"))
    );
    assert_eq!(v.service.scheduler, lvs::Scheduler::WRR);
    assert_eq!(
        v.service.persistence.map(|p| p.timeout),
        Some(Duration::from_secs(50))
    );
    assert_eq!(v.real_servers.len(), 2);
    assert_eq!(
        v.real_servers[0].destination.forward,
        lvs::ForwardMethod::Route
    );
    assert_eq!(v.real_servers[0].destination.weight, 3);
    assert!(!v.real_servers[0].inhibit_on_failure);
    assert!(v.real_servers[1].inhibit_on_failure);
    assert_eq!(
        v.sorry_server.map(|d| d.addr),
        Some("198.51.100.99:3306".parse().expect("addr"))
    );
    assert!(lvs::LoadBalancer::new(vs.clone()).is_ok());

    let checks = c.real_server_checks();
    assert_eq!(checks.len(), 4);
    let tcp = &checks[0].spec;
    assert!(matches!(tcp.probe, healthcheck::Probe::Tcp(_)));
    assert_eq!(tcp.timing.retry, 3);
    assert_eq!(tcp.timing.delay_loop, Duration::from_secs(6));
    assert_eq!(tcp.timing.timeout, Duration::from_secs(3));
    assert!(tcp.timing.validate().is_ok());
    match &checks[1].spec.probe {
        healthcheck::Probe::Script(s) => {
            assert_eq!(s.program, Path::new("mysqladmin"));
            assert_eq!(s.args.last().map(String::as_str), Some("ping"));
        }
        other => panic!("expected a script check, got {other:?}"),
    }
    let plan = c.plan().expect("plan");
    assert_eq!(plan.virtual_servers[0].real_servers[1].checks.len(), 2);
}

#[test]
fn http_checks_carry_urls_digests_and_status() {
    let c = ok(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 443\nvirtualhost = \"www.example.com\"\n\
                [[virtual_server.real_server]]\nip = \"198.51.100.5\"\n\
                [[virtual_server.real_server.ssl_get]]\nsni = \"www.example.com\"\n\
                url = [{ path = \"/a\", digest = \"9b3a0c85a887a256d6939da88aabd8cd\" }, { path = \"/b\", status_code = \"200-299 301\" }]\n",
    );
    let checks = c.real_server_checks();
    assert_eq!(checks.len(), 2);
    let healthcheck::Probe::Http(a) = &checks[0].spec.probe else {
        panic!("http")
    };
    assert_eq!(a.target, "198.51.100.5:443".parse().expect("addr"));
    assert_eq!(a.virtual_host.as_deref(), Some("www.example.com"));
    assert!(a.digest.is_some());
    assert!(a.tls.is_some());
    let healthcheck::Probe::Http(b) = &checks[1].spec.probe else {
        panic!("http")
    };
    assert!(b.status.contains(301) && !b.status.contains(300));
    let e = errs(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\n[[virtual_server.real_server]]\nip = \"198.51.100.5\"\n\
                  http_get = { url = [{ path = \"/\", digest = \"xyz\" }] }\n",
    );
    assert!(
        e[0].to_string()
            .contains("virtual_server[0].real_server[0].http_get[0].url[0].digest"),
        "{}",
        e[0]
    );
}

#[test]
fn virtual_server_errors() {
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\n",
        2,
        "virtual_server[0].ip",
        "needs `port`",
    );
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\nlb_algo = \"bogus-scheduler-name\"\n",
        4,
        "virtual_server[0].lb_algo",
        "not a scheduler",
    );
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\n[[virtual_server.real_server]]\nip = \"2001:db8::5\"\n",
        5,
        "virtual_server[0].real_server[0].ip",
        "address family",
    );
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\n[[virtual_server.real_server]]\nip = \"198.51.100.1\"\n[[virtual_server.real_server]]\nip = \"198.51.100.1\"\n",
        6,
        "virtual_server[0].real_server[1]",
        "is also real_server[0]",
    );
    let c = ok(
        "[[virtual_server]]\nfwmark = 5\nlb_kind = \"DR\"\npersistence_granularity = \"255.255.255.0\"\npersistence_timeout = 300\n[[virtual_server.real_server]]\nip = \"198.51.100.1\"\n",
    );
    let vs = c.virtual_servers();
    assert_eq!(
        vs[0].service.key,
        lvs::ServiceKey::fwmark(lvs::AddressFamily::Ipv4, 5)
    );
    assert_eq!(
        vs[0].service.persistence.and_then(|p| p.prefix_len),
        Some(24)
    );
}

#[test]
fn plan_carries_scripts_notify_and_http() {
    let c = ok("[global]\nhttp = { listen = \"127.0.0.1:9191\" }\n\
                [script.chk]\ncommand = { command = \"test -f /etc/hostname && true\", shell = true }\ninterval = \"3s\"\nfall = 2\n\
                [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\ntrack_script = [\"chk\"]\n\
                notify = \"logger -t vrrpd\"\nnotify_master = [\"logger\", \"master\"]\n");
    let plan = c.plan().expect("plan");
    assert_eq!(plan.http, Some("127.0.0.1:9191".parse().expect("addr")));
    let s = &plan.scripts[0];
    assert_eq!(s.name, "chk");
    assert!(s.command.shell);
    assert_eq!(s.command.argv, ["test -f /etc/hostname && true"]);
    assert_eq!(s.interval, Duration::from_secs(3));
    assert_eq!(
        s.timeout,
        Duration::from_secs(3),
        "timeout defaults to the interval"
    );
    assert_eq!(s.fall, 2);
    let (name, notify) = &plan.notify[0];
    assert_eq!(name, "VI_1");
    assert_eq!(
        notify.generic.as_ref().map(|c| c.argv.clone()),
        Some(vec!["logger".into(), "-t".into(), "vrrpd".into()])
    );
    assert!(notify.master.is_some() && notify.backup.is_none());
    if running_as_root() {
        let c = ok("[global]\nscript_user = \"root\"\n[script.chk]\ncommand = \"true\"\n");
        assert_eq!(c.plan().expect("plan").scripts[0].command.uid, Some(0));
    }
}

/// A small deterministic generator for the garbage tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn garbage_and_truncated_input_is_an_error_not_a_panic() {
    let mut rng = Lcg(7);
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text, Path::new(FILE));
    }
    let alphabet = b"[]{}=\"'.,#\n abc_1234567890-:/";
    for _ in 0..2000 {
        let len = (rng.next() % 80) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(rng.next() as usize) % alphabet.len()] as char)
            .collect();
        let _ = parse(&text, Path::new(FILE));
    }
    for text in [
        include_str!("../../../examples/mysql_lvs.toml"),
        include_str!("../../../examples/haproxy_weight.toml"),
    ] {
        for cut in 0..text.len() {
            if text.is_char_boundary(cut) {
                let _ = parse(&text[..cut], Path::new(FILE));
            }
        }
    }
}
