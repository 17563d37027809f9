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

/// Scripts as root, asked for explicitly (a `[global]` table may come
/// last in TOML, so appending it moves no line).
const ROOT: &str = "[global]\nscript_user = \"root\"\n";

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
    let base = "[global]\nscript_user = \"root\"\n[script.chk]\ncommand = \"true\"\nweight = -20\n\
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
    let text = format!(
        "[script.chk]\ncommand = \"{} --fast\"\n{ROOT}",
        missing.display()
    );
    let e = one_error(&text, 2, "script.chk.command", "does not exist");
    assert_eq!(e.kind, ErrorKind::ScriptMissing(missing));
    // Checked for another host, it is a warning.
    let (outcome, errors) = read(&text, Path::new(FILE), Target::OtherHost);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(outcome.warnings.len(), 1);
    let plain = script_file(&dir, "plain.sh", 0o644);
    one_error(
        &format!("[script.chk]\ncommand = [\"{}\"]\n{ROOT}", plain.display()),
        2,
        "script.chk.command",
        "not an executable file",
    );
    one_error(
        &format!("{MINIMAL}notify_master = \"{}\"\n{ROOT}", dir.display()),
        4,
        "instance.VI_1.notify_master",
        "not an executable file",
    );
    let good = script_file(&dir, "good.sh", 0o755);
    ok(&format!(
        "[script.chk]\ncommand = \"{} arg\"\n{ROOT}",
        good.display()
    ));
    ok(&format!("[script.chk]\ncommand = \"true nginx\"\n{ROOT}"));
}

#[test]
fn durations_that_could_overflow_the_clock_are_refused_at_their_line_and_key() {
    // keepalived's issue: a duration of 3000000000000000h made the daemon
    // panic at run time; `vrrpd check` refuses it, whatever the key.
    one_error(
        &format!("{MINIMAL}preempt_delay = \"3000000000000000h\"\n"),
        4,
        "instance.VI_1.preempt_delay",
        "longer than a year",
    );
    one_error(
        "[global]\nnotify_timeout = 18446744073709551615\n",
        2,
        "global.notify_timeout",
        "longer than a year",
    );
    one_error(
        "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\ndelay_loop = 1e300\n",
        4,
        "virtual_server[0].delay_loop",
        "longer than a year",
    );
    ok(&format!("{MINIMAL}preempt_delay = \"8760h\"\n"));
}

#[test]
fn scripts_named_without_a_path_are_found_in_path_checked_and_pinned() {
    use resolve::{RunsAs, find_in, find_in_path};
    let dir = temp_dir();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).expect("mkdir");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!("{}:{}", a.display(), b.display());
    // Not executable, or not a file: the search goes on, as keepalived's.
    script_file(&a, "chk", 0o644);
    std::fs::create_dir(a.join("sub")).expect("mkdir");
    let chk = script_file(&b, "chk", 0o755);
    script_file(&b, "sub", 0o755);
    assert_eq!(find_in("chk", &path, RunsAs::ROOT), Ok(chk));
    assert_eq!(find_in("sub", &path, RunsAs::ROOT), Ok(b.join("sub")));
    assert_eq!(find_in("absent", &path, RunsAs::ROOT), Err(path.clone()));
    if running_as_root() {
        // Executable for the user it runs as: a root-only file is passed
        // over for nobody.
        let nobody = RunsAs {
            uid: 65534,
            gid: 65534,
        };
        let mine = script_file(&a, "mine", 0o700);
        let theirs = script_file(&b, "mine", 0o755);
        assert_eq!(find_in("mine", &path, RunsAs::ROOT), Ok(mine));
        assert_eq!(find_in("mine", &path, nobody), Ok(theirs));
    }
    // Through the resolver, with the daemon's own PATH: a name nowhere in
    // it is an error at its line and key; one found runs as the file found.
    let e = one_error(
        &format!("[script.chk]\ncommand = \"vrrpd-no-such-program --fast\"\n{ROOT}"),
        2,
        "script.chk.command",
        "`vrrpd-no-such-program` is not found in PATH",
    );
    assert!(matches!(e.kind, ErrorKind::ScriptNotInPath { uid: 0, .. }));
    let found = find_in_path("true", RunsAs::ROOT).expect("true in PATH");
    let real = std::fs::canonicalize(&found).expect("realpath");
    let p = planned(&format!("[script.chk]\ncommand = \"true --x\"\n{ROOT}"));
    assert_eq!(
        p.scripts[0].command.argv,
        [&real.display().to_string(), "--x"]
    );
    // The configuration as written keeps the name.
    let c = ok(&format!("[script.chk]\ncommand = \"true --x\"\n{ROOT}"));
    assert_eq!(c.scripts["chk"].command.argv, ["true", "--x"]);
    assert_eq!(
        c.scripts["chk"].command.program.as_deref(),
        Some(real.as_path())
    );
    // A shell line: the shell is checked, a builtin first word is not
    // looked up; an absolute first word is checked.
    ok(&format!(
        "[script.chk]\ncommand = {{ command = \"cd / && exit 0\", shell = true }}\n{ROOT}"
    ));
    one_error(
        &format!(
            "[script.chk]\ncommand = {{ command = \"{}/nope && exit 0\", shell = true }}\n{ROOT}",
            dir.display()
        ),
        2,
        "script.chk.command",
        "does not exist",
    );
}

