//! keepalived's interface and timer keywords of a `vrrp_instance`
//! (`use_vmac`, `vmac_xmit_base`, `dont_track_primary`,
//! `down_timer_adverts`, `garp_lower_prio_*`): imported without a warning, read from TOML with
//! errors naming the key, and planned into the driver's instance spec.

use std::path::Path;

use super::*;
use crate::config::{self, Target};

fn import(text: &str) -> Imported {
    let options = Options {
        config_id: "node1".to_owned(),
    };
    match import_str(text, Path::new("keepalived.conf"), &options) {
        Ok(i) => i,
        Err(e) => panic!("import failed: {e}"),
    }
}

/// The driver's instances of a TOML file, or its errors.
fn planned(toml: &str) -> Result<Vec<vrrp_net::driver::InstanceSpec>, Vec<String>> {
    let (outcome, errors) = config::read(toml, Path::new("vrrpd.toml"), Target::OtherHost);
    if !errors.is_empty() {
        return Err(errors.iter().map(ToString::to_string).collect());
    }
    Ok(crate::plan::plan(&outcome.effective).driver.instances)
}

fn instance(vrid: u8, family_vip: &str, extra: &str) -> String {
    format!(
        "vrrp_instance VI_{vrid} {{\n  interface eth0\n  virtual_router_id {vrid}\n  version 3\n{extra}  virtual_ipaddress {{\n    {family_vip}\n  }}\n}}\n"
    )
}

#[test]
fn use_vmac_and_vmac_xmit_base_are_carried_without_warnings() {
    let text = [
        instance(51, "192.0.2.51/24", "  use_vmac\n"),
        instance(
            52,
            "192.0.2.52/24",
            "  use_vmac vrrp-web\n  vmac_xmit_base\n  dont_track_primary\n",
        ),
        // keepalived's default name for the IPv6 instance of a VRID whose
        // IPv4 instance took `vrrp.51`.
        instance(51, "2001:db8::51/64", "  use_vmac\n").replace("VI_51", "VI_51_6"),
    ]
    .concat();
    let imported = import(&text);
    assert!(imported.warnings.is_empty(), "{:#?}", imported.warnings);
    let specs = planned(&imported.toml()).unwrap_or_else(|e| panic!("{e:#?}"));
    let vmac = |n: &str| {
        specs
            .iter()
            .find(|s| s.name == n)
            .and_then(|s| s.vmac.clone())
            .map(|v| (v.name, v.xmit_base))
    };
    assert_eq!(vmac("VI_51"), Some(("vrrp.51".into(), false)));
    assert_eq!(vmac("VI_52"), Some(("vrrp-web".into(), true)));
    assert_eq!(vmac("VI_51_6"), Some(("vrrp6.51".into(), false)));
    let dont_track = |n: &str| specs.iter().any(|s| s.name == n && s.dont_track_primary);
    assert!(dont_track("VI_52") && !dont_track("VI_51"));

    // A MAC of one's own is not carried, and said so.
    let imported = import(&instance(
        53,
        "192.0.2.53/24",
        "  use_vmac vm53 02:11:22:33:44:55\n",
    ));
    assert_eq!(imported.warnings.len(), 1, "{:#?}", imported.warnings);
    assert!(imported.warnings[0].message.contains("02:11:22:33:44:55"));
    let specs = planned(&imported.toml()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        specs[0].vmac.as_ref().map(|v| v.name.as_str()),
        Some("vm53")
    );
}

#[test]
fn bad_vmac_settings_are_refused_with_the_key() {
    let base = "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\nvirtual_ipaddress = [\"192.0.2.7/24\"]\n";
    let cases = [
        ("use_vmac = \"eth0\"\n", "own interface"),
        (
            "use_vmac = \"a-name-much-too-long\"\n",
            "not an interface name",
        ),
        ("vmac_xmit_base = true\n", "needs use_vmac"),
    ];
    for (extra, needle) in cases {
        let errors = planned(&format!("{base}{extra}")).expect_err(extra);
        assert!(
            errors.len() == 1 && errors[0].contains(needle) && errors[0].contains(":5"),
            "{extra}: {errors:#?}"
        );
    }
    let two = format!(
        "{base}use_vmac = \"vm\"\n[instance.B]\ninterface = \"eth0\"\nvirtual_router_id = 8\nvirtual_ipaddress = [\"192.0.2.8/24\"]\nuse_vmac = \"vm\"\n"
    );
    let errors = planned(&two).expect_err("shared name");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("instance.B.use_vmac") && e.contains("already")),
        "{errors:#?}"
    );
    let off = planned(&format!("{base}use_vmac = false\n")).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(off[0].vmac, None);
}

/// The engine configurations of a TOML file's instances, by name.
fn engines(toml: &str) -> std::collections::BTreeMap<String, vrrp_core::InstanceConfig> {
    planned(toml)
        .unwrap_or_else(|e| panic!("{e:#?}"))
        .into_iter()
        .map(|s| (s.name.clone(), s.config))
        .collect()
}

#[test]
fn down_timer_adverts_and_lower_priority_garps_follow_keepalived() {
    let text = "global_defs {\n  vrrp_down_timer_adverts 5\n  vrrp_garp_master_repeat 2\n  vrrp_garp_lower_prio_delay 7\n}\n"
        .to_owned()
        + &instance(1, "192.0.2.1/24", "")
        + &instance(2, "192.0.2.2/24", "  down_timer_adverts 1\n  garp_lower_prio_repeat 0\n  garp_lower_prio_delay 2\n  garp_master_repeat 9\n")
        + &instance(3, "192.0.2.3/24", "  strict_mode\n  garp_lower_prio_repeat 4\n");
    let imported = import(&text);
    // Only strict mode's reset is worth a word.
    assert_eq!(imported.warnings.len(), 1, "{:#?}", imported.warnings);
    assert!(
        imported.warnings[0]
            .message
            .contains("garp_lower_prio_repeat")
    );
    let e = engines(&imported.toml());
    let (one, two, three) = (&e["VI_1"], &e["VI_2"], &e["VI_3"]);
    assert_eq!(one.down_timer_adverts, 5);
    // keepalived: an instance's lower-priority GARPs default to the global
    // ones (vrrp_garp_lower_prio_*, else vrrp_garp_master_*), never to the
    // instance's own garp_master_*.
    assert_eq!(one.garp.lower_prio_repeat, 2);
    assert_eq!(one.garp.lower_prio_delay, std::time::Duration::from_secs(7));
    assert_eq!(two.down_timer_adverts, 1);
    assert_eq!(two.garp.lower_prio_repeat, 0);
    assert_eq!(two.garp.lower_prio_delay, std::time::Duration::from_secs(2));
    assert_eq!(three.garp.lower_prio_repeat, 0, "strict mode");
    assert!(three.garp.lower_prio_delay.is_zero(), "strict mode");
    assert_eq!(three.down_timer_adverts, 5);

    let base = "[instance.A]\ninterface = \"eth0\"\nvirtual_router_id = 7\nvirtual_ipaddress = [\"192.0.2.7/24\"]\n";
    for (extra, needle) in [
        ("down_timer_adverts = 0\n", "1..=100"),
        ("down_timer_adverts = 101\n", "1..=100"),
        (
            "strict_mode = true\ngarp_lower_prio_delay = \"1s\"\n",
            "must be 0",
        ),
    ] {
        let errors = planned(&format!("{base}{extra}")).expect_err(extra);
        assert!(
            errors.len() == 1 && errors[0].contains(needle),
            "{extra}: {errors:#?}"
        );
    }
}
