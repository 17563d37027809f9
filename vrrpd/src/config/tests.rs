//! Pipeline tests: keepalived's defaults and rules, every error class
//! (with file, line and key), the effective configuration round trip, the
//! plan the daemon runs, and garbage input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp_core::{Auth, Centisecs, InitialState, Priority, TrackId, Version, Vrid};

use super::*;
use crate::plan::plan;
use crate::run::plan::Plan;

const FILE: &str = "test.toml";

fn ok(text: &str) -> Effective {
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
/// A VRRPv3 instance (which keepalived requires to have an address).
const V3: &str = "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 42\nversion = 3\nvirtual_ipaddress = [\"192.0.2.42\"]\n";

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

fn planned(text: &str) -> Plan {
    plan(&ok(text))
}

fn spec<'a>(p: &'a Plan, name: &str) -> &'a vrrp_net::driver::InstanceSpec {
    p.driver
        .instances
        .iter()
        .find(|i| i.name == name)
        .expect("instance")
}

#[test]
fn keepalived_defaults_are_filled_in() {
    let c = ok(MINIMAL);
    let g = &c.global;
    assert_eq!(g.vrrp_version, Version::V2);
    assert!(g.enable_script_security);
    assert_eq!(g.notify_timeout, Duration::from_secs(30));
    let i = &c.instances["VI_1"];
    assert_eq!(i.priority, Priority::DEFAULT);
    assert_eq!(i.advert_int, Centisecs::ONE_SECOND);
    assert_eq!(i.version, Version::V2);
    assert_eq!(i.state, StartState::Backup);
    assert!(!i.nopreempt);
    assert_eq!(i.garp.master_delay, Duration::from_secs(5));
    assert_eq!(i.garp.master_repeat, 5);

    let p = planned(MINIMAL);
    assert!(p.scripts.is_empty());
    let spec = &p.driver.instances[0];
    assert_eq!(spec.name, "VI_1");
    assert_eq!(spec.interface, "eth0");
    let ic = &spec.config;
    assert_eq!(ic.vrid, Vrid::new(42).expect("vrid"));
    assert_eq!(ic.version, Version::V2);
    assert_eq!(ic.priority, Priority::DEFAULT);
    assert_eq!(ic.advert_interval, Centisecs::ONE_SECOND);
    assert!(ic.preempt);
    assert_eq!(ic.garp.master_refresh, None);
    assert_eq!(ic.initial_state, InitialState::Backup);
    assert_eq!(ic.auth, Auth::None);
    assert!(ic.primary_address.is_unspecified());
    assert!(ic.validate().is_ok());
}

#[test]
fn global_defaults_flow_into_instances_and_instances_override() {
    let p = planned(&format!(
        "[global]\nvrrp_version = 3\nvrrp_garp_master_repeat = 2\nvrrp_lower_prio_no_advert = true\n\
         {MINIMAL}garp_master_repeat = 7\nadvert_int = \"150ms\"\nvirtual_ipaddress = [\"192.0.2.42\"]\n\
         [instance.V6]\ninterface = \"eth0\"\nvirtual_router_id = 42\nvirtual_ipaddress = [\"2001:db8::1/64\"]\n"
    ));
    let v1 = &spec(&p, "VI_1").config;
    assert_eq!(v1.version, Version::V3);
    assert_eq!(v1.garp.master_repeat, 7);
    assert!(v1.lower_prio_no_advert);
    assert_eq!(v1.advert_interval, Centisecs::new(15));
    let v6 = &spec(&p, "V6").config;
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
fn vrid_and_priority_out_of_range() {
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
    for bad in ["0", "256"] {
        one_error(
            &format!("{MINIMAL}priority = {bad}\n"),
            4,
            "instance.VI_1.priority",
            "out of 1..=255",
        );
    }
    ok(&format!("{MINIMAL}priority = 255\n"));
    one_error(
        "[instance.VI_1]\ninterface = \"eth0\"\n",
        1,
        "instance.VI_1",
        "`virtual_router_id` is required",
    );
}

#[test]
fn interval_the_version_cannot_carry_is_vrrp_core_s_rule() {
    let e = one_error(
        &format!("{MINIMAL}advert_int = \"1500ms\"\n"),
        4,
        "instance.VI_1.advert_int",
        "cannot be carried by VRRPv2",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::Core(vrrp_core::ConfigError::Interval { .. })
    ));
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
        &format!("{V3}advert_int = \"15ms\"\n"),
        6,
        "instance.VI_1.advert_int",
        "centiseconds",
    );
    one_error(
        &format!("{V3}advert_int = \"41s\"\n"),
        6,
        "instance.VI_1.advert_int",
        "VRRPv3",
    );
    ok(&format!("{V3}advert_int = \"40.95s\"\n"));
    ok(&format!("{V3}advert_int = \"10ms\"\n"));
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
    ok(
        "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
        [instance.B]\ninterface = \"eth1\"\nvirtual_router_id = 7\n",
    );
    ok(
        "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\n\
        [instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 7\nvirtual_ipaddress = [\"2001:db8::7\"]\n",
    );
}