#[test]
fn script_security_follows_keepalived_s_rules() {
    use resolve::{RunsAs, check_script_file};
    if !running_as_root() {
        // Ownership cannot be arranged without root.
        return;
    }
    let dir = temp_dir();
    let nobody = RunsAs {
        uid: 65534,
        gid: 65534,
    };
    let insecure = |r: Result<PathBuf, ErrorKind>, needle: &str| match r {
        Err(ErrorKind::ScriptInsecure { reason, .. }) => {
            assert!(reason.contains(needle), "`{needle}` not in `{reason}`");
        }
        other => panic!("expected insecure ({needle}), got {other:?}"),
    };
    // Writable by everyone: refused when it runs as root or as group 0, or
    // when it is set-uid root; keepalived guards only what runs as root.
    let ww = script_file(&dir, "ww.sh", 0o757);
    insecure(
        check_script_file(&ww, RunsAs::ROOT, true),
        "the file is writable by everyone",
    );
    insecure(
        check_script_file(&ww, RunsAs { uid: 65534, gid: 0 }, true),
        "writable by everyone",
    );
    assert_eq!(check_script_file(&ww, nobody, true), Ok(ww.clone()));
    assert_eq!(check_script_file(&ww, RunsAs::ROOT, false), Ok(ww.clone()));
    let suid = script_file(&dir, "suid.sh", 0o4757);
    insecure(
        check_script_file(&suid, nobody, true),
        "writable by everyone",
    );
    // Group-writable is fine for root's group only.
    let gw = script_file(&dir, "gw.sh", 0o775);
    assert_eq!(check_script_file(&gw, RunsAs::ROOT, true), Ok(gw.clone()));
    std::os::unix::fs::chown(&gw, None, Some(65534)).expect("chown");
    insecure(
        check_script_file(&gw, RunsAs::ROOT, true),
        "writable by group 65534",
    );
    // Executable by the user it runs as, by owner, group or other bits.
    let private = script_file(&dir, "private.sh", 0o700);
    assert_eq!(
        check_script_file(&private, nobody, true),
        Err(ErrorKind::ScriptNotExecutableBy {
            path: private.clone(),
            uid: 65534,
            gid: 65534
        })
    );
    assert_eq!(
        check_script_file(&private, RunsAs::ROOT, true),
        Ok(private.clone())
    );
    let group = script_file(&dir, "group.sh", 0o710);
    std::os::unix::fs::chown(&group, None, Some(65534)).expect("chown");
    assert_eq!(check_script_file(&group, nobody, true), Ok(group.clone()));
    // Links: the real file is checked and run; a link by another name
    // beside it keeps its name (programs may act on it) and is checked too.
    let real = script_file(&dir, "real.sh", 0o755);
    let alias = dir.join("alias");
    std::os::unix::fs::symlink("real.sh", &alias).expect("symlink");
    assert_eq!(
        check_script_file(&alias, RunsAs::ROOT, true),
        Ok(alias.clone())
    );
    let foreign = dir.join("foreign");
    std::os::unix::fs::symlink("real.sh", &foreign).expect("symlink");
    std::os::unix::fs::lchown(&foreign, Some(65534), None).expect("lchown");
    insecure(
        check_script_file(&foreign, RunsAs::ROOT, true),
        "owned by uid 65534",
    );
    // A link in an open directory to a safe file runs the safe file, so
    // the link cannot be swapped later; a link to a file in an open
    // directory is refused.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::symlink(&real, open.join("real.sh")).expect("symlink");
    assert_eq!(
        check_script_file(&open.join("real.sh"), RunsAs::ROOT, true),
        Ok(real.clone())
    );
    let exposed = script_file(&open, "exposed.sh", 0o755);
    std::os::unix::fs::symlink(&exposed, dir.join("exposed.sh")).expect("symlink");
    insecure(
        check_script_file(&dir.join("exposed.sh"), RunsAs::ROOT, true),
        &format!("its directory {} is writable by everyone", open.display()),
    );
    // A sticky open directory (like /tmp) is fine when root owns it.
    let sticky = dir.join("sticky");
    std::fs::create_dir(&sticky).expect("mkdir");
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let in_sticky = script_file(&sticky, "s.sh", 0o755);
    assert_eq!(
        check_script_file(&in_sticky, RunsAs::ROOT, true),
        Ok(in_sticky.clone())
    );
    std::os::unix::fs::chown(&sticky, Some(65534), None).expect("chown");
    insecure(
        check_script_file(&in_sticky, RunsAs::ROOT, true),
        "owned by uid 65534",
    );
}