#[test]
fn mixed_families_and_ipv6_versions() {
    let e = one_error(
        &format!("{MINIMAL}virtual_ipaddress = [\"192.0.2.1/24\", \"2001:db8::1\"]\n"),
        4,
        "instance.VI_1.virtual_ipaddress[1]",
        "not of the instance's address family",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::Core(vrrp_core::ConfigError::MixedFamily(_))
    ));
    one_error(
        &format!(
            "{MINIMAL}virtual_ipaddress = [\"192.0.2.1/24\"]\nunicast_peer = [\"2001:db8::2\"]\n"
        ),
        5,
        "instance.VI_1.unicast_peer[0]",
        "address family",
    );
    // keepalived: an IPv6 instance without a version is VRRPv3, even
    // with `vrrp_version 2`; an explicit version 2 cannot carry IPv6.
    let c = ok(&format!(
        "[global]\nvrrp_version = 2\n{MINIMAL}virtual_ipaddress = [\"2001:db8::1\"]\nadvert_int = 0.5\n"
    ));
    assert_eq!(c.instances["VI_1"].version, Version::V3);
    one_error(
        &format!("{MINIMAL}version = 2\nvirtual_ipaddress = [\"2001:db8::1\"]\n"),
        4,
        "instance.VI_1.version",
        "VRRPv2 cannot run over IPv6",
    );
}

#[test]
fn authentication_rules() {
    let e = one_error(
        &format!(
            "{MINIMAL}authentication = {{ auth_type = \"PASS\", auth_pass = \"123456789\" }}\n"
        ),
        4,
        "instance.VI_1.authentication.auth_pass",
        "at most 8",
    );
    assert_eq!(e.kind, ErrorKind::PasswordTooLong(9));
    let p = planned(&format!(
        "{MINIMAL}authentication = {{ auth_pass = \"12345678\" }}\n"
    ));
    assert_eq!(
        p.driver.instances[0].config.auth,
        Auth::password(b"12345678").expect("8 bytes")
    );
    one_error(
        &format!("{MINIMAL}authentication = {{ auth_type = \"AH\", auth_pass = \"x\" }}\n"),
        4,
        "instance.VI_1.authentication.auth_type",
        "only PASS",
    );
    one_error(
        &format!("{V3}authentication = {{ auth_pass = \"x\" }}\n"),
        6,
        "instance.VI_1.authentication",
        "only in VRRPv2",
    );
    one_error(
        &format!(
            "[global]\nvrrp_strict = true\n{MINIMAL}virtual_ipaddress = [\"192.0.2.9\"]\nauthentication = {{ auth_pass = \"x\" }}\n"
        ),
        7,
        "instance.VI_1.authentication",
        "keepalived ignores it",
    );
}

#[test]
fn state_master_is_backup_at_start_below_255_and_the_owner_without_priority() {
    let c = ok(&format!("{MINIMAL}state = \"MASTER\"\n"));
    assert_eq!(c.instances["VI_1"].priority, Priority::OWNER);
    let c = ok(&format!("{MINIMAL}state = \"MASTER\"\npriority = 150\n"));
    let i = &c.instances["VI_1"];
    assert_eq!(i.priority, Priority::new(150));
    assert_eq!(i.core_config().initial_state, InitialState::Backup);
    one_error(
        &format!("{MINIMAL}state = \"MASTER\"\npriority = 150\nnopreempt = true\n"),
        6,
        "instance.VI_1.nopreempt",
        "keepalived clears it",
    );
}