#[test]
fn scripts_run_as_keepalived_script_when_it_exists_else_as_root_only_when_asked() {
    let text = "[script.chk]\ncommand = \"true\"\n[script.other]\ncommand = \"true\"\n";
    match resolve::lookup_user(resolve::DEFAULT_SCRIPT_USER) {
        Some(ids) => {
            let c = ok(text);
            let user = c.scripts["chk"].command.user.as_ref().expect("user");
            assert_eq!(
                (user.spec.as_str(), user.ids),
                ("keepalived_script", Some(ids))
            );
        }
        None => {
            // Reported once, at the first script.
            let e = one_error(text, 2, "script.chk.command", "scripts would run as root");
            assert_eq!(e.kind, ErrorKind::NoScriptUser);
            // Checked for another host, it is a warning.
            let (outcome, errors) = read(text, Path::new(FILE), Target::OtherHost);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(outcome.warnings.len(), 1);
            // Without script security keepalived runs them as root; so
            // does vrrpd.
            let c = ok(&format!("[global]\nenable_script_security = false\n{text}"));
            assert_eq!(c.scripts["chk"].command.user, None);
            let p = planned(&format!("[global]\nenable_script_security = false\n{text}"));
            assert_eq!(
                (p.scripts[0].command.uid, p.scripts[0].command.gid),
                (None, None)
            );
        }
    }
    // Root when asked; a command's own user over the global one.
    let c = ok(&format!("{text}{ROOT}"));
    assert_eq!(
        c.scripts["chk"].command.user.as_ref().map(|u| u.ids),
        Some(Some((0, Some(0))))
    );
    let c = ok("[global]\nscript_user = \"nobody\"\n\
         [script.chk]\ncommand = { command = \"true\", user = \"root\" }\n\
         [script.other]\ncommand = \"true\"\n");
    let spec = |name: &str| {
        c.scripts[name]
            .command
            .user
            .as_ref()
            .map(|u| u.spec.clone())
    };
    assert_eq!(spec("chk").as_deref(), Some("root"));
    assert_eq!(spec("other").as_deref(), Some("nobody"));
}