#[test]
fn strict_mode_rules() {
    let strict = "[global]\nvrrp_strict = true\n";
    let c = ok(&format!(
        "{strict}{MINIMAL}virtual_ipaddress = [\"192.0.2.9\"]\n"
    ));
    assert!(c.instances["VI_1"].strict);
    assert!(
        c.instances["VI_1"].lower_prio_no_advert,
        "strict mode forces it"
    );
    one_error(
        &format!(
            "{strict}{MINIMAL}virtual_ipaddress = [\"192.0.2.9\"]\nunicast_peer = [\"192.0.2.2\"]\n"
        ),
        7,
        "instance.VI_1.unicast_peer",
        "refuses the whole configuration",
    );
    one_error(
        &format!("{strict}{MINIMAL}virtual_ipaddress = [\"192.0.2.9\"]\npreempt_delay = 5\n"),
        7,
        "instance.VI_1.preempt_delay",
        "strict",
    );
    one_error(
        &format!("{MINIMAL}strict_mode = true\n"),
        1,
        "instance.VI_1.virtual_ipaddress",
        "at least one virtual address",
    );
}

#[test]
fn weights_keepalived_ignores_are_refused() {
    let base = "[script.chk]\ncommand = \"true\"\nweight = -20\n\
                [instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 1\ntrack_script = [\"chk\"]\n\
                [instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 2\n";
    let e = errs(&format!("{base}[sync_group.G]\ngroup = [\"A\", \"B\"]\n"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].key.to_string(), "instance.A.track_script[0]");
    assert!(
        e[0].to_string().contains("sync_group_tracking_weight"),
        "{}",
        e[0]
    );
    ok(&format!(
        "{base}[sync_group.G]\ngroup = [\"A\", \"B\"]\nsync_group_tracking_weight = true\n"
    ));
    // Weight 0 members are fine.
    ok(&format!(
        "{base}[sync_group.G]\ngroup = [\"B\"]\n[instance.C]\ninterface = \"eth0\"\nvirtual_router_id = 3\n\
         track_script = [{{ name = \"chk\", weight = 0 }}]\n"
    ));
    // The address owner reads its track files with weight 0 or not at all.
    one_error(
        "[track_file.maint]\nfile = \"/run/maint\"\n\
         [instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 1\npriority = 255\ntrack_file = [\"maint\"]\n",
        7,
        "instance.A.track_file[0]",
        "priority 255",
    );
}

#[test]
fn undefined_references() {
    let e = one_error(
        &format!("{MINIMAL}track_script = [\"chk_missing\"]\n"),
        4,
        "instance.VI_1.track_script[0]",
        "script `chk_missing` is not defined",
    );
    assert_eq!(e.kind, ErrorKind::UndefinedScript("chk_missing".into()));
    one_error(
        &format!("{MINIMAL}track_file = [\"maint\"]\n"),
        4,
        "instance.VI_1.track_file[0]",
        "track file `maint` is not defined",
    );
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
    let text = format!("[script.chk]\ncommand = \"{} --fast\"\n", missing.display());
    let e = one_error(&text, 2, "script.chk.command", "does not exist");
    assert_eq!(e.kind, ErrorKind::ScriptMissing(missing));
    // Checked for another host, it is a warning.
    let (outcome, errors) = read(&text, Path::new(FILE), Target::OtherHost);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(outcome.warnings.len(), 1);
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
        e.to_string().starts_with("/nonexistent/vrrpd.toml:0: "),
        "{e}"
    );
}

#[test]
fn effective_configuration_loads_back_identical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let c = match load(&path) {
            Ok(c) => c,
            // Examples whose scripts are not on this host are checked by
            // the CLI test; their printing is covered by the others.
            Err(e) if e.0.iter().all(|e| e.kind.depends_on_host()) => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let printed = c.to_toml();
        let again = ok(&printed);
        assert_eq!(c, again, "{}", path.display());
        assert_eq!(printed, again.to_toml());
        n += 1;
    }
    assert!(n >= 8, "{n} examples");
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
    // The same check on a keepalived.conf, placed at its line (keepalived
    // itself removes such an address).
    let conf = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 42\n  \
                virtual_ipaddress {\n    192.0.2.1/24 dev eth0 label eth0:sixteen-bytes\n  }\n}\n";
    let options = crate::import::Options {
        config_id: String::new(),
    };
    let imported =
        crate::import::import_str(conf, Path::new("keepalived.conf"), &options).expect("import");
    let outcome = resolve(
        imported.config.clone(),
        Target::OtherHost,
        &Failed::default(),
        false,
    );
    let [problem] = outcome.errors.as_slice() else {
        panic!("expected one error, got {:#?}", outcome.errors);
    };
    assert_eq!(problem.key.to_string(), key);
    assert!(
        problem
            .kind
            .to_string()
            .contains("label `eth0:sixteen-bytes`")
    );
    assert_eq!(
        imported.locate(&problem.key),
        (PathBuf::from("keepalived.conf"), 5)
    );
}

/// Found by fuzz/fuzz_targets/toml_config.rs (review item P1): `vrrpd
/// check` accepted durations no clock holds, which then failed at run time
/// in the health-check library. Over 365 days is refused at its key, in
/// TOML and in a keepalived.conf alike.
#[test]
fn durations_longer_than_a_year_are_refused_at_their_key() {
    one_error(
        &format!("{MINIMAL}preempt_delay = \"3000000000000000h\"\n"),
        4,
        "instance.VI_1.preempt_delay",
        "longer than 365 days",
    );
    one_error(
        &format!("{MINIMAL}[script.chk]\ncommand = \"true\"\ninterval = 31536001\n"),
        6,
        "script.chk.interval",
        "longer than 365 days",
    );
    let conf = "vrrp_script chk {\n  script \"true\"\n  timeout 31536001\n}\n";
    let options = crate::import::Options {
        config_id: String::new(),
    };
    let imported =
        crate::import::import_str(conf, Path::new("keepalived.conf"), &options).expect("import");
    let outcome = resolve(
        imported.config.clone(),
        Target::OtherHost,
        &Failed::default(),
        false,
    );
    let [problem] = outcome.errors.as_slice() else {
        panic!("expected one error, got {:#?}", outcome.errors);
    };
    assert_eq!(problem.key.to_string(), "script.chk.timeout");
    assert!(problem.kind.to_string().contains("longer than 365 days"));
    assert_eq!(
        imported.locate(&problem.key),
        (PathBuf::from("keepalived.conf"), 3)
    );
}