#[test]
fn insecure_scripts_are_refused_unless_allowed() {
    let dir = temp_dir();
    let writable = script_file(&dir, "ww.sh", 0o757);
    let text = format!("[script.chk]\ncommand = \"{}\"\n{ROOT}", writable.display());
    let e = one_error(&text, 2, "script.chk.command", "writable by everyone");
    assert!(matches!(e.kind, ErrorKind::ScriptInsecure { .. }));
    ok(&text.replace("[global]\n", "[global]\nallow_insecure_scripts = true\n"));
    ok(&text.replace("[global]\n", "[global]\nenable_script_security = false\n"));
    let open_dir = dir.join("open");
    std::fs::create_dir(&open_dir).expect("mkdir");
    let inside = script_file(&open_dir, "in.sh", 0o755);
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    one_error(
        &format!("[script.chk]\ncommand = \"{}\"\n{ROOT}", inside.display()),
        2,
        "script.chk.command",
        "its directory",
    );
    if running_as_root() {
        let owned = script_file(&dir, "owned.sh", 0o755);
        std::os::unix::fs::chown(&owned, Some(65534), None).expect("chown");
        one_error(
            &format!("[script.chk]\ncommand = \"{}\"\n{ROOT}", owned.display()),
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
        "longer than a year",
    );
    one_error(
        &format!("{MINIMAL}[script.chk]\ncommand = \"true\"\ninterval = 31536001\n"),
        6,
        "script.chk.interval",
        "longer than a year",
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
    assert!(problem.kind.to_string().contains("longer than a year"));
    assert_eq!(
        imported.locate(&problem.key),
        (PathBuf::from("keepalived.conf"), 3)
    );
}

#[test]
fn tracked_scripts_map_to_stable_ids_with_keepalived_s_start_states() {
    let text = "[global]\nscript_user = \"root\"\n[script.chk_a]\ncommand = \"true\"\nweight = -20\n\
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
        "[global]\nscript_user = \"root\"\n[[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\ndelay_loop = 10\nconnect_timeout = 4\n\
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

/// Where this host's PATH finds `logger`.
fn logger_in_path() -> String {
    resolve::find_in_path("logger", resolve::RunsAs::ROOT)
        .expect("logger in PATH")
        .display()
        .to_string()
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
    assert_eq!(generic.argv, [&logger_in_path(), "-t", "vrrpd-sync"]);
}

#[test]
fn mysql_example_maps_to_ipvs_and_checks() {
    // mysqladmin need not be installed where the tests run.
    let (outcome, errors) = read(
        include_str!("../../../examples/mysql_lvs.toml"),
        Path::new(FILE),
        Target::OtherHost,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let p = plan(&outcome.effective);
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
    let tcp = &checks[0];
    assert!(matches!(tcp.probe, healthcheck::Probe::Tcp(_)));
    assert_eq!(tcp.timing.retry, 3);
    assert_eq!(tcp.timing.delay_loop, Duration::from_secs(6));
    assert_eq!(tcp.timing.timeout, Duration::from_secs(3));
    assert!(tcp.timing.validate().is_ok());
    match &checks[1].probe {
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
    let healthcheck::Probe::Http(a) = &checks[0].probe else {
        panic!("http")
    };
    assert_eq!(a.target, "198.51.100.5:443".parse().expect("addr"));
    assert_eq!(a.virtual_host.as_deref(), Some("www.example.com"));
    assert!(a.digest.is_some());
    assert!(a.tls.is_some());
    let healthcheck::Probe::Http(b) = &checks[1].probe else {
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
        "[global]\nscript_user = \"root\"\nhttp = { listen = \"127.0.0.1:9191\" }\n\
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
        Some(vec![logger_in_path(), "-t".into(), "vrrpd".into()]),
        "a program named without a path runs as the file PATH led to when checked"
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

const GROUP: &str =
    "[virtual_server_group]\nweb = [\"192.0.2.10-12 80\", \"192.0.2.20/31 443\", \"fwmark 7\"]\n";

fn plan_keys(p: &Plan) -> Vec<String> {
    p.virtual_servers
        .iter()
        .map(|v| v.server.service.key.to_string())
        .collect()
}

#[test]
fn a_group_stands_for_every_service_keepalived_programs() {
    let text = format!(
        "{GROUP}[[virtual_server]]\ngroup = \"web\"\nlb_kind = \"DR\"\nquorum_up = [\"/bin/true\"]\n\
         [[virtual_server.real_server]]\nip = \"192.0.2.50\"\nport = 8080\ntcp_check = {{}}\n\
         notify_up = [\"/bin/true\"]\n\
         [[virtual_server.real_server]]\nip = \"192.0.2.51\"\nport = 8080\nlb_kind = \"NAT\"\n"
    );
    let c = ok(&format!("{text}{ROOT}"));
    let g = c.virtual_servers[0].group.as_ref().expect("group");
    assert_eq!((g.name.as_str(), g.member), ("web", 0));
    assert_eq!(g.services.len(), 6);
    let p = plan(&c);
    assert_eq!(
        plan_keys(&p),
        [
            "tcp/192.0.2.10:80",
            "tcp/192.0.2.11:80",
            "tcp/192.0.2.12:80",
            "tcp/192.0.2.20:443",
            "tcp/192.0.2.21:443",
            "fwmark/7"
        ]
    );
    // DR real servers take each service's port (0 for a mark), NAT ones
    // keep theirs, as keepalived programs them.
    let ports = |i: usize| -> Vec<u16> {
        p.virtual_servers[i]
            .server
            .real_servers
            .iter()
            .map(|r| r.destination.addr.port())
            .collect()
    };
    assert_eq!(ports(0), [80, 8080]);
    assert_eq!(ports(3), [443, 8080]);
    assert_eq!(ports(5), [0, 8080]);
    // One set of scripts: on the first service only. The checks are on
    // each (identical, so the runner runs them once) and probe the real
    // server's own port.
    assert!(p.virtual_servers[0].quorum_up.is_some());
    assert!(p.virtual_servers[1..].iter().all(|v| v.quorum_up.is_none()));
    assert!(p.virtual_servers[0].real_servers[0].notify_up.is_some());
    assert!(p.virtual_servers[4].real_servers[0].notify_up.is_none());
    for v in &p.virtual_servers {
        let healthcheck::Probe::Tcp(t) = &v.real_servers[0].checks[0].probe else {
            panic!("tcp check");
        };
        assert_eq!(t.target, "192.0.2.50:8080".parse().expect("addr"));
    }
    // The effective configuration prints the group and loads back.
    let printed = c.to_toml();
    assert!(printed.contains("group = \"web\""), "{printed}");
    assert!(printed.contains("\"192.0.2.10-12 80\""), "{printed}");
    assert_eq!(ok(&printed), c);
}

#[test]
fn a_group_takes_the_family_and_protocol_keepalived_gives_it() {
    // Address entries take the virtual server's protocol; a mark without
    // a family takes the group's addresses' family, else the real
    // servers', else `family`.
    let text = "[virtual_server_group]\nv6 = [\"2001:db8::1-2 53\", \"fwmark 9\"]\nmarks = [\"fwmark 10\"]\n\
                [[virtual_server]]\ngroup = \"v6\"\nprotocol = \"UDP\"\n\
                [[virtual_server.real_server]]\nip = \"2001:db8::50\"\nport = 53\n\
                [[virtual_server]]\ngroup = \"marks\"\n\
                [[virtual_server.real_server]]\nip = \"2001:db8::51\"\n";
    let c = ok(text);
    assert_eq!(
        plan_keys(&plan(&c)),
        [
            "udp/[2001:db8::1]:53",
            "udp/[2001:db8::2]:53",
            "fwmark6/9",
            "fwmark6/10"
        ]
    );
    // Two virtual servers on one group and protocol: the same services.
    let dup = "[virtual_server_group]\ng = [\"192.0.2.1 80\"]\n\
               [[virtual_server]]\ngroup = \"g\"\n[[virtual_server.real_server]]\nip = \"192.0.2.9\"\nport = 80\n\
               [[virtual_server]]\ngroup = \"g\"\n[[virtual_server.real_server]]\nip = \"192.0.2.9\"\nport = 80\n";
    one_error(dup, 8, "virtual_server[1]", "is also virtual_server[0]");
    // Same group with UDP is another service: fine, and keepalived's
    // member numbers count the group's users.
    let c = ok(&dup.replacen(
        "group = \"g\"\n[[",
        "group = \"g\"\nprotocol = \"UDP\"\n[[",
        1,
    ));
    let members: Vec<usize> = c
        .virtual_servers
        .iter()
        .map(|v| v.group.as_ref().map_or(9, |g| g.member))
        .collect();
    assert_eq!(members, [0, 1]);
}

#[test]
fn group_mistakes_are_refused_at_their_line() {
    let rs = "[[virtual_server.real_server]]\nip = \"192.0.2.9\"\nport = 80\n";
    one_error(
        &format!("[[virtual_server]]\ngroup = \"nope\"\n{rs}"),
        2,
        "virtual_server[0].group",
        "virtual_server_group `nope` is not defined",
    );
    one_error(
        "[virtual_server_group]\ng = [\"192.0.2.1 80\", \"192.0.2.9-3 80\"]\n",
        2,
        "virtual_server_group.g[1]",
        "ends before it starts",
    );
    one_error(
        &format!(
            "[virtual_server_group]\ng = [\"192.0.2.1 80\", \"2001:db8::1 80\"]\n[[virtual_server]]\ngroup = \"g\"\n{rs}"
        ),
        4,
        "virtual_server[0].group",
        "mixes IPv4 and IPv6",
    );
    one_error(
        &format!(
            "[virtual_server_group]\ng = [\"192.0.2.1\"]\n[[virtual_server]]\ngroup = \"g\"\n{rs}"
        ),
        4,
        "virtual_server[0].group",
        "must be persistent",
    );
    one_error(
        &format!(
            "[virtual_server_group]\ng = [\"192.0.2.1 80\"]\n[[virtual_server]]\ngroup = \"g\"\nip = \"192.0.2.1\"\n{rs}"
        ),
        3,
        "virtual_server[0]",
        "set either",
    );
    // A DR real server without a port whose check has nowhere to go.
    one_error(
        "[virtual_server_group]\ng = [\"192.0.2.1 80\"]\n[[virtual_server]]\ngroup = \"g\"\nlb_kind = \"DR\"\n\
         [[virtual_server.real_server]]\nip = \"192.0.2.9\"\ntcp_check = {}\n",
        6,
        "virtual_server[0].real_server[0]",
        "connect to port 0",
    );
    // ... which connect_port fixes.
    ok(
        "[virtual_server_group]\ng = [\"192.0.2.1 80\"]\n[[virtual_server]]\ngroup = \"g\"\nlb_kind = \"DR\"\n\
        [[virtual_server.real_server]]\nip = \"192.0.2.9\"\ntcp_check = { connect_port = 80 }\n",
    );
}

#[test]
fn check_sources_sni_and_regexes_reach_the_probes() {
    let text = "[[virtual_server]]\nip = \"192.0.2.5\"\nport = 443\nvirtualhost = \"www.example.com\"\n\
                [[virtual_server.real_server]]\nip = \"192.0.2.6\"\n\
                [[virtual_server.real_server.ssl_get]]\nenable_sni = false\nbindto = \"192.0.2.1\"\nbind_port = 4000\nbind_if = \"eth1\"\n\
                url = [{ path = \"/\", regex = \"ok|fine\", regex_options = [\"caseless\"], regex_max_offset = 100 }]\n\
                [[virtual_server.real_server.ssl_get]]\n";
    let c = ok(text);
    let p = plan(&c);
    let probes: Vec<&healthcheck::HttpCheck> = p.virtual_servers[0].real_servers[0]
        .checks
        .iter()
        .map(|c| match &c.probe {
            healthcheck::Probe::Http(h) => h,
            other => panic!("{other:?}"),
        })
        .collect();
    let h = probes[0];
    assert_eq!(h.bind, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!(h.bind_port, Some(4000));
    assert_eq!(h.bind_interface.as_deref(), Some("eth1"));
    assert_eq!(h.tls.as_ref().map(|t| t.send_sni), Some(false));
    let r = h.regex.as_ref().expect("regex");
    assert_eq!(
        (r.pattern.as_str(), r.options.caseless, r.max_offset),
        ("ok|fine", true, Some(100))
    );
    // Unset, the virtual host goes in the handshake.
    assert_eq!(probes[1].tls.as_ref().map(|t| t.send_sni), Some(true));
    assert_eq!(ok(&c.to_toml()), c);
    // keepalived's rules.
    let rs = "[[virtual_server]]\nip = \"2001:db8::5\"\nport = 80\n[[virtual_server.real_server]]\nip = \"2001:db8::6\"\n";
    one_error(
        &format!("{rs}[[virtual_server.real_server.tcp_check]]\nconnect_ip = \"fe80::1\"\n"),
        7,
        "virtual_server[0].real_server[0].tcp_check[0].connect_ip",
        "needs bind_if",
    );
    one_error(
        &format!("{rs}[[virtual_server.real_server.tcp_check]]\nbind_to = \"192.0.2.1\"\n"),
        7,
        "virtual_server[0].real_server[0].tcp_check[0].bind_to",
        "not of the family",
    );
    one_error(
        &format!(
            "{rs}[[virtual_server.real_server.http_get]]\nurl = [{{ regex_no_match = true }}]\n"
        ),
        7,
        "virtual_server[0].real_server[0].http_get[0].url[0].regex_no_match",
        "needs `regex`",
    );
    one_error(
        &format!("{rs}[[virtual_server.real_server.http_get]]\nurl = [{{ regex = \"(a\" }}]\n"),
        7,
        "virtual_server[0].real_server[0].http_get[0].url[0].regex",
        "invalid regular expression",
    );
    one_error(
        &format!(
            "{rs}[[virtual_server.real_server.http_get]]\nurl = [{{ regex = \"a\", regex_options = [\"auto_callout\"] }}]\n"
        ),
        7,
        "virtual_server[0].real_server[0].http_get[0].url[0].regex_options[0]",
        "not a regex option",
    );
}

#[test]
fn track_processes_reach_the_plan_with_keepalived_s_rules() {
    let text = format!(
        "[track_process.web]\nprocess = \"nginx\"\nquorum = 2\nweight = -30\ndelay = \"2s\"\n\
         [track_process.api]\nprocess = \"/usr/bin/python3\"\nparams = [\"-m\", \"api\"]\nparam_match = \"partial\"\n\
         [track_process.none]\nprocess = \"forbidden\"\nquorum_max = 0\n\
         {MINIMAL}track_process = [\"web\", {{ name = \"api\", weight = 10, reverse = true }}, \"none\"]\n"
    );
    let c = ok(&text);
    let web = &c.track_processes["web"].spec;
    assert_eq!((web.quorum, web.quorum_max), (2, u32::MAX));
    assert_eq!(
        (web.fork_delay, web.terminate_delay),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    let api = &c.track_processes["api"].spec;
    assert!(api.full_command, "params imply the command line");
    assert_eq!(api.param_match, healthcheck::process::ParamMatch::Partial);
    let none = &c.track_processes["none"].spec;
    assert_eq!((none.quorum, none.quorum_max), (0, 0), "up while none runs");
    let i = &c.instances["VI_1"];
    assert_eq!(i.track_process[0].weight.get(), -30);
    assert_eq!(
        (i.track_process[1].weight.get(), i.track_process[1].reverse),
        (10, true)
    );
    let p = plan(&c);
    assert_eq!(p.processes.len(), 3);
    let ids: Vec<TrackId> = p.processes.iter().map(|x| x.id).collect();
    let tracks = &p.driver.instances[0].tracks;
    assert!(
        ids.iter().all(|id| tracks.iter().any(|(t, _, _)| t == id)),
        "{tracks:?}"
    );
    assert_eq!(ok(&c.to_toml()), c);
    // Mistakes.
    one_error(
        "[track_process.x]\nprocess = \"a-very-long-process-name\"\n",
        2,
        "track_process.x.process",
        "never matches",
    );
    one_error(
        "[track_process.x]\nprocess = \"a\"\nquorum = 3\nquorum_max = 2\n",
        4,
        "track_process.x.quorum_max",
        "below quorum",
    );
    one_error(
        "[track_process.x]\nprocess = \"a\"\nweight = 300\n",
        3,
        "track_process.x.weight",
        "out of -254..=254",
    );
    one_error(
        &format!("{MINIMAL}track_process = [\"nope\"]\n"),
        4,
        "instance.VI_1.track_process[0]",
        "not defined",
    );
}

#[test]
fn address_options_resolve_round_trip_and_bad_ones_name_their_line() {
    let text = format!(
        "static_ipaddress = [\"192.0.2.60/24 dev eth1 scope host\"]\n{MINIMAL}promote_secondaries = true\nvirtual_ipaddress = [\n  \"192.0.2.42/24 brd + scope link no_track dev eth1\",\n  {{ address = \"192.0.2.43\", peer = \"192.0.2.200/30\" }},\n  {{ address = \"192.0.2.44/24\", broadcast = \"-\", scope = \"200\" }},\n]\nvirtual_ipaddress_excluded = [\"2001:db8::7\", {{ address = \"2001:db8::8/64\", preferred_lft = 60 }}]\n"
    );
    let c = ok(&text);
    let i = &c.instances["VI_1"];
    assert!(i.promote_secondaries);
    assert_eq!(i.vips[0].attrs.scope, Some(253));
    assert_eq!(i.vips[0].attrs.broadcast, "192.0.2.255".parse().ok());
    assert!(i.vips[0].no_track);
    assert_eq!(i.vips[1].address.prefix_len, 30);
    assert_eq!(i.vips[1].attrs.peer, "192.0.2.200".parse().ok());
    assert_eq!(i.vips[2].attrs.broadcast, "192.0.2.0".parse().ok());
    assert_eq!(i.vips[2].attrs.scope, Some(200));
    assert_eq!(i.excluded[0].attrs.preferred_lft, Some(0));
    assert_eq!(i.excluded[1].attrs.preferred_lft, Some(60));
    assert_eq!(c.static_addresses[0].attrs.scope, Some(254));
    // `vrrpd config show` prints what reads back the same.
    assert_eq!(ok(&c.to_toml()), c);

    let vip = |line: &str| format!("{MINIMAL}virtual_ipaddress = [\n  \"{line}\",\n]\n");
    one_error(
        &vip("192.0.2.42/24 scope lnk"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "scope `lnk`",
    );
    one_error(
        &vip("192.0.2.42/24 scope 256"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "scope `256`",
    );
    one_error(
        &vip("192.0.2.42/32 brd +"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "at most 30 bits",
    );
    one_error(
        &vip("192.0.2.42/24 brd 2001:db8::1"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "brd `2001:db8::1`",
    );
    one_error(
        &vip("2001:db8::1 brd +"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "IPv6 has no broadcast",
    );
    one_error(
        &vip("2001:db8::1 scope link"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "kernel's",
    );
    one_error(
        &vip("192.0.2.42/24 peer 192.0.2.1"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "goes on the peer",
    );
    one_error(
        &vip("192.0.2.42 peer 2001:db8::1"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "family",
    );
    one_error(
        &vip("192.0.2.42 peer 192.0.2.1 brd 192.0.2.255"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "brd and peer",
    );
    one_error(
        &vip("2001:db8::1 preferred_lft soon"),
        5,
        "instance.VI_1.virtual_ipaddress[0]",
        "preferred_lft `soon`",
    );
    one_error(
        &format!("static_ipaddress = [\"192.0.2.60/24\"]\n{MINIMAL}"),
        1,
        "static_ipaddress[0]",
        "dev",
    );
}