#[test]
fn tracked_scripts_map_to_stable_ids_with_keepalived_s_start_states() {
    let text = "[script.chk_a]\ncommand = \"true\"\nweight = -20\n\
                [script.chk_b]\ncommand = \"true\"\nweight = 5\ninit_fail = true\n\
                [script.chk_c]\ncommand = \"true\"\n\
                [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
                track_script = [\"chk_a\", { name = \"chk_b\", weight = 7, reverse = true }, \"chk_c\"]\n\
                track_interface = [\"eth1\", { name = \"eth2\", weight = -10 }]\n";
    let p = planned(text);
    let s = spec(&p, "VI_1");
    let id = |name: &str| {
        p.scripts
            .iter()
            .find(|s| s.name == name)
            .expect("script")
            .id
    };
    let find = |tid: TrackId| *s.tracks.iter().find(|t| t.0 == tid).expect("tracked");
    let a = find(id("chk_a"));
    assert_eq!(a.1.weight, -20);
    assert!(
        a.2,
        "an undecided script with a negative weight counts as up"
    );
    // keepalived's `weight 7 reverse` subtracts 7 while the script passes.
    let b = find(id("chk_b"));
    assert_eq!((b.1.weight, b.1.reverse), (-7, true));
    assert!(!b.2, "init_fail starts failed");
    let c = find(id("chk_c"));
    assert_eq!(c.1.weight, 0);
    assert!(
        !c.2,
        "a weight-0 script holds the instance in Fault until it runs"
    );
    assert_eq!(s.track_interfaces.len(), 2);
    assert_eq!(s.track_interfaces[1].1.weight, -10);
    let more = planned(&format!("[script.aaa]\ncommand = \"true\"\n{text}"));
    assert_eq!(spec(&more, "VI_1"), s, "another script changes no instance");
}

#[test]
fn track_files_are_named_or_inline_with_keepalived_s_weights() {
    let p = planned(
        "[track_file.maint]\nfile = \"/run/maint\"\ninit_file = 0\n\
         [instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
         track_file = [\"maint\", { path = \"/run/down\" }]\n",
    );
    assert_eq!(p.files.len(), 2);
    let maint = p
        .files
        .iter()
        .find(|f| f.path == Path::new("/run/maint"))
        .expect("maint");
    assert_eq!(maint.init, Some((0, false)));
    assert_eq!(maint.uses[0].weight, 1, "a named track file's weight is 1");
    let down = p
        .files
        .iter()
        .find(|f| f.path == Path::new("/run/down"))
        .expect("down");
    assert_eq!(down.uses[0].weight, 0, "an inline file's weight is 0");
    assert_eq!(spec(&p, "A").tracks.len(), 2 * 17);
}

#[test]
fn checkers_inherit_and_take_keepalived_s_per_kind_defaults() {
    let c = ok(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\ndelay_loop = 10\nconnect_timeout = 4\n\
         [[virtual_server.real_server]]\nip = \"198.51.100.1\"\nretry = 2\n\
         http_get = {}\ntcp_check = { retry = 5 }\ndns_check = {}\n\
         misc_check = { misc_path = \"true\" }\n\
         [[virtual_server.real_server]]\nip = \"198.51.100.2\"\nhttp_get = {}\ndns_check = {}\n",
    );
    let rs = &c.virtual_servers[0].real_servers;
    let timing = |r: usize, n: usize| rs[r].checks[n].timing;
    let http = timing(0, 1);
    assert_eq!(http.delay_loop, Duration::from_secs(10));
    assert_eq!(http.timeout, Duration::from_secs(4));
    assert_eq!(http.retry, 2, "the real server's retry");
    assert_eq!(
        http.delay_before_retry,
        Duration::from_secs(3),
        "HTTP's 3 s"
    );
    assert_eq!(timing(0, 0).retry, 5, "the check's own");
    let misc = timing(0, 2);
    assert_eq!(
        misc.timeout,
        Duration::from_secs(10),
        "misc_timeout defaults to delay_loop"
    );
    let dns = timing(1, 1);
    assert_eq!(dns.retry, 3, "DNS retries 3 times");
    assert_eq!(
        dns.delay_before_retry,
        Duration::from_secs(10),
        "DNS waits delay_loop"
    );
    assert_eq!(timing(1, 0).retry, 1);
}

#[test]
fn udp_payloads_are_hexadecimal_and_sorry_servers_may_omit_the_port() {
    let c = ok(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 53\nprotocol = \"UDP\"\nsorry_server = \"192.0.2.99\"\n\
         [[virtual_server.real_server]]\nip = \"192.0.2.6\"\n\
         udp_check = { payload = \"0a0b 0c\", require_reply = true, reply = \"0a\" }\n",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.sorry_server,
        Some("192.0.2.99:53".parse().expect("addr"))
    );
    let CheckKind::Udp(u) = &vs.real_servers[0].checks[0].kind else {
        panic!("udp")
    };
    assert_eq!(u.payload, [0x0a, 0x0b, 0x0c]);
    assert_eq!(u.reply.as_deref(), Some(&[0x0a][..]));
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 53\n[[virtual_server.real_server]]\nip = \"192.0.2.6\"\nudp_check = { payload = \"hello\" }\n",
        6,
        "virtual_server[0].real_server[0].udp_check[0].payload",
        "not hexadecimal",
    );
}

#[test]
fn sync_groups_reach_the_driver() {
    let p = planned(include_str!("../../../examples/sync_group.toml"));
    assert_eq!(
        p.driver.sync_groups,
        vec![vec!["VI_OUTSIDE".to_owned(), "VI_INSIDE".to_owned()]]
    );
    assert_eq!(p.groups[0].name, "G_ROUTER");
    let generic = p.groups[0].notify.generic.as_ref().expect("notify");
    assert_eq!(generic.argv, ["logger", "-t", "vrrpd-sync"]);
}

#[test]
fn mysql_example_maps_to_ipvs_and_checks() {
    let p = planned(include_str!("../../../examples/mysql_lvs.toml"));
    assert_eq!(p.virtual_servers.len(), 1);
    let v = &p.virtual_servers[0].server;
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
    assert!(lvs::LoadBalancer::new(vec![v.clone()]).is_ok());
    let checks = &p.virtual_servers[0].real_servers[0].checks;
    assert_eq!(checks.len(), 2);
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
}

#[test]
fn http_checks_carry_urls_digests_and_status() {
    let p = planned(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 443\nvirtualhost = \"www.example.com\"\n\
         [[virtual_server.real_server]]\nip = \"198.51.100.5\"\n\
         [[virtual_server.real_server.ssl_get]]\nsni = \"www.example.com\"\n\
         url = [{ path = \"/a\", digest = \"9b3a0c85a887a256d6939da88aabd8cd\" }, { path = \"/b\", status_code = \"200-299 301\" }]\n",
    );
    let checks = &p.virtual_servers[0].real_servers[0].checks;
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
    let p = planned(
        "[[virtual_server]]\nfwmark = 5\nlb_kind = \"DR\"\npersistence_granularity = \"255.255.255.0\"\npersistence_timeout = 300\n[[virtual_server.real_server]]\nip = \"198.51.100.1\"\n",
    );
    let vs = &p.virtual_servers[0].server;
    assert_eq!(
        vs.service.key,
        lvs::ServiceKey::fwmark(lvs::AddressFamily::Ipv4, 5)
    );
    assert_eq!(vs.service.persistence.and_then(|p| p.prefix_len), Some(24));
}

#[test]
fn plan_carries_scripts_notify_and_http() {
    let p = planned(
        "[global]\nhttp = { listen = \"127.0.0.1:9191\" }\n\
         [script.chk]\ncommand = { command = \"test -f /etc/hostname && true\", shell = true }\ninterval = \"3s\"\nfall = 2\n\
         [instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\ntrack_script = [\"chk\"]\n\
         notify = \"logger -t vrrpd\"\nnotify_master = [\"logger\", \"master\"]\n",
    );
    assert_eq!(p.http, Some("127.0.0.1:9191".parse().expect("addr")));
    let s = &p.scripts[0];
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
    let (name, notify) = &p.notify[0];
    assert_eq!(name, "VI_1");
    assert_eq!(
        notify.generic.as_ref().map(|c| c.argv.clone()),
        Some(vec!["logger".into(), "-t".into(), "vrrpd".into()])
    );
    assert!(notify.master.is_some() && notify.backup.is_none());
    if running_as_root() {
        let p = planned("[global]\nscript_user = \"root\"\n[script.chk]\ncommand = \"true\"\n");
        assert_eq!(p.scripts[0].command.uid, Some(0));
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

#[test]
fn virtual_servers_read_one_at_a_time_keep_their_lines_and_keys() {
    let vs = |n: u8| {
        format!(
            "[[virtual_server]]\nip = \"192.0.2.{n}\"\nport = 80\n\
             [[virtual_server.real_server]]\nip = \"198.51.100.1\"\n\
             [[virtual_server.real_server]]\nip = \"198.51.100.2\"\n"
        )
    };
    // A bad value in the third server's second real server, an unknown
    // key in the second server; a section after the servers is read too.
    let text = format!(
        "[global]\nrouter_id = \"x\"\n{}{}{}port = 0\n",
        vs(1),
        vs(2).replace("port = 80\n", "port = 80\nbogus = 1\n"),
        vs(3)
    );
    let e = errs(&text);
    let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 2, "{shown:#?}");
    assert!(
        shown[0].starts_with("test.toml:13:1: key `virtual_server[1].bogus`"),
        "{shown:#?}"
    );
    assert!(
        shown[1].starts_with("test.toml:25:1: key `virtual_server[2].real_server[1].port`"),
        "{shown:#?}"
    );
    let c = ok(&format!(
        "{}{}[global]\nrouter_id = \"after\"\n",
        vs(1),
        vs(2)
    ));
    assert_eq!(c.virtual_servers.len(), 2);
    assert_eq!(c.global.router_id.as_deref(), Some("after"));
    // An inline array and `[[virtual_server]]` together: toml says no.
    errs(&format!("virtual_server = []\n{}", vs(1)));
}
